//! The doctor's questions to the cluster, as the function's client asks them (its credentials, its signature): who
//! it says we are, what we may do to today's index (found without writing a document), the ingest pipelines the
//! configuration needs, and what today's index name is there.

use std::time::Duration;

use ::elasticsearch::http::Method;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Check;
use crate::config::EsAuth;
use crate::handler::Deps;
use crate::setup::SETUP_PATHS;

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

/// The Firehose tier's ingest pipeline: its id, and the definition the project installs.
const FIREHOSE_PIPELINE: &str = SETUP_PATHS[0];
const FIREHOSE_PIPELINE_DEFINITION: &str = include_str!("../../deploy/firehose-pipeline.json");

/// The cluster's status and answer to one request (JSON, or the text as a string), or why there was none.
pub(super) async fn ask(
    deps: &Deps,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let (status, text) = deps.elasticsearch.send_json(method, path, body, timeout).await?;
    let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, answer))
}

/// What an error answer says: Elasticsearch's `type: reason`, Amazon's `Message`, or the text itself.
pub(super) fn said(answer: &Value) -> String {
    let error = &answer["error"];
    if let (Some(kind), Some(reason)) = (error["type"].as_str(), error["reason"].as_str()) {
        return format!("{kind}: {reason}");
    }
    for key in ["Message", "message", "error"] {
        if let Some(text) = answer[key].as_str() {
            return text.to_owned();
        }
    }
    let text = answer.as_str().map_or_else(|| answer.to_string(), str::to_owned);
    text.chars().take(300).collect()
}

/// The function's name as an operator's command needs it.
fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "<stack>-indexer".to_owned())
}

/// The authentication check: who the cluster says the function is. `None` when it refused the credentials or
/// did not answer, so that nothing more is asked.
pub(super) async fn authentication(deps: &Deps, timeout: Duration, checks: &mut Vec<Check>) -> Option<Identity> {
    let auth = &deps.config.auth;
    if matches!(auth, EsAuth::SigV4 { service, .. } if service == "aoss") {
        checks.push(Check::ok(
            "authentication",
            "OpenSearch Serverless: requests are signed with the function's role, which the collection's data \
             access policy names (it has no API that says who we are)",
        ));
        return Some(Identity::Serverless);
    }
    let refused = |status: u16, answer: &Value| {
        let fix = match (status, auth) {
            (403, _) => "the domain's access policy must allow the function's role (es:ESHttpGet, es:ESHttpPost, \
                         es:ESHttpPut on the domain's ARN/*): the stack writes it when it made the domain's policy; \
                         else add the role's ARN (the stack's FunctionRoleArn output)"
                .to_owned(),
            (_, EsAuth::Basic { username, .. }) => format!(
                "the cluster does not take {username}'s password: set the user's current one (EsPassword), or keep \
                 it in Secrets Manager (EsSecretArn)"
            ),
            (_, EsAuth::Secret { arn }) => format!(
                "the secret {arn} holds credentials the cluster does not take: put the user's current password (or \
                 a valid API key) in it; the function reads it again after a 401"
            ),
            (_, EsAuth::ApiKey(_)) => "the API key is refused (revoked or expired?): create one and set ES_API_KEY \
                                       (or keep it in a secret: EsSecretArn)"
                .to_owned(),
            (_, EsAuth::SigV4 { .. }) => "the cluster does not take SigV4: under fine-grained access control turn \
                                          IAM on for the domain, or use basic authentication (ES_AUTH)"
                .to_owned(),
            (_, EsAuth::None) => "the cluster requires credentials: a username and password (EsUsername, EsPassword), an API key (EsApiKey) or a secret holding either (EsSecretArn)".to_owned(),
        };
        Check::fail(
            "authentication",
            format!("the cluster refused the function's credentials ({status}: {})", said(answer)),
            fix,
        )
    };
    let asked = ask(deps, Method::Get, "_security/_authenticate", None, timeout).await;
    let (status, answer) = match asked {
        Ok(answered) => answered,
        Err(why) => {
            checks.push(Check::fail(
                "authentication",
                format!("no answer: {why}"),
                "the cluster was reached but does not answer HTTP in time: check ES_URL's scheme and port, and \
                 the cluster's health",
            ));
            return None;
        }
    };
    match status {
        200 => {
            let username = answer["username"].as_str().unwrap_or("?").to_owned();
            let roles = list(&answer["roles"]);
            let realm = answer["authentication_realm"]["name"].as_str().unwrap_or("?");
            checks.push(Check::ok(
                "authentication",
                format!("Elasticsearch knows the function as {username} (realm {realm}, roles [{roles}])"),
            ));
            return Some(Identity::Elasticsearch { username });
        }
        403 if said(&answer).contains("es:ESHttpGet") => {
            checks.push(Check::warn(
                "authentication",
                format!("the domain's access policy lets the function write but not ask who it is: {}", said(&answer)),
                "deploy this version of the stack: it grants the function es:ESHttpGet on the few paths the doctor \
                 reads (none under an index, so no document can be read)",
            ));
            return Some(Identity::Unknown);
        }
        401 | 403 => {
            checks.push(refused(status, &answer));
            return None;
        }
        _ => {}
    }
    // Not Elasticsearch's security: OpenSearch's security plugin, or none.
    let (status, answer) = match ask(deps, Method::Get, "_plugins/_security/authinfo", None, timeout).await {
        Ok(answered) => answered,
        Err(why) => {
            checks.push(Check::fail("authentication", format!("no answer: {why}"), "check the cluster's health"));
            return None;
        }
    };
    match status {
        200 => {
            let username = answer["user_name"].as_str().unwrap_or("?").to_owned();
            let roles = list(&answer["roles"]);
            let backend_roles = list(&answer["backend_roles"]);
            checks.push(Check::ok(
                "authentication",
                format!(
                    "OpenSearch's security plugin knows the function as {username} (security roles [{roles}], \
                     backend roles [{backend_roles}])"
                ),
            ));
            Some(Identity::OpenSearch { username })
        }
        401 | 403 => {
            checks.push(refused(status, &answer));
            None
        }
        _ => {
            checks.push(Check::ok(
                "authentication",
                format!("no security API answers ({status}): the cluster does not ask who the function is"),
            ));
            Some(Identity::Unsecured)
        }
    }
}

fn list(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The permissions check: whether the function may write documents into today's index and create it, asked
/// without writing (Elasticsearch's `_has_privileges`; on OpenSearch, requests its security refuses or lets through
/// to a refusal of their own).
pub(super) async fn permissions(deps: &Deps, identity: &Identity, today: &str, timeout: Duration) -> Check {
    let pattern = deps.config.index.as_str();
    match identity {
        Identity::Unsecured => {
            Check::ok("permissions", "the cluster has no security: every request of the function is allowed")
        }
        Identity::Serverless => Check::skipped(
            "permissions",
            format!(
                "not asked: a collection has no API that tells, and a probe would write. Its data access policy \
                 must grant the function's role aoss:CreateIndex, aoss:UpdateIndex, aoss:DescribeIndex and \
                 aoss:WriteDocument on index/<collection>/{}",
                wildcard(pattern)
            ),
        ),
        Identity::Unknown => Check::skipped("permissions", "not asked: the domain did not say who the function is"),
        Identity::Elasticsearch { username } => elasticsearch_privileges(deps, username, today, timeout).await,
        Identity::OpenSearch { username } => opensearch_permissions(deps, username, today, timeout).await,
    }
}

/// The pattern with its date parts and placeholders as one `*` each run (`logs-%Y.%m.%d` is `logs-*`): what a
/// role's index pattern must cover.
fn wildcard(pattern: &str) -> String {
    let mut out = String::new();
    let star = |out: &mut String| {
        // A star after another with only separators between them adds nothing the first does not match.
        let tail = out.rfind('*').map(|at| &out[at + 1..]);
        match tail {
            Some(tail) if !tail.chars().any(|c| c.is_ascii_alphanumeric()) => out.truncate(out.len() - tail.len()),
            _ => out.push('*'),
        }
    };
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                while chars.next_if(|c| !c.is_ascii_alphabetic()).is_some() {}
                chars.next();
                star(&mut out);
            }
            '{' => {
                while chars.next().is_some_and(|c| c != '}') {}
                star(&mut out);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Elasticsearch's own answer: `create_doc` for the bulk `create` the function sends; `auto_configure` or
/// `create_index` for a new day's index; `auto_configure`, `write` or `manage` for the mapping updates new fields
/// bring (since 8.0 `create_doc` no longer grants them).
async fn elasticsearch_privileges(deps: &Deps, username: &str, today: &str, timeout: Duration) -> Check {
    let privileges = ["create_doc", "create_index", "auto_configure", "write", "manage"];
    let question = json!({"index": [{"names": [today], "privileges": privileges}]});
    let body = Bytes::from(question.to_string());
    let (status, answer) = match ask(deps, Method::Post, "_security/user/_has_privileges", Some(body), timeout).await {
        Ok(answered) => answered,
        Err(why) => return Check::warn("permissions", format!("not asked: {why}"), "run the doctor again"),
    };
    if status != 200 {
        return Check::warn(
            "permissions",
            format!("the cluster did not say ({status}: {})", said(&answer)),
            "ask an administrator to check the user's roles",
        );
    }
    let granted = &answer["index"][today];
    let has = |privilege: &str| granted[privilege].as_bool() == Some(true);
    let mut missing = Vec::new();
    if !has("create_doc") {
        missing.push("create_doc (every bulk write is refused: 403 security_exception)");
    }
    if !has("create_index") && !has("auto_configure") {
        missing.push("auto_configure or create_index (a new day's index is not created: 403)");
    }
    if !has("auto_configure") && !has("write") && !has("manage") {
        missing.push("auto_configure or write (a document with a new field is refused: 403 on its mapping update)");
    }
    if missing.is_empty() {
        return Check::ok(
            "permissions",
            format!("{username} may write documents to {today}, create it and add fields to its mapping"),
        );
    }
    Check::fail(
        "permissions",
        format!("{username} lacks, on {today}: {}", missing.join("; ")),
        format!(
            "give {username} a role with the index privileges create_doc and auto_configure on {}",
            wildcard(deps.config.index.as_str())
        ),
    )
}

/// OpenSearch has no `_has_privileges`: the create-index permission is asked with a creation the cluster refuses
/// after its security let it through (no shards), the write permission with a write conditional on a document that
/// does not exist (a version conflict), sent only where it cannot create the index.
async fn opensearch_permissions(deps: &Deps, username: &str, today: &str, timeout: Duration) -> Check {
    let impossible_index = Bytes::from_static(br#"{"settings":{"index":{"number_of_shards":0}}}"#);
    let (status, answer) = match ask(deps, Method::Put, today, Some(impossible_index), timeout).await {
        Ok(answered) => answered,
        Err(why) => return Check::warn("permissions", format!("not asked: {why}"), "run the doctor again"),
    };
    let kind = answer["error"]["type"].as_str().unwrap_or_default();
    let (may_create, exists) = match status {
        403 => (false, None),
        400 if kind == "resource_already_exists_exception" => (true, Some(true)),
        400 => (true, Some(false)),
        _ => {
            return Check::warn(
                "permissions",
                format!("creating {today} with no shards was answered {status}, not refused: {}", said(&answer)),
                "check the index: the doctor asked for one no cluster should make",
            );
        }
    };
    let create_refusal = (!may_create).then(|| said(&answer));
    // A write where the index exists, or where it cannot be created: nothing is left either way.
    let may_write = match exists {
        Some(false) => None,
        _ => Some(conditional_write(deps, today, timeout).await),
    };
    let roles_fix = format!(
        "map the function's role to a role with index permissions crud and create_index on {} (make role-mapping \
         STACK=<stack> prints the requests for Dev Tools)",
        wildcard(deps.config.index.as_str())
    );
    match (create_refusal, may_write) {
        (None, Some(Ok(()))) => {
            Check::ok("permissions", format!("{username} may write documents to {today} and create indices like it"))
        }
        (None, None) => Check::ok(
            "permissions",
            format!(
                "{username} may create {today}; its write permission shows with the first batch (today's index does \
                 not exist yet, and a probe would create it)"
            ),
        ),
        (Some(refusal), write) => {
            // A write refused only for the index it would create says nothing more.
            let write = match write {
                Some(Err(refused)) if !refused.contains("indices:admin/") => {
                    format!("; and writing documents there: {refused}")
                }
                _ => String::new(),
            };
            Check::fail("permissions", format!("{username} may not create {today}: {refusal}{write}"), roles_fix)
        }
        (None, Some(Err(refused))) => {
            Check::fail("permissions", format!("{username} may not write documents to {today}: {refused}"), roles_fix)
        }
    }
}

/// A write of a document that cannot exist, conditional on a version it cannot have: allowed writes end in a version
/// conflict and write nothing. `Err` with the refusal when the security plugin refuses it.
async fn conditional_write(deps: &Deps, today: &str, timeout: Duration) -> Result<(), String> {
    let id = format!("kinesis-es-indexer-doctor-{}", fastrand::u64(..));
    let action = json!({"index": {"_index": today, "_id": id, "if_seq_no": 0, "if_primary_term": 1}});
    let body = Bytes::from(format!("{action}\n{{\"kinesis_es_indexer_doctor\":true}}\n"));
    let (status, answer) = ask(deps, Method::Post, "_bulk", Some(body), timeout).await?;
    if status != 200 {
        return Err(format!("{status}: {}", said(&answer)));
    }
    let item = &answer["items"][0]["index"];
    match item["status"].as_u64() {
        Some(409) => Ok(()),
        Some(status) if status == 403 || status == 401 => Err(format!("{status}: {}", said(item))),
        Some(status) => Err(format!("the conditional write was answered {status}: {}", said(item))),
        None => Err(format!("the answer has no item: {}", said(&answer))),
    }
}

/// The pipeline checks: the Firehose tier's (installed, and the project's), and `ES_PIPELINE`'s (installed).
pub(super) async fn pipelines(deps: &Deps, timeout: Duration, checks: &mut Vec<Check>) {
    let config = &deps.config;
    if config.firehose_stream.is_none() && config.pipeline.is_none() {
        checks.push(Check::skipped("pipeline", "no Firehose stream and no ES_PIPELINE: no ingest pipeline is needed"));
        return;
    }
    if config.firehose_stream.is_some() {
        let install = format!(
            "install the project's: make firehose-pipeline REMOTE=1 FUNCTION={} (through the function, from inside \
             its VPC)",
            function_name()
        );
        let id = FIREHOSE_PIPELINE.rsplit('/').next().unwrap_or(FIREHOSE_PIPELINE);
        checks.push(match ask(deps, Method::Get, FIREHOSE_PIPELINE, None, timeout).await {
            Ok((200, answer)) => {
                let ours: Value = serde_json::from_str(FIREHOSE_PIPELINE_DEFINITION).expect("the project's pipeline");
                match answer[id]["processors"] == ours["processors"] {
                    true => Check::ok("pipeline", format!("{id} is installed, as the project's")),
                    false => Check::fail(
                        "pipeline",
                        format!(
                            "{id} is installed but its processors differ from the project's: Firehose's deliveries \
                             may land on other _ids (written twice) or keep the target field"
                        ),
                        install,
                    ),
                }
            }
            Ok((404, _)) => Check::fail(
                "pipeline",
                format!(
                    "{id} is not installed: documents Firehose delivers get new _ids (written twice when the direct \
                     path wrote them too) and keep their target field"
                ),
                install,
            ),
            Ok((status, answer)) => Check::warn(
                "pipeline",
                format!("{id} could not be read ({status}: {})", said(&answer)),
                format!("read it as an administrator (GET _ingest/pipeline/{id}), or {install}"),
            ),
            Err(why) => Check::warn("pipeline", format!("{id} not read: {why}"), "run the doctor again"),
        });
    }
    if let Some(pipeline) = &config.pipeline {
        checks.push(match ask(deps, Method::Get, &format!("_ingest/pipeline/{pipeline}"), None, timeout).await {
            Ok((200, _)) => Check::ok("pipeline", format!("ES_PIPELINE {pipeline} is installed")),
            Ok((404, _)) => Check::fail(
                "pipeline",
                format!("ES_PIPELINE names {pipeline}, which the cluster does not have: every document is refused"),
                format!("create the ingest pipeline {pipeline}, or unset ES_PIPELINE (the stack's EsPipeline)"),
            ),
            Ok((status, answer)) => Check::warn(
                "pipeline",
                format!("ES_PIPELINE {pipeline} could not be read ({status}: {})", said(&answer)),
                format!("read it as an administrator: GET _ingest/pipeline/{pipeline}"),
            ),
            Err(why) => Check::warn("pipeline", format!("{pipeline} not read: {why}"), "run the doctor again"),
        });
    }
}

/// The index check: the name the pattern makes today (placeholders at their fallbacks), valid by Elasticsearch's
/// rules, and what it is in the cluster: nothing yet, an index, an alias that can take writes, a data stream.
pub(super) async fn index_name(deps: &Deps, today: &str, timeout: Duration) -> Check {
    let pattern = deps.config.index.as_str();
    if let Err(why) = crate::index::check_index_name(today) {
        return Check::fail(
            "index",
            format!("ES_INDEX {pattern} makes {today:?} today, which {why}"),
            "change ES_INDEX (the stack's EsIndex): lowercase, none of \\ / * ? \" < > | , # : or spaces",
        );
    }
    let made = format!("ES_INDEX {pattern} makes {today} today (a valid name)");
    let (status, answer) = match ask(deps, Method::Get, &format!("_resolve/index/{today}"), None, timeout).await {
        Ok(answered) => answered,
        Err(why) => return Check::warn("index", format!("{made}; not looked up: {why}"), "run the doctor again"),
    };
    let named = |kind: &str| {
        answer[kind]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["name"].as_str() == Some(today)))
            .cloned()
    };
    if status == 404 || (status == 200 && ["indices", "aliases", "data_streams"].iter().all(|k| named(k).is_none())) {
        return Check::ok("index", format!("{made}; it does not exist yet: the first document creates it"));
    }
    if status != 200 {
        return Check::ok("index", format!("{made}; not looked up ({status}: {})", said(&answer)));
    }
    if let Some(index) = named("indices") {
        if index["attributes"].as_array().is_some_and(|a| a.iter().any(|v| v == "closed")) {
            return Check::fail(
                "index",
                format!("{made}; it is a closed index: every write is refused (index_closed_exception)"),
                format!("open it (POST {today}/_open), or point ES_INDEX elsewhere"),
            );
        }
        return Check::ok("index", format!("{made}; it is an open index"));
    }
    if named("data_streams").is_some() {
        return Check::ok("index", format!("{made}; it is a data stream: documents are created in its write index"));
    }
    // An alias: it takes writes only with a write index (or a single index behind it).
    let aliases = match ask(deps, Method::Get, &format!("_alias/{today}"), None, timeout).await {
        Ok((200, aliases)) => aliases,
        _ => return Check::ok("index", format!("{made}; it is an alias (its write index not looked up)")),
    };
    let behind: Vec<(&String, bool)> = aliases
        .as_object()
        .map(|indices| {
            indices.iter().map(|(index, entry)| (index, entry["aliases"][today]["is_write_index"] == true)).collect()
        })
        .unwrap_or_default();
    if behind.len() > 1 && !behind.iter().any(|(_, write)| *write) {
        let names: Vec<&str> = behind.iter().map(|(index, _)| index.as_str()).collect();
        return Check::fail(
            "index",
            format!("{made}; it is an alias of [{}] with no write index: every write is refused", names.join(", ")),
            "mark one of them the alias's write index (is_write_index: true), or point ES_INDEX at an index",
        );
    }
    Check::ok("index", format!("{made}; it is an alias that takes writes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_as_a_role_names_it() {
        assert_eq!(wildcard("logs-%Y.%m.%d"), "logs-*");
        assert_eq!(wildcard("logs-%Y-%m"), "logs-*");
        assert_eq!(wildcard("app-{log_group}-%Y.%m.%d"), "app-*");
        assert_eq!(wildcard("%Y.%m-app-{field:service}"), "*-app-*");
        assert_eq!(wildcard("logs-%-d"), "logs-*");
        assert_eq!(wildcard("fixed"), "fixed");
    }

    #[test]
    fn an_error_answer_is_said_by_its_type_and_reason_or_its_message() {
        let elasticsearch =
            json!({"error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401});
        assert_eq!(said(&elasticsearch), "security_exception: unable to authenticate");
        assert_eq!(said(&json!({"Message": "User: arn:x is not authorized"})), "User: arn:x is not authorized");
        assert_eq!(said(&json!("plain")), "plain");
    }
}
