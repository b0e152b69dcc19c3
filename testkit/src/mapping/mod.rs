//! An index's mapping as Elasticsearch 8 keeps and extends it: explicit mappings (an index template's, or a test's
//! `put_mapping`), dynamic mapping of new fields, dotted field names expanded into objects, `dynamic: strict/false`,
//! `date_detection`, `dynamic_templates`, objects with `enabled: false`, `index.mapping.total_fields.limit`, and the
//! refusals of a document that does not fit, in Elasticsearch's words.
//!
//! Sources, cited by the tests (`tests.rs`): the dynamic field mapping table
//! (<https://www.elastic.co/docs/manage-data/data-store/mapping/dynamic-field-mapping>) and its code
//! (`DynamicFieldsBuilder`, `RootObjectMapper`), date detection
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-field-mapping.html#date-detection>),
//! dynamic templates (<https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>,
//! `DynamicTemplate`), `enabled` (<https://www.elastic.co/guide/en/elasticsearch/reference/current/enabled.html>),
//! dots in field names (<https://www.elastic.co/guide/en/elasticsearch/reference/current/subobjects.html>), the
//! field limit (<https://www.elastic.co/guide/en/elasticsearch/reference/8.18/mapping-settings-limit.html>,
//! `MappingLookup.checkFieldLimit`), `strict_date_optional_time` (`DateFormatters`, `Iso8601Parser`), and the
//! exceptions' messages (`DocumentParsingException`, `DocumentParser.throwOnConcreteValue`,
//! `StrictDynamicMappingException`, `FieldMapper`'s value preview).
//!
//! The `[line:column]` that Elasticsearch 8 puts before a reason is always `[1:2]` here: the double reads documents
//! as values, without token positions, and no test should depend on it. For the same reason a document's fields are
//! read in serde_json's map order (sorted by name), not as sent: when a document has several faults, the one
//! reported, and the count of new fields in a limit refusal, may differ from Elasticsearch's.
//!
//! This file owns an index's `Mapping`: explicit mappings put, shown back as `GET _mapping` does, and documents read
//! against it. The rest is by concern: `mappers.rs` (what the mapping holds at a path: objects, fields and their
//! types), `dynamic.rs` (what dynamic mapping makes of a new field: its detected type, dynamic templates), `dates.rs`
//! (date formats and date detection), `document.rs` (a document read against the mapping, and its refusals).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

mod dates;
mod document;
mod dynamic;
mod mappers;
#[cfg(test)]
mod tests;

use document::{DocumentParser, MappingError};
use dynamic::DynamicTemplate;
use mappers::{Dynamic, FieldType, Mapper, boolean, properties_from_json};

/// `index.mapping.total_fields.limit` unless an index template or a test sets another.
pub const DEFAULT_TOTAL_FIELDS_LIMIT: usize = 1000;

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") }
}

/// An index's mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Every object and field, by its dotted path.
    mappers: BTreeMap<String, Mapper>,
    /// The root object's `dynamic`.
    dynamic: Dynamic,
    /// The root's `date_detection`, `None` when never set (it is then on, and not shown).
    date_detection: Option<bool>,
    /// The root's `dynamic_templates`, in order: the first that takes a new field maps it.
    dynamic_templates: Vec<DynamicTemplate>,
    total_fields_limit: usize,
}

impl Default for Mapping {
    fn default() -> Mapping {
        Mapping {
            mappers: BTreeMap::new(),
            dynamic: Dynamic::True,
            date_detection: None,
            dynamic_templates: Vec::new(),
            total_fields_limit: DEFAULT_TOTAL_FIELDS_LIMIT,
        }
    }
}

impl Mapping {
    /// An empty mapping whose index has this `index.mapping.total_fields.limit`.
    pub fn with_limit(total_fields_limit: usize) -> Mapping {
        Mapping { total_fields_limit, ..Mapping::default() }
    }

    /// Sets `index.mapping.total_fields.limit`, as `PUT /{index}/_settings` does: fields already mapped stay, even
    /// above it; only new ones are refused.
    pub fn set_total_fields_limit(&mut self, limit: usize) {
        self.total_fields_limit = limit;
    }

    /// What counts toward the limit: every object, field and multi-field (metadata fields are not counted).
    pub fn total_fields(&self) -> usize {
        self.mappers.values().map(Mapper::size).sum()
    }

    /// Adds an explicit mapping (`{"dynamic": …, "date_detection": …, "dynamic_templates": […],
    /// "properties": {…}}`), as `PUT /{index}/_mapping` or an index template's `mappings` does. A field keeps its
    /// type: another one is refused, as Elasticsearch refuses it. New `dynamic_templates` replace the old ones, as
    /// they do in a mapping update. Nothing is changed when it is refused.
    pub fn put(&mut self, mapping: &Value) -> Result<(), String> {
        let Some(definition) = mapping.as_object() else { return Err("mappings must be an object".into()) };
        for key in definition.keys() {
            if !matches!(
                key.as_str(),
                "dynamic" | "properties" | "_source" | "_meta" | "date_detection" | "dynamic_templates"
            ) {
                return Err(format!("the double does not emulate the mapping's [{key}]"));
            }
        }
        let mut updated = self.clone();
        if let Some(dynamic) = definition.get("dynamic") {
            updated.dynamic = Dynamic::from_json(dynamic)?;
        }
        if let Some(date_detection) = definition.get("date_detection") {
            updated.date_detection = Some(boolean("date_detection", date_detection)?);
        }
        if let Some(templates) = definition.get("dynamic_templates") {
            updated.dynamic_templates = DynamicTemplate::parse_all(templates)?;
        }
        let mut properties = Vec::new();
        if let Some(definition) = definition.get("properties") {
            properties_from_json(definition, "", &mut properties)?;
        }
        for (path, mapper) in properties {
            updated.put_mapper(&path, mapper)?;
        }
        if updated.total_fields() > updated.total_fields_limit {
            return Err(format!("Limit of total fields [{}] has been exceeded", updated.total_fields_limit));
        }
        *self = updated;
        Ok(())
    }

    fn put_mapper(&mut self, path: &str, mapper: Mapper) -> Result<(), String> {
        match (self.mappers.get_mut(path), mapper) {
            (None, mapper) => {
                self.mappers.insert(path.to_owned(), mapper);
            }
            (Some(Mapper::Object { dynamic }), Mapper::Object { dynamic: new }) => {
                *dynamic = new.or(*dynamic);
            }
            (Some(Mapper::DisabledObject), Mapper::DisabledObject) => {}
            // Elasticsearch keeps a disabled object when an update does not say `enabled`; the double, which does not
            // keep whether it was said, refuses any change (`ObjectMapper.Builder.merge`).
            (Some(Mapper::Object { .. }), Mapper::DisabledObject)
            | (Some(Mapper::DisabledObject), Mapper::Object { .. }) => {
                return Err(format!("the [enabled] parameter can't be updated for the object mapping [{path}]"));
            }
            (
                Some(Mapper::Field { field_type, multi_fields, .. }),
                Mapper::Field { field_type: new, multi_fields: more, .. },
            ) if *field_type == new => {
                for (name, field_type) in more {
                    if !multi_fields.iter().any(|(known, _)| *known == name) {
                        multi_fields.push((name, field_type));
                    }
                }
            }
            (
                Some(Mapper::Field { field_type: FieldType::Date(formats), .. }),
                Mapper::Field { field_type: FieldType::Date(new), .. },
            ) => {
                return Err(format!(
                    "Mapper for [{path}] conflicts with existing mapper:\n\tCannot update parameter [format] from [{formats}] to [{new}]"
                ));
            }
            (Some(existing), new) => {
                return Err(format!(
                    "mapper [{path}] cannot be changed from type [{}] to [{}]",
                    existing.type_name(),
                    new.type_name()
                ));
            }
        }
        Ok(())
    }

    /// Maps one field (its parents as objects), replacing what was mapped there: a test's shortcut.
    pub fn force_field(&mut self, path: &str, type_name: &str) -> Result<(), String> {
        let mapper = match type_name {
            "object" => Mapper::Object { dynamic: None },
            _ => Mapper::field(FieldType::from_name(type_name, None)?),
        };
        let mut parent = String::new();
        for segment in path.split('.').collect::<Vec<_>>().split_last().map(|(_, parents)| parents).unwrap_or(&[]) {
            parent = join(&parent, segment);
            let existing = self.mappers.entry(parent.clone()).or_insert(Mapper::Object { dynamic: None });
            if !matches!(existing, Mapper::Object { .. }) {
                *existing = Mapper::Object { dynamic: None };
            }
        }
        self.mappers.insert(path.to_owned(), mapper);
        Ok(())
    }

    /// The mapping as `GET /{index}/_mapping` shows it under `mappings`.
    pub fn to_json(&self) -> Value {
        let mut root = json!({"properties": {}});
        if self.dynamic != Dynamic::True {
            root["dynamic"] = self.dynamic.to_json();
        }
        if let Some(date_detection) = self.date_detection {
            root["date_detection"] = date_detection.into();
        }
        if !self.dynamic_templates.is_empty() {
            root["dynamic_templates"] = self.dynamic_templates.iter().map(DynamicTemplate::to_json).collect();
        }
        // Parents sort before their children ("a" < "a.b"), so each parent is in place when its child comes.
        for (path, mapper) in &self.mappers {
            let mut node = &mut root;
            for segment in path.split('.') {
                node = node["properties"]
                    .as_object_mut()
                    .map(|properties| properties.entry(segment.to_owned()).or_insert_with(|| json!({})))
                    .expect("parents are objects");
            }
            let rendered = mapper.to_json();
            for (key, value) in rendered.as_object().expect("a mapper renders as an object") {
                node[key] = value.clone();
            }
            if matches!(mapper, Mapper::Object { .. }) && node.get("properties").is_none() {
                node["properties"] = json!({});
            }
        }
        root
    }

    /// Reads a document as Elasticsearch's `DocumentParser` does and adds the fields it maps, or refuses it and
    /// leaves the mapping as it was.
    pub fn map_document(&mut self, source: &Map<String, Value>, id: &str) -> Result<(), MappingError> {
        let mut parser = DocumentParser { mapping: self, id, added: BTreeMap::new(), added_fields: 0 };
        parser.parse_object("", source)?;
        let added = parser.added;
        self.mappers.extend(added);
        Ok(())
    }
}
