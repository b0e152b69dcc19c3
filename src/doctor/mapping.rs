//! The doctor's reading of the function's Kinesis event source mappings (read by `make doctor` with the operator's
//! credentials: the function's own role may not list them): their state and settings against the ones the stack
//! sets and why.

use serde::{Deserialize, Serialize};

use super::Check;

/// An event source mapping as `ListEventSourceMappings` describes it, reduced to what the check reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingFacts {
    pub source_arn: String,
    /// `Enabled`, `Disabled`, `Creating`, `Enabling`, `Disabling`, `Updating`, `Deleting`.
    pub state: String,
    pub state_reason: String,
    pub function_response_types: Vec<String>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub on_failure_destination: Option<String>,
    pub maximum_retry_attempts: Option<i32>,
    pub maximum_record_age_seconds: Option<i32>,
    /// `OK`, `PROBLEM: …`, `No records processed`.
    pub last_processing_result: String,
}

/// The event source mapping check of one function's mappings (only Kinesis ones are passed).
pub fn event_source_mapping(mappings: &[MappingFacts]) -> Check {
    const CHECK: &str = "event source mapping";
    if mappings.is_empty() {
        return Check::fail(
            CHECK,
            "the function reads no Kinesis stream: it has no event source mapping",
            "deploy the stack (make deploy): it maps the function to its stream (StreamArn, or the stream it makes)",
        );
    }
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let mut found = Vec::new();
    for mapping in mappings {
        let stream = mapping.source_arn.rsplit('/').next().unwrap_or(&mapping.source_arn);
        found.push(format!("{stream}: {}, last result {}", mapping.state, mapping.last_processing_result));
        failures.extend(mapping_failures(mapping, stream));
        warnings.extend(mapping_warnings(mapping, stream));
    }
    let (said, fixes): (Vec<String>, Vec<String>) = match failures.is_empty() {
        false => failures.into_iter().chain(warnings).unzip(),
        true if !warnings.is_empty() => {
            let (said, fixes): (Vec<String>, Vec<String>) = warnings.into_iter().unzip();
            return Check::warn(CHECK, said.join("; "), fixes.join("; "));
        }
        true => return Check::ok(CHECK, format!("{} (as the stack sets it)", found.join("; "))),
    };
    Check::fail(CHECK, said.join("; "), fixes.join("; "))
}

/// A finding about a mapping, and its fix.
type Finding = (String, String);

/// What keeps one mapping (of `stream`) from delivering every record: its state, its response types, Lambda's last
/// result.
fn mapping_failures(mapping: &MappingFacts, stream: &str) -> Vec<Finding> {
    let mut failures = Vec::new();
    match mapping.state.as_str() {
        "Enabled" | "Enabling" | "Updating" | "Creating" => {}
        "Disabled" | "Disabling" => failures.push((
            format!("the mapping of {stream} is {}: nothing is read", mapping.state),
            "once roles are mapped and the pipeline installed: make deploy SET=\"EventSourceMappingEnabled=true\""
                .to_owned(),
        )),
        other => failures.push((
            format!("the mapping of {stream} is {other} ({})", mapping.state_reason),
            "deploy the stack again (make deploy)".to_owned(),
        )),
    }
    if !mapping.function_response_types.iter().any(|t| t == "ReportBatchItemFailures") {
        failures.push((
            format!(
                "the mapping of {stream} lacks ReportBatchItemFailures: Lambda ignores the records the function \
                 sends back, and they are lost"
            ),
            "set FunctionResponseTypes to [ReportBatchItemFailures] (the stack does: make deploy)".to_owned(),
        ));
    }
    if mapping.last_processing_result.starts_with("PROBLEM") {
        // Lambda's own word that invocations fail: the batches wait in the stream.
        failures.push((
            format!("Lambda's last result for {stream}: {}", mapping.last_processing_result),
            "read the function's ERROR lines (docs/operations.md says what each means)".to_owned(),
        ));
    }
    failures
}

/// Where one mapping (of `stream`) departs from the stack's settings short of a failure: its on-failure
/// destination, batch splitting, retries and record age.
fn mapping_warnings(mapping: &MappingFacts, stream: &str) -> Vec<Finding> {
    let mut warnings = Vec::new();
    if mapping.on_failure_destination.is_none() {
        warnings.push((
            format!("the mapping of {stream} has no on-failure destination: batches Lambda gives up on are dropped"),
            "set DestinationConfig.OnFailure to the stack's FailedBatchesBucket (make deploy does)".to_owned(),
        ));
    }
    if mapping.bisect_batch_on_function_error != Some(true) {
        warnings.push((
            format!("the mapping of {stream} does not split failing batches: one bad record holds its whole batch"),
            "set BisectBatchOnFunctionError to true (make deploy does)".to_owned(),
        ));
    }
    if mapping.maximum_retry_attempts.is_some_and(|attempts| attempts >= 0) {
        warnings.push((
            format!(
                "the mapping of {stream} gives up after {} retries: a short outage spends them, and its batches go \
                 to the failed-batches bucket",
                mapping.maximum_retry_attempts.unwrap_or_default()
            ),
            "MaximumRetryAttempts=-1 bounds retries by record age alone (the stack's default)".to_owned(),
        ));
    }
    if mapping.maximum_record_age_seconds == Some(-1) && mapping.maximum_retry_attempts == Some(-1) {
        warnings.push((
            format!(
                "the mapping of {stream} retries a failing batch until its records expire from the stream: they \
                 never reach the failed-batches bucket"
            ),
            "MaximumRecordAgeInSeconds below the stream's retention (the stack's default: 18 h)".to_owned(),
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_deployed() -> MappingFacts {
        MappingFacts {
            source_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/logs".into(),
            state: "Enabled".into(),
            state_reason: "USER_INITIATED".into(),
            function_response_types: vec!["ReportBatchItemFailures".into()],
            bisect_batch_on_function_error: Some(true),
            on_failure_destination: Some("arn:aws:s3:::failed".into()),
            maximum_retry_attempts: Some(-1),
            maximum_record_age_seconds: Some(64800),
            last_processing_result: "OK".into(),
        }
    }

    #[test]
    fn a_mapping_as_the_stack_makes_it_is_ok() {
        let check = event_source_mapping(&[as_deployed()]);
        assert_eq!(check.status, super::super::Status::Ok, "{check:?}");
        assert!(check.found.contains("logs: Enabled, last result OK"), "{check:?}");
    }

    /// A change to a mapping as deployed, the status it brings, words of the finding and of the fix.
    type Departure = (fn(&mut MappingFacts), super::super::Status, &'static str, &'static str);

    #[test]
    fn each_departure_is_named_with_its_fix() {
        use super::super::Status::*;
        let cases: Vec<Departure> = vec![
            (|m| m.state = "Disabled".into(), Fail, "is Disabled: nothing is read", "EventSourceMappingEnabled=true"),
            (|m| m.function_response_types.clear(), Fail, "lacks ReportBatchItemFailures", "FunctionResponseTypes"),
            (|m| m.on_failure_destination = None, Warn, "no on-failure destination", "DestinationConfig.OnFailure"),
            (|m| m.bisect_batch_on_function_error = Some(false), Warn, "does not split", "BisectBatchOnFunctionError"),
            (|m| m.maximum_retry_attempts = Some(2), Warn, "gives up after 2 retries", "MaximumRetryAttempts=-1"),
            (
                |m| m.last_processing_result = "PROBLEM: Function call failed".into(),
                Fail,
                "PROBLEM: Function call failed",
                "ERROR lines",
            ),
            (
                |m| m.maximum_record_age_seconds = Some(-1),
                Warn,
                "until its records expire",
                "MaximumRecordAgeInSeconds",
            ),
        ];
        for (change, status, said, fix) in cases {
            let mut mapping = as_deployed();
            change(&mut mapping);
            let check = event_source_mapping(&[mapping]);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.found.contains(said), "{said}: {check:?}");
            assert!(check.fix.as_deref().unwrap_or_default().contains(fix), "{fix}: {check:?}");
        }
        let none = event_source_mapping(&[]);
        assert_eq!((none.status, none.found.contains("no event source mapping")), (Fail, true));
    }
}
