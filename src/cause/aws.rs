//! AWS's answers, read once: Firehose's and S3's error codes, and a call that failed before any answer, say
//! whether someone must act (the credentials, the stream, the bucket) or another attempt may succeed.

/// Error codes that say the function's credentials are missing, wrong, expired or not allowed the stream.
const FIREHOSE_CREDENTIALS_REFUSED: [&str; 6] = [
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
];
/// Error codes that say the stream itself is wrong for us: missing, its KMS key unusable, not a direct-put stream.
const FIREHOSE_STREAM_UNUSABLE: [&str; 3] =
    ["ResourceNotFoundException", "InvalidKMSResourceException", "InvalidSourceException"];

/// S3 error codes that say the bucket is unusable to the function until someone acts: missing, forbidden, in
/// another region, or the credentials refused (S3 API reference, "Error responses"); every `KMS.` error besides.
const BUCKET_UNUSABLE: [&str; 11] = [
    "AccessDenied",
    "AllAccessDisabled",
    "NoSuchBucket",
    "InvalidBucketName",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
];

/// Whether a Firehose error code says the function's credentials are missing, wrong, expired or not allowed.
pub fn firehose_credentials_refused(code: &str) -> bool {
    FIREHOSE_CREDENTIALS_REFUSED.contains(&code)
}

/// Whether a Firehose error code says the stream itself is wrong for us (missing, its key, its source).
pub fn firehose_stream_unusable(code: &str) -> bool {
    FIREHOSE_STREAM_UNUSABLE.contains(&code)
}

/// Whether an S3 error code says the bucket is unusable to the function until someone acts.
pub fn s3_bucket_unusable(code: &str) -> bool {
    BUCKET_UNUSABLE.contains(&code) || code.starts_with("KMS.")
}

/// Whether a call that failed before any answer (dispatch, construction) failed for want of credentials: the SDK
/// says so in its error chain ("no credentials provider", "failed to load credentials"), in any case.
pub fn without_credentials(error_chain: &str) -> bool {
    error_chain.to_ascii_lowercase().contains("credential")
}
