//! A record's data as bytes: base64 decoded, gzip inflated within the record's budget, with room left to stamp it.

use std::io::Read;

use super::Rejection;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The record's data as bytes, decoded with SIMD (most of a record's data is its base64): standard alphabet, padded,
/// canonical, as Kinesis writes it.
pub(super) fn decode_base64(base64_text: &str) -> Result<Vec<u8>, Rejection> {
    let text = base64_text.trim();
    let mut raw = Vec::with_capacity(text.len() / 4 * 3 + STAMP_ROOM);
    if base64_simd::STANDARD.decode_append(text, &mut raw).is_err() {
        return Err(Rejection::InvalidBase64(what_is_wrong(text)));
    }
    if raw.is_empty() {
        return Err(Rejection::Empty);
    }
    Ok(raw)
}

/// Why `text` is not padded standard base64, for the rejection's log line (the decoder itself only says no).
fn what_is_wrong(text: &str) -> String {
    let body = text.trim_end_matches('=');
    let in_alphabet = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    if let Some((offset, c)) = body.char_indices().find(|&(_, c)| !in_alphabet(c)) {
        return format!("invalid character {c:?} at offset {offset}");
    }
    if !text.len().is_multiple_of(4) {
        return format!("{} characters, not a multiple of 4 (padding missing or cut short)", text.len());
    }
    if text.len() - body.len() > 2 {
        return "more than two padding characters".to_owned();
    }
    "the last character before the padding has bits set that a canonical encoding leaves clear".to_owned()
}

/// Inflates gzip (magic `1f 8b`), taking what the result holds from `budget`: a record's data, all its KPL user
/// records together, never exceeds `MAX_RECORD_BYTES` decoded. On failure, returns the data to quote.
pub fn inflate(raw: Vec<u8>, budget: &mut usize) -> Result<Vec<u8>, (Rejection, Vec<u8>)> {
    let limit = *budget;
    if raw.is_empty() {
        return Err((Rejection::Empty, raw));
    }
    if !raw.starts_with(&GZIP_MAGIC) {
        if raw.len() > limit {
            return Err((Rejection::TooLarge { limit }, raw));
        }
        *budget = budget.saturating_sub(raw.len());
        return Ok(raw);
    }
    let mut inflated = Vec::with_capacity(inflated_size_hint(&raw).min(limit) + STAMP_ROOM);
    // MultiGzDecoder: CloudWatch Logs and `gzip -c a b` may concatenate members.
    let decoder = flate2::read::MultiGzDecoder::new(raw.as_slice());
    if let Err(error) = decoder.take(limit as u64 + 1).read_to_end(&mut inflated) {
        return Err((Rejection::CorruptGzip(error.to_string()), raw));
    }
    if inflated.len() > limit {
        return Err((Rejection::TooLarge { limit }, raw));
    }
    if inflated.is_empty() {
        return Err((Rejection::Empty, raw));
    }
    *budget = budget.saturating_sub(inflated.len());
    Ok(inflated)
}

/// The size gzip data inflates to, as its trailer says (RFC 1952 ISIZE: the last member's size mod 2^32), and at
/// least four times the compressed size when the trailer says less (a truncated or multi-member stream). Reserving
/// it saves the copies, and the twice-the-size peak, of a buffer doubling up to a large record; the caller caps it
/// by the record's budget, so a trailer that lies cannot reserve more than a record may hold.
fn inflated_size_hint(gzip: &[u8]) -> usize {
    let trailer =
        gzip.len().checked_sub(4).map(|at| u32::from_le_bytes([gzip[at], gzip[at + 1], gzip[at + 2], gzip[at + 3]]));
    (trailer.unwrap_or(0) as usize).max(gzip.len() * 4)
}

/// What `decode_base64` and `inflate` leave free after the data: room for the timestamp field a document may gain
/// (`"@timestamp":"2026-11-23T10:00:00.000Z",` is 40 bytes), so that stamping it moves the document within its
/// own buffer instead of copying it into a new one.
pub(super) const STAMP_ROOM: usize = 96;

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use testkit::gzip;

    #[test]
    fn the_simd_base64_decoder_accepts_and_decodes_exactly_what_the_reference_decoder_does() {
        let reference = |text: &str| base64::engine::general_purpose::STANDARD.decode(text).ok();
        let simd = |text: &str| base64_simd::STANDARD.decode_to_vec(text).ok();
        let mut rng = fastrand::Rng::with_seed(64);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut agreed = [0, 0];
        for round in 0..20_000 {
            let bytes: Vec<u8> = (0..rng.usize(..80)).map(|_| rng.u8(..)).collect();
            let mut text = b64(&bytes).into_bytes();
            // Most rounds damage the text: a byte of the alphabet or not, a pad, a cut, a non-canonical last digit.
            let at = rng.usize(..text.len().max(1));
            match round % 5 {
                0 => {}
                1 if !text.is_empty() => text[at] = ALPHABET[rng.usize(..64)],
                2 if !text.is_empty() => text[at] = b"=-_ .\n*"[rng.usize(..7)],
                3 => text.truncate(rng.usize(..=text.len())),
                _ => text.extend((0..rng.usize(1..4)).map(|_| b"A=Q/"[rng.usize(..4)])),
            }
            let text = String::from_utf8(text).unwrap();
            let (expected, got) = (reference(&text), simd(&text));
            assert_eq!(got, expected, "{text:?}");
            agreed[usize::from(expected.is_some())] += 1;
        }
        assert!(agreed[0] > 5_000 && agreed[1] > 5_000, "both accepted and refused texts are compared: {agreed:?}");
    }

    #[test]
    fn data_that_is_not_base64_is_rejected_with_what_is_wrong() {
        assert_eq!(decode_base64(" aGk= ").unwrap(), b"hi");
        let why = |text: &str| match decode_base64(text) {
            Err(Rejection::InvalidBase64(why)) => why,
            other => panic!("{text:?} refused as invalid base64, got {other:?}"),
        };
        assert_eq!(why("aG%k"), "invalid character '%' at offset 2");
        assert_eq!(why("aGk=aGk="), "invalid character '=' at offset 3", "padding inside");
        assert_eq!(why("aGk"), "3 characters, not a multiple of 4 (padding missing or cut short)");
        assert_eq!(why("aG==="), "5 characters, not a multiple of 4 (padding missing or cut short)");
        assert_eq!(why("a==="), "more than two padding characters");
        assert_eq!(
            why("aGl="),
            "the last character before the padding has bits set that a canonical encoding leaves clear"
        );
        assert_eq!(decode_base64(""), Err(Rejection::Empty));
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn gzip_is_inflated_and_a_gzip_bomb_is_refused() {
        let mut budget = 1024;
        assert_eq!(inflate(gzip(b"hello"), &mut budget).unwrap(), b"hello");
        assert_eq!(budget, 1019, "what is inflated is taken from the budget");
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 5_000);
        assert_eq!(inflate(bomb, &mut 65536).unwrap_err().0, Rejection::TooLarge { limit: 64 * 1024 });
        assert_eq!(inflate(vec![0x1f, 0x8b, 8, 0, 1, 2], &mut 1024).unwrap_err().0.kind(), "corrupt_gzip");
        assert_eq!(inflate(b"12345".to_vec(), &mut 4).unwrap_err().0, Rejection::TooLarge { limit: 4 });
    }

    #[test]
    fn bad_base64_and_empty_data_are_rejected() {
        assert_eq!(decode_base64("not base64!").unwrap_err().kind(), "invalid_base64");
        assert_eq!(decode_base64("").unwrap_err(), Rejection::Empty);
        assert_eq!(
            inflate(base64::engine::general_purpose::STANDARD.decode(b64(&gzip(b""))).unwrap(), &mut 1024)
                .unwrap_err()
                .0,
            Rejection::Empty
        );
    }
}
