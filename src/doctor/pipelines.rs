//! The doctor's pipeline checks: the Firehose tier's ingest pipeline and the index template that routes its
//! deliveries through it, and `ES_PIPELINE`'s.

use ::elasticsearch::http::Method;
use serde_json::Value;

use super::cluster::{Said, ask, said};
use super::{Budget, Check, function_name};
use crate::handler::Deps;
use crate::setup::SETUP_PATHS;

/// The Firehose tier's ingest pipeline: its path (its id last), and the definition the project installs.
const FIREHOSE_PIPELINE: &str = SETUP_PATHS[0];
const FIREHOSE_PIPELINE_DEFINITION: &str = include_str!("../../deploy/firehose-pipeline.json");

/// The pipeline checks: the Firehose tier's pipeline (installed, and the project's) and the index template that
/// routes Firehose's deliveries through it; `ES_PIPELINE`'s (installed).
pub(super) async fn pipelines(deps: &Deps, firehose_index: &str, budget: &Budget, checks: &mut Vec<Check>) {
    let config = &deps.config;
    if config.firehose.stream.is_none() && config.cluster.pipeline.is_none() {
        checks.push(Check::skipped("pipeline", "no Firehose stream and no ES_PIPELINE: no ingest pipeline is needed"));
        return;
    }
    if config.firehose.stream.is_some() {
        checks.push(firehose_pipeline(deps, firehose_index, budget).await);
    }
    if let Some(pipeline) = &config.cluster.pipeline {
        checks.push(match ask(deps, Method::Get, &format!("_ingest/pipeline/{pipeline}"), None, budget).await {
            Ok((Said::Done, _)) => Check::ok("pipeline", format!("ES_PIPELINE {pipeline} is installed")),
            Ok((Said::Missing, _)) => Check::fail(
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
        Ok((Said::Done, answer)) => answer,
        Ok((Said::Missing, _)) => {
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
        Said::Done => {}
        Said::Missing => return Ok(None),
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
