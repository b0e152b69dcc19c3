//! The doctor's questions about the Firehose tier: the stream exists and is ACTIVE, it delivers to the function's
//! cluster, and (under OpenSearch's fine-grained access control) its role is mapped to write there.

use std::time::Duration;

use ::elasticsearch::http::Method;
use serde_json::Value;

use super::Check;
use super::cluster::{Identity, ask, said};
use crate::firehose::Destination;
use crate::handler::Deps;

/// The Firehose checks: `firehose` (stream, state, destination) and `firehose role` (its mapping, where the
/// cluster can tell).
pub(super) async fn firehose(deps: &Deps, identity: Option<&Identity>, timeout: Duration, checks: &mut Vec<Check>) {
    let Some(firehose) = &deps.firehose else {
        checks.push(Check::skipped(
            "firehose",
            "no Firehose stream (DeliveryStreamName=none): \"retry later\" documents go back to Kinesis",
        ));
        return;
    };
    let description = match firehose.describe(timeout).await {
        Ok(description) => description,
        Err(failure) if failure.missing => {
            checks.push(Check::fail(
                "firehose",
                format!("the stream does not exist: {}", failure.why),
                "deploy the stack again (make deploy) to make its stream, or DeliveryStreamName=none to send \"retry \
                 later\" documents back to Kinesis instead",
            ));
            return;
        }
        Err(failure) if failure.why.contains("AccessDenied") => {
            checks.push(Check::warn(
                "firehose",
                format!("the function may not describe its stream: {}", failure.why),
                "deploy this version of the stack, which grants the function firehose:DescribeDeliveryStream",
            ));
            return;
        }
        Err(failure) => {
            checks.push(Check::fail(
                "firehose",
                format!("Firehose cannot be asked: {}", failure.why),
                "a function in a VPC reaches Firehose through a NAT gateway or a com.amazonaws.<region>.firehose \
                 interface endpoint",
            ));
            return;
        }
    };
    let name = &description.name;
    if description.status != "ACTIVE" {
        checks.push(Check::fail(
            "firehose",
            format!("the stream {name} is {}, not ACTIVE: it takes no records", description.status),
            "wait for CREATING to end; a failed stream must be made again (delete it and make deploy)",
        ));
        return;
    }
    let Some(destination) = &description.destination else {
        checks.push(Check::warn(
            "firehose",
            format!("the stream {name} is ACTIVE but delivers to neither a cluster nor an HTTP endpoint"),
            "point it at the function's cluster (the stack's own stream does)",
        ));
        return;
    };
    let role = destination.role_arn.as_deref().unwrap_or("no role");
    let index = destination.index.as_deref().map(|index| format!(", index {index}")).unwrap_or_default();
    let target = destination.domain_arn.as_deref().or(destination.endpoint.as_deref()).unwrap_or("?");
    let found =
        format!("the stream {name} is ACTIVE, delivering to the {} {target}{index} as {role}", destination.kind);
    checks.push(match elsewhere(destination, &deps.config.es_url) {
        None => Check::ok("firehose", found),
        Some(why) => Check::fail(
            "firehose",
            format!("{found}; {why}: documents parked there land in another cluster"),
            "point the stream at the function's cluster (the stack's DomainArn or EsUrl), or the function at the \
             stream's",
        ),
    });
    if let Some(role) = &destination.role_arn {
        checks.push(firehose_role(deps, identity, role, timeout).await);
    }
}

/// Why the destination is not the cluster at `es_url`, when it is not (by its domain's ARN, or its endpoint's host).
fn elsewhere(destination: &Destination, es_url: &str) -> Option<String> {
    if let Some(arn) = &destination.domain_arn {
        return crate::config::domain_of_url_is(arn, es_url).err();
    }
    let host = |url: &str| url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    let endpoint = destination.endpoint.as_deref()?;
    (host(endpoint) != host(es_url)).then(|| format!("the function writes to {}", crate::config::redact_url(es_url)))
}

/// Whether Firehose's role may write, where the cluster can say: under OpenSearch's security, a role mapping that
/// names it (readable only by a principal allowed the security API).
async fn firehose_role(deps: &Deps, identity: Option<&Identity>, role: &str, timeout: Duration) -> Check {
    let print = "make role-mapping STACK=<stack> prints the requests that map it, for Dev Tools as the master user";
    if !matches!(identity, Some(Identity::OpenSearch { .. })) {
        return Check::skipped(
            "firehose role",
            format!(
                "{role}: only OpenSearch's fine-grained access control maps roles; the domain's access policy must allow it"
            ),
        );
    }
    let (status, mappings) = match ask(deps, Method::Get, "_plugins/_security/api/rolesmapping", None, timeout).await {
        Ok(answered) => answered,
        Err(why) => return Check::skipped("firehose role", format!("{role}: not asked ({why}); {print}")),
    };
    if status != 200 {
        return Check::skipped(
            "firehose role",
            format!("{role}: the function may not read role mappings ({status}: {}); {print}", said(&mappings)),
        );
    }
    let names = |entry: &Value, key: &str| entry[key].as_array().is_some_and(|v| v.iter().any(|v| v == role));
    let mapped: Vec<&str> = mappings
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(_, entry)| names(entry, "backend_roles") || names(entry, "users"))
                .map(|(name, _)| name.as_str())
                .collect()
        })
        .unwrap_or_default();
    match mapped.is_empty() {
        false => Check::ok("firehose role", format!("{role} is mapped to [{}]", mapped.join(", "))),
        true => Check::fail(
            "firehose role",
            format!(
                "{role} is in no role mapping: Firehose's deliveries are refused (403) and go to its backup bucket"
            ),
            print,
        ),
    }
}
