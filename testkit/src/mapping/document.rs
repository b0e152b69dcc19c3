//! A document read against the mapping as Elasticsearch's `DocumentParser` reads it: dotted names expanded, each
//! value checked by its field's type, new fields mapped by the parent's `dynamic` within the field limit, and the
//! refusal (`MappingError`) in Elasticsearch's words.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::dynamic::Detected;
use super::mappers::{Cause, Dynamic, Mapper};
use super::{Mapping, join};

/// The location prefix of every document parsing reason (see `mapping`'s documentation, in `mod.rs`).
const LOCATION: &str = "[1:2]";

/// What the root object is called in a strict refusal (`within [_doc]`).
const ROOT_NAME: &str = "_doc";

/// The refusal of a document by its index's mapping, as a bulk item's `error` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// Every refusal is 400 Bad Request.
    pub status: u16,
    pub error_type: &'static str,
    pub reason: String,
    pub caused_by: Option<Cause>,
}

impl MappingError {
    fn parsing(reason: String, caused_by: Option<Cause>) -> MappingError {
        MappingError {
            status: 400,
            error_type: "document_parsing_exception",
            reason: format!("{LOCATION} {reason}"),
            caused_by,
        }
    }

    /// The item's `error` object.
    pub fn to_json(&self) -> Value {
        let mut error = json!({"type": self.error_type, "reason": self.reason});
        if let Some(cause) = &self.caused_by {
            error["caused_by"] = json!({"type": cause.error_type, "reason": cause.reason});
        }
        error
    }
}

/// A value as Elasticsearch previews it in a reason: Java's `toString` of the parsed value (objects `{k=v}`, arrays
/// `[a, b]`, strings unquoted). Elasticsearch prints an object's keys in `HashMap` order, the double in its maps'
/// (sorted) order.
fn preview(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(object) => {
            let entries: Vec<String> = object.iter().map(|(key, value)| format!("{key}={}", preview(value))).collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(values) => format!("[{}]", values.iter().map(preview).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// One document's reading: the mappers it adds so far, which later fields of the same document see.
pub(super) struct DocumentParser<'a> {
    pub(super) mapping: &'a Mapping,
    pub(super) id: &'a str,
    pub(super) added: BTreeMap<String, Mapper>,
    pub(super) added_fields: usize,
}

impl DocumentParser<'_> {
    fn mapper(&self, path: &str) -> Option<&Mapper> {
        self.mapping.mappers.get(path).or_else(|| self.added.get(path))
    }

    /// The `dynamic` that applies inside the object at `path`: its own, else its nearest parent's, else the root's.
    fn dynamic_within(&self, path: &str) -> Dynamic {
        let mut path = path;
        while !path.is_empty() {
            if let Some(Mapper::Object { dynamic: Some(dynamic) }) = self.mapper(path) {
                return *dynamic;
            }
            path = path.rsplit_once('.').map_or("", |(parent, _)| parent);
        }
        self.mapping.dynamic
    }

    pub(super) fn parse_object(&mut self, path: &str, object: &Map<String, Value>) -> Result<(), MappingError> {
        for (name, value) in object {
            self.parse_field(path, name, value)?;
        }
        Ok(())
    }

    /// One field of the object at `parent`. A dotted name is read as the objects it names (`"a.b": 1` as
    /// `"a": {"b": 1}`), as Elasticsearch 8's `DotExpandingXContentParser` does, at any level.
    fn parse_field(&mut self, parent: &str, name: &str, value: &Value) -> Result<(), MappingError> {
        if name.is_empty() {
            return Err(MappingError::parsing("failed to parse".into(), None)
                .caused("illegal_argument_exception", "field name cannot be an empty string"));
        }
        if let Some((head, rest)) = name.split_once('.') {
            if head.trim().is_empty() || rest.trim().is_empty() || rest.starts_with('.') || rest.ends_with('.') {
                let why =
                    format!("object field starting or ending with a [.] makes object resolution ambiguous: [{name}]");
                return Err(
                    MappingError::parsing("failed to parse".into(), None).caused("illegal_argument_exception", &why)
                );
            }
            let expanded = Value::Object(Map::from_iter([(rest.to_owned(), value.clone())]));
            return self.parse_field(parent, head, &expanded);
        }
        match value {
            Value::Array(values) => values.iter().try_for_each(|value| self.parse_field(parent, name, value)),
            value => self.parse_value(parent, name, value),
        }
    }

    fn parse_value(&mut self, parent: &str, name: &str, value: &Value) -> Result<(), MappingError> {
        let path = join(parent, name);
        let Some(mapper) = self.mapper(&path).cloned() else { return self.parse_unmapped(parent, name, &path, value) };
        match (mapper, value) {
            // Anything goes under a disabled object, even a concrete value in its place.
            (Mapper::DisabledObject, _) | (_, Value::Null) => Ok(()),
            (Mapper::Object { .. }, Value::Object(object)) => self.parse_object(&path, object),
            (Mapper::Object { .. }, _) => Err(MappingError::parsing(
                format!(
                    "object mapping for [{path}] tried to parse field [{name}] as object, but found a concrete value"
                ),
                None,
            )),
            (Mapper::Field { field_type, .. }, value) => match field_type.refusal(value) {
                None => Ok(()),
                Some(cause) => Err(MappingError::parsing(
                    format!(
                        "failed to parse field [{path}] of type [{}] in document with id '{}'. Preview of field's value: '{}'",
                        field_type.name(),
                        self.id,
                        preview(value)
                    ),
                    Some(cause),
                )),
            },
        }
    }

    /// A field the mapping does not have yet, by its parent's `dynamic`. Under `strict` even a `null` is refused
    /// (`DocumentParser.parseNullValue`).
    fn parse_unmapped(&mut self, parent: &str, name: &str, path: &str, value: &Value) -> Result<(), MappingError> {
        match self.dynamic_within(parent) {
            Dynamic::Strict => Err(MappingError {
                status: 400,
                error_type: "strict_dynamic_mapping_exception",
                reason: format!(
                    "{LOCATION} mapping set to strict, dynamic introduction of [{name}] within [{}] is not allowed",
                    if parent.is_empty() { ROOT_NAME } else { parent }
                ),
                caused_by: None,
            }),
            // The field stays in `_source`, unmapped; an object's fields are not read at all.
            Dynamic::False => Ok(()),
            // The new mappers are added first, then the value is read by them as by any mapper: a dynamic template
            // may give a type that refuses it.
            Dynamic::True => {
                let Some(detected) = Detected::of(value, self.mapping.date_detection.unwrap_or(true)) else {
                    return Ok(());
                };
                for (path, mapper) in self.new_mappers(path, name, &detected)? {
                    self.add(&path, mapper)?;
                }
                self.parse_value(parent, name, value)
            }
        }
    }

    /// The mappers (by path) of a new field: the first dynamic template's that takes it, else dynamic mapping's.
    fn new_mappers(&self, path: &str, name: &str, detected: &Detected) -> Result<Vec<(String, Mapper)>, MappingError> {
        let templates = &self.mapping.dynamic_templates;
        let Some(template) = templates.iter().find(|template| template.takes(path, name, detected.json_type)) else {
            return Ok(vec![(path.to_owned(), detected.default_mapper())]);
        };
        let (mapper, nested) = template.mapper_for(name, detected).map_err(|why| {
            MappingError::parsing(format!("failed to parse: {why}"), None).caused("mapper_parsing_exception", &why)
        })?;
        let nested = nested.into_iter().map(|(child, mapper)| (join(path, &child), mapper));
        Ok(std::iter::once((path.to_owned(), mapper)).chain(nested).collect())
    }

    /// Adds a dynamic mapper, refused when the index would then hold more fields than its limit: Elasticsearch 8
    /// checks as each new mapper is added (`DocumentParserContext.addDynamicMapper`), counting the new ones so far.
    fn add(&mut self, path: &str, mapper: Mapper) -> Result<(), MappingError> {
        self.added_fields += mapper.size();
        let limit = self.mapping.total_fields_limit;
        if self.mapping.total_fields() + self.added_fields > limit {
            let why = format!(
                "Limit of total fields [{limit}] has been exceeded while adding new fields [{}]",
                self.added_fields
            );
            return Err(MappingError::parsing(format!("failed to parse: {why}"), None)
                .caused("illegal_argument_exception", &why));
        }
        self.added.insert(path.to_owned(), mapper);
        Ok(())
    }
}

impl MappingError {
    fn caused(mut self, error_type: &'static str, reason: &str) -> MappingError {
        self.caused_by = Some(Cause::new(error_type, reason));
        self
    }
}
