//! How requests to the cluster authenticate: `EsAuth`, read from `ES_AUTH` and the credentials' variables (basic,
//! API key, a Secrets Manager secret, SigV4 with its service and region).

use super::endpoint::{host_of, region_of};
use super::{ConfigError, problem};

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

/// `ES_AUTH`, or the mode the other variables imply: SigV4 for an AWS endpoint, else basic when a username is set,
/// an API key when one is set, else none. Credentials that the chosen mode would ignore are refused.
pub(super) fn parse_auth(get: &impl Fn(&str) -> Option<String>, es_url: &str) -> Result<EsAuth, ConfigError> {
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
