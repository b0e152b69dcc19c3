//! Ingest pipelines: their definitions (`PUT _ingest/pipeline/{id}`, refused as Elasticsearch refuses them, and what
//! the double cannot run faithfully), which pipeline an action runs through, and the `set` and `remove` processors.

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Map, Value, json};

use super::Action;
use super::security::authenticate;
use super::{EsDouble, State, error_body, json_response};
use crate::server::{self, Body};

/// The ingest processors the double runs: `set` (value with `{{field.path}}` templates) and `remove`.
#[derive(Debug, Clone)]
pub(super) enum Processor {
    Set { field: String, value: String, ignore_empty_value: bool },
    Remove { field: String, ignore_missing: bool },
}

impl EsDouble {
    /// Installs an ingest pipeline, as `PUT /_ingest/pipeline/{id}` does.
    pub fn install_pipeline(&self, id: &str, definition: &Value) -> Result<(), String> {
        self.state().put_pipeline(id, definition)
    }

    /// Whether an ingest pipeline of this id is installed.
    pub fn has_pipeline(&self, id: &str) -> bool {
        self.state().pipelines.contains_key(id)
    }
}

/// `GET _ingest/pipeline/{id}`: the pipeline as it was put, or 404.
pub(super) fn get_pipeline(state: &State, id: &str) -> Response<Body> {
    match state.pipeline_definitions.get(id) {
        Some(definition) => json_response(200, &json!({ id: definition })),
        None => json_response(404, &json!({})),
    }
}

impl State {
    /// The pipeline an action runs through: its own (or the request's), else its index's default.
    pub(super) fn pipeline_of(&self, action: &Action) -> Option<String> {
        action.pipeline.clone().or_else(|| self.template_for(&action.index)?.default_pipeline.clone())
    }

    /// Runs the action's pipeline (its own, else its index's default) over its source, which may move it to another
    /// `_index` or `_id`. Returns the transformed source, or `None` when no pipeline applies.
    pub(super) fn run_pipeline(&self, action: &mut Action) -> Option<Value> {
        let name = self.pipeline_of(action)?;
        let processors = self.pipelines.get(&name)?;
        let Ok(Value::Object(mut source)) = serde_json::from_slice::<Value>(&action.source) else { return None };
        for processor in processors {
            match processor {
                Processor::Set { field, value, ignore_empty_value } => {
                    let rendered = render_template(value, &source);
                    if rendered.is_empty() && *ignore_empty_value {
                        continue;
                    }
                    match field.as_str() {
                        "_index" => action.index = rendered,
                        "_id" => action.id = Some(rendered),
                        path => set_path(&mut source, path, Value::String(rendered)),
                    }
                }
                Processor::Remove { field, ignore_missing } => {
                    if remove_path(&mut source, field).is_none() && !ignore_missing {
                        return None;
                    }
                }
            }
        }
        Some(Value::Object(source))
    }

    /// Stores a pipeline definition (`{"processors": [...]}`), refusing processors the double does not run.
    /// Stores an ingest pipeline, refusing what Elasticsearch refuses (an unknown processor, an option a processor
    /// does not document, a required option missing or of the wrong type), and also what the double cannot run
    /// faithfully (a documented option it does not emulate, such as `if` or `on_failure`), so that a pipeline the
    /// tests pass is one a cluster accepts and runs the same way.
    fn put_pipeline(&mut self, id: &str, definition: &Value) -> Result<(), String> {
        self.pipelines.insert(id.to_owned(), parse_pipeline(definition)?);
        self.pipeline_definitions.insert(id.to_owned(), definition.clone());
        Ok(())
    }
}

/// `{{a.b}}` → the value at path `a.b` of the document (strings as they are, other values as JSON; missing: empty).
fn render_template(template: &str, source: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else { break };
        let path = rest[open + 2..open + close].trim();
        let mut keys = path.split('.');
        let mut value = keys.next().and_then(|key| source.get(key));
        for key in keys {
            value = value.and_then(|v| v.get(key));
        }
        match value {
            Some(Value::String(text)) => out.push_str(text),
            Some(Value::Null) | None => {}
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn set_path(source: &mut Map<String, Value>, path: &str, value: Value) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().unwrap_or_default();
    let mut object = source;
    for key in keys {
        let entry = object.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        object = entry.as_object_mut().expect("an object");
    }
    object.insert(last.to_owned(), value);
}

fn remove_path(source: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => source.remove(path),
        Some((head, tail)) => remove_path(source.get_mut(head)?.as_object_mut()?, tail),
    }
}

/// The options every processor takes (Elasticsearch's "common processor options").
const COMMON_PROCESSOR_OPTIONS: [&str; 5] = ["description", "if", "ignore_failure", "on_failure", "tag"];

/// Each processor the double runs: the options Elasticsearch documents for it (besides the common ones), and those
/// the double runs as Elasticsearch does (the others are refused, not ignored).
const PROCESSORS: [(&str, &[&str], &[&str]); 2] = [
    (
        "set",
        &["field", "value", "copy_from", "override", "ignore_empty_value", "media_type"],
        &["field", "value", "ignore_empty_value", "description", "tag"],
    ),
    ("remove", &["field", "ignore_missing", "keep"], &["field", "ignore_missing", "description", "tag"]),
];

/// A pipeline definition as `PUT _ingest/pipeline/<id>` takes it, into the processors the double runs.
fn parse_pipeline(definition: &Value) -> Result<Vec<Processor>, String> {
    let Some(definition) = definition.as_object() else { return Err("a pipeline must be a JSON object".into()) };
    for key in definition.keys() {
        match key.as_str() {
            "description" | "processors" | "version" | "_meta" | "deprecated" => {}
            "on_failure" => return Err("the double does not run a pipeline's on_failure".into()),
            other => return Err(format!("pipeline doesn't support the parameter [{other}]")),
        }
    }
    let Some(processors) = definition.get("processors").and_then(Value::as_array) else {
        return Err("[processors] required property is missing".into());
    };
    processors.iter().map(parse_processor).collect()
}

fn parse_processor(processor: &Value) -> Result<Processor, String> {
    let entry = processor.as_object().filter(|entry| entry.len() == 1).and_then(|entry| entry.iter().next());
    let Some((kind, options)) = entry else {
        return Err(format!("a processor is an object with one key, its type: {processor}"));
    };
    let Some((_, documented, emulated)) = PROCESSORS.iter().find(|(name, _, _)| name == kind) else {
        return Err(format!("No processor type exists with name [{kind}] (the double runs set and remove)"));
    };
    let Some(options) = options.as_object() else { return Err(format!("[{kind}]'s options must be an object")) };
    let unknown: Vec<&str> = options
        .keys()
        .map(String::as_str)
        .filter(|key| !documented.contains(key) && !COMMON_PROCESSOR_OPTIONS.contains(key))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "processor [{kind}] doesn't support one or more provided configuration parameters {unknown:?}"
        ));
    }
    if let Some(key) = options.keys().find(|key| !emulated.contains(&key.as_str())) {
        return Err(format!("the double does not run [{kind}]'s [{key}]"));
    }
    let field = match options.get("field") {
        Some(Value::String(field)) if !field.is_empty() => field.clone(),
        Some(other) => return Err(format!("[{kind}] [field] must be a string, not {other}")),
        None => return Err(format!("[{kind}] [field] required property is missing")),
    };
    let flag = |name: &str| match options.get(name) {
        None => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(other) => Err(format!("[{kind}] [{name}] must be a boolean, not {other}")),
    };
    for text in ["description", "tag"] {
        if options.get(text).is_some_and(|value| !value.is_string()) {
            return Err(format!("[{kind}] [{text}] must be a string"));
        }
    }
    Ok(match kind.as_str() {
        "set" => {
            let value = match options.get("value") {
                Some(Value::String(value)) => value.clone(),
                Some(other) => return Err(format!("the double runs [set] with a string [value] only, not {other}")),
                None => return Err("[set] [value] required property is missing".into()),
            };
            Processor::Set { field, value, ignore_empty_value: flag("ignore_empty_value")? }
        }
        _ => Processor::Remove { field, ignore_missing: flag("ignore_missing")? },
    })
}

pub(super) async fn put_pipeline(state: Arc<Mutex<State>>, request: Request<Incoming>, id: String) -> Response<Body> {
    let (parts, body) = server::read_body(request).await;
    if let Err(refused) = authenticate(&state, &parts, &body).await {
        return refused;
    }
    let stored = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|definition| state.lock().expect("state").put_pipeline(&id, &definition));
    match stored {
        Ok(()) => json_response(200, &json!({"acknowledged": true})),
        Err(reason) => json_response(400, &error_body(400, "parse_exception", &reason)),
    }
}
