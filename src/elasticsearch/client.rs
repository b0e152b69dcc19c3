//! The client of one cluster: URL, TLS, authentication (basic, API key, SigV4 headers), gzip, and one `POST /_bulk`
//! whose every failure is a `BulkReply`, never an error.

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use elasticsearch::http::transport::{Connection, SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::{Method, Url};

use crate::bulk::{self, BulkReply};
use crate::config::{Compression, Config, EsAuth};
use crate::error::Error;
use crate::record::Document;
use crate::sigv4::Signer;

/// The bulk endpoint, relative to `ES_URL`, asking only for what the decision reads (statuses and errors), which
/// shrinks every answer severalfold on the normal path. Written out in SigV4's canonical encoding (`*` as `%2A`), so
/// that the URL sent is the URL signed and every SigV4 implementation canonicalises it the same way.
const BULK_PATH: &str = "_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error.type%2Citems.%2A.error.reason";

/// A client for one cluster, built once at cold start; its connection pool is reused across invocations.
#[derive(Debug, Clone)]
pub struct Elasticsearch {
    transport: Transport,
    compression: Compression,
    signer: Option<Signer>,
    /// The bulk path relative to `ES_URL` (`BULK_PATH`, and `&pipeline=` with `ES_PIPELINE`).
    bulk_path: String,
    /// The bulk URL exactly as the transport requests it, and its `Host` header: what a signature covers.
    bulk_url: String,
    host: String,
    /// `ES_URL` as the transport joins paths to it (with a trailing slash), for the URLs of other requests.
    base: Url,
}

impl Elasticsearch {
    /// `aws_credentials` is required with SigV4 (the SDK's default chain at cold start; any provider in tests).
    pub fn new(config: &Config, aws_credentials: Option<SharedCredentialsProvider>) -> Result<Elasticsearch, Error> {
        let bad_url = |e: &dyn std::fmt::Display| Error::Client(format!("ES_URL {}: {e}", config.cluster.url));
        let url = Url::parse(&config.cluster.url).map_err(|e| bad_url(&e))?;
        // The transport joins BULK_PATH to the connection's URL (which gains a trailing slash): do the same here.
        let bulk_path = match &config.cluster.pipeline {
            // The id is checked to hold only URL-unreserved characters: it needs no encoding.
            Some(pipeline) => format!("{BULK_PATH}&pipeline={pipeline}"),
            None => BULK_PATH.to_owned(),
        };
        let base = Url::clone(&Connection::new(url.clone()).url());
        let bulk_url = base.join(&bulk_path).map_err(|e| bad_url(&e))?;
        let host = match (bulk_url.host_str(), bulk_url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(bad_url(&"no host")),
        };
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(config.cluster.timeout);
        if let Some(path) = &config.cluster.ca_cert {
            let pem = std::fs::read(path).map_err(|e| Error::Client(format!("ES_CA_CERT {}: {e}", path.display())))?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| {
                Error::Client(format!("ES_CA_CERT {}: not a PEM certificate bundle: {e}", path.display()))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(certificate));
        }
        if !config.cluster.tls_verify {
            // Said at every cold start, at ERROR, so that nobody runs this way by accident.
            tracing::error!(es_url = %config.cluster.url, "TLS certificate verification is OFF (ES_TLS_VERIFY=false): anyone on the path can read and change what is indexed");
            builder = builder.cert_validation(CertificateValidation::None);
        }
        let mut signer = None;
        match &config.cluster.auth {
            EsAuth::None => {}
            EsAuth::Basic { username, password } => {
                builder = builder.auth(Credentials::Basic(username.clone(), password.clone()))
            }
            EsAuth::ApiKey(key) => builder = builder.auth(Credentials::EncodedApiKey(key.clone())),
            // Read from Secrets Manager at cold start, then given through `set_credentials`.
            EsAuth::Secret { .. } => {}
            EsAuth::SigV4 { region, service } => {
                let credentials =
                    aws_credentials.ok_or_else(|| Error::Client("SigV4 needs an AWS credentials provider".into()))?;
                signer = Some(Signer::new(credentials, region.clone(), service.clone()));
            }
        }
        let transport =
            builder.build().map_err(|e| Error::Client(format!("cannot build the Elasticsearch client: {e}")))?;
        Ok(Elasticsearch {
            transport,
            compression: config.cluster.compression,
            signer,
            bulk_path,
            bulk_url: bulk_url.into(),
            host,
            base,
        })
    }

    /// Replaces the basic or API-key credentials of every later request (a rotated secret).
    pub fn set_credentials(&self, credentials: Credentials) {
        self.transport.set_auth(credentials);
    }

    /// The body of a `_bulk` request for `documents` as it goes on the wire, and its size before compression:
    /// gzip-compressed (level 1: most of the gain for little CPU) while it is encoded, so that a chunk needs one
    /// buffer and not a plain copy beside the compressed one; or as is.
    pub fn wire_body(&self, documents: &[Document]) -> (Bytes, usize) {
        match self.compression {
            Compression::None => {
                let body = bulk::encode(documents);
                let plain = body.len();
                (Bytes::from(body), plain)
            }
            Compression::Gzip => {
                let estimate: usize = documents.iter().map(bulk::entry_size).sum();
                // Room for a body that compresses to half (high-entropy logs do); pages never written are never
                // resident, and a body that outgrows it is not copied while it grows from a quarter.
                let encoder =
                    flate2::write::GzEncoder::new(Vec::with_capacity(estimate / 2 + 64), flate2::Compression::fast());
                // Whole action lines and sources reach the compressor, not the small writes of encoding.
                let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, encoder);
                let compressed = bulk::encode_into(&mut buffered, documents).and_then(|plain| {
                    let encoder = buffered.into_inner().map_err(|e| e.into_error())?;
                    Ok((Bytes::from(encoder.finish()?), plain))
                });
                compressed.expect("compressing into memory cannot fail")
            }
        }
    }

    /// Sends one `_bulk` request whose body came from `wire_body`; every failure is a `BulkReply`, never an error.
    pub async fn bulk(&self, body: Bytes, timeout: Duration) -> BulkReply {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        if self.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Err(why) = self.sign("POST", &self.bulk_url, &mut headers, &body).await {
            // Nothing was sent: like a refused connection, the rest of the batch goes back to Kinesis.
            return BulkReply::NotSent(why);
        }
        let sent =
            self.transport.send(Method::Post, &self.bulk_path, headers, None::<&()>, Some(body), Some(timeout)).await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return BulkReply::TimedOut,
            Err(error) if never_connected(&error) => return BulkReply::NotSent(crate::error::error_chain(&error)),
            Err(error) => {
                return BulkReply::Lost { why: crate::error::error_chain(&error), while_sending: true };
            }
        };
        let status = response.status_code().as_u16();
        match response.bytes().await {
            Ok(body) => BulkReply::Answered { status, body },
            Err(error) if error.is_timeout() => BulkReply::TimedOut,
            Err(error) => BulkReply::Lost {
                why: format!("the answer broke off: {}", crate::error::error_chain(&error)),
                while_sending: false,
            },
        }
    }
}

impl Elasticsearch {
    /// Adds SigV4's headers for this request to `headers`, when requests are signed.
    async fn sign(&self, method: &str, url: &str, headers: &mut HeaderMap, body: &[u8]) -> Result<(), String> {
        let Some(signer) = &self.signer else { return Ok(()) };
        let mut signed: Vec<(&str, &str)> = vec![("host", &self.host)];
        signed.extend(headers.iter().map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default())));
        let signature = signer.sign(method, url, &signed, body).await?;
        for (name, value) in signature {
            match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
                (Ok(name), Ok(value)) => headers.insert(name, value),
                _ => return Err(format!("the signature produced an invalid header {name}")),
            };
        }
        Ok(())
    }

    /// Puts a JSON `body` at `path` (relative to `ES_URL`, encoded as sent), authenticated and signed as every
    /// request of the function: the set-up an operator runs through it (`make firehose-pipeline REMOTE=1`). The
    /// cluster's status and answer, or why there was none.
    pub async fn put_json(&self, path: &str, body: Bytes, timeout: Duration) -> Result<(u16, String), String> {
        self.send_json(Method::Put, path, Some(body), timeout).await
    }

    /// Sends one request with an optional JSON `body` to `path` (relative to `ES_URL`, encoded as sent),
    /// authenticated and signed as every request of the function: the set-up and the doctor's questions. The
    /// cluster's status and answer, or why there was none.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let url = self.base.join(path).map_err(|e| format!("{path}: {e}"))?;
        let mut headers = HeaderMap::new();
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let signed_body = body.clone().unwrap_or_default();
        let verb = match method {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        };
        self.sign(verb, url.as_str(), &mut headers, &signed_body).await?;
        let sent = self.transport.send(method, path, headers, None::<&()>, body, Some(timeout)).await;
        let response = sent.map_err(|error| crate::error::error_chain(&error))?;
        let status = response.status_code().as_u16();
        let answer = response.text().await.map_err(|error| crate::error::error_chain(&error))?;
        Ok((status, answer))
    }
}

/// Whether a request failed before its connection was made (refused, DNS, TLS handshake): nothing of it was sent.
fn never_connected(error: &elasticsearch::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<reqwest::Error>() {
            return http.is_connect();
        }
        source = cause.source();
    }
    false
}
