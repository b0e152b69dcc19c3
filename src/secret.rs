//! Credentials from AWS Secrets Manager (`ES_SECRET_ARN`): read at cold start, and again when the cluster answered 401
//! (the secret was rotated), so that the redelivery uses the new ones. Their values never reach a log line.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use elasticsearch::auth::Credentials;
use serde::Deserialize;

use crate::elasticsearch::Elasticsearch;
use crate::error::Error;

/// The secret that holds the cluster's credentials, and the client to read it.
#[derive(Debug, Clone)]
pub struct SecretCredentials {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretCredentials {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: String) -> SecretCredentials {
        SecretCredentials { client, arn }
    }

    /// Reads the secret and gives its credentials to `elasticsearch`.
    pub async fn apply(&self, elasticsearch: &Elasticsearch) -> Result<(), Error> {
        let failed = |why: String| Error::Client(format!("ES_SECRET_ARN {}: {why}", self.arn));
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| failed(format!("cannot read the secret: {}", DisplayErrorContext(&e))))?;
        let text = output.secret_string().ok_or_else(|| failed("the secret has no SecretString".into()))?;
        elasticsearch.set_credentials(parse_secret(text).map_err(failed)?);
        Ok(())
    }
}

/// `{"username": …, "password": …}` for basic auth, or `{"api_key": …}` (the encoded key).
fn parse_secret(text: &str) -> Result<Credentials, String> {
    #[derive(Deserialize)]
    struct Secret {
        username: Option<String>,
        password: Option<String>,
        api_key: Option<String>,
    }
    // A fixed message: serde's own could quote part of the secret.
    const SHAPE: &str = "the secret must be a JSON object with username and password, or api_key";
    let secret: Secret = serde_json::from_str(text).map_err(|_| SHAPE.to_owned())?;
    match (secret.username, secret.password, secret.api_key) {
        (Some(username), Some(password), None) => Ok(Credentials::Basic(username, password)),
        (None, None, Some(key)) => Ok(Credentials::EncodedApiKey(key)),
        _ => Err(SHAPE.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_holds_basic_credentials_or_an_api_key() {
        assert!(
            matches!(parse_secret(r#"{"username":"u","password":"p"}"#), Ok(Credentials::Basic(u, p)) if u == "u" && p == "p")
        );
        assert!(matches!(parse_secret(r#"{"api_key":"a2V5"}"#), Ok(Credentials::EncodedApiKey(k)) if k == "a2V5"));
    }

    #[test]
    fn a_malformed_secret_is_refused_without_quoting_it() {
        for text in [
            r#"{"username":"u"}"#,
            r#"{"username":"u","password":"hunter2","api_key":"k"}"#,
            "hunter2",
            r#"{"password":7}"#,
        ] {
            let why = parse_secret(text).err().unwrap();
            assert!(!why.contains("hunter2") && !why.contains('7'), "{why}");
        }
    }
}
