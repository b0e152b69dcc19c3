//! The doctor's questions about the Firehose tier: the stream exists and is ACTIVE, it delivers to the function's
//! cluster, and (under OpenSearch's fine-grained access control) its role is mapped to write there.

use ::elasticsearch::http::Method;
use serde_json::Value;

use super::cluster::{Identity, Said, ask};
use super::pipelines::{FIREHOSE_TEMPLATE, firehose_template};
use super::{Budget, Check};
use crate::firehose::{DescribeFailure, Destination, StreamDescription};
use crate::handler::Deps;

/// The stream's description, asked once (the pipeline check names its index too): `None` without a stream.
pub(super) async fn describe(deps: &Deps, budget: &Budget) -> Option<Result<StreamDescription, DescribeFailure>> {
    let firehose = deps.firehose.as_ref()?;
    Some(match budget.next() {
        Ok(timeout) => firehose.describe(timeout).await,
        Err(why) => Err(DescribeFailure { missing: false, why }),
    })
}

/// The index the stream delivers to, as `make firehose-pipeline FIREHOSE_INDEX_NAME=` needs it.
pub(super) fn delivered_index(described: Option<&Result<StreamDescription, DescribeFailure>>) -> String {
    let index = described.and_then(|d| d.as_ref().ok()).and_then(|d| d.destination.as_ref()?.index.clone());
    // The stack's FirehoseIndexName by default.
    index.unwrap_or_else(|| "kinesis-es-indexer-firehose".to_owned())
}

/// The Firehose checks: `firehose` (stream, state, destination) and `firehose role` (its mapping, where the
/// cluster can tell).
pub(super) async fn firehose(
    deps: &Deps,
    identity: Option<&Identity>,
    described: Option<Result<StreamDescription, DescribeFailure>>,
    budget: &Budget,
    checks: &mut Vec<Check>,
) {
    let Some(described) = described else {
        checks.push(Check::skipped(
            "firehose",
            "no Firehose stream (DeliveryStreamName=none): \"retry later\" documents go back to Kinesis",
        ));
        return;
    };
    let description = match usable_description(described) {
        Ok(description) => description,
        Err(check) => {
            checks.push(check);
            return;
        }
    };
    let destination = match delivering_destination(&description) {
        Ok(destination) => destination,
        Err(check) => {
            checks.push(check);
            return;
        }
    };
    let mut check = destination_check(&description.name, destination, &deps.config.cluster.url);
    // Firehose writes to its index; the tier's template must send that index through the pipeline.
    if check.status == super::Status::Ok
        && let Some(index) = &destination.index
        && identity.is_some()
    {
        check = against_template(deps, check, index, budget).await;
    }
    checks.push(check);
    if let Some(role) = &destination.role_arn {
        checks.push(firehose_role(deps, identity, role, budget).await);
    }
}

/// The stream's description, or the check that says why there is none to read.
fn usable_description(described: Result<StreamDescription, DescribeFailure>) -> Result<StreamDescription, Check> {
    match described {
        Ok(description) => Ok(description),
        Err(failure) if failure.missing => Err(Check::fail(
            "firehose",
            format!("the stream does not exist: {}", failure.why),
            "deploy the stack again (make deploy) to make its stream, or DeliveryStreamName=none to send \"retry \
             later\" documents back to Kinesis instead",
        )),
        Err(failure) if failure.why.starts_with("not asked") => Err(Check::skipped("firehose", failure.why)),
        Err(failure) if failure.why.contains("AccessDenied") => Err(Check::warn(
            "firehose",
            format!("the function may not describe its stream: {}", failure.why),
            "deploy this version of the stack, which grants the function firehose:DescribeDeliveryStream",
        )),
        Err(failure) => Err(Check::fail(
            "firehose",
            format!("Firehose cannot be asked: {}", failure.why),
            "a function in a VPC reaches Firehose through a NAT gateway or a com.amazonaws.<region>.firehose \
             interface endpoint",
        )),
    }
}

/// Where an ACTIVE stream delivers, or the failed check of a stream that is not ACTIVE or delivers to no cluster.
fn delivering_destination(description: &StreamDescription) -> Result<&Destination, Check> {
    let name = &description.name;
    if description.status != "ACTIVE" {
        return Err(Check::fail(
            "firehose",
            format!("the stream {name} is {}, not ACTIVE: it takes no records", description.status),
            "wait for CREATING to end; a failed stream must be made again (delete it and make deploy)",
        ));
    }
    description.destination.as_ref().ok_or_else(|| {
        Check::fail(
            "firehose",
            format!(
                "the stream {name} is ACTIVE but delivers to neither a cluster nor an HTTP endpoint: the documents \
                 parked there never reach the cluster"
            ),
            "point DeliveryStreamName at a stream that delivers to the function's cluster, or leave it empty for \
             the stack to make one",
        )
    })
}

/// The `firehose` check of the stream `name`'s destination: ok when it is the function's cluster at `es_url`.
fn destination_check(name: &str, destination: &Destination, es_url: &str) -> Check {
    let role = destination.role_arn.as_deref().unwrap_or("no role");
    let index = destination.index.as_deref().map(|index| format!(", index {index}")).unwrap_or_default();
    let target = destination.domain_arn.as_deref().or(destination.endpoint.as_deref()).unwrap_or("?");
    let found =
        format!("the stream {name} is ACTIVE, delivering to the {} {target}{index} as {role}", destination.kind);
    match elsewhere(destination, es_url) {
        None => Check::ok("firehose", found),
        Some(why) => Check::fail(
            "firehose",
            format!("{found}; {why}: documents parked there land in another cluster"),
            "point the stream at the function's cluster (an existing stream: DeliveryStreamName), or leave \
             DeliveryStreamName empty for the stack to make one",
        ),
    }
}

/// The `firehose` check `check`, failed instead when the tier's index template does not cover the stream's `index`.
async fn against_template(deps: &Deps, check: Check, index: &str, budget: &Budget) -> Check {
    match firehose_template(deps, budget).await {
        Ok(Some(template)) if !template.covers(index) => Check::fail(
            "firehose",
            format!(
                "{}; but the index template {FIREHOSE_TEMPLATE} covers [{}], not {index}: its deliveries \
                 skip the pipeline and get new _ids",
                check.found,
                template.patterns.join(", ")
            ),
            format!("make firehose-pipeline REMOTE=1 FUNCTION={} FIREHOSE_INDEX_NAME={index}", super::function_name()),
        ),
        // Missing or unread: the pipeline check says so.
        _ => check,
    }
}

/// Why the destination is not the cluster at `es_url`, when it is not (by its domain's ARN, or its endpoint's host).
fn elsewhere(destination: &Destination, es_url: &str) -> Option<String> {
    let writes_to = format!("the function writes to {}", crate::config::redact_url(es_url));
    if let Some(arn) = &destination.domain_arn {
        return crate::config::domain_of_url_is(arn, es_url).err().map(|_| writes_to);
    }
    let host = |url: &str| url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_ascii_lowercase));
    let endpoint = destination.endpoint.as_deref()?;
    (host(endpoint) != host(es_url)).then_some(writes_to)
}

/// Whether Firehose's role may write, where the cluster can say: under OpenSearch's security, a role mapping that
/// names it (readable only by a principal allowed the security API).
async fn firehose_role(deps: &Deps, identity: Option<&Identity>, role: &str, budget: &Budget) -> Check {
    let print = format!(
        "make role-mapping STACK={} prints the requests that map it, for Dev Tools as the master user",
        super::stack_name()
    );
    if !matches!(identity, Some(Identity::OpenSearch { .. })) {
        return Check::skipped(
            "firehose role",
            format!(
                "{role}: only OpenSearch's fine-grained access control maps roles; the domain's access policy must allow it"
            ),
        );
    }
    let (status, mappings) = match ask(deps, Method::Get, "_plugins/_security/api/rolesmapping", None, budget).await {
        Ok(answered) => answered,
        Err(why) => return Check::skipped("firehose role", format!("{role}: not asked ({why}); {print}")),
    };
    if status != Said::Done {
        // The usual case: the function's role may not read the security API.
        return Check::skipped(
            "firehose role",
            format!("{role}: not checked (the function may not read role mappings: {status}); {print}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn to(domain_arn: Option<&str>, endpoint: Option<&str>) -> Destination {
        Destination {
            kind: "OpenSearch Service domain",
            role_arn: None,
            domain_arn: domain_arn.map(str::to_owned),
            endpoint: endpoint.map(str::to_owned),
            index: None,
        }
    }

    #[test]
    fn a_destination_is_the_function_s_cluster_by_its_domain_or_its_host() {
        let url = "https://vpc-logs-abc123.eu-west-1.es.amazonaws.com";
        assert_eq!(elsewhere(&to(Some("arn:aws:es:eu-west-1:123456789012:domain/logs"), None), url), None);
        let other = elsewhere(&to(Some("arn:aws:es:eu-west-1:123456789012:domain/metrics"), None), url);
        assert_eq!(other.as_deref(), Some("the function writes to https://vpc-logs-abc123.eu-west-1.es.amazonaws.com"));
        assert_eq!(elsewhere(&to(None, Some("https://VPC-logs-abc123.eu-west-1.es.amazonaws.com")), url), None);
        assert!(elsewhere(&to(None, Some("https://search-other.eu-west-1.es.amazonaws.com")), url).is_some());
        assert_eq!(elsewhere(&to(None, None), url), None, "an HTTP endpoint without a URL names nothing to compare");
    }
}
