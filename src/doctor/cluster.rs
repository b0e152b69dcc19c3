//! The doctor's questions to the cluster, as the function's client asks them (its credentials, its signature): who
//! it says we are, what we may do to today's index (found without writing a document), the ingest pipelines the
//! configuration needs, and what today's index name is there.

use ::elasticsearch::http::Method;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Budget, Check, function_name, stack_name};
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

/// The Firehose tier's ingest pipeline: its path (its id last), and the definition the project installs.
const FIREHOSE_PIPELINE: &str = SETUP_PATHS[0];
const FIREHOSE_PIPELINE_DEFINITION: &str = include_str!("../../deploy/firehose-pipeline.json");

/// The cluster's status and answer to one request (JSON, or the text as a string), or why there was none.
pub(super) async fn ask(
    deps: &Deps,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    budget: &Budget,
) -> Result<(u16, Value), String> {
    let timeout = budget.next()?;
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

/// Whether an answer is Amazon's access policy refusing the request (`{"Message": "User: … is not authorized to
/// perform: es:ESHttp…"}`), before any security plugin saw it.
fn access_policy_refused(status: u16, answer: &Value) -> bool {
    status == 403 && answer["Message"].as_str().is_some_and(|m| m.contains("is not authorized to perform"))
}

/// Whether an answer says the path has no handler: that cluster has no such API (no security plugin).
fn no_such_api(status: u16, answer: &Value) -> bool {
    matches!(status, 400 | 404 | 405) && answer["error"]["type"].as_str() != Some("security_exception")
}

/// The security APIs that say who the caller is, in the order asked: Elasticsearch's, OpenSearch's, Open
/// Distro's (Amazon's Elasticsearch 7.x domains with fine-grained access control).
const WHO_AM_I: [&str; 3] =
    ["_security/_authenticate", "_plugins/_security/authinfo", "_opendistro/_security/authinfo"];

/// The authentication check: who the cluster says the function is. `None` when it refused the credentials or
/// did not answer, so that nothing more is asked.
pub(super) async fn authentication(deps: &Deps, budget: &Budget, checks: &mut Vec<Check>) -> Option<Identity> {
    let auth = &deps.config.auth;
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
            200 if path == WHO_AM_I[0] => known_to_elasticsearch(&answer),
            200 => known_to_opensearch(&answer),
            403 if access_policy_refused(status, &answer) && said(&answer).contains("es:ESHttpGet") => {
                (identity_not_askable(&answer), Some(Identity::Unknown))
            }
            401 | 403 => (credentials_refused(auth, status, &answer), None),
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
fn credentials_refused(auth: &EsAuth, status: u16, answer: &Value) -> Check {
    let fix = match (status, auth) {
        (403, _) => "the domain's access policy must allow the function's role (the stack's FunctionRoleArn \
                     output) to send HTTP requests to the domain (es:ESHttp*): add it to the domain's access \
                     policy, or remove the statement that denies it"
            .to_owned(),
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
fn not_ready(path: &str, status: u16, answer: &Value) -> Check {
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
        404 => return Target::Missing,
        200 => {}
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
        Ok((200, aliases)) => aliases.as_object().map(|indices| {
            indices.len() == 1 || indices.values().any(|entry| entry["aliases"][today]["is_write_index"] == true)
        }),
        _ => None,
    };
    Target::Alias { takes_writes }
}

/// The permissions check: whether the function may write documents into today's index and create it (when a
/// pattern makes new names, or the name does not exist), asked without writing (Elasticsearch's `_has_privileges`;
/// on OpenSearch, requests its security refuses or lets through to a refusal of their own).
pub(super) async fn permissions(
    deps: &Deps,
    identity: &Identity,
    today: &str,
    target: &Target,
    budget: &Budget,
) -> Check {
    let pattern = deps.config.index.as_str();
    let rolling = pattern.contains('%') || pattern.contains('{');
    let must_create = rolling || matches!(target, Target::Missing | Target::Unknown(_));
    match identity {
        Identity::Unsecured => Check::ok("permissions", "no fine-grained access control: nothing more to ask"),
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
        Identity::Elasticsearch { username } => {
            elasticsearch_privileges(deps, username, today, must_create, budget).await
        }
        Identity::OpenSearch { username } => {
            opensearch_permissions(deps, username, today, target, must_create, budget).await
        }
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
async fn elasticsearch_privileges(
    deps: &Deps,
    username: &str,
    today: &str,
    must_create: bool,
    budget: &Budget,
) -> Check {
    let privileges = ["create_doc", "create_index", "auto_configure", "write", "manage"];
    let question = json!({"index": [{"names": [today], "privileges": privileges}]});
    let body = Bytes::from(question.to_string());
    let (status, answer) = match ask(deps, Method::Post, "_security/user/_has_privileges", Some(body), budget).await {
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
    if must_create && !has("create_index") && !has("auto_configure") {
        missing.push("auto_configure or create_index (a new day's index is not created: 403)");
    }
    if !has("auto_configure") && !has("write") && !has("manage") {
        missing.push("auto_configure or write (a document with a new field is refused: 403 on its mapping update)");
    }
    if missing.is_empty() {
        let creates = if must_create { ", create it" } else { "" };
        return Check::ok(
            "permissions",
            format!("{username} may write documents to {today}{creates} and add fields to its mapping"),
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
/// after its security let it through (no shards); the write permission with a write conditional on a document that
/// does not exist (a version conflict, with an empty document: no field is added), sent only to an index that
/// exists already, today's or the newest the pattern made, so that it can create nothing.
async fn opensearch_permissions(
    deps: &Deps,
    username: &str,
    today: &str,
    target: &Target,
    must_create: bool,
    budget: &Budget,
) -> Check {
    let mut refused = Vec::new();
    let mut unasked = Vec::new();
    let mut allowed = Vec::new();
    if must_create {
        let impossible_index = Bytes::from_static(br#"{"settings":{"index":{"number_of_shards":0}}}"#);
        match ask(deps, Method::Put, today, Some(impossible_index), budget).await {
            Ok((status, answer)) if access_policy_refused(status, &answer) => unasked
                .push(format!("creation not asked: the access policy refuses the doctor's PUT ({})", said(&answer))),
            Ok((403, answer)) => refused.push(format!("may not create {today}: {}", said(&answer))),
            // Refused after the security plugin let it through: for its shards, or its name already taken.
            Ok((400, _)) => allowed.push(format!("may create {today}")),
            Ok((status, answer)) => unasked
                .push(format!("creating {today} with no shards was answered {status}, not refused: {}", said(&answer))),
            Err(why) => unasked.push(format!("creation {why}")),
        }
    }
    let probed = match target {
        Target::Index { closed: false } | Target::Alias { takes_writes: Some(true) } => Ok(Some(today.to_owned())),
        Target::DataStream => Err("writing to a data stream shows with the first batch (it takes only create, which \
                                   cannot be made conditional)"
            .to_owned()),
        _ => newest_like(deps, today, budget).await,
    };
    match probed {
        Ok(Some(index)) => match conditional_write(deps, &index, budget).await {
            Ok(()) => allowed.push(format!("may write documents (a write to {index} that could not happen)")),
            Err((403, why)) => refused.push(format!("may not write documents to {index}: {why}")),
            Err((_, why)) => unasked.push(format!("writing not known: {why}")),
        },
        Ok(None) => unasked.push(format!(
            "its write permission is not known: no index like {today} exists yet, and a probe would create one"
        )),
        Err(why) => allowed.push(why),
    }
    let roles_fix = format!(
        "map the function's role to a role with the cluster permission indices:data/write/bulk and the index \
         permissions to write and create indices on {}: make role-mapping STACK={} prints the requests for Dev Tools",
        wildcard(deps.config.index.as_str()),
        stack_name()
    );
    let found = |parts: Vec<String>| format!("{username} {}", parts.join("; "));
    match (refused.is_empty(), unasked.is_empty()) {
        (false, _) => Check::fail("permissions", found(refused.into_iter().chain(unasked).collect()), roles_fix),
        (true, false) => Check::warn(
            "permissions",
            found(allowed.into_iter().chain(unasked).collect()),
            "once the event source mapping is on, the first Batch done line shows indexed documents (or an ERROR \
             line names the permission refused); make doctor again once an index exists probes it",
        ),
        (true, true) => Check::ok("permissions", found(allowed)),
    }
}

/// The newest index the pattern made that exists (by name), other than today's: where a write can be probed
/// without creating anything. `Err` says why none was looked for.
async fn newest_like(deps: &Deps, today: &str, budget: &Budget) -> Result<Option<String>, String> {
    let like = wildcard(deps.config.index.as_str());
    if !like.contains('*') {
        return Ok(None);
    }
    let (status, answer) = ask(deps, Method::Get, &format!("_resolve/index/{like}"), None, budget).await?;
    if status != 200 {
        return Err(format!("writing not probed: looking up {like} was answered {status}: {}", said(&answer)));
    }
    let open = |index: &&Value| !index["attributes"].as_array().is_some_and(|a| a.iter().any(|v| v == "closed"));
    let names = answer["indices"].as_array().into_iter().flatten().filter(open).filter_map(|i| i["name"].as_str());
    Ok(names.filter(|name| *name != today && !name.starts_with('.')).max().map(str::to_owned))
}

/// A write of an empty document that cannot exist, conditional on a version it cannot have: allowed, it ends in a
/// version conflict and writes nothing (not even a field in the mapping). `Err` with the status and refusal.
async fn conditional_write(deps: &Deps, index: &str, budget: &Budget) -> Result<(), (u16, String)> {
    let id = format!("kinesis-es-indexer-doctor-{}", fastrand::u64(..));
    let action = json!({"index": {"_index": index, "_id": id, "if_seq_no": 0, "if_primary_term": 1}});
    let body = Bytes::from(format!("{action}\n{{}}\n"));
    let (status, answer) = ask(deps, Method::Post, "_bulk", Some(body), budget).await.map_err(|why| (0, why))?;
    if status != 200 {
        return Err((status, format!("{status}: {}", said(&answer))));
    }
    let item = &answer["items"][0]["index"];
    match item["status"].as_u64() {
        Some(409) => Ok(()),
        Some(status) => Err((status as u16, format!("{status}: {}", said(item)))),
        None => Err((0, format!("the answer has no item: {}", said(&answer)))),
    }
}

/// The pipeline checks: the Firehose tier's pipeline (installed, and the project's) and the index template that
/// routes Firehose's deliveries through it; `ES_PIPELINE`'s (installed).
pub(super) async fn pipelines(deps: &Deps, firehose_index: &str, budget: &Budget, checks: &mut Vec<Check>) {
    let config = &deps.config;
    if config.firehose_stream.is_none() && config.pipeline.is_none() {
        checks.push(Check::skipped("pipeline", "no Firehose stream and no ES_PIPELINE: no ingest pipeline is needed"));
        return;
    }
    if config.firehose_stream.is_some() {
        checks.push(firehose_pipeline(deps, firehose_index, budget).await);
    }
    if let Some(pipeline) = &config.pipeline {
        checks.push(match ask(deps, Method::Get, &format!("_ingest/pipeline/{pipeline}"), None, budget).await {
            Ok((200, _)) => Check::ok("pipeline", format!("ES_PIPELINE {pipeline} is installed")),
            Ok((404, _)) => Check::fail(
                "pipeline",
                format!("ES_PIPELINE names {pipeline}, which the cluster does not have: every document is refused"),
                format!("create the ingest pipeline {pipeline}, or empty EsPipeline (ES_PIPELINE)"),
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

/// The command that installs the project's pipeline and template for Firehose's index.
fn install_command(firehose_index: &str) -> String {
    format!(
        "install the project's: make firehose-pipeline REMOTE=1 FUNCTION={} FIREHOSE_INDEX_NAME={firehose_index} \
         (through the function, from inside its VPC; under fine-grained access control its role then needs \
         cluster_manage_pipelines and cluster_manage_index_templates, or DEV_TOOLS=1 prints the requests for Dev \
         Tools)",
        function_name()
    )
}

async fn firehose_pipeline(deps: &Deps, firehose_index: &str, budget: &Budget) -> Check {
    let install = install_command(firehose_index);
    let id = FIREHOSE_PIPELINE.rsplit('/').next().unwrap_or(FIREHOSE_PIPELINE);
    let pipeline = match ask(deps, Method::Get, "_ingest/pipeline/kinesis-es-indexer-firehose", None, budget).await {
        Ok((200, answer)) => answer,
        Ok((404, _)) => {
            return Check::fail(
                "pipeline",
                format!(
                    "{id} is not installed: documents Firehose delivers get new _ids (written twice when the direct \
                     path wrote them too) and land in Firehose's index, not their own"
                ),
                install,
            );
        }
        Ok((status, answer)) => {
            return Check::warn(
                "pipeline",
                format!("{id} could not be read ({status}: {})", said(&answer)),
                format!("read it as an administrator (GET _ingest/pipeline/{id}), or {install}"),
            );
        }
        Err(why) => return Check::warn("pipeline", format!("{id} not read: {why}"), "run the doctor again"),
    };
    let ours: Value = serde_json::from_str(FIREHOSE_PIPELINE_DEFINITION).expect("the project's pipeline");
    if pipeline[id]["processors"] != ours["processors"] {
        return Check::fail(
            "pipeline",
            format!(
                "{id} is installed but its processors differ from the project's: Firehose's deliveries may land on \
                 other _ids (written twice) or in another index"
            ),
            install,
        );
    }
    match firehose_template(deps, budget).await {
        Ok(Some(template)) if template.default_pipeline.as_deref() == Some(id) => Check::ok(
            "pipeline",
            format!(
                "{id} is installed, as the project's, and the index template {} sends [{}] through it",
                FIREHOSE_TEMPLATE,
                template.patterns.join(", ")
            ),
        ),
        Ok(Some(template)) => Check::fail(
            "pipeline",
            format!(
                "{id} is installed, but the index template {FIREHOSE_TEMPLATE} names {} as the default pipeline: \
                 Firehose's deliveries do not go through it",
                template.default_pipeline.as_deref().unwrap_or("none")
            ),
            install,
        ),
        Ok(None) => Check::fail(
            "pipeline",
            format!(
                "{id} is installed, but no index template {FIREHOSE_TEMPLATE} sends Firehose's deliveries through \
                 it: they get new _ids"
            ),
            install,
        ),
        Err(why) => Check::warn(
            "pipeline",
            format!("{id} is installed, as the project's; the index template {FIREHOSE_TEMPLATE} not read: {why}"),
            format!("read it as an administrator (GET _index_template/{FIREHOSE_TEMPLATE})"),
        ),
    }
}

/// The index template that sends Firehose's deliveries through the pipeline.
pub(super) const FIREHOSE_TEMPLATE: &str = "kinesis-es-indexer-firehose";

/// What the Firehose tier's index template holds: its patterns and default pipeline.
pub(super) struct FirehoseTemplate {
    pub patterns: Vec<String>,
    pub default_pipeline: Option<String>,
}

impl FirehoseTemplate {
    /// Whether a pattern of the template matches indices named `index` (as Firehose names them: `index`, or
    /// `index-<date>` with a rotation).
    pub fn covers(&self, index: &str) -> bool {
        self.patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => index.starts_with(prefix),
            None => pattern == index,
        })
    }
}

/// The Firehose tier's index template, `None` when there is none; `Err` says why it was not read.
pub(super) async fn firehose_template(deps: &Deps, budget: &Budget) -> Result<Option<FirehoseTemplate>, String> {
    let (status, answer) = ask(deps, Method::Get, "_index_template/kinesis-es-indexer-firehose", None, budget).await?;
    match status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(format!("{status}: {}", said(&answer))),
    }
    let template = &answer["index_templates"][0]["index_template"];
    let patterns = match &template["index_patterns"] {
        Value::String(pattern) => vec![pattern.clone()],
        patterns => patterns.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect(),
    };
    let settings = &template["template"]["settings"];
    let default_pipeline = settings["index.default_pipeline"]
        .as_str()
        .or_else(|| settings["index"]["default_pipeline"].as_str())
        .map(str::to_owned);
    Ok(Some(FirehoseTemplate { patterns, default_pipeline }))
}

/// The index check: the name the pattern makes today (placeholders at their fallbacks), valid by Elasticsearch's
/// rules, and what it is in the cluster: nothing yet, an index, an alias that can take writes, a data stream.
pub(super) fn index_name(deps: &Deps, today: &str, target: &Target) -> Check {
    let pattern = deps.config.index.as_str();
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
        Target::DataStream if deps.config.firehose_stream.is_some() => Check::fail(
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
