//! AWS Signature Version 4 for bulk requests: signed over the exact bytes sent (after compression), with
//! `x-amz-content-sha256` and the session token, and credentials asked of the SDK's provider chain on every request,
//! so that rotated or refreshed credentials are always the ones used (never fetched once and kept).

use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// Signs requests for one service (`es` or `aoss`) in one region.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: SharedCredentialsProvider,
    region: String,
    service: String,
}

impl Signer {
    pub fn new(credentials: SharedCredentialsProvider, region: String, service: String) -> Signer {
        Signer { credentials, region, service }
    }

    /// The headers that sign a request (`authorization`, `x-amz-date`, `x-amz-content-sha256` and, with temporary
    /// credentials, `x-amz-security-token`). `headers` are the ones to sign, `host` among them.
    pub async fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign with: {}", crate::error::error_chain(&e)))?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        // Amazon OpenSearch Serverless requires the payload hash header; domains accept it.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| format!("cannot sign: {e}"))?;
        let (instructions, _signature) = sign(request, &params).map_err(|e| format!("cannot sign: {e}"))?.into_parts();
        Ok(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect())
    }
}
