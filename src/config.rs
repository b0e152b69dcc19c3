//! Environment → typed, validated `Config`, read once at cold start.
//!
//! `Config::from_lookup` takes any name → value function so every rule is testable without touching the process
//! environment; `Config::from_env` is that function over `std::env::var`.

use std::time::Duration;

use url::Url;

use crate::index::IndexPattern;
use crate::preprocess::Preprocess;

/// How requests to the cluster authenticate (`ES_AUTH`).
#[derive(Clone, PartialEq, Eq)]
pub enum EsAuth {
    None,
    Basic {
        username: String,
        password: String,
    },
    /// The encoded API key (base64 of `id:api_key`), sent as `Authorization: ApiKey …`.
    ApiKey(String),
    /// AWS Signature Version 4 with the SDK's credential chain: `es` for domains, `aoss` for OpenSearch Serverless.
    SigV4 {
        region: String,
        service: String,
    },
    /// Basic auth or an API key read from AWS Secrets Manager (`ES_SECRET_ARN`) at cold start and after a 401.
    Secret {
        arn: String,
    },
}

impl std::fmt::Debug for EsAuth {
    // Secrets never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EsAuth::None => f.write_str("None"),
            EsAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            EsAuth::ApiKey(_) => f.write_str("ApiKey(***)"),
            EsAuth::SigV4 { region, service } => write!(f, "SigV4({service}, {region})"),
            EsAuth::Secret { arn } => write!(f, "Secret({arn})"),
        }
    }
}

/// Everything the indexer needs to know, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the cluster (`https://host:9200`, optionally with a path prefix).
    pub es_url: String,
    pub auth: EsAuth,
    /// Target index name, or a pattern with strftime date parts taken from each document's timestamp (UTC) and
    /// placeholders for its log group or fields.
    pub index: IndexPattern,
    /// Ingest pipeline every bulk request names (`?pipeline=`), overriding the index's default pipeline.
    pub pipeline: Option<String>,
    /// Firehose delivery stream for "retry later" documents; without it they go back to Kinesis.
    pub firehose_stream: Option<String>,
    /// Field that carries `{"_id": …, "_index": …}` in documents sent to Firehose.
    pub firehose_target_field: String,
    /// How many times one Firehose entry is offered before it goes back to Kinesis.
    pub firehose_max_attempts: u32,
    /// Where documents the cluster rejects for their own fault are kept whole (`DEAD_LETTER_BUCKET`, an S3 bucket,
    /// and `DEAD_LETTER_PREFIX`); `None`: they are logged only.
    pub dead_letter: Option<DeadLetterPlace>,
    pub bulk_max_bytes: usize,
    pub bulk_max_docs: usize,
    pub bulk_concurrency: usize,
    /// Whether the requests in flight adapt to the cluster's answers within 1..=`bulk_concurrency`, and a request
    /// the cluster is saturated by keeps its documents in the stream (`BULK_CONCURRENCY_MODE=adaptive`, the
    /// default); `fixed`: always `bulk_concurrency` in flight, and every "retry later" to Firehose.
    pub adaptive_concurrency: bool,
    pub es_timeout: Duration,
    /// Name of the timestamp field: kept when present, else set from the record's arrival time.
    pub timestamp_field: String,
    /// A document timestamp further than this from its record's arrival names no index: the arrival time does.
    pub timestamp_max_skew: Duration,
    pub doc_id: DocIdMode,
    /// Cap on a record's decoded (inflated) size: larger records are rejected, so a gzip bomb cannot exhaust memory.
    pub max_record_bytes: usize,
    /// No new request starts when less than this is left before the invocation's deadline.
    pub deadline_margin: Duration,
    /// The first wait of an invocation that found the cluster away, before answering Lambda.
    pub pacing_base: Duration,
    /// The longest such wait; zero turns pacing off.
    pub pacing_max: Duration,
    /// Bytes of a document quoted in an error log line.
    pub log_excerpt_bytes: usize,
    /// Whether bulk bodies are gzip-compressed on the wire.
    pub compression: Compression,
    /// A PEM bundle of CAs to trust besides the public roots (self-managed clusters).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Certificate verification; `false` only by explicit choice (`ES_TLS_VERIFY=false`), and logged loudly.
    pub tls_verify: bool,
    /// What is done to documents on the way: structured messages, filters, static fields, provenance.
    pub preprocess: Preprocess,
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

/// A variable that is missing or does not parse; the message names it and says what it expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

pub const DEFAULT_INDEX: &str = "logs-%Y.%m.%d";
pub const DEFAULT_BULK_MAX_BYTES: usize = 5 * 1024 * 1024;
pub const DEFAULT_BULK_MAX_DOCS: usize = 1_000;
pub const DEFAULT_BULK_CONCURRENCY: usize = 2;
pub const DEFAULT_ES_TIMEOUT_MS: u64 = 10_000;
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

        // Each setting is checked in the order below, so that of several wrong variables the same one is named.
        let cluster = parse_cluster(&get)?;
        let fields = parse_document_fields(&get)?;
        let pipeline = parse_pipeline(get("ES_PIPELINE"))?;
        let dead_letter = parse_dead_letter(&get)?;

        Ok(Config {
            es_url: cluster.es_url,
            auth: cluster.auth,
            index: cluster.index,
            pipeline,
            firehose_stream: get("FIREHOSE_STREAM_NAME"),
            firehose_target_field: fields.firehose_target_field,
            firehose_max_attempts: number(&get, "FIREHOSE_MAX_ATTEMPTS", DEFAULT_FIREHOSE_MAX_ATTEMPTS, 1, 20)?,
            dead_letter,
            bulk_max_bytes: number(&get, "BULK_MAX_BYTES", DEFAULT_BULK_MAX_BYTES, 1024, 100 * 1024 * 1024)?,
            bulk_max_docs: number(&get, "BULK_MAX_DOCS", DEFAULT_BULK_MAX_DOCS, 1, 100_000)?,
            bulk_concurrency: number(&get, "BULK_CONCURRENCY", DEFAULT_BULK_CONCURRENCY, 1, 64)?,
            adaptive_concurrency: parse_concurrency_mode(get("BULK_CONCURRENCY_MODE"))?,
            es_timeout: Duration::from_millis(number(&get, "ES_TIMEOUT_MS", DEFAULT_ES_TIMEOUT_MS, 100, 900_000)?),
            timestamp_field: fields.timestamp_field,
            timestamp_max_skew: Duration::from_secs(number(
                &get,
                "TIMESTAMP_MAX_SKEW_SECONDS",
                DEFAULT_TIMESTAMP_MAX_SKEW_SECONDS,
                60,
                100 * 365 * 24 * 3600,
            )?),
            doc_id: parse_doc_id(get("ES_DOC_ID"))?,
            max_record_bytes: number(&get, "MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES, 1024, 1024 * 1024 * 1024)?,
            deadline_margin: Duration::from_millis(number(
                &get,
                "DEADLINE_MARGIN_MS",
                DEFAULT_DEADLINE_MARGIN_MS,
                0,
                600_000,
            )?),
            pacing_base: Duration::from_millis(number(&get, "PACING_BASE_MS", DEFAULT_PACING_BASE_MS, 1, 60_000)?),
            pacing_max: Duration::from_millis(number(&get, "PACING_MAX_MS", DEFAULT_PACING_MAX_MS, 0, 900_000)?),
            log_excerpt_bytes: number(&get, "LOG_EXCERPT_BYTES", DEFAULT_LOG_EXCERPT_BYTES, 0, 64 * 1024)?,
            ca_cert: get("ES_CA_CERT").map(std::path::PathBuf::from),
            tls_verify: parse_tls_verify(&get)?,
            compression: parse_compression(get("ES_COMPRESSION"))?,
            preprocess: fields.preprocess,
        })
    }
}

/// The cluster documents go to: its URL, how requests authenticate, and the index they are written to.
struct Cluster {
    es_url: String,
    auth: EsAuth,
    index: IndexPattern,
}

/// Reads `ES_URL`, the authentication, `ES_DOMAIN_ARN` (checked against the URL) and `ES_INDEX`.
fn parse_cluster(get: &impl Fn(&str) -> Option<String>) -> Result<Cluster, ConfigError> {
    let es_url = get("ES_URL")
        .ok_or_else(|| problem("ES_URL", "is required (e.g. https://search-domain.eu-west-1.es.amazonaws.com)"))?;
    let es_url = parse_url(&es_url)?;

    let auth = parse_auth(get, &es_url)?;
    if let Some(arn) = get("ES_DOMAIN_ARN") {
        check_domain(&arn, &host_of(&es_url))?;
    }

    let index_text = get("ES_INDEX").unwrap_or_else(|| DEFAULT_INDEX.to_owned());
    let index = IndexPattern::parse(&index_text).map_err(|why| problem("ES_INDEX", why))?;
    Ok(Cluster { es_url, auth, index })
}

/// The fields the indexer reads or writes in each document, and what preprocessing does to it.
struct DocumentFields {
    timestamp_field: String,
    firehose_target_field: String,
    preprocess: Preprocess,
}

/// Reads `TIMESTAMP_FIELD`, `FIREHOSE_TARGET_FIELD` (which must differ) and the preprocessing settings.
fn parse_document_fields(get: &impl Fn(&str) -> Option<String>) -> Result<DocumentFields, ConfigError> {
    let timestamp_field = get("TIMESTAMP_FIELD").unwrap_or_else(|| DEFAULT_TIMESTAMP_FIELD.to_owned());
    let firehose_target_field =
        get("FIREHOSE_TARGET_FIELD").unwrap_or_else(|| DEFAULT_FIREHOSE_TARGET_FIELD.to_owned());
    if firehose_target_field == timestamp_field {
        return Err(problem("FIREHOSE_TARGET_FIELD", "must differ from TIMESTAMP_FIELD"));
    }

    let preprocess = Preprocess::parse(get, &timestamp_field, &firehose_target_field)
        .map_err(|(variable, why)| problem(variable, why))?;
    Ok(DocumentFields { timestamp_field, firehose_target_field, preprocess })
}

/// Checks the ingest pipeline id of `ES_PIPELINE`, if one is set.
fn parse_pipeline(pipeline: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(id) = &pipeline
        && !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    {
        return Err(problem(
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
        return Err(problem("DEAD_LETTER_BUCKET", format!("expects an S3 bucket name, got {bucket:?}")));
    }
    let prefix = get("DEAD_LETTER_PREFIX").unwrap_or_else(|| DEFAULT_DEAD_LETTER_PREFIX.to_owned());
    Ok(Some(DeadLetterPlace { bucket, prefix }))
}

/// Whether `BULK_CONCURRENCY_MODE` asks for adaptive concurrency (the default) rather than fixed.
fn parse_concurrency_mode(mode: Option<String>) -> Result<bool, ConfigError> {
    match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("adaptive") => Ok(true),
        Some("fixed") => Ok(false),
        Some(other) => Err(problem("BULK_CONCURRENCY_MODE", format!("expects adaptive or fixed, got {other:?}"))),
    }
}

/// Reads `ES_TLS_VERIFY` (true by default), refusing `false` alongside an `ES_CA_CERT` it would ignore.
fn parse_tls_verify(get: &impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match get("ES_TLS_VERIFY").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") => Ok(true),
        Some("false") if get("ES_CA_CERT").is_some() => {
            Err(problem("ES_TLS_VERIFY", "is false, so ES_CA_CERT would be ignored: unset one of them"))
        }
        Some("false") => Ok(false),
        Some(other) => Err(problem("ES_TLS_VERIFY", format!("expects true or false, got {other:?}"))),
    }
}

/// Reads `ES_COMPRESSION`: gzip (the default) or none.
fn parse_compression(compression: Option<String>) -> Result<Compression, ConfigError> {
    match compression.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("gzip") => Ok(Compression::Gzip),
        Some("none") => Ok(Compression::None),
        Some(other) => Err(problem("ES_COMPRESSION", format!("expects gzip or none, got {other:?}"))),
    }
}

/// `ES_AUTH`, or the mode the other variables imply: SigV4 for an AWS endpoint, else basic when a username is set,
/// an API key when one is set, else none. Credentials that the chosen mode would ignore are refused.
fn parse_auth(get: &impl Fn(&str) -> Option<String>, es_url: &str) -> Result<EsAuth, ConfigError> {
    let (username, password, api_key) = (get("ES_USERNAME"), get("ES_PASSWORD"), get("ES_API_KEY"));
    if let Some(arn) = get("ES_SECRET_ARN") {
        let credentials_set = username.is_some() || password.is_some() || api_key.is_some();
        return parse_secret_auth(get, arn, credentials_set);
    }
    let host = host_of(es_url).to_ascii_lowercase();
    let aws_service = ["es", "aoss"].into_iter().find(|service| {
        host.ends_with(&format!(".{service}.amazonaws.com")) || host.ends_with(&format!(".{service}.amazonaws.com.cn"))
    });
    let mode = match get("ES_AUTH").map(|m| m.to_ascii_lowercase()) {
        Some(mode) => mode,
        None if aws_service.is_some() && username.is_none() && api_key.is_none() => "sigv4".into(),
        None if username.is_some() || password.is_some() => "basic".into(),
        None if api_key.is_some() => "api-key".into(),
        None => "none".into(),
    };
    let unused = |what: &str, present: bool| {
        if present {
            Err(problem("ES_AUTH", format!("is {mode}, so {what} would be ignored: unset it or change ES_AUTH")))
        } else {
            Ok(())
        }
    };
    match mode.as_str() {
        "none" => {
            unused("ES_USERNAME/ES_PASSWORD", username.is_some() || password.is_some())?;
            unused("ES_API_KEY", api_key.is_some())?;
            Ok(EsAuth::None)
        }
        "basic" => {
            unused("ES_API_KEY", api_key.is_some())?;
            match (username, password) {
                (Some(username), Some(password)) => Ok(EsAuth::Basic { username, password }),
                (Some(_), None) => Err(problem("ES_PASSWORD", "is required when ES_USERNAME is set")),
                _ => Err(problem("ES_USERNAME", "is required for basic auth (with ES_PASSWORD)")),
            }
        }
        "api-key" => {
            unused("ES_USERNAME/ES_PASSWORD", username.is_some() || password.is_some())?;
            api_key.map(EsAuth::ApiKey).ok_or_else(|| problem("ES_API_KEY", "is required when ES_AUTH is api-key"))
        }
        "sigv4" => {
            unused("ES_USERNAME/ES_PASSWORD", username.is_some() || password.is_some())?;
            unused("ES_API_KEY", api_key.is_some())?;
            parse_sigv4_auth(get, &host, aws_service)
        }
        other => Err(problem("ES_AUTH", format!("expects none, basic, api-key or sigv4, got {other:?}"))),
    }
}

/// Authentication through the Secrets Manager secret `arn` (`ES_SECRET_ARN`), refused when credentials are also
/// set directly or `ES_AUTH` names a mode the secret cannot hold.
fn parse_secret_auth(
    get: &impl Fn(&str) -> Option<String>,
    arn: String,
    credentials_set: bool,
) -> Result<EsAuth, ConfigError> {
    if credentials_set {
        return Err(problem(
            "ES_SECRET_ARN",
            "credentials come from the secret: unset ES_USERNAME, ES_PASSWORD and ES_API_KEY",
        ));
    }
    if !arn.starts_with("arn:") || !arn.contains(":secretsmanager:") {
        // Not quoted: a value that is not an ARN may be the secret itself, pasted in the wrong place.
        return Err(problem(
            "ES_SECRET_ARN",
            "expects a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got \
             something else (not shown: it may hold credentials)",
        ));
    }
    match get("ES_AUTH").map(|m| m.to_ascii_lowercase()).as_deref() {
        None | Some("basic") | Some("api-key") => Ok(EsAuth::Secret { arn }),
        Some(other) => Err(problem("ES_AUTH", format!("is {other}, so ES_SECRET_ARN would be ignored"))),
    }
}

/// SigV4 signing for the cluster at `host`: the service (`ES_SIGV4_SERVICE`, else the one the endpoint names, else
/// `es`) and the region requests are signed for.
fn parse_sigv4_auth(
    get: &impl Fn(&str) -> Option<String>,
    host: &str,
    aws_service: Option<&str>,
) -> Result<EsAuth, ConfigError> {
    let service = get("ES_SIGV4_SERVICE").unwrap_or_else(|| aws_service.unwrap_or("es").to_owned());
    if service != "es" && service != "aoss" {
        return Err(problem("ES_SIGV4_SERVICE", format!("expects es or aoss, got {service:?}")));
    }
    // The domain's region signs its requests, wherever the function runs; the function's own region
    // (AWS_REGION, which Lambda sets) only for an endpoint that does not name one.
    let region =
        region_of(host).or_else(|| get("AWS_REGION")).or_else(|| get("AWS_DEFAULT_REGION")).ok_or_else(|| {
            problem(
                "AWS_REGION",
                "is required to sign requests to an endpoint that does not name its region (Lambda sets it; set it \
                 for local runs)",
            )
        })?;
    Ok(EsAuth::SigV4 { region, service })
}

fn parse_doc_id(value: Option<String>) -> Result<DocIdMode, ConfigError> {
    let Some(value) = value else { return Ok(DocIdMode::Kinesis) };
    match value.as_str() {
        "kinesis" => Ok(DocIdMode::Kinesis),
        "none" => Ok(DocIdMode::None),
        _ => match value.strip_prefix("field:").map(str::trim) {
            Some(path) if !path.is_empty() && !path.split('.').any(str::is_empty) => {
                Ok(DocIdMode::Field(path.to_owned()))
            }
            _ => Err(problem("ES_DOC_ID", format!("expects kinesis, none or field:<path>, got {value:?}"))),
        },
    }
}

/// `ES_DOMAIN_ARN` (the template's `DomainArn`, which grants the function and Firehose the domain) against
/// `ES_URL`: an Amazon OpenSearch Service endpoint (`search-<name>-<id>.<region>.es…` or `vpc-…`) must be that
/// domain's, in its region. Two inputs that name different domains would index into one and grant the other.
/// Whether the domain `arn` names is the one `es_url` reaches (as far as its host tells); if not, why.
pub fn domain_of_url_is(arn: &str, es_url: &str) -> Result<(), String> {
    check_domain(arn, &host_of(es_url)).map_err(|error| error.problem)
}

fn check_domain(arn: &str, host: &str) -> Result<(), ConfigError> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let domain = match fields.as_slice() {
        ["arn", _, "es", region, _, resource] => resource.strip_prefix("domain/").map(|name| (*region, name)),
        _ => None,
    };
    let Some((region, name)) = domain.filter(|(_, name)| !name.is_empty()) else {
        return Err(problem("ES_DOMAIN_ARN", format!("expects arn:aws:es:REGION:ACCOUNT:domain/NAME, got {arn:?}")));
    };
    let host = host.to_ascii_lowercase();
    let Some(endpoint_region) = region_of(&host) else {
        return Ok(()); // A custom endpoint (a CNAME, a proxy) names no domain to compare.
    };
    if host.split('.').any(|label| label == "aoss") {
        return Err(problem("ES_DOMAIN_ARN", "is for a domain, but ES_URL is an OpenSearch Serverless collection"));
    }
    let first = host.split('.').next().unwrap_or_default();
    // `search-<name>-<id>`: the name is what lies between the prefix and the last dash (names may hold dashes).
    let endpoint_name = first
        .strip_prefix("search-")
        .or_else(|| first.strip_prefix("vpc-"))
        .and_then(|rest| rest.rsplit_once('-').map(|(name, _)| name));
    if endpoint_region != region || endpoint_name.is_some_and(|endpoint_name| endpoint_name != name) {
        return Err(problem(
            "ES_DOMAIN_ARN",
            format!(
                "names domain {name} in {region}, but ES_URL is {} in {endpoint_region}: set DomainArn and EsUrl to \
                 the same domain",
                endpoint_name.unwrap_or(first)
            ),
        ));
    }
    Ok(())
}

/// The host of a URL that `parse_url` accepted.
fn host_of(url: &str) -> String {
    Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default()
}

/// The region in an AWS endpoint, the label before `es.amazonaws.com` or `aoss.amazonaws.com` (or `.com.cn`):
/// `search-<domain>-<id>.<region>.es…`, `vpc-<domain>-<id>.<region>.es…`, `<collection-id>.<region>.aoss…`. Only a
/// label shaped like a region counts (`us-east-1`, `us-gov-west-1`, `cn-north-1`), so an endpoint written without
/// its region (`search-logs.es.amazonaws.com`) yields none rather than `search-logs`.
fn region_of(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let service_at = labels
        .iter()
        .enumerate()
        .position(|(i, l)| (*l == "es" || *l == "aoss") && labels.get(i + 1) == Some(&"amazonaws"))?;
    let region = labels.get(service_at.checked_sub(1)?)?;
    let parts: Vec<&str> = region.split('-').collect();
    let shaped = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    shaped.then(|| region.to_string())
}

fn parse_url(text: &str) -> Result<String, ConfigError> {
    let shown = redact_url(text);
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err(problem("ES_URL", format!("must start with http:// or https://, got {shown:?}")));
    }
    let url =
        Url::parse(text).map_err(|error| problem("ES_URL", format!("is not a valid URL ({error}), got {shown:?}")))?;
    if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() || url.password().is_some() {
        return Err(problem(
            "ES_URL",
            format!("needs a host and no user:password part (use ES_USERNAME/ES_PASSWORD), got {shown:?}"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(problem("ES_URL", format!("must not carry a query or fragment, got {shown:?}")));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A URL as it may be quoted: a `user:password@` part as `***@`, and a query, which may carry a token, as `?***`.
/// Text that is not a URL with a host is not quoted when it has an `@` or a `?` (it may hold credentials).
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.has_host() => {
            if !url.username().is_empty() || url.password().is_some() {
                // Both succeed on a URL with a host.
                let _ = url.set_password(None);
                let _ = url.set_username("***");
            }
            if url.query().is_some() {
                url.set_query(Some("***"));
            }
            let shown = url.to_string();
            // The parser writes an empty path as `/`; quoted as it was given.
            match text.ends_with('/') || url.path() != "/" {
                true => shown,
                false => shown.replacen("/?", "?", 1).trim_end_matches('/').to_owned(),
            }
        }
        _ if text.contains(['@', '?']) => "(not shown: not a URL, and it may hold credentials)".to_owned(),
        _ => text.to_owned(),
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = get(variable) else { return Ok(default) };
    let value: T = text
        .replace('_', "")
        .parse()
        .map_err(|_| problem(variable, format!("expects a whole number from {min} to {max}, got {text:?}")))?;
    if value < min || value > max {
        return Err(problem(variable, format!("expects a whole number from {min} to {max}, got {value}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::MessageJson;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn only_es_url_is_required_and_defaults_fill_the_rest() {
        let config = config(&[("ES_URL", "http://127.0.0.1:9200/")]).unwrap();
        assert_eq!(config.es_url, "http://127.0.0.1:9200");
        assert_eq!(config.bulk_max_bytes, DEFAULT_BULK_MAX_BYTES);
        assert_eq!(config.bulk_max_docs, DEFAULT_BULK_MAX_DOCS);
        assert_eq!(config.bulk_concurrency, DEFAULT_BULK_CONCURRENCY);
        assert_eq!(config.es_timeout, Duration::from_millis(DEFAULT_ES_TIMEOUT_MS));
        assert_eq!(config.timestamp_field, "@timestamp");
        assert_eq!(config.firehose_stream, None);
        assert_eq!(config.auth, EsAuth::None);
        assert_eq!(config.compression, Compression::Gzip);
        assert_eq!(config.dead_letter, None);
    }

    #[test]
    fn the_dead_letter_is_a_bucket_and_a_prefix() {
        let place = |pairs: &[(&str, &str)]| {
            let mut all = vec![("ES_URL", "http://h")];
            all.extend_from_slice(pairs);
            config(&all).map(|config| config.dead_letter)
        };
        let expected = |bucket: &str, prefix: &str| DeadLetterPlace { bucket: bucket.into(), prefix: prefix.into() };
        assert_eq!(
            place(&[("DEAD_LETTER_BUCKET", "stack-failedbatches-1a2b")]).unwrap(),
            Some(expected("stack-failedbatches-1a2b", "rejected-documents/"))
        );
        assert_eq!(
            place(&[("DEAD_LETTER_BUCKET", "b.c-d"), ("DEAD_LETTER_PREFIX", "dl/")]).unwrap(),
            Some(expected("b.c-d", "dl/"))
        );
        assert_eq!(place(&[("DEAD_LETTER_PREFIX", "dl/")]).unwrap(), None, "no bucket, no dead letter");
        for invalid in ["Upper", "ab", "s3://bucket", "a_b"] {
            assert_eq!(place(&[("DEAD_LETTER_BUCKET", invalid)]).unwrap_err().variable, "DEAD_LETTER_BUCKET");
        }
    }

    #[test]
    fn preprocessing_is_merge_by_default_and_each_setting_is_checked_naming_its_variable() {
        let defaults = config(&[("ES_URL", "http://h")]).unwrap().preprocess;
        assert_eq!((defaults.message_json, defaults.message_json_field.as_str()), (MessageJson::Merge, "json"));
        assert!(
            defaults.filter.patterns() == (None, None)
                && defaults.added_fields.is_empty()
                && !defaults.kinesis_metadata
        );
        let set = config(&[
            ("ES_URL", "http://h"),
            ("MESSAGE_JSON", "Nest"),
            ("MESSAGE_JSON_FIELD", "msg"),
            ("FILTER_EXCLUDE", "^DEBUG"),
            ("ADD_FIELDS", r#"{"env":"prod"}"#),
            ("ADD_KINESIS_METADATA", "TRUE"),
        ])
        .unwrap()
        .preprocess;
        assert_eq!((set.message_json, set.message_json_field.as_str()), (MessageJson::Nest, "msg"));
        assert!(
            set.filter.patterns() == (None, Some("^DEBUG")) && !set.filter.keeps("DEBUG x") && set.kinesis_metadata
        );
        assert_eq!(set.added_fields.names().collect::<Vec<_>>(), ["env"]);
        for (pairs, variable, says) in [
            (("MESSAGE_JSON", "yes"), "MESSAGE_JSON", "merge, nest or off"),
            (("MESSAGE_JSON_FIELD", "aws"), "MESSAGE_JSON_FIELD", "writes itself"),
            (("FILTER_INCLUDE", "a("), "FILTER_INCLUDE", "regular expression"),
            (("FILTER_EXCLUDE", "*"), "FILTER_EXCLUDE", "regular expression"),
            (("ADD_FIELDS", "env=prod"), "ADD_FIELDS", "JSON object"),
            (("ADD_FIELDS", r#"{"@timestamp":"x"}"#), "ADD_FIELDS", "writes itself"),
            (("ADD_FIELDS", r#"{"json":1}"#), "ADD_FIELDS", "writes itself"),
            (("ADD_KINESIS_METADATA", "1"), "ADD_KINESIS_METADATA", "true or false"),
        ] {
            let error = config(&[("ES_URL", "http://h"), pairs]).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
            assert!(error.problem.contains(says), "{error}");
        }
    }

    #[test]
    fn tls_verification_is_on_unless_switched_off_explicitly() {
        assert!(config(&[("ES_URL", "https://h")]).unwrap().tls_verify);
        assert!(!config(&[("ES_URL", "https://h"), ("ES_TLS_VERIFY", "false")]).unwrap().tls_verify);
        assert_eq!(config(&[("ES_URL", "https://h"), ("ES_TLS_VERIFY", "no")]).unwrap_err().variable, "ES_TLS_VERIFY");
        let both = [("ES_URL", "https://h"), ("ES_TLS_VERIFY", "false"), ("ES_CA_CERT", "/ca.pem")];
        assert_eq!(config(&both).unwrap_err().variable, "ES_TLS_VERIFY");
    }

    #[test]
    fn compression_is_gzip_or_none() {
        assert_eq!(
            config(&[("ES_URL", "http://h"), ("ES_COMPRESSION", "NONE")]).unwrap().compression,
            Compression::None
        );
        assert_eq!(
            config(&[("ES_URL", "http://h"), ("ES_COMPRESSION", "zstd")]).unwrap_err().variable,
            "ES_COMPRESSION"
        );
    }

    #[test]
    fn a_missing_es_url_names_the_variable() {
        let error = config(&[]).unwrap_err();
        assert_eq!(error.variable, "ES_URL");
        assert!(error.to_string().starts_with("ES_URL: is required"), "{error}");
    }

    #[test]
    fn a_url_without_scheme_or_with_inline_credentials_is_refused() {
        assert_eq!(config(&[("ES_URL", "localhost:9200")]).unwrap_err().variable, "ES_URL");
        assert_eq!(config(&[("ES_URL", "https://user:pw@host")]).unwrap_err().variable, "ES_URL");
        assert_eq!(config(&[("ES_URL", "https://host/?x=1")]).unwrap_err().variable, "ES_URL");
        let port = config(&[("ES_URL", "https://h:99999")]).unwrap_err();
        assert!(port.problem.starts_with("is not a valid URL (invalid port number)"), "{port}");
    }

    #[test]
    fn numbers_out_of_range_or_not_numbers_name_their_variable() {
        let error = config(&[("ES_URL", "http://h"), ("BULK_MAX_DOCS", "0")]).unwrap_err();
        assert_eq!(error.variable, "BULK_MAX_DOCS");
        assert!(error.problem.contains("from 1 to 100000"), "{error}");
        let error = config(&[("ES_URL", "http://h"), ("ES_TIMEOUT_MS", "ten")]).unwrap_err();
        assert_eq!(error.variable, "ES_TIMEOUT_MS");
        assert_eq!(
            config(&[("ES_URL", "http://h"), ("BULK_MAX_BYTES", "1_048_576")]).unwrap().bulk_max_bytes,
            1_048_576
        );
    }

    #[test]
    fn credentials_are_basic_or_api_key_never_both() {
        let basic = config(&[("ES_URL", "http://h"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")]).unwrap();
        assert_eq!(basic.auth, EsAuth::Basic { username: "u".into(), password: "p".into() });
        assert_eq!(format!("{:?}", basic.auth), "Basic(u, ***)");
        let key = config(&[("ES_URL", "http://h"), ("ES_API_KEY", "a2V5")]).unwrap();
        assert_eq!(key.auth, EsAuth::ApiKey("a2V5".into()));
        assert_eq!(format!("{:?}", key.auth), "ApiKey(***)");
        assert_eq!(config(&[("ES_URL", "http://h"), ("ES_USERNAME", "u")]).unwrap_err().variable, "ES_PASSWORD");
        let both = [("ES_URL", "http://h"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p"), ("ES_API_KEY", "k")];
        assert_eq!(config(&both).unwrap_err().variable, "ES_AUTH");
    }

    #[test]
    fn an_aws_endpoint_is_signed_with_its_region_and_service() {
        let domain = config(&[("ES_URL", "https://search-logs-abc123.eu-west-1.es.amazonaws.com")]).unwrap();
        assert_eq!(domain.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
        let serverless =
            config(&[("ES_URL", "https://abc123.us-east-1.aoss.amazonaws.com"), ("AWS_REGION", "us-east-1")]).unwrap();
        assert_eq!(serverless.auth, EsAuth::SigV4 { region: "us-east-1".into(), service: "aoss".into() });
        // A domain in another region than the function is signed with its own region.
        let cross_region =
            config(&[("ES_URL", "https://vpc-logs-abc123.eu-west-1.es.amazonaws.com"), ("AWS_REGION", "eu-central-1")])
                .unwrap();
        assert_eq!(cross_region.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
        let region_from_env =
            config(&[("ES_URL", "https://search-logs.es.amazonaws.com"), ("AWS_REGION", "eu-central-1")]).unwrap();
        assert_eq!(region_from_env.auth, EsAuth::SigV4 { region: "eu-central-1".into(), service: "es".into() });
        let explicit =
            config(&[("ES_URL", "http://127.0.0.1:9200"), ("ES_AUTH", "sigv4"), ("AWS_REGION", "eu-west-1")]).unwrap();
        assert_eq!(explicit.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
    }

    #[test]
    fn the_signing_region_is_read_from_every_aws_endpoint_form() {
        let cases = [
            ("search-logs-abc123def456.eu-west-1.es.amazonaws.com", Some("eu-west-1")),
            ("vpc-my-logs-2-abc123def456.us-gov-west-1.es.amazonaws.com", Some("us-gov-west-1")),
            ("abc123def456ghi.us-east-1.aoss.amazonaws.com", Some("us-east-1")),
            ("search-logs-abc.cn-north-1.es.amazonaws.com.cn", Some("cn-north-1")),
            ("search-logs-abc.ap-southeast-4.es.amazonaws.com", Some("ap-southeast-4")),
            ("search-foo.es.amazonaws.com", None),
            ("vpc-logs.es.amazonaws.com", None),
            ("logs.es.example.com", None),
            ("es.amazonaws.com", None),
            ("search-logs-abc.eu-west.es.amazonaws.com", None),
        ];
        for (host, region) in cases {
            assert_eq!(region_of(host).as_deref(), region, "{host}");
        }
        let refused = config(&[("ES_URL", "https://search-foo.es.amazonaws.com")]).unwrap_err();
        assert_eq!(refused.variable, "AWS_REGION", "no region is invented from the domain's name: {refused}");
    }

    #[test]
    fn the_domain_arn_and_the_url_must_name_the_same_domain() {
        let url = ("ES_URL", "https://vpc-app-logs-abc123def456.eu-west-1.es.amazonaws.com");
        let same = ("ES_DOMAIN_ARN", "arn:aws:es:eu-west-1:123456789012:domain/app-logs");
        assert!(config(&[url, same]).is_ok());
        for (arn, says) in [
            (
                "arn:aws:es:eu-west-1:123456789012:domain/app-metrics",
                "names domain app-metrics in eu-west-1, but ES_URL is app-logs",
            ),
            ("arn:aws:es:us-east-1:123456789012:domain/app-logs", "in us-east-1, but ES_URL is app-logs in eu-west-1"),
            ("arn:aws:es:eu-west-1:123456789012:collection/abc", "expects arn:aws:es:REGION:ACCOUNT:domain/NAME"),
        ] {
            let error = config(&[url, ("ES_DOMAIN_ARN", arn)]).unwrap_err();
            assert!(error.variable == "ES_DOMAIN_ARN" && error.problem.contains(says), "{arn}: {error}");
        }
        let custom =
            config(&[("ES_URL", "https://logs.example.com"), same, ("ES_AUTH", "sigv4"), ("AWS_REGION", "eu-west-1")]);
        assert!(custom.is_ok(), "a custom endpoint names no domain to compare");
        let serverless = config(&[("ES_URL", "https://abc123.eu-west-1.aoss.amazonaws.com"), same]).unwrap_err();
        assert!(serverless.problem.contains("Serverless"), "{serverless}");
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_quoting_them() {
        let error =
            config(&[("ES_URL", "https://indexer:Hunter2-pw@search-logs-abc.eu-west-1.es.amazonaws.com")]).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("Hunter2-pw") && !text.contains("indexer:"), "{text}");
        assert!(text.contains("https://***@search-logs-abc.eu-west-1.es.amazonaws.com"), "{text}");
        assert_eq!(redact_url("https://u:p@h:9200/prefix?token=t"), "https://***@h:9200/prefix?***");
        assert_eq!(redact_url("https://h/prefix"), "https://h/prefix");
        assert_eq!(redact_url("https://h"), "https://h", "quoted as given: no path added");
        assert_eq!(redact_url("https://u:p@h?t=1"), "https://***@h?***");
        assert_eq!(redact_url("https://user@h:9200/"), "https://***@h:9200/");
        assert_eq!(redact_url("user:Hunter2-pw@host:9200"), "(not shown: not a URL, and it may hold credentials)");
        assert_eq!(redact_url("localhost:9200"), "localhost:9200");
        let secret_pasted =
            config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", r#"{"username":"u","password":"Hunter2-pw"}"#)]);
        assert!(!secret_pasted.unwrap_err().to_string().contains("Hunter2-pw"));
    }

    #[test]
    fn credentials_can_come_from_a_secret_and_only_from_there() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es-indexer-AbCdEf";
        assert_eq!(
            config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", arn)]).unwrap().auth,
            EsAuth::Secret { arn: arn.into() }
        );
        let with_user = [("ES_URL", "https://h"), ("ES_SECRET_ARN", arn), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")];
        assert_eq!(config(&with_user).unwrap_err().variable, "ES_SECRET_ARN");
        assert_eq!(
            config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", "my-secret")]).unwrap_err().variable,
            "ES_SECRET_ARN"
        );
        let sigv4 = [("ES_URL", "https://h"), ("ES_SECRET_ARN", arn), ("ES_AUTH", "sigv4")];
        assert_eq!(config(&sigv4).unwrap_err().variable, "ES_AUTH");
    }

    #[test]
    fn auth_modes_refuse_what_they_would_ignore() {
        let error = config(&[("ES_URL", "http://h"), ("ES_AUTH", "sigv4")]).unwrap_err();
        assert_eq!(error.variable, "AWS_REGION");
        let error = config(&[("ES_URL", "http://h"), ("ES_AUTH", "none"), ("ES_API_KEY", "k")]).unwrap_err();
        assert_eq!(error.variable, "ES_AUTH");
        assert_eq!(config(&[("ES_URL", "http://h"), ("ES_AUTH", "kerberos")]).unwrap_err().variable, "ES_AUTH");
        assert_eq!(config(&[("ES_URL", "http://h"), ("ES_AUTH", "api-key")]).unwrap_err().variable, "ES_API_KEY");
        let bad_service =
            [("ES_URL", "http://h"), ("ES_AUTH", "sigv4"), ("AWS_REGION", "x-1"), ("ES_SIGV4_SERVICE", "s3")];
        assert_eq!(config(&bad_service).unwrap_err().variable, "ES_SIGV4_SERVICE");
        let basic_on_aws =
            [("ES_URL", "https://search-x.eu-west-1.es.amazonaws.com"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")];
        assert!(
            matches!(config(&basic_on_aws).unwrap().auth, EsAuth::Basic { .. }),
            "fine-grained access control's basic auth"
        );
    }

    #[test]
    fn document_ids_come_from_kinesis_nowhere_or_a_field() {
        let mode = |value: &str| config(&[("ES_URL", "http://h"), ("ES_DOC_ID", value)]).map(|c| c.doc_id);
        assert_eq!(config(&[("ES_URL", "http://h")]).unwrap().doc_id, DocIdMode::Kinesis);
        assert_eq!(mode("none").unwrap(), DocIdMode::None);
        assert_eq!(mode("field:order.id").unwrap(), DocIdMode::Field("order.id".into()));
        for bad in ["field:", "field:a..b", "random", "None"] {
            assert_eq!(mode(bad).unwrap_err().variable, "ES_DOC_ID", "{bad}");
        }
    }

    #[test]
    fn timestamp_skew_is_bounded_in_seconds() {
        let skew = |value: &str| config(&[("ES_URL", "http://h"), ("TIMESTAMP_MAX_SKEW_SECONDS", value)]);
        assert_eq!(
            config(&[("ES_URL", "http://h")]).unwrap().timestamp_max_skew,
            Duration::from_secs(DEFAULT_TIMESTAMP_MAX_SKEW_SECONDS)
        );
        assert_eq!(skew("3600").unwrap().timestamp_max_skew, Duration::from_secs(3600));
        assert_eq!(skew("5").unwrap_err().variable, "TIMESTAMP_MAX_SKEW_SECONDS");
    }

    #[test]
    fn a_pipeline_id_must_be_safe_in_a_url() {
        let config_with = |id: &str| config(&[("ES_URL", "http://h"), ("ES_PIPELINE", id)]);
        assert_eq!(config_with("logs-enrich_v2").unwrap().pipeline.as_deref(), Some("logs-enrich_v2"));
        assert_eq!(config_with("a&b=c").unwrap_err().variable, "ES_PIPELINE");
        assert_eq!(config(&[("ES_URL", "http://h")]).unwrap().pipeline, None);
    }

    #[test]
    fn a_bad_index_pattern_names_es_index() {
        for bad in ["Logs-%Y", "logs-{service}", "logs-{log_group|Other}"] {
            let error = config(&[("ES_URL", "http://h"), ("ES_INDEX", bad)]).unwrap_err();
            assert_eq!(error.variable, "ES_INDEX", "{bad}");
        }
        let routed = config(&[("ES_URL", "http://h"), ("ES_INDEX", "logs-{field:service.name}-default")]).unwrap();
        assert_eq!(routed.index.as_str(), "logs-{field:service.name}-default");
    }
}
