//! Where a chunk ends: the one rule that cuts documents into `_bulk` requests and entries into Firehose calls.

use std::ops::Range;

/// A chunk being filled: at most `max_count` items and, unless its first item alone is larger, `max_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimit {
    max_count: usize,
    max_bytes: usize,
    count: usize,
    bytes: usize,
}

impl ChunkLimit {
    pub fn new(max_count: usize, max_bytes: usize) -> ChunkLimit {
        ChunkLimit { max_count, max_bytes, count: 0, bytes: 0 }
    }

    /// Whether nothing more can go in, whatever its size: asked before an item is made, so that none is made for
    /// nothing.
    pub fn full(&self) -> bool {
        self.count >= self.max_count || self.bytes >= self.max_bytes
    }

    /// Takes an item of `size` bytes when it fits (the first item always does), and says whether it did.
    pub fn admit(&mut self, size: usize) -> bool {
        if self.count > 0 && (self.count >= self.max_count || self.bytes + size > self.max_bytes) {
            return false;
        }
        self.count += 1;
        self.bytes += size;
        true
    }
}

/// Consecutive ranges over items of the given sizes, each one chunk as `ChunkLimit` cuts them.
pub fn ranges_within(sizes: impl IntoIterator<Item = usize>, max_count: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut limit = ChunkLimit::new(max_count, max_bytes);
    let mut end = 0;
    for (position, size) in sizes.into_iter().enumerate() {
        if !limit.admit(size) {
            ranges.push(start..position);
            start = position;
            limit = ChunkLimit::new(max_count, max_bytes);
            limit.admit(size);
        }
        end = position + 1;
    }
    if start < end {
        ranges.push(start..end);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_the_count_and_the_bytes_and_a_larger_item_travels_alone() {
        assert_eq!(ranges_within([1, 1, 1, 1, 1], 2, 100), vec![0..2, 2..4, 4..5]);
        assert_eq!(ranges_within([4, 4, 4], 10, 8), vec![0..2, 2..3]);
        assert_eq!(ranges_within([3, 20, 3], 10, 8), vec![0..1, 1..2, 2..3], "20 bytes travel alone");
        assert_eq!(ranges_within([8, 1], 10, 8), vec![0..1, 1..2], "exactly full");
        assert_eq!(ranges_within(std::iter::empty(), 10, 8), Vec::<Range<usize>>::new());
    }

    #[test]
    fn a_full_chunk_is_known_before_the_next_item_is_made() {
        let mut limit = ChunkLimit::new(2, 100);
        assert!(!limit.full() && limit.admit(500), "the first item always goes in");
        assert!(limit.full(), "over the bytes");
        let mut limit = ChunkLimit::new(2, 100);
        assert!(limit.admit(1) && limit.admit(1) && limit.full() && !limit.admit(1));
    }
}
