//! How requests to the cluster authenticate: `EsAuth`, read from `ES_AUTH` and the credentials' variables (basic,
//! API key, a Secrets Manager secret, SigV4 with its service and region).

use super::ConfigError;
use super::endpoint::{AWS_SERVICES, aws_service_of, host_of, region_of};
use super::read::{choice, word};

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

/// `ES_AUTH`'s words: how requests authenticate when no secret holds the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    None,
    Basic,
    ApiKey,
    SigV4,
}

const AUTH_MODES: [(&str, AuthMode); 4] =
    [("none", AuthMode::None), ("basic", AuthMode::Basic), ("api-key", AuthMode::ApiKey), ("sigv4", AuthMode::SigV4)];

impl AuthMode {
    /// The mode as `ES_AUTH` spells it.
    fn name(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Basic => "basic",
            AuthMode::ApiKey => "api-key",
            AuthMode::SigV4 => "sigv4",
        }
    }
}

/// The credentials set directly: `ES_USERNAME`, `ES_PASSWORD`, `ES_API_KEY`.
struct Credentials {
    username: Option<String>,
    password: Option<String>,
    api_key: Option<String>,
}

impl Credentials {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Credentials {
        Credentials { username: get("ES_USERNAME"), password: get("ES_PASSWORD"), api_key: get("ES_API_KEY") }
    }

    /// Whether a username or a password is set.
    fn basic(&self) -> bool {
        self.username.is_some() || self.password.is_some()
    }

    /// The mode they imply when `ES_AUTH` is unset: SigV4 for an AWS endpoint (`aws_service`) without a username
    /// or key, else basic when a username or password is set, an API key when one is set, else none.
    fn implied_mode(&self, aws_service: Option<&str>) -> AuthMode {
        match aws_service {
            Some(_) if self.username.is_none() && self.api_key.is_none() => AuthMode::SigV4,
            _ if self.basic() => AuthMode::Basic,
            _ if self.api_key.is_some() => AuthMode::ApiKey,
            _ => AuthMode::None,
        }
    }

    /// Refuses the credentials `mode` would ignore: a username or password, then an API key.
    fn refuse_unused(&self, mode: AuthMode) -> Result<(), ConfigError> {
        let unused = match mode {
            AuthMode::None | AuthMode::ApiKey | AuthMode::SigV4 if self.basic() => "ES_USERNAME/ES_PASSWORD",
            AuthMode::None | AuthMode::Basic | AuthMode::SigV4 if self.api_key.is_some() => "ES_API_KEY",
            _ => return Ok(()),
        };
        let mode = mode.name();
        Err(ConfigError::new("ES_AUTH", format!("is {mode}, so {unused} would be ignored: unset it or change ES_AUTH")))
    }
}

/// How requests authenticate: through `ES_SECRET_ARN`'s secret, else `ES_AUTH` or the mode the other variables
/// imply (`Credentials::implied_mode`). Credentials that the chosen mode would ignore are refused.
pub(super) fn parse_auth(get: &impl Fn(&str) -> Option<String>, es_url: &str) -> Result<EsAuth, ConfigError> {
    let credentials = Credentials::read(get);
    if let Some(arn) = get("ES_SECRET_ARN") {
        let credentials_set = credentials.basic() || credentials.api_key.is_some();
        return parse_secret_auth(get, arn, credentials_set);
    }
    let host = host_of(es_url).to_ascii_lowercase();
    let aws_service = aws_service_of(&host);
    let mode = choice(get, "ES_AUTH", &AUTH_MODES)?.unwrap_or_else(|| credentials.implied_mode(aws_service));
    credentials.refuse_unused(mode)?;
    match mode {
        AuthMode::None => Ok(EsAuth::None),
        AuthMode::Basic => match (credentials.username, credentials.password) {
            (Some(username), Some(password)) => Ok(EsAuth::Basic { username, password }),
            (Some(_), None) => Err(ConfigError::new("ES_PASSWORD", "is required when ES_USERNAME is set")),
            _ => Err(ConfigError::new("ES_USERNAME", "is required for basic auth (with ES_PASSWORD)")),
        },
        AuthMode::ApiKey => credentials
            .api_key
            .map(EsAuth::ApiKey)
            .ok_or_else(|| ConfigError::new("ES_API_KEY", "is required when ES_AUTH is api-key")),
        AuthMode::SigV4 => parse_sigv4_auth(get, &host, aws_service),
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
        return Err(ConfigError::new(
            "ES_SECRET_ARN",
            "credentials come from the secret: unset ES_USERNAME, ES_PASSWORD and ES_API_KEY",
        ));
    }
    if !arn.starts_with("arn:") || !arn.contains(":secretsmanager:") {
        // Not quoted: a value that is not an ARN may be the secret itself, pasted in the wrong place.
        return Err(ConfigError::new(
            "ES_SECRET_ARN",
            "expects a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got \
             something else (not shown: it may hold credentials)",
        ));
    }
    match choice(get, "ES_AUTH", &AUTH_MODES) {
        Ok(None | Some(AuthMode::Basic | AuthMode::ApiKey)) => Ok(EsAuth::Secret { arn }),
        // Another mode, or a word that is none, is quoted as read: the secret would be ignored either way.
        _ => {
            let mode = word(get, "ES_AUTH").unwrap_or_default();
            Err(ConfigError::new("ES_AUTH", format!("is {mode}, so ES_SECRET_ARN would be ignored")))
        }
    }
}

/// SigV4 signing for the cluster at `host`: the service (`ES_SIGV4_SERVICE`, else the one the endpoint names, else
/// `es`) and the region requests are signed for.
fn parse_sigv4_auth(
    get: &impl Fn(&str) -> Option<String>,
    host: &str,
    aws_service: Option<&str>,
) -> Result<EsAuth, ConfigError> {
    // Not a `choice`: the service is a signing name, taken as written (`ES` is refused, not read as `es`).
    let service = get("ES_SIGV4_SERVICE").unwrap_or_else(|| aws_service.unwrap_or("es").to_owned());
    if !AWS_SERVICES.contains(&service.as_str()) {
        return Err(ConfigError::new("ES_SIGV4_SERVICE", format!("expects es or aoss, got {service:?}")));
    }
    // The domain's region signs its requests, wherever the function runs; the function's own region
    // (AWS_REGION, which Lambda sets) only for an endpoint that does not name one.
    let region =
        region_of(host).or_else(|| get("AWS_REGION")).or_else(|| get("AWS_DEFAULT_REGION")).ok_or_else(|| {
            ConfigError::new(
                "AWS_REGION",
                "is required to sign requests to an endpoint that does not name its region (Lambda sets it; set it \
                 for local runs)",
            )
        })?;
    Ok(EsAuth::SigV4 { region, service })
}
