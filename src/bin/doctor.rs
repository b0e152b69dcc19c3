//! `make doctor`: every check of `kinesis_es_indexer::doctor`, one line each with what was found and the fix, and an
//! exit status (0 healthy, 1 not, 2 the doctor could not run). With `--function NAME` the checks run inside the
//! deployed function (its role, network and settings: a doctor event), and the function's event source mappings
//! are read here with the operator's credentials; without it, here, with this environment's settings (`ES_URL`…).

use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use kinesis_es_indexer::doctor::{self, DoctorReport, MappingFacts};
use kinesis_es_indexer::{Config, Deps, logging};
use serde_json::Value;

const USAGE: &str = "usage: doctor [--function NAME] [--json]
  --function NAME  check through the deployed function NAME (its role, network and settings), and its event source
                   mappings; without it, check from here with this environment's settings (ES_URL, ES_AUTH, …)
  --json           print the report as JSON (for scripts) instead of one line a check";

/// The checks' longest wait for one answer (a doctor event may take several, within the function's timeout).
const INVOKE_READ_TIMEOUT: Duration = Duration::from_secs(910);

#[tokio::main]
async fn main() -> ExitCode {
    logging::init_writing_to(std::io::stderr);
    let (mut function, mut json) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--function" => match args.next().filter(|name| !name.trim().is_empty()) {
                Some(name) => function = Some(name),
                None => return usage("--function needs the function's name"),
            },
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let report = match &function {
        Some(function) => match through_function(function).await {
            Ok(report) => report,
            Err(why) => {
                eprintln!("doctor: {why}");
                return ExitCode::from(2);
            }
        },
        None => here().await,
    };
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report).expect("a report is JSON")),
        false => print!("{}", report.lines()),
    }
    match report.healthy {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("{USAGE}\ndoctor: error: {why}");
    ExitCode::from(2)
}

/// The checks run here, with the settings of this environment, as the function's cold start reads them.
async fn here() -> DoctorReport {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return doctor::cold_start_failed(&error.to_string()),
    };
    // As long as a deployed function has by default (its Timeout, 60 s), less the margin it keeps.
    let budget = doctor::Budget {
        deadline: tokio::time::Instant::now() + Duration::from_secs(55),
        per_request: config.cluster.timeout,
    };
    match Deps::connect(config).await {
        Ok(deps) => doctor::examine(&deps, budget).await,
        Err(error) => doctor::cold_start_failed(&error.to_string()),
    }
}

/// The checks run inside the deployed function, then its event source mappings read from here.
async fn through_function(function: &str) -> Result<DoctorReport, String> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let patient = aws_sdk_lambda::config::Builder::from(&shared)
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .read_timeout(INVOKE_READ_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    let lambda = aws_sdk_lambda::Client::from_conf(patient);
    let event = serde_json::json!({ doctor::DOCTOR_EVENT_KEY: {} }).to_string();
    let response = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(event))
        .send()
        .await
        .map_err(|e| format!("the function {function} could not be invoked: {}", DisplayErrorContext(e)))?;
    let body = response.payload().map(|payload| payload.as_ref()).unwrap_or_default();
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut report = match response.function_error() {
        None => serde_json::from_value::<DoctorReport>(answer.clone()).map_err(|_| {
            format!(
                "the function's answer is not a doctor's report (a version without the doctor? deploy this one): \
                 {answer}"
            )
        })?,
        Some(_) => {
            let kind = answer["errorType"].as_str().unwrap_or_default();
            let message = answer["errorMessage"].as_str().map_or_else(|| answer.to_string(), str::to_owned);
            match cold_start_failure(kind) {
                true => doctor::cold_start_failed(&format!("{kind}: {message}")),
                false => {
                    return Err(format!(
                        "the function failed while it checked ({kind}: {message}); its log lines for this \
                         invocation say where (a Task timed out: raise its Timeout, or run make doctor here)"
                    ));
                }
            }
        }
    };
    let mappings = event_source_mappings(&lambda, function).await;
    report.checks.push(match mappings {
        Ok(mappings) => doctor::event_source_mapping(&mappings),
        Err(why) => doctor::Check::skipped(
            "event source mapping",
            format!("not read ({why}): your credentials need lambda:ListEventSourceMappings"),
        ),
    });
    Ok(DoctorReport::new(report.checks))
}

/// Whether a function error is its cold start failing (the error kinds `main` reports to Lambda's init error, or
/// the process exiting before it answered): its configuration, its secret, its clients.
fn cold_start_failure(kind: &str) -> bool {
    let kind = kind.strip_prefix("Runtime.").unwrap_or(kind);
    matches!(kind, "ConfigurationError" | "ClientError" | "ExitError")
}

/// The function's Kinesis event source mappings, every page.
async fn event_source_mappings(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<Vec<MappingFacts>, String> {
    let mut mappings = Vec::new();
    let mut marker = None;
    loop {
        let page = lambda
            .list_event_source_mappings()
            .function_name(function)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        for mapping in page.event_source_mappings() {
            let source_arn = mapping.event_source_arn().unwrap_or_default();
            if !source_arn.starts_with("arn:") || !source_arn.contains(":kinesis:") {
                continue;
            }
            mappings.push(MappingFacts {
                source_arn: source_arn.to_owned(),
                state: mapping.state().unwrap_or("unknown").to_owned(),
                state_reason: mapping.state_transition_reason().unwrap_or_default().to_owned(),
                function_response_types: mapping
                    .function_response_types()
                    .iter()
                    .map(|kind| kind.as_str().to_owned())
                    .collect(),
                bisect_batch_on_function_error: mapping.bisect_batch_on_function_error(),
                on_failure_destination: mapping
                    .destination_config()
                    .and_then(|config| config.on_failure())
                    .and_then(|on_failure| on_failure.destination())
                    .map(str::to_owned),
                maximum_retry_attempts: mapping.maximum_retry_attempts(),
                maximum_record_age_seconds: mapping.maximum_record_age_in_seconds(),
                last_processing_result: mapping.last_processing_result().unwrap_or("none yet").to_owned(),
            });
        }
        match page.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
            _ => return Ok(mappings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cold_start_s_errors_are_read_as_the_configuration_s() {
        for kind in ["ConfigurationError", "Runtime.ConfigurationError", "ClientError", "Runtime.ExitError"] {
            assert!(cold_start_failure(kind), "{kind}");
        }
        for kind in ["Sandbox.Timedout", "Runtime.Unknown", "InvalidEvent", ""] {
            assert!(!cold_start_failure(kind), "{kind}");
        }
    }
}
