//! The doctor's questions to the cluster, as the function's client asks them (its credentials, its signature): who
//! it says we are, and what today's index name is there. What we may do to it is in `permissions`, the ingest
//! pipelines the configuration needs in `pipelines`.

use ::elasticsearch::http::Method;
use bytes::Bytes;
use serde_json::Value;

use super::{Budget, Check};
use crate::cause::no_such_api;
pub(super) use crate::cause::{Said, access_policy_refused, said};
use crate::config::EsAuth;
use crate::handler::Deps;

/// Who the cluster says the function is, by the security API that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Identity {
    /// Elasticsearch's security (`_security/_authenticate`): privileges can be asked with `_has_privileges`.
    Elasticsearch { username: String },
    /// OpenSearch's security plugin (`_plugins/_security/authinfo`), as under fine-grained access control.
    OpenSearch { username: String },
    /// No security API answered: the cluster does not ask who calls it.
    Unsecured,
    /// OpenSearch Serverless: SigV4 only, and a data access policy no API of the collection shows.
    Serverless,
    /// The domain's access policy lets the function write but not ask (a stack from before the doctor).
    Unknown,
}

/// What the cluster's status says to one request, and its answer (JSON, or the text as a string), or why there
/// was none.
pub(super) async fn ask(
    deps: &Deps,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    budget: &Budget,
) -> Result<(Said, Value), String> {
    let timeout = budget.next()?;
    let (status, text) = deps.elasticsearch.send_json(method, path, body, timeout).await?;
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((Said::of(status), answer))
}

/// The security APIs that say who the caller is, in the order asked: Elasticsearch's, OpenSearch's, Open
/// Distro's (Amazon's Elasticsearch 7.x domains with fine-grained access control).
const WHO_AM_I: [&str; 3] =
    ["_security/_authenticate", "_plugins/_security/authinfo", "_opendistro/_security/authinfo"];

/// The authentication check: who the cluster says the function is. `None` when it refused the credentials or
/// did not answer, so that nothing more is asked.
pub(super) async fn authentication(deps: &Deps, budget: &Budget, checks: &mut Vec<Check>) -> Option<Identity> {
    let auth = &deps.config.cluster.auth;
    if matches!(auth, EsAuth::SigV4 { service, .. } if service == "aoss") {
        checks.push(Check::skipped(
            "authentication",
            "not asked: an OpenSearch Serverless collection has no API that says who the caller is; requests are \
             signed with the function's role, which its data access policy must name (see permissions)",
        ));
        return Some(Identity::Serverless);
    }
    for path in WHO_AM_I {
        let (status, answer) = match ask(deps, Method::Get, path, None, budget).await {
            Ok(answered) => answered,
            Err(why) => {
                checks.push(Check::fail(
                    "authentication",
                    format!("no answer to GET {path}: {why}"),
                    "the cluster was reached but does not answer HTTP in time: check ES_URL's scheme and port, and \
                     the cluster's health",
                ));
                return None;
            }
        };
        let (check, identity) = match status {
            Said::Done if path == WHO_AM_I[0] => known_to_elasticsearch(&answer),
            Said::Done => known_to_opensearch(&answer),
            _ if access_policy_refused(status, &answer) && said(&answer).contains("es:ESHttpGet") => {
                (identity_not_askable(&answer), Some(Identity::Unknown))
            }
            _ if status.refused_access() => (credentials_refused(auth, status, &answer), None),
            _ if no_such_api(status, &answer) => continue,
            _ => (not_ready(path, status, &answer), None),
        };
        checks.push(check);
        return identity;
    }
    checks.push(Check::ok("authentication", unsecured_finding(auth)));
    Some(Identity::Unsecured)
}

/// The authentication check of Elasticsearch's answer to `_security/_authenticate`, and who it names.
fn known_to_elasticsearch(answer: &Value) -> (Check, Option<Identity>) {
    let username = answer["username"].as_str().unwrap_or("?").to_owned();
    let roles = list(&answer["roles"]);
    let realm = answer["authentication_realm"]["name"].as_str().unwrap_or("?");
    let check = Check::ok(
        "authentication",
        format!("Elasticsearch knows the function as {username} (realm {realm}, roles [{roles}])"),
    );
    (check, Some(Identity::Elasticsearch { username }))
}

/// The authentication check of the OpenSearch security plugin's answer to `authinfo`, and who it names.
fn known_to_opensearch(answer: &Value) -> (Check, Option<Identity>) {
    let username = answer["user_name"].as_str().unwrap_or("?").to_owned();
    let roles = list(&answer["roles"]);
    let backend_roles = list(&answer["backend_roles"]);
    let check = Check::ok(
        "authentication",
        format!(
            "OpenSearch's security plugin knows the function as {username} (security roles [{roles}], \
             backend roles [{backend_roles}])"
        ),
    );
    (check, Some(Identity::OpenSearch { username }))
}

/// The warning when the domain's access policy lets the function write but not ask who it is.
fn identity_not_askable(answer: &Value) -> Check {
    Check::warn(
        "authentication",
        format!("the domain's access policy lets the function write but not ask who it is: {}", said(answer)),
        "deploy this version of the stack: it grants the function es:ESHttpGet on the few paths the \
         doctor reads (none under an index, so no document can be read)",
    )
}

/// The failure when the cluster refused the function's credentials (401, or 403), with the fix for its `auth`.
fn credentials_refused(auth: &EsAuth, status: Said, answer: &Value) -> Check {
    let fix = match (status, auth) {
        (Said::Forbidden, _) => {
            "the domain's access policy must allow the function's role (the stack's FunctionRoleArn \
                     output) to send HTTP requests to the domain (es:ESHttp*): add it to the domain's access \
                     policy, or remove the statement that denies it"
                .to_owned()
        }
        (_, EsAuth::Basic { username, .. }) => format!(
            "the cluster does not take {username}'s password: set the user's current one (EsPassword), or keep \
             it in Secrets Manager (EsSecretArn)"
        ),
        (_, EsAuth::Secret { arn }) => format!(
            "the secret {arn} holds credentials the cluster does not take: put the user's current password (or \
             a valid API key) in it; the function reads it again after a 401"
        ),
        (_, EsAuth::ApiKey(_)) => "the API key is refused (revoked or expired?): create one and set it \
                                   (EsApiKey, or in a secret: EsSecretArn)"
            .to_owned(),
        (_, EsAuth::SigV4 { .. }) => "the cluster does not take SigV4: under fine-grained access control with \
                                      the internal user database only, turn IAM on for the domain, or use basic \
                                      authentication (EsAuth=basic, EsUsername, EsPassword)"
            .to_owned(),
        (_, EsAuth::None) => "the cluster requires credentials: a username and password (EsUsername, \
                              EsPassword), an API key (EsApiKey) or a secret holding either (EsSecretArn)"
            .to_owned(),
    };
    Check::fail(
        "authentication",
        format!("the cluster refused the function's credentials ({status}: {})", said(answer)),
        fix,
    )
}

/// The failure when a security API answered neither who the function is nor that there is no such API.
fn not_ready(path: &str, status: Said, answer: &Value) -> Check {
    Check::fail(
        "authentication",
        format!("GET {path} was answered {status}: {}", said(answer)),
        "the cluster is not ready to answer (its security plugin not initialised, overloaded, a proxy \
         in the way): check its health, then run the doctor again",
    )
}

/// What the authentication check found when no security API answered: with SigV4, the access policy decides.
fn unsecured_finding(auth: &EsAuth) -> String {
    match auth {
        EsAuth::SigV4 { .. } => "the domain's access policy admitted the signed requests, and it has no fine-grained \
                                 access control: what the policy allows, the function may do"
            .to_owned(),
        _ => "no security API answers: the cluster does not ask who the function is".to_owned(),
    }
}

fn list(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// What today's index name is in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Nothing yet: the first document creates it.
    Missing,
    Index {
        closed: bool,
    },
    /// An alias: `Some(false)` when it points at several indices and none is its write index.
    Alias {
        takes_writes: Option<bool>,
    },
    DataStream,
    /// Not looked up, and why.
    Unknown(String),
}

/// Today's index name as the cluster resolves it (`_resolve/index`, and `_alias` for an alias).
pub(super) async fn look_up(deps: &Deps, today: &str, budget: &Budget) -> Target {
    let (status, answer) = match ask(deps, Method::Get, &format!("_resolve/index/{today}"), None, budget).await {
        Ok(answered) => answered,
        Err(why) => return Target::Unknown(why),
    };
    let named = |kind: &str| {
        answer[kind]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["name"].as_str() == Some(today)))
            .cloned()
    };
    match status {
        Said::Missing => return Target::Missing,
        Said::Done => {}
        _ => return Target::Unknown(format!("{status}: {}", said(&answer))),
    }
    if let Some(index) = named("indices") {
        let closed = index["attributes"].as_array().is_some_and(|a| a.iter().any(|v| v == "closed"));
        return Target::Index { closed };
    }
    if named("data_streams").is_some() {
        return Target::DataStream;
    }
    if named("aliases").is_none() {
        return Target::Missing;
    }
    // An alias takes writes with a write index, or with a single index behind it.
    let takes_writes = match ask(deps, Method::Get, &format!("_alias/{today}"), None, budget).await {
        Ok((Said::Done, aliases)) => aliases.as_object().map(|indices| {
            indices.len() == 1 || indices.values().any(|entry| entry["aliases"][today]["is_write_index"] == true)
        }),
        _ => None,
    };
    Target::Alias { takes_writes }
}

/// The index check: the name the pattern makes today (placeholders at their fallbacks), valid by Elasticsearch's
/// rules, and what it is in the cluster: nothing yet, an index, an alias that can take writes, a data stream.
pub(super) fn index_name(deps: &Deps, today: &str, target: &Target) -> Check {
    let pattern = deps.config.cluster.index.as_str();
    if let Err(why) = crate::index::check_index_name(today) {
        return Check::fail(
            "index",
            format!("ES_INDEX {pattern} makes {today:?} today, which {why}"),
            "change EsIndex (ES_INDEX): lowercase, none of \\ / * ? \" < > | , # : or spaces",
        );
    }
    let made = format!("ES_INDEX {pattern} makes {today} today (a valid name)");
    match target {
        Target::Missing => Check::ok("index", format!("{made}; it does not exist yet: the first document creates it")),
        Target::Unknown(why) => Check::ok("index", format!("{made}; not looked up ({why})")),
        Target::Index { closed: true } => Check::fail(
            "index",
            format!("{made}; it is a closed index: every write is refused (index_closed_exception)"),
            format!("open it (POST {today}/_open), or point EsIndex elsewhere"),
        ),
        Target::Index { closed: false } => Check::ok("index", format!("{made}; it is an open index")),
        Target::DataStream if deps.config.firehose.stream.is_some() => Check::fail(
            "index",
            format!(
                "{made}; it is a data stream, which takes only create: the documents Firehose delivers (its own \
                 action) are refused"
            ),
            "deploy without the Firehose tier, make deploy SET=\"DeliveryStreamName=none\": retry-later documents \
             then go back to Kinesis, paced, and the function writes them with create",
        ),
        Target::DataStream => {
            Check::ok("index", format!("{made}; it is a data stream: documents are created in its write index"))
        }
        Target::Alias { takes_writes: Some(false) } => Check::fail(
            "index",
            format!("{made}; it is an alias of several indices with no write index: every write is refused"),
            "mark one of them the alias's write index (is_write_index: true), or point EsIndex at an index",
        ),
        Target::Alias { takes_writes } => {
            let writes = if *takes_writes == Some(true) { "that takes writes" } else { "(its write index not read)" };
            Check::ok("index", format!("{made}; it is an alias {writes}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_answer_is_said_by_its_type_and_reason_or_its_message() {
        let elasticsearch =
            json!({"error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401});
        assert_eq!(said(&elasticsearch), "security_exception: unable to authenticate");
        assert_eq!(said(&json!({"Message": "User: arn:x is not authorized"})), "User: arn:x is not authorized");
        assert_eq!(said(&json!("plain")), "plain");
    }
}
