//! The cluster's address: `ES_URL` checked and quoted without credentials, and what an AWS endpoint's name says
//! (its region, its service, the domain `ES_DOMAIN_ARN` must name).

use url::Url;

use super::ConfigError;

/// The services an AWS endpoint of a cluster names: `es` (Amazon OpenSearch Service domains) and `aoss`
/// (OpenSearch Serverless collections).
pub(super) const AWS_SERVICES: [&str; 2] = ["es", "aoss"];

/// Whether the domain `arn` names is the one `es_url` reaches (as far as its host tells); if not, why
/// (`check_domain`'s words).
pub fn domain_of_url_is(arn: &str, es_url: &str) -> Result<(), String> {
    check_domain(arn, &host_of(es_url)).map_err(|error| error.problem)
}

/// `ES_DOMAIN_ARN` (the template's `DomainArn`, which grants the function and Firehose the domain) against the
/// host of `ES_URL`: an Amazon OpenSearch Service endpoint (`search-<name>-<id>.<region>.es…` or `vpc-…`) must be
/// that domain's, in its region. Two inputs that name different domains would index into one and grant the other.
pub(super) fn check_domain(arn: &str, host: &str) -> Result<(), ConfigError> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let domain = match fields.as_slice() {
        ["arn", _, "es", region, _, resource] => resource.strip_prefix("domain/").map(|name| (*region, name)),
        _ => None,
    };
    let Some((region, name)) = domain.filter(|(_, name)| !name.is_empty()) else {
        return Err(ConfigError::new(
            "ES_DOMAIN_ARN",
            format!("expects arn:aws:es:REGION:ACCOUNT:domain/NAME, got {arn:?}"),
        ));
    };
    let host = host.to_ascii_lowercase();
    let Some(endpoint_region) = region_of(&host) else {
        return Ok(()); // A custom endpoint (a CNAME, a proxy) names no domain to compare.
    };
    if host.split('.').any(|label| label == "aoss") {
        return Err(ConfigError::new(
            "ES_DOMAIN_ARN",
            "is for a domain, but ES_URL is an OpenSearch Serverless collection",
        ));
    }
    let first = host.split('.').next().unwrap_or_default();
    // `search-<name>-<id>`: the name is what lies between the prefix and the last dash (names may hold dashes).
    let endpoint_name = first
        .strip_prefix("search-")
        .or_else(|| first.strip_prefix("vpc-"))
        .and_then(|rest| rest.rsplit_once('-').map(|(name, _)| name));
    if endpoint_region != region || endpoint_name.is_some_and(|endpoint_name| endpoint_name != name) {
        return Err(ConfigError::new(
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
pub(super) fn host_of(url: &str) -> String {
    Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default()
}

/// The AWS service an endpoint's (lowercase) host names: `es` for an Amazon OpenSearch Service domain
/// (`*.es.amazonaws.com`, or `.com.cn`), `aoss` for an OpenSearch Serverless collection; `None` for any other host.
pub(super) fn aws_service_of(host: &str) -> Option<&'static str> {
    AWS_SERVICES.into_iter().find(|service| {
        host.ends_with(&format!(".{service}.amazonaws.com")) || host.ends_with(&format!(".{service}.amazonaws.com.cn"))
    })
}

/// The region in an AWS endpoint, the label before `es.amazonaws.com` or `aoss.amazonaws.com` (or `.com.cn`):
/// `search-<domain>-<id>.<region>.es…`, `vpc-<domain>-<id>.<region>.es…`, `<collection-id>.<region>.aoss…`. Only a
/// label shaped like a region counts (`us-east-1`, `us-gov-west-1`, `cn-north-1`), so an endpoint written without
/// its region (`search-logs.es.amazonaws.com`) yields none rather than `search-logs`.
pub(super) fn region_of(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    let service_at = labels
        .iter()
        .enumerate()
        .position(|(i, l)| AWS_SERVICES.contains(l) && labels.get(i + 1) == Some(&"amazonaws"))?;
    let region = labels.get(service_at.checked_sub(1)?)?;
    let parts: Vec<&str> = region.split('-').collect();
    let shaped = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    shaped.then(|| region.to_string())
}

/// `ES_URL` checked: `http://` or `https://`, a host, no credentials, query or fragment (each refusal quotes the
/// URL redacted); the URL without a trailing `/`.
pub(super) fn parse_url(text: &str) -> Result<String, ConfigError> {
    let shown = redact_url(text);
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err(ConfigError::new("ES_URL", format!("must start with http:// or https://, got {shown:?}")));
    }
    let url = Url::parse(text)
        .map_err(|error| ConfigError::new("ES_URL", format!("is not a valid URL ({error}), got {shown:?}")))?;
    if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            "ES_URL",
            format!("needs a host and no user:password part (use ES_USERNAME/ES_PASSWORD), got {shown:?}"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new("ES_URL", format!("must not carry a query or fragment, got {shown:?}")));
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
