//! Environment → typed, validated `Config`, read once at cold start.
//!
//! `Config::from_lookup` takes any name → value function so every rule is testable without touching the process
//! environment; `Config::from_env` is that function over `std::env::var`. This file owns `Config`, its reading and
//! `ConfigError`; `auth` reads the authentication, `endpoint` what `ES_URL` and an AWS endpoint's name say, `read`
//! a variable's value.

mod auth;
mod endpoint;
pub mod preprocess;
mod read;

use std::path::PathBuf;
use std::time::Duration;

pub use auth::EsAuth;
use auth::parse_auth;
use endpoint::{check_domain, host_of, parse_url};
pub use endpoint::{domain_of_url_is, redact_url};
pub(crate) use read::{boolean, choice};
use read::{millis, number};

use crate::budget::MIN_REQUEST_TIME;
use crate::config::preprocess::Preprocess;
use crate::index::IndexPattern;

/// Everything the indexer needs to know, parsed and checked, in parts: the cluster, what each document is made of
/// and what is done to it on the way, how documents are sent, the Firehose tier, and the dead letter.
#[derive(Debug, Clone)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub documents: DocumentConfig,
    /// What is done to documents on the way: structured messages, filters, static fields, provenance.
    pub preprocessing: Preprocess,
    pub bulk: BulkConfig,
    pub firehose: FirehoseConfig,
    /// Where documents the cluster rejects for their own fault are kept whole (`DEAD_LETTER_BUCKET`, an S3 bucket,
    /// and `DEAD_LETTER_PREFIX`); `None`: they are logged only.
    pub dead_letter: Option<DeadLetterPlace>,
    /// Bytes of a document quoted in an error log line.
    pub log_excerpt_bytes: usize,
}

/// The cluster: where it is, how requests reach it and authenticate, and where in it documents are written.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Base URL of the cluster (`https://host:9200`, optionally with a path prefix).
    pub url: String,
    pub auth: EsAuth,
    /// A PEM bundle of CAs to trust besides the public roots (self-managed clusters).
    pub ca_cert: Option<PathBuf>,
    /// Certificate verification; `false` only by explicit choice (`ES_TLS_VERIFY=false`), and logged loudly.
    pub tls_verify: bool,
    /// The timeout of one request (`ES_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Whether bulk bodies are gzip-compressed on the wire.
    pub compression: Compression,
    /// Target index name, or a pattern with strftime date parts taken from each document's timestamp (UTC) and
    /// placeholders for its log group or fields.
    pub index: IndexPattern,
    /// Ingest pipeline every bulk request names (`?pipeline=`), overriding the index's default pipeline.
    pub pipeline: Option<String>,
}

/// What each document is made of, as its record is decoded: its timestamp, its `_id`, and the most its record
/// may inflate to.
#[derive(Debug, Clone)]
pub struct DocumentConfig {
    /// Name of the timestamp field: kept when present, else set from the record's arrival time.
    pub timestamp_field: String,
    /// A document timestamp further than this from its record's arrival names no index: the arrival time does.
    pub timestamp_max_skew: Duration,
    pub doc_id: DocIdMode,
    /// Cap on a record's decoded (inflated) size: larger records are rejected, so a gzip bomb cannot exhaust memory.
    pub max_record_bytes: usize,
}

/// How documents are sent: the size of a bulk request, how many are in flight, and the invocation's time around
/// them (when no request starts any more, how long an invocation that sends records back waits).
#[derive(Debug, Clone)]
pub struct BulkConfig {
    pub max_bytes: usize,
    pub max_docs: usize,
    pub concurrency: usize,
    /// Whether the requests in flight adapt to the cluster's answers within 1..=`concurrency`, and a request the
    /// cluster is saturated by keeps its documents in the stream (`BULK_CONCURRENCY_MODE=adaptive`, the default);
    /// `fixed`: always `concurrency` in flight, and every "retry later" to Firehose.
    pub adaptive_concurrency: bool,
    /// No new request starts when less than this is left before the invocation's deadline.
    pub deadline_margin: Duration,
    /// The first wait of an invocation that found the cluster away, before answering Lambda.
    pub pacing_base: Duration,
    /// The longest such wait; zero turns pacing off.
    pub pacing_max: Duration,
}

/// The Firehose tier, where "retry later" documents go.
#[derive(Debug, Clone)]
pub struct FirehoseConfig {
    /// The delivery stream; without it "retry later" documents go back to Kinesis.
    pub stream: Option<String>,
    /// Field that carries `{"_id": …, "_index": …}` in documents sent to Firehose.
    pub target_field: String,
    /// How many times one Firehose entry is offered before it goes back to Kinesis.
    pub max_attempts: u32,
}

/// The dead letter's S3 bucket and the prefix of its objects' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPlace {
    pub bucket: String,
    pub prefix: String,
}

pub const DEFAULT_DEAD_LETTER_PREFIX: &str = "rejected-documents/";

/// Where a document's `_id` comes from (`ES_DOC_ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocIdMode {
    /// `stream:shard:sequence:position`, the same on every redelivery: exactly once.
    Kinesis,
    /// No `_id`: the cluster makes one (OpenSearch Serverless TIMESERIES and VECTORSEARCH collections, time series
    /// data streams). At least once: a redelivery writes again.
    None,
    /// The value of this field of the document (a dotted path): deduplication on the producer's own key.
    Field(String),
}

/// Request body compression (`ES_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// `ES_COMPRESSION`'s words: gzip (the default) or none.
const COMPRESSIONS: [(&str, Compression); 2] = [("gzip", Compression::Gzip), ("none", Compression::None)];

/// `BULK_CONCURRENCY_MODE`'s words: whether concurrency is adaptive (the default) or fixed.
const CONCURRENCY_MODES: [(&str, bool); 2] = [("adaptive", true), ("fixed", false)];

/// A variable that is missing or does not parse, or that contradicts another; the message names it and says what
/// it expects. The one error of the configuration: `preprocess` refuses its settings with it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    /// `variable` refused: `problem` says what it expects, or why it cannot be.
    pub fn new(variable: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError { variable, problem: problem.into() }
    }
}

pub const DEFAULT_INDEX: &str = "logs-%Y.%m.%d";
pub const DEFAULT_BULK_MAX_BYTES: usize = 5 * 1024 * 1024;
pub const DEFAULT_BULK_MAX_DOCS: usize = 1_000;
pub const DEFAULT_BULK_CONCURRENCY: usize = 2;
pub const DEFAULT_ES_TIMEOUT_MS: u64 = 10_000;
/// The least `ES_TIMEOUT_MS`: the least time a request can have.
const MIN_ES_TIMEOUT_MS: u64 = MIN_REQUEST_TIME.as_millis() as u64;
pub const DEFAULT_TIMESTAMP_FIELD: &str = "@timestamp";
pub const DEFAULT_MAX_RECORD_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_DEADLINE_MARGIN_MS: u64 = 2_000;
pub const DEFAULT_FIREHOSE_MAX_ATTEMPTS: u32 = 4;
pub const DEFAULT_PACING_BASE_MS: u64 = 250;
/// 20 s: while the cluster is away a shard is retried every 10 s on average, not hundreds of times a second.
pub const DEFAULT_PACING_MAX_MS: u64 = 20_000;
pub const DEFAULT_FIREHOSE_TARGET_FIELD: &str = "es_target";
pub const DEFAULT_LOG_EXCERPT_BYTES: usize = 256;
/// Seven days: late data keeps its own day's index for a week; a date read in the wrong unit (1970) or typed wrong
/// (2999) creates no index of its own.
pub const DEFAULT_TIMESTAMP_MAX_SKEW_SECONDS: u64 = 7 * 24 * 3600;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        // The parts are read in the order below, and the variables of each in the order its reader reads them, so
        // that of several wrong variables the same one is named.
        let cluster = ClusterConfig::read(&get)?;
        let documents = DocumentConfig::read(&get)?;
        let firehose = FirehoseConfig::read(&get, &documents.timestamp_field)?;
        let preprocessing = Preprocess::parse(&get, &documents.timestamp_field, &firehose.target_field)?;
        Ok(Config {
            cluster,
            documents,
            preprocessing,
            firehose,
            dead_letter: parse_dead_letter(&get)?,
            bulk: BulkConfig::read(&get)?,
            log_excerpt_bytes: number(&get, "LOG_EXCERPT_BYTES", DEFAULT_LOG_EXCERPT_BYTES, 0, 64 * 1024)?,
        })
    }
}

impl ClusterConfig {
    /// Reads `ES_URL`, the authentication, `ES_DOMAIN_ARN` (checked against the URL), `ES_INDEX`, `ES_PIPELINE`,
    /// `ES_TIMEOUT_MS`, the TLS settings and `ES_COMPRESSION`.
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<ClusterConfig, ConfigError> {
        let url = get("ES_URL").ok_or_else(|| {
            ConfigError::new("ES_URL", "is required (e.g. https://search-domain.eu-west-1.es.amazonaws.com)")
        })?;
        let url = parse_url(&url)?;
        let auth = parse_auth(get, &url)?;
        if let Some(arn) = get("ES_DOMAIN_ARN") {
            check_domain(&arn, &host_of(&url))?;
        }
        Ok(ClusterConfig {
            index: parse_index(get)?,
            pipeline: parse_pipeline(get("ES_PIPELINE"))?,
            timeout: millis(get, "ES_TIMEOUT_MS", DEFAULT_ES_TIMEOUT_MS, MIN_ES_TIMEOUT_MS, 900_000)?,
            ca_cert: get("ES_CA_CERT").map(PathBuf::from),
            tls_verify: parse_tls_verify(get)?,
            compression: choice(get, "ES_COMPRESSION", &COMPRESSIONS)?.unwrap_or(Compression::Gzip),
            url,
            auth,
        })
    }
}

impl DocumentConfig {
    /// Reads `TIMESTAMP_FIELD`, `TIMESTAMP_MAX_SKEW_SECONDS`, `ES_DOC_ID` and `MAX_RECORD_BYTES`.
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<DocumentConfig, ConfigError> {
        let max_skew =
            number(get, "TIMESTAMP_MAX_SKEW_SECONDS", DEFAULT_TIMESTAMP_MAX_SKEW_SECONDS, 60, 100 * 365 * 24 * 3600)?;
        Ok(DocumentConfig {
            timestamp_field: get("TIMESTAMP_FIELD").unwrap_or_else(|| DEFAULT_TIMESTAMP_FIELD.to_owned()),
            timestamp_max_skew: Duration::from_secs(max_skew),
            doc_id: parse_doc_id(get("ES_DOC_ID"))?,
            max_record_bytes: number(get, "MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES, 1024, 1024 * 1024 * 1024)?,
        })
    }
}

impl BulkConfig {
    /// Reads `BULK_MAX_BYTES`, `BULK_MAX_DOCS`, `BULK_CONCURRENCY`, `BULK_CONCURRENCY_MODE`, `DEADLINE_MARGIN_MS`,
    /// `PACING_BASE_MS` and `PACING_MAX_MS`.
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<BulkConfig, ConfigError> {
        Ok(BulkConfig {
            max_bytes: number(get, "BULK_MAX_BYTES", DEFAULT_BULK_MAX_BYTES, 1024, 100 * 1024 * 1024)?,
            max_docs: number(get, "BULK_MAX_DOCS", DEFAULT_BULK_MAX_DOCS, 1, 100_000)?,
            concurrency: number(get, "BULK_CONCURRENCY", DEFAULT_BULK_CONCURRENCY, 1, 64)?,
            adaptive_concurrency: choice(get, "BULK_CONCURRENCY_MODE", &CONCURRENCY_MODES)?.unwrap_or(true),
            deadline_margin: millis(get, "DEADLINE_MARGIN_MS", DEFAULT_DEADLINE_MARGIN_MS, 0, 600_000)?,
            pacing_base: millis(get, "PACING_BASE_MS", DEFAULT_PACING_BASE_MS, 1, 60_000)?,
            pacing_max: millis(get, "PACING_MAX_MS", DEFAULT_PACING_MAX_MS, 0, 900_000)?,
        })
    }
}

impl FirehoseConfig {
    /// Reads `FIREHOSE_STREAM_NAME`, `FIREHOSE_TARGET_FIELD` (which must differ from the timestamp field) and
    /// `FIREHOSE_MAX_ATTEMPTS`.
    fn read(get: &impl Fn(&str) -> Option<String>, timestamp_field: &str) -> Result<FirehoseConfig, ConfigError> {
        let target_field = get("FIREHOSE_TARGET_FIELD").unwrap_or_else(|| DEFAULT_FIREHOSE_TARGET_FIELD.to_owned());
        if target_field == timestamp_field {
            return Err(ConfigError::new("FIREHOSE_TARGET_FIELD", "must differ from TIMESTAMP_FIELD"));
        }
        Ok(FirehoseConfig {
            stream: get("FIREHOSE_STREAM_NAME"),
            target_field,
            max_attempts: number(get, "FIREHOSE_MAX_ATTEMPTS", DEFAULT_FIREHOSE_MAX_ATTEMPTS, 1, 20)?,
        })
    }
}

/// Reads `ES_INDEX`: an index name or pattern.
fn parse_index(get: &impl Fn(&str) -> Option<String>) -> Result<IndexPattern, ConfigError> {
    let text = get("ES_INDEX").unwrap_or_else(|| DEFAULT_INDEX.to_owned());
    IndexPattern::parse(&text).map_err(|why| ConfigError::new("ES_INDEX", why))
}

/// Checks the ingest pipeline id of `ES_PIPELINE`, if one is set.
fn parse_pipeline(pipeline: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(id) = &pipeline
        && !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    {
        return Err(ConfigError::new(
            "ES_PIPELINE",
            format!("expects a pipeline id of letters, digits, '-', '_', '.' and '~', got {id:?}"),
        ));
    }
    Ok(pipeline)
}

/// Reads `DEAD_LETTER_BUCKET` and `DEAD_LETTER_PREFIX`; `None` when no bucket is set.
fn parse_dead_letter(get: &impl Fn(&str) -> Option<String>) -> Result<Option<DeadLetterPlace>, ConfigError> {
    let Some(bucket) = get("DEAD_LETTER_BUCKET") else { return Ok(None) };
    // S3's bucket naming rules: 3 to 63 lowercase letters, digits, dots and hyphens.
    let valid = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !valid {
        return Err(ConfigError::new("DEAD_LETTER_BUCKET", format!("expects an S3 bucket name, got {bucket:?}")));
    }
    let prefix = get("DEAD_LETTER_PREFIX").unwrap_or_else(|| DEFAULT_DEAD_LETTER_PREFIX.to_owned());
    Ok(Some(DeadLetterPlace { bucket, prefix }))
}

/// Reads `ES_TLS_VERIFY` (true by default), refusing `false` alongside an `ES_CA_CERT` it would ignore.
fn parse_tls_verify(get: &impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    let verify = boolean(get, "ES_TLS_VERIFY", true)?;
    if !verify && get("ES_CA_CERT").is_some() {
        return Err(ConfigError::new("ES_TLS_VERIFY", "is false, so ES_CA_CERT would be ignored: unset one of them"));
    }
    Ok(verify)
}

/// Reads `ES_DOC_ID`: `kinesis` (the default), `none` or `field:<path>`. Not a `choice`: the words are taken as
/// written, as a field's path is.
fn parse_doc_id(value: Option<String>) -> Result<DocIdMode, ConfigError> {
    let Some(value) = value else { return Ok(DocIdMode::Kinesis) };
    match value.as_str() {
        "kinesis" => Ok(DocIdMode::Kinesis),
        "none" => Ok(DocIdMode::None),
        _ => match value.strip_prefix("field:").map(str::trim) {
            Some(path) if !path.is_empty() && !path.split('.').any(str::is_empty) => {
                Ok(DocIdMode::Field(path.to_owned()))
            }
            _ => Err(ConfigError::new("ES_DOC_ID", format!("expects kinesis, none or field:<path>, got {value:?}"))),
        },
    }
}

#[cfg(test)]
mod tests;
