//! Indices and what manages them: each index's documents and mapping, index creation (auto or `PUT /{index}`, from
//! a matching template), composable index templates, aliases, data streams, and the answers of `_index_template`,
//! `_resolve/index` and `_alias`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::faults::IndexFault;
use super::security::authenticate;
use super::{EsDouble, State, error_body, json_response};
use crate::mapping::{DEFAULT_TOTAL_FIELDS_LIMIT, Mapping};
use crate::server::{self, Body};

#[derive(Debug, Default)]
pub(super) struct Index {
    /// `_id` → (version, source; `null` when the double keeps no sources).
    pub(super) documents: HashMap<String, (u64, Value)>,
    pub(super) mapping: Mapping,
    pub(super) seq_no: u64,
}

/// What the double keeps of a composable index template (`PUT /_index_template/{name}`).
#[derive(Debug, Clone)]
pub(super) struct IndexTemplate {
    /// `None` for a template installed by `install_index_template`, which never replaces another.
    name: Option<String>,
    /// `index_patterns`: exact names, or prefixes ending in `*`.
    patterns: Vec<String>,
    /// Of several templates matching a new index, only the highest priority's applies.
    priority: u64,
    /// `index.default_pipeline`.
    pub(super) default_pipeline: Option<String>,
    /// `index.mapping.total_fields.limit`.
    total_fields_limit: Option<usize>,
    /// The template as it was put, for `GET _index_template/{name}`.
    definition: Value,
    /// `template.mappings`, with no field limit of its own (the index's applies when it is created).
    mappings: Option<Mapping>,
}

impl IndexTemplate {
    /// Reads a template body, refusing what Elasticsearch refuses and what the double does not emulate (component
    /// templates).
    fn parse(name: Option<String>, template: &Value) -> Result<IndexTemplate, String> {
        let patterns: Vec<String> = match &template["index_patterns"] {
            Value::String(pattern) => vec![pattern.clone()],
            Value::Array(patterns) => patterns.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect(),
            _ => return Err("[index_patterns] is required".into()),
        };
        if template["composed_of"].as_array().is_some_and(|components| !components.is_empty()) {
            return Err("the double does not emulate component templates ([composed_of])".into());
        }
        let priority = match &template["priority"] {
            Value::Null => 0,
            priority => priority.as_u64().ok_or("[priority] must be a non-negative number")?,
        };
        let settings = flatten_settings(&template["template"]["settings"]);
        let default_pipeline = settings.get("index.default_pipeline").map(|pipeline| match pipeline {
            Value::String(pipeline) => pipeline.clone(),
            other => other.to_string(),
        });
        let total_fields_limit = settings
            .get("index.mapping.total_fields.limit")
            .map(|limit| match limit {
                Value::String(text) => text.parse::<usize>().ok(),
                other => other.as_u64().and_then(|limit| usize::try_from(limit).ok()),
            })
            .map(|limit| limit.ok_or("[index.mapping.total_fields.limit] must be a non-negative integer"))
            .transpose()?;
        let mappings = match &template["template"]["mappings"] {
            Value::Null => None,
            definition => {
                let mut mappings = Mapping::with_limit(usize::MAX);
                mappings.put(definition)?;
                Some(mappings)
            }
        };
        let definition = template.clone();
        Ok(IndexTemplate { name, patterns, priority, default_pipeline, total_fields_limit, mappings, definition })
    }

    fn matches(&self, index: &str) -> bool {
        self.patterns.iter().any(|pattern| index_matches(pattern, index))
    }

    /// Whether some index name could match both templates' patterns (a prefix of one is a prefix of the other).
    fn overlaps(&self, other: &IndexTemplate) -> bool {
        let stem =
            |pattern: &str| pattern.strip_suffix('*').map_or((pattern.to_owned(), false), |p| (p.to_owned(), true));
        self.patterns.iter().any(|mine| {
            other.patterns.iter().any(|theirs| {
                let ((a, a_wild), (b, b_wild)) = (stem(mine), stem(theirs));
                (a_wild && b.starts_with(&a)) || (b_wild && a.starts_with(&b)) || a == b
            })
        })
    }
}

/// Index settings as dotted keys, however they were nested (`{"index": {"default_pipeline": …}}` and
/// `{"index.default_pipeline": …}` are the same setting).
fn flatten_settings(settings: &Value) -> HashMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut HashMap<String, Value>) {
        match value {
            Value::Object(object) => {
                for (key, value) in object {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, value, out);
                }
            }
            leaf => {
                out.insert(prefix.to_owned(), leaf.clone());
            }
        }
    }
    let mut out = HashMap::new();
    walk("", settings, &mut out);
    out
}

impl EsDouble {
    /// Makes `name` a data stream as `_resolve/index` tells it (its documents are not modelled).
    pub fn add_data_stream(&self, name: &str) {
        self.state().data_streams.insert(name.to_owned());
    }

    /// Installs an index template under `name`, as `PUT /_index_template/{name}` does.
    pub fn put_index_template(&self, name: &str, template: &Value) -> Result<(), String> {
        self.state().put_index_template(Some(name.to_owned()), template)
    }

    /// With `false`, writing to an index that does not exist answers 404 `index_not_found_exception`.
    pub fn set_auto_create_index(&self, enabled: bool) {
        self.state().auto_create_index = enabled;
    }

    /// Makes `alias` an alias of several indices none of which is its write index.
    pub fn add_alias_without_write_index(&self, alias: &str) {
        self.state().aliases_without_write_index.insert(alias.to_owned());
    }

    /// Whether documents keep their source once written (`document` then answers `null`); ids and versions are
    /// kept either way.
    pub fn set_keep_sources(&self, keep: bool) {
        self.state().keep_sources = keep;
    }

    /// The index templates installed that set a default pipeline: their index patterns and that pipeline.
    pub fn index_templates(&self) -> Vec<(Vec<String>, String)> {
        let state = self.state();
        let with_pipelines = state.templates.iter().filter_map(|template| {
            template.default_pipeline.as_ref().map(|pipeline| (template.patterns.clone(), pipeline.clone()))
        });
        with_pipelines.collect()
    }

    /// Installs an index template, as `PUT /_index_template/{name}` does: its `index.default_pipeline`,
    /// `index.mapping.total_fields.limit` and `mappings` apply to indices created from then on whose name matches
    /// its `index_patterns` (of several, the highest `priority`'s). Panics on a template the double refuses.
    pub fn install_index_template(&self, template: &Value) {
        if let Err(why) = self.state().put_index_template(None, template) {
            panic!("the double refuses the index template: {why}");
        }
    }

    /// Maps a field explicitly (`text`, `keyword`, `long`, `integer`, `float`, `double`, `boolean`, `date` or
    /// `object`; a dotted path maps its parents as objects), replacing what the index had there. Creates the index
    /// (from its template) when it does not exist. Panics on another type.
    pub fn map_field(&self, index: &str, field: &str, type_name: &str) {
        if let Err(why) = self.state().index_mut(index).mapping.force_field(field, type_name) {
            panic!("map_field({index}, {field}): {why}");
        }
    }

    /// Adds to an index's mapping, as `PUT /{index}/_mapping` does: `{"properties": {…}}` adds fields and objects
    /// (an existing field's type cannot change), `{"dynamic": …}` at the root or on an object, `date_detection` and
    /// `dynamic_templates` (which replace the old ones) change what becomes of new fields. Creates the index (from
    /// its template) when it does not exist. Refused in Elasticsearch's words, changing nothing. A test "fixes the
    /// mapping" with it and replays.
    pub fn put_mapping(&self, index: &str, mapping: &Value) -> Result<(), String> {
        self.state().index_mut(index).mapping.put(mapping)
    }

    /// An index's mapping, as `GET /{index}/_mapping` shows it under `mappings` (`None`: no such index).
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.state().indices.get(index).map(|index| index.mapping.to_json())
    }

    /// `index.mapping.total_fields.limit` of the indices created from now on, unless their template sets one
    /// (`None`: Elasticsearch's default, 1000). Existing indices keep theirs: see `set_index_total_fields_limit`.
    pub fn set_total_fields_limit(&self, limit: Option<usize>) {
        self.state().total_fields_limit = limit;
    }

    /// Sets an existing index's `index.mapping.total_fields.limit`, as `PUT /{index}/_settings` does (creating the
    /// index when it does not exist): a test raises it and replays what was refused.
    pub fn set_index_total_fields_limit(&self, index: &str, limit: usize) {
        self.state().index_mut(index).mapping.set_total_fields_limit(limit);
    }

    /// Creates an empty index (for `set_auto_create_index(false)`), from its template if one matches.
    pub fn create_index(&self, name: &str) {
        self.state().index_mut(name);
    }

    /// A stored document's source.
    pub fn document(&self, index: &str, id: &str) -> Option<Value> {
        self.state().indices.get(index)?.documents.get(id).map(|(_, source)| source.clone())
    }

    /// Every stored document as (index, id, source), sorted by index then id.
    pub fn documents(&self) -> Vec<(String, String, Value)> {
        let state = self.state();
        let mut all: Vec<(String, String, Value)> = state
            .indices
            .iter()
            .flat_map(|(index, data)| {
                data.documents.iter().map(move |(id, (_, source))| (index.clone(), id.clone(), source.clone()))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    /// How many indices exist.
    pub fn index_count(&self) -> usize {
        self.state().indices.len()
    }

    /// How many documents are stored.
    pub fn count(&self) -> usize {
        self.state().indices.values().map(|index| index.documents.len()).sum()
    }

    /// The version of a stored document: 1 unless something overwrote it.
    pub fn version(&self, index: &str, id: &str) -> Option<u64> {
        self.state().indices.get(index)?.documents.get(id).map(|(version, _)| *version)
    }
}

/// `GET _index_template/{name}`: the template as it was put, or 404.
pub(super) fn get_index_template(state: &State, name: &str) -> Response<Body> {
    let found = state.templates.iter().find(|template| template.name.as_deref() == Some(name));
    match found {
        Some(template) => {
            json_response(200, &json!({"index_templates": [{"name": name, "index_template": template.definition}]}))
        }
        None => {
            let reason = format!("index template matching [{name}] not found");
            json_response(404, &error_body(404, "resource_not_found_exception", &reason))
        }
    }
}

/// `GET _resolve/index/{name}`: a wildcard matches the indices there are; a name is an index, a data stream, an alias
/// without a write index, or 404.
pub(super) fn resolve_index(state: &State, name: &str) -> Response<Body> {
    if name.contains('*') {
        // A wildcard matches what there is, and nothing is no error.
        let mut names: Vec<&String> = state.indices.keys().filter(|index| index_matches(name, index)).collect();
        names.sort();
        let indices: Vec<Value> = names
            .iter()
            .map(|index| {
                let closed = state.index_faults.get(*index) == Some(&IndexFault::Closed);
                json!({"name": index, "attributes": [if closed { "closed" } else { "open" }]})
            })
            .collect();
        json_response(200, &json!({"indices": indices, "aliases": [], "data_streams": []}))
    } else {
        let name = name.to_owned();
        if let Some(_index) = state.indices.get(&name) {
            let closed = state.index_faults.get(&name) == Some(&IndexFault::Closed);
            let attributes = if closed { "closed" } else { "open" };
            json_response(
                200,
                &json!({"indices": [{"name": name, "attributes": [attributes]}], "aliases": [], "data_streams": []}),
            )
        } else if state.data_streams.contains(&name) {
            let backing = format!(".ds-{name}-000001");
            json_response(
                200,
                &json!({"indices": [], "aliases": [], "data_streams": [{"name": name, "backing_indices": [backing], "timestamp_field": "@timestamp"}]}),
            )
        } else if state.aliases_without_write_index.contains(&name) {
            let behind = [format!("{name}-000001"), format!("{name}-000002")];
            json_response(
                200,
                &json!({"indices": [], "aliases": [{"name": name, "indices": behind}], "data_streams": []}),
            )
        } else {
            let reason = format!("no such index [{name}]");
            json_response(
                404,
                &json!({"error": {"root_cause": [{"type": "index_not_found_exception", "reason": reason, "index": name}], "type": "index_not_found_exception", "reason": reason, "index": name}, "status": 404}),
            )
        }
    }
}

/// `GET _alias/{name}`: the indices behind an alias without a write index, or 404.
pub(super) fn get_alias(state: &State, name: &str) -> Response<Body> {
    if state.aliases_without_write_index.contains(name) {
        let entry = json!({"aliases": { name: {} }});
        json_response(200, &json!({ format!("{name}-000001"): entry, format!("{name}-000002"): entry }))
    } else {
        let reason = format!("alias [{name}] missing");
        json_response(404, &json!({"error": reason, "status": 404}))
    }
}

/// `PUT /{index}`: refused by security first (as its action filter runs before the action), then by the name, an
/// index already there, or its settings; else made (from a matching template).
pub(super) fn create_index(state: &mut State, index: &str, body: &Bytes) -> Response<Body> {
    if let Some(principal) = state.principal.as_ref().filter(|principal| !principal.may_create_index(true)) {
        let reason = principal.refusal("indices:admin/create", index, "create_index,manage,all");
        return json_response(403, &error_body(403, "security_exception", &reason));
    }
    if let Some(why) = invalid_index_name(index) {
        let reason = format!("Invalid index name [{index}], {why}");
        return json_response(400, &error_body(400, "invalid_index_name_exception", &reason));
    }
    if state.indices.contains_key(index) {
        let reason = format!("index [{index}/8YhS0n2pR1uXq3lVbC9aZw] already exists");
        return json_response(400, &error_body(400, "resource_already_exists_exception", &reason));
    }
    let settings: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let shards = settings["settings"]["index"]["number_of_shards"]
        .as_u64()
        .or_else(|| settings["settings"]["index.number_of_shards"].as_u64());
    if shards == Some(0) {
        let reason = "Failed to parse value [0] for setting [index.number_of_shards] must be >= 1";
        return json_response(400, &error_body(400, "illegal_argument_exception", reason));
    }
    state.index_mut(index);
    json_response(200, &json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
}

impl State {
    /// The template a new index of this name is created from: the highest priority of those matching.
    pub(super) fn template_for(&self, index: &str) -> Option<&IndexTemplate> {
        self.templates.iter().filter(|template| template.matches(index)).max_by_key(|template| template.priority)
    }

    /// The index of this name, created from its template (mappings and field limit) if it does not exist.
    pub(super) fn index_mut(&mut self, name: &str) -> &mut Index {
        if !self.indices.contains_key(name) {
            let template = self.template_for(name);
            let limit = template
                .and_then(|template| template.total_fields_limit)
                .or(self.total_fields_limit)
                .unwrap_or(DEFAULT_TOTAL_FIELDS_LIMIT);
            let mut mapping = template.and_then(|template| template.mappings.clone()).unwrap_or_default();
            mapping.set_total_fields_limit(limit);
            self.indices.insert(name.to_owned(), Index { mapping, ..Index::default() });
        }
        self.indices.get_mut(name).expect("created above")
    }

    /// Stores an index template, replacing the one of the same name. As Elasticsearch, refuses one whose patterns
    /// overlap another's at the same priority: a new index must match one template at most.
    fn put_index_template(&mut self, name: Option<String>, template: &Value) -> Result<(), String> {
        let template = IndexTemplate::parse(name, template)?;
        let others = self.templates.iter().filter(|other| other.name.is_none() || other.name != template.name);
        if let Some(other) =
            others.clone().find(|other| other.priority == template.priority && other.overlaps(&template))
        {
            return Err(format!(
                "index template [{}] has index patterns {:?} matching patterns from existing templates [{}] with patterns ({} => {:?}) that have the same priority [{}], multiple index templates may not match during index creation, please use a different priority",
                template.name.as_deref().unwrap_or("unnamed"),
                template.patterns,
                other.name.as_deref().unwrap_or("unnamed"),
                other.name.as_deref().unwrap_or("unnamed"),
                other.patterns,
                template.priority
            ));
        }
        let mut kept: Vec<IndexTemplate> = others.cloned().collect();
        kept.push(template);
        self.templates = kept;
        Ok(())
    }
}

/// Why Elasticsearch refuses an index name, in its words.
pub(super) fn invalid_index_name(name: &str) -> Option<&'static str> {
    if name.chars().any(|c| c.is_uppercase()) {
        return Some("must be lowercase");
    }
    if name.chars().any(|c| matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':')) {
        return Some("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]");
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '_', '-', or '+'");
    }
    None
}

fn index_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

pub(super) async fn put_index_template(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
    name: String,
) -> Response<Body> {
    let (parts, body) = server::read_body(request).await;
    if let Err(refused) = authenticate(&state, &parts, &body).await {
        return refused;
    }
    let Ok(template) = serde_json::from_slice::<Value>(&body) else {
        return json_response(400, &error_body(400, "parse_exception", "the template is not JSON"));
    };
    match state.lock().expect("state").put_index_template(Some(name), &template) {
        Ok(()) => json_response(200, &json!({"acknowledged": true})),
        Err(reason) => json_response(400, &error_body(400, "illegal_argument_exception", &reason)),
    }
}
