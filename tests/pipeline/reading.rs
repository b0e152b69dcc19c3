//! The tests' own reading of a Kinesis event, written without the indexer's code: a stream's tag in `_id`s and the
//! order of sequence numbers.

use std::cmp::Ordering;

use md5::{Digest, Md5};

/// The stream's part of every `_id` in `ES_DOC_ID=kinesis` mode: the first 4 bytes of the MD5 of the
/// `eventSourceARN`, in hex (README: "`_id`s").
pub fn stream_tag(event_source_arn: &str) -> String {
    Md5::digest(event_source_arn.as_bytes())[..4].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Kinesis sequence numbers are decimal strings of up to 128 bits, longer than any integer type reads: as numbers,
/// the one with more digits (leading zeros aside) is the greater, and digits of equal count compare as text.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[test]
fn the_tests_stream_tag_and_sequence_order_are_what_they_say() {
    // `python3 -c "import hashlib; print(hashlib.md5(b'…app-logs').hexdigest()[:8])"`
    assert_eq!(stream_tag("arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs"), "a23312aa");
    assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
    assert_eq!(compare_sequence_numbers("010", "10"), Ordering::Equal);
    assert_eq!(
        compare_sequence_numbers(
            "49659430837140296285178254290958203049934046452683522050",
            "49659430837140296285178254290958203049934047452683522057"
        ),
        Ordering::Less,
        "beyond u128's 39 digits"
    );
}
