//! The doctor's permissions check: what the function may do to today's index (write documents, create it), found
//! without writing a document.

use ::elasticsearch::http::Method;
use bytes::Bytes;
use serde_json::{Value, json};

use super::cluster::{Identity, Said, Target, access_policy_refused, ask, said};
use super::{Budget, Check, stack_name};
use crate::handler::Deps;

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
    let pattern = deps.config.cluster.index.as_str();
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
    if status != Said::Done {
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
            wildcard(deps.config.cluster.index.as_str())
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
            Ok((Said::Forbidden, answer)) => refused.push(format!("may not create {today}: {}", said(&answer))),
            // Refused after the security plugin let it through: for its shards, or its name already taken.
            Ok((Said::Invalid, _)) => allowed.push(format!("may create {today}")),
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
            Err((Said::Forbidden, why)) => refused.push(format!("may not write documents to {index}: {why}")),
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
        wildcard(deps.config.cluster.index.as_str()),
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
    let like = wildcard(deps.config.cluster.index.as_str());
    if !like.contains('*') {
        return Ok(None);
    }
    let (status, answer) = ask(deps, Method::Get, &format!("_resolve/index/{like}"), None, budget).await?;
    if status != Said::Done {
        return Err(format!("writing not probed: looking up {like} was answered {status}: {}", said(&answer)));
    }
    let open = |index: &&Value| !index["attributes"].as_array().is_some_and(|a| a.iter().any(|v| v == "closed"));
    let names = answer["indices"].as_array().into_iter().flatten().filter(open).filter_map(|i| i["name"].as_str());
    Ok(names.filter(|name| *name != today && !name.starts_with('.')).max().map(str::to_owned))
}

/// A write of an empty document that cannot exist, conditional on a version it cannot have: allowed, it ends in a
/// version conflict and writes nothing (not even a field in the mapping). `Err` with the status and refusal.
async fn conditional_write(deps: &Deps, index: &str, budget: &Budget) -> Result<(), (Said, String)> {
    let id = format!("kinesis-es-indexer-doctor-{}", fastrand::u64(..));
    let action = json!({"index": {"_index": index, "_id": id, "if_seq_no": 0, "if_primary_term": 1}});
    let body = Bytes::from(format!("{action}\n{{}}\n"));
    let (status, answer) =
        ask(deps, Method::Post, "_bulk", Some(body), budget).await.map_err(|why| (Said::Other(0), why))?;
    if status != Said::Done {
        return Err((status, format!("{status}: {}", said(&answer))));
    }
    let item = &answer["items"][0]["index"];
    match item["status"].as_u64() {
        Some(status) => match Said::of(u16::try_from(status).unwrap_or(u16::MAX)) {
            Said::Conflict => Ok(()),
            said_of_item => Err((said_of_item, format!("{status}: {}", said(item)))),
        },
        None => Err((Said::Other(0), format!("the answer has no item: {}", said(&answer)))),
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
}
