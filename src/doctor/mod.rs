//! The doctor: checks, in order, everything a deployed function needs on its way to the cluster and to Firehose,
//! and says for each what it found and the fix, leaving nothing behind (`{"kinesis_es_indexer_doctor":{}}` through
//! the function, `make doctor`). `network` reaches the cluster, `cluster` asks it, `delivery` asks Firehose,
//! `mapping` reads the event source mappings `make doctor` lists.

mod cluster;
mod delivery;
mod mapping;
mod network;
mod permissions;
mod pipelines;

pub use mapping::{MappingFacts, event_source_mapping};

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::config::{Config, EsAuth};
use crate::handler::Deps;

/// The key a doctor event starts with: `{"kinesis_es_indexer_doctor": {}}`.
pub const DOCTOR_EVENT_KEY: &str = "kinesis_es_indexer_doctor";

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but not as recommended: said, and not counted as a failure.
    Warn,
    /// Records will not be indexed (or not all of them) until this is fixed.
    Fail,
    /// Not checked: an earlier check failed, or there is nothing to check here; `found` says which.
    Skipped,
}

/// One check: its name, what it found and, unless all is well, the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub found: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: &str, found: impl Into<String>) -> Check {
        Check { check: check.to_owned(), status: Status::Ok, found: found.into(), fix: None }
    }

    pub fn skipped(check: &str, found: impl Into<String>) -> Check {
        Check { check: check.to_owned(), status: Status::Skipped, found: found.into(), fix: None }
    }

    pub fn warn(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check: check.to_owned(), status: Status::Warn, found: found.into(), fix: Some(fix.into()) }
    }

    pub fn fail(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check: check.to_owned(), status: Status::Fail, found: found.into(), fix: Some(fix.into()) }
    }
}

/// The doctor's answer: every check in order; `healthy` when none failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    pub healthy: bool,
    pub checks: Vec<Check>,
}

impl DoctorReport {
    pub fn new(checks: Vec<Check>) -> DoctorReport {
        DoctorReport { healthy: checks.iter().all(|check| check.status != Status::Fail), checks }
    }

    /// One line a check, `STATUS  check: found`, and the fix on the next line when there is one.
    pub fn lines(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            text.push_str(&format!("{status:<5} {}: {}\n", check.check, check.found));
            if let Some(fix) = &check.fix {
                text.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let verdict = match self.healthy {
            true => "healthy: nothing above stops records from being indexed",
            false => "NOT healthy: fix what FAIL names, in order (a later check may follow from an earlier one)",
        };
        text.push_str(verdict);
        text.push('\n');
        text
    }
}

/// The doctor event's request: nothing to set yet (`{}`); unknown keys are refused, so a misspelt option is not
/// ignored in silence.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorRequest {}

/// The doctor request a Lambda invocation's body holds, when it is one (it starts with `DOCTOR_EVENT_KEY`).
pub fn doctor_request(body: &[u8]) -> Option<Result<DoctorRequest, String>> {
    crate::invocation::operator_request(body, DOCTOR_EVENT_KEY, "doctor")
}

/// The report of a function that could not start: the configuration check failed with the cold start's error, and
/// nothing else could be asked.
pub fn cold_start_failed(error: &str) -> DoctorReport {
    let fix = "correct the setting the message names (the stack's parameter of the same meaning, then make deploy): \
               docs/configuration.md says what each one takes";
    DoctorReport::new(vec![Check::fail("configuration", format!("the function cannot start: {error}"), fix)])
}

/// The deployed function's name (in Lambda), for the commands a fix gives; outside Lambda, a name to replace.
pub(super) fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "your-stack-indexer".to_owned())
}

/// The stack's name: the function is `<stack>-indexer`.
pub(super) fn stack_name() -> String {
    let function = function_name();
    function.strip_suffix("-indexer").unwrap_or(&function).to_owned()
}

/// How long the doctor may wait: each request at most `per_request`, and every one before `deadline` (the
/// invocation's, less its margin), so that a slow cluster ends in a report rather than a timed-out invocation.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: tokio::time::Instant,
    pub per_request: Duration,
}

/// Less than this left is no time for a request.
const LEAST_REQUEST_TIME: Duration = Duration::from_millis(50);

impl Budget {
    /// The time the next request may take, or why there is none.
    pub fn next(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        match left < LEAST_REQUEST_TIME {
            true => Err("not asked: no time was left before the invocation's deadline (raise the function's \
                         Timeout, or lower EsTimeoutMs)"
                .to_owned()),
            false => Ok(left.min(self.per_request)),
        }
    }
}

/// Runs every check against the cluster and Firehose `deps` reach, within `budget`.
pub async fn examine(deps: &Deps, budget: Budget) -> DoctorReport {
    let config = &deps.config;
    let mut checks = vec![configuration(config)];
    let reached = network::reach(config, &budget, &mut checks).await;
    let today = config.cluster.index.fallback_name(Utc::now());
    let identity = match reached {
        true => cluster::authentication(deps, &budget, &mut checks).await,
        false => {
            for check in ["authentication", "permissions", "pipeline", "index"] {
                checks.push(Check::skipped(check, "not asked: the cluster was not reached (see above)"));
            }
            None
        }
    };
    let described = delivery::describe(deps, &budget).await;
    if let Some(identity) = &identity {
        let target = cluster::look_up(deps, &today, &budget).await;
        checks.push(permissions::permissions(deps, identity, &today, &target, &budget).await);
        let firehose_index = delivery::delivered_index(described.as_ref());
        pipelines::pipelines(deps, &firehose_index, &budget, &mut checks).await;
        checks.push(cluster::index_name(deps, &today, &target));
    } else if reached {
        for check in ["permissions", "pipeline", "index"] {
            checks.push(Check::skipped(check, "not asked: the cluster did not accept the function's credentials"));
        }
    }
    delivery::firehose(deps, identity.as_ref(), described, &budget, &mut checks).await;
    DoctorReport::new(checks)
}

/// The configuration as the cold start read it, and what it leaves out on purpose.
fn configuration(config: &Config) -> Check {
    let auth = match &config.cluster.auth {
        EsAuth::None => "none".to_owned(),
        EsAuth::Basic { username, .. } => format!("basic as {username}"),
        EsAuth::ApiKey(_) => "API key".to_owned(),
        EsAuth::SigV4 { region, service } => format!("SigV4 ({service}, {region})"),
        EsAuth::Secret { arn } => format!("the secret {arn}"),
    };
    let firehose = match &config.firehose.stream {
        Some(stream) => format!("\"retry later\" documents to Firehose stream {stream}"),
        None => "no Firehose stream: \"retry later\" documents go back to Kinesis".to_owned(),
    };
    let dead_letter = match &config.dead_letter {
        Some(place) => format!("refused documents kept in s3://{}/{}", place.bucket, place.prefix),
        None => "no dead-letter bucket: refused documents are logged only".to_owned(),
    };
    let found = format!(
        "read as the cold start reads it: ES_URL {}, authentication {auth}, ES_INDEX {}; {firehose}; {dead_letter}",
        crate::config::redact_url(&config.cluster.url),
        config.cluster.index.as_str()
    );
    if !config.cluster.tls_verify {
        return Check::warn(
            "configuration",
            format!("{found}; TLS certificates are NOT verified (ES_TLS_VERIFY=false)"),
            "trust the cluster's CA instead: make deploy SET=\"EsTlsVerify=true EsCaCert=/opt/ca.pem\" (a PEM bundle \
             from a layer; ES_TLS_VERIFY=true and ES_CA_CERT outside Lambda)",
        );
    }
    Check::ok("configuration", found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_healthy_unless_a_check_failed() {
        let warned = DoctorReport::new(vec![Check::ok("a", "x"), Check::warn("b", "y", "z"), Check::skipped("c", "")]);
        assert!(warned.healthy);
        let failed = DoctorReport::new(vec![Check::ok("a", "x"), Check::fail("b", "y", "z")]);
        assert!(!failed.healthy);
        assert!(failed.lines().contains("FAIL  b: y\n      fix: z\n"), "{}", failed.lines());
        assert!(
            failed.lines().ends_with(
                "NOT healthy: fix what FAIL names, in order (a later check may follow from an earlier one)\n"
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_gives_each_request_its_time_until_the_deadline() {
        let start = tokio::time::Instant::now();
        let budget = Budget { deadline: start + Duration::from_secs(25), per_request: Duration::from_secs(10) };
        assert_eq!(budget.next(), Ok(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(budget.next(), Ok(Duration::from_secs(5)), "what is left, when less than a request's own");
        tokio::time::advance(Duration::from_millis(4_950)).await;
        assert_eq!(budget.next(), Ok(Duration::from_millis(50)), "50 ms is the least a request is given");
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(budget.next().expect_err("40 ms is no time for a request").contains("Timeout"));
    }

    #[test]
    fn only_a_body_that_starts_with_the_key_is_a_doctor_event() {
        assert!(doctor_request(br#"{"Records":[]}"#).is_none());
        assert!(doctor_request(br#"{"kinesis_es_indexer_doctor":{}}"#).expect("a doctor event").is_ok());
        let misspelt = doctor_request(br#"{"kinesis_es_indexer_doctor":{"verbos":true}}"#).expect("a doctor event");
        assert!(misspelt.expect_err("refused").contains("verbos"));
    }
}
