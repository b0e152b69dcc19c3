//! An index's mapping as Elasticsearch 8 keeps and extends it: explicit mappings (an index template's, or a test's
//! `put_mapping`), dynamic mapping of new fields, dotted field names expanded into objects, `dynamic: strict/false`,
//! `index.mapping.total_fields.limit`, and the refusals of a document that does not fit, in Elasticsearch's words.
//!
//! Sources, cited by the tests below: the dynamic field mapping table
//! (<https://www.elastic.co/docs/manage-data/data-store/mapping/dynamic-field-mapping>) and its code
//! (`DynamicFieldsBuilder`, `RootObjectMapper`), dots in field names
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/subobjects.html>), the field limit
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/8.18/mapping-settings-limit.html>,
//! `MappingLookup.checkFieldLimit`), `strict_date_optional_time` (`DateFormatters`, `Iso8601Parser`), and the
//! exceptions' messages (`DocumentParsingException`, `DocumentParser.throwOnConcreteValue`,
//! `StrictDynamicMappingException`, `FieldMapper`'s value preview).
//!
//! The `[line:column]` that Elasticsearch 8 puts before a reason is always `[1:2]` here: the double reads documents
//! as values, without token positions, and no test should depend on it. For the same reason a document's fields are
//! read in serde_json's map order (sorted by name), not as sent: when a document has several faults, the one
//! reported, and the count of new fields in a limit refusal, may differ from Elasticsearch's.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

/// `index.mapping.total_fields.limit` unless an index template or a test sets another.
pub const DEFAULT_TOTAL_FIELDS_LIMIT: usize = 1000;

/// The location prefix of every document parsing reason (see the module's documentation).
const LOCATION: &str = "[1:2]";

/// What the root object is called in a strict refusal (`within [_doc]`).
const ROOT_NAME: &str = "_doc";

/// An object's `dynamic` parameter: what becomes of a field the mapping does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    /// Mapped by the dynamic rules (the default).
    True,
    /// Kept in `_source`, not mapped.
    False,
    /// The document is refused.
    Strict,
}

impl Dynamic {
    fn from_json(value: &Value) -> Result<Dynamic, String> {
        match value {
            Value::Bool(true) => Ok(Dynamic::True),
            Value::Bool(false) => Ok(Dynamic::False),
            Value::String(text) => match text.as_str() {
                "true" => Ok(Dynamic::True),
                "false" => Ok(Dynamic::False),
                "strict" => Ok(Dynamic::Strict),
                "runtime" => Err("the double does not emulate [dynamic: runtime]".into()),
                other => Err(format!("Unknown value for dynamic: [{other}]")),
            },
            other => Err(format!("Unknown value for dynamic: [{other}]")),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Dynamic::True => json!(true),
            Dynamic::False => json!(false),
            Dynamic::Strict => json!("strict"),
        }
    }
}

/// One format of a date field's `format` (`a||b` tries each in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateFormat {
    StrictDateOptionalTime,
    EpochMillis,
    EpochSecond,
    /// `yyyy/MM/dd HH:mm:ss`
    SlashDateTime,
    /// `yyyy/MM/dd`
    SlashDate,
}

impl DateFormat {
    const ALL: [(DateFormat, &'static str); 5] = [
        (DateFormat::StrictDateOptionalTime, "strict_date_optional_time"),
        (DateFormat::EpochMillis, "epoch_millis"),
        (DateFormat::EpochSecond, "epoch_second"),
        (DateFormat::SlashDateTime, "yyyy/MM/dd HH:mm:ss"),
        (DateFormat::SlashDate, "yyyy/MM/dd"),
    ];

    fn name(self) -> &'static str {
        DateFormat::ALL.iter().find(|(format, _)| *format == self).map(|(_, name)| *name).expect("every format named")
    }

    fn parses(self, text: &str) -> bool {
        match self {
            DateFormat::StrictDateOptionalTime => is_strict_date_optional_time(text),
            DateFormat::EpochMillis | DateFormat::EpochSecond => is_epoch(text),
            DateFormat::SlashDateTime => {
                text.len() == 19 && is_slash_date(&text[..10]) && text.as_bytes()[10] == b' ' && is_time(&text[11..])
            }
            DateFormat::SlashDate => is_slash_date(text),
        }
    }
}

/// A date field's formats, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormats(Vec<DateFormat>);

impl DateFormats {
    /// `strict_date_optional_time||epoch_millis`: an explicit date field's default, and what a string detected by the
    /// first dynamic date format gets.
    fn iso() -> DateFormats {
        DateFormats(vec![DateFormat::StrictDateOptionalTime, DateFormat::EpochMillis])
    }

    /// `yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis`: the second of `RootObjectMapper`'s dynamic date formats.
    fn slashes() -> DateFormats {
        DateFormats(vec![DateFormat::SlashDateTime, DateFormat::SlashDate, DateFormat::EpochMillis])
    }

    fn parse(format: &str) -> Result<DateFormats, String> {
        format
            .split("||")
            .map(|name| {
                DateFormat::ALL
                    .iter()
                    .find(|(_, known)| *known == name)
                    .map(|(format, _)| *format)
                    .ok_or_else(|| format!("the double does not know the date format [{name}]"))
            })
            .collect::<Result<_, _>>()
            .map(DateFormats)
    }

    fn parses(&self, text: &str) -> bool {
        self.0.iter().any(|format| format.parses(text))
    }
}

impl fmt::Display for DateFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|format| format.name()).collect();
        f.write_str(&names.join("||"))
    }
}

/// A concrete (non-object) field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Keyword,
    Long,
    Integer,
    Float,
    Double,
    Boolean,
    Date(DateFormats),
}

impl FieldType {
    fn name(&self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Keyword => "keyword",
            FieldType::Long => "long",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Double => "double",
            FieldType::Boolean => "boolean",
            FieldType::Date(_) => "date",
        }
    }

    /// The type of an explicit mapping's `"type"` (objects are not field types: see `Mapper`).
    fn from_name(name: &str, format: Option<&str>) -> Result<FieldType, String> {
        Ok(match name {
            "text" => FieldType::Text,
            "keyword" => FieldType::Keyword,
            "long" => FieldType::Long,
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "double" => FieldType::Double,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date(format.map(DateFormats::parse).transpose()?.unwrap_or_else(DateFormats::iso)),
            other => return Err(format!("the double does not map fields of type [{other}]")),
        })
    }

    /// Why a field of this type cannot take the concrete `value`, as the `caused_by` Elasticsearch gives, or `None`
    /// when it takes it. Text and keyword take numbers and booleans as their text; numbers take numeric strings
    /// (`coerce` defaults to true); a date takes what one of its formats parses, a JSON integer as epoch text.
    fn refusal(&self, value: &Value) -> Option<Cause> {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Object(_) => {
                return Some(Cause::new("illegal_state_exception", "Can't get text on a START_OBJECT at 1:2"));
            }
            other => other.to_string(),
        };
        let number_refusal = || Cause::new("illegal_argument_exception", format!("For input string: \"{text}\""));
        match (self, value) {
            (FieldType::Text | FieldType::Keyword, _) => None,
            // An empty string is a number field's `null` (`NumberFieldMapper`).
            (FieldType::Long | FieldType::Integer | FieldType::Float | FieldType::Double, Value::String(text))
                if text.is_empty() =>
            {
                None
            }
            (FieldType::Long | FieldType::Integer | FieldType::Float | FieldType::Double, Value::Bool(_)) => {
                Some(Cause::new("x_content_parse_exception", format!("Current token ({}) not numeric", token(value))))
            }
            (FieldType::Long, _) => text.trim().parse::<f64>().is_err().then(number_refusal),
            (FieldType::Integer, _) => match text.trim().parse::<f64>() {
                Ok(number) if number.trunc() >= f64::from(i32::MIN) && number.trunc() <= f64::from(i32::MAX) => None,
                Ok(_) => Some(Cause::new(
                    "illegal_argument_exception",
                    format!("Value [{text}] is out of range for an integer"),
                )),
                Err(_) => Some(number_refusal()),
            },
            (FieldType::Float | FieldType::Double, _) => text.trim().parse::<f64>().is_err().then(number_refusal),
            (FieldType::Boolean, Value::Bool(_)) => None,
            (FieldType::Boolean, Value::String(text)) if matches!(text.as_str(), "true" | "false" | "") => None,
            (FieldType::Boolean, _) => Some(Cause::new(
                "illegal_argument_exception",
                format!("Failed to parse value [{text}] as only [true] or [false] are allowed."),
            )),
            (FieldType::Date(formats), _) if formats.parses(&text) => None,
            (FieldType::Date(formats), _) => Some(Cause::new(
                "illegal_argument_exception",
                format!("failed to parse date field [{text}] with format [{formats}]"),
            )),
        }
    }
}

/// Jackson's name of a scalar token, as its errors print it.
fn token(value: &Value) -> &'static str {
    match value {
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        _ => "VALUE_NULL",
    }
}

/// What the mapping holds at one dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapper {
    /// An object; `dynamic: None` inherits its parent's.
    Object { dynamic: Option<Dynamic> },
    /// A concrete field and its multi-fields (`fields`), by name.
    Field { field_type: FieldType, multi_fields: Vec<(String, FieldType)> },
}

impl Mapper {
    /// How much it counts toward `index.mapping.total_fields.limit`: objects and multi-fields count as fields do.
    fn size(&self) -> usize {
        match self {
            Mapper::Object { .. } => 1,
            Mapper::Field { multi_fields, .. } => 1 + multi_fields.len(),
        }
    }

    /// The mapper Elasticsearch's dynamic mapping gives a new field's first value (`DynamicFieldsBuilder`), or
    /// `None` for `null`, which adds nothing.
    fn dynamic_for(value: &Value) -> Option<Mapper> {
        let field = |field_type| Some(Mapper::Field { field_type, multi_fields: Vec::new() });
        match value {
            Value::Null | Value::Array(_) => None,
            Value::Object(_) => Some(Mapper::Object { dynamic: None }),
            Value::Bool(_) => field(FieldType::Boolean),
            // "we use float by default instead of double"
            Value::Number(number) if number.is_f64() => field(FieldType::Float),
            Value::Number(_) => field(FieldType::Long),
            Value::String(text) => match dynamic_date(text) {
                Some(formats) => field(FieldType::Date(formats)),
                None => Some(Mapper::Field {
                    field_type: FieldType::Text,
                    multi_fields: vec![("keyword".to_owned(), FieldType::Keyword)],
                }),
            },
        }
    }

    /// An explicit mapping (`{"type": …}` or an object's `{"properties": …}`), with its properties as
    /// `(relative path, mapper)` in `nested`.
    fn from_json(definition: &Value, nested: &mut Vec<(String, Mapper)>) -> Result<Mapper, String> {
        let Some(definition) = definition.as_object() else {
            return Err(format!("a field's mapping must be an object, not {definition}"));
        };
        let type_name = definition.get("type").and_then(Value::as_str);
        if type_name.is_none_or(|name| name == "object") {
            for key in definition.keys() {
                if !matches!(key.as_str(), "type" | "dynamic" | "properties") {
                    return Err(format!("the double does not emulate an object's [{key}]"));
                }
            }
            let dynamic = definition.get("dynamic").map(Dynamic::from_json).transpose()?;
            if let Some(properties) = definition.get("properties") {
                properties_from_json(properties, "", nested)?;
            }
            return Ok(Mapper::Object { dynamic });
        }
        let type_name = type_name.expect("an object otherwise");
        for key in definition.keys() {
            if !matches!(key.as_str(), "type" | "fields" | "format") && !HARMLESS_PARAMETERS.contains(&key.as_str()) {
                return Err(format!("the double does not emulate [{key}] of a field of type [{type_name}]"));
            }
        }
        let format = definition.get("format").and_then(Value::as_str);
        let field_type = FieldType::from_name(type_name, format)?;
        let mut multi_fields = Vec::new();
        for (name, multi_field) in definition.get("fields").and_then(Value::as_object).into_iter().flatten() {
            let mut none = Vec::new();
            match Mapper::from_json(multi_field, &mut none)? {
                Mapper::Field { field_type, .. } => multi_fields.push((name.clone(), field_type)),
                Mapper::Object { .. } => return Err(format!("multi-field [{name}] cannot be an object")),
            }
        }
        Ok(Mapper::Field { field_type, multi_fields })
    }

    fn to_json(&self) -> Value {
        match self {
            Mapper::Object { dynamic } => {
                let mut object = Map::new();
                if let Some(dynamic) = dynamic {
                    object.insert("dynamic".into(), dynamic.to_json());
                }
                Value::Object(object)
            }
            Mapper::Field { field_type, multi_fields } => {
                let mut field = field_json(field_type);
                if !multi_fields.is_empty() {
                    let fields: Map<String, Value> =
                        multi_fields.iter().map(|(name, field_type)| (name.clone(), field_json(field_type))).collect();
                    field["fields"] = Value::Object(fields);
                }
                field
            }
        }
    }
}

/// Field parameters that change how a field is searched or stored, not which values it takes: accepted and ignored.
const HARMLESS_PARAMETERS: [&str; 14] = [
    "ignore_above",
    "index",
    "doc_values",
    "store",
    "norms",
    "analyzer",
    "search_analyzer",
    "normalizer",
    "similarity",
    "index_options",
    "eager_global_ordinals",
    "meta",
    "boost",
    "term_vector",
];

fn field_json(field_type: &FieldType) -> Value {
    match field_type {
        FieldType::Date(formats) if *formats != DateFormats::iso() => {
            json!({"type": "date", "format": formats.to_string()})
        }
        // A dynamic string's keyword sub-field, as GET _mapping shows it.
        FieldType::Keyword => json!({"type": "keyword", "ignore_above": 256}),
        other => json!({"type": other.name()}),
    }
}

/// The `properties` of an explicit mapping, as `(path, mapper)` pairs, parents before their children.
fn properties_from_json(properties: &Value, prefix: &str, out: &mut Vec<(String, Mapper)>) -> Result<(), String> {
    let Some(properties) = properties.as_object() else { return Err("[properties] must be an object".into()) };
    for (name, definition) in properties {
        let path = join(prefix, name);
        let mut nested = Vec::new();
        let mapper = Mapper::from_json(definition, &mut nested)?;
        // A dotted name in `properties` is an object path, as in a document.
        let mut parent = String::new();
        for segment in name.split('.').collect::<Vec<_>>().split_last().map(|(_, parents)| parents).unwrap_or(&[]) {
            parent = join(&parent, segment);
            out.push((join(prefix, &parent), Mapper::Object { dynamic: None }));
        }
        out.push((path.clone(), mapper));
        out.extend(nested.into_iter().map(|(child, mapper)| (join(&path, &child), mapper)));
    }
    Ok(())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") }
}

/// The refusal of a document by its index's mapping, as a bulk item's `error` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// Every refusal is 400 Bad Request.
    pub status: u16,
    pub error_type: &'static str,
    pub reason: String,
    pub caused_by: Option<Cause>,
}

/// An error's `caused_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub error_type: &'static str,
    pub reason: String,
}

impl Cause {
    fn new(error_type: &'static str, reason: impl Into<String>) -> Cause {
        Cause { error_type, reason: reason.into() }
    }
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

/// An index's mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Every object and field, by its dotted path.
    mappers: BTreeMap<String, Mapper>,
    /// The root object's `dynamic`.
    dynamic: Dynamic,
    total_fields_limit: usize,
}

impl Default for Mapping {
    fn default() -> Mapping {
        Mapping { mappers: BTreeMap::new(), dynamic: Dynamic::True, total_fields_limit: DEFAULT_TOTAL_FIELDS_LIMIT }
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

    /// Adds an explicit mapping (`{"dynamic": …, "properties": {…}}`), as `PUT /{index}/_mapping` or an index
    /// template's `mappings` does. A field keeps its type: another one is refused, as Elasticsearch refuses it.
    /// Nothing is changed when it is refused.
    pub fn put(&mut self, mapping: &Value) -> Result<(), String> {
        let Some(definition) = mapping.as_object() else { return Err("mappings must be an object".into()) };
        for key in definition.keys() {
            if !matches!(key.as_str(), "dynamic" | "properties" | "_source" | "_meta" | "date_detection") {
                return Err(format!("the double does not emulate the mapping's [{key}]"));
            }
        }
        if definition.get("date_detection").is_some_and(|detection| detection != &json!(true)) {
            return Err("the double does not emulate [date_detection: false]".into());
        }
        let mut updated = self.clone();
        if let Some(dynamic) = definition.get("dynamic") {
            updated.dynamic = Dynamic::from_json(dynamic)?;
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
            (
                Some(Mapper::Field { field_type, multi_fields }),
                Mapper::Field { field_type: new, multi_fields: more },
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
                let type_of = |mapper: &Mapper| match mapper {
                    Mapper::Object { .. } => "object",
                    Mapper::Field { field_type, .. } => field_type.name(),
                };
                return Err(format!(
                    "mapper [{path}] cannot be changed from type [{}] to [{}]",
                    type_of(existing),
                    type_of(&new)
                ));
            }
        }
        Ok(())
    }

    /// Maps one field (its parents as objects), replacing what was mapped there: a test's shortcut.
    pub fn force_field(&mut self, path: &str, type_name: &str) -> Result<(), String> {
        let mapper = match type_name {
            "object" => Mapper::Object { dynamic: None },
            _ => Mapper::Field { field_type: FieldType::from_name(type_name, None)?, multi_fields: Vec::new() },
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

/// One document's reading: the mappers it adds so far, which later fields of the same document see.
struct DocumentParser<'a> {
    mapping: &'a Mapping,
    id: &'a str,
    added: BTreeMap<String, Mapper>,
    added_fields: usize,
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

    fn parse_object(&mut self, path: &str, object: &Map<String, Value>) -> Result<(), MappingError> {
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
            (_, Value::Null) => Ok(()),
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
            Dynamic::True => {
                let Some(mapper) = Mapper::dynamic_for(value) else { return Ok(()) };
                self.add(path, mapper)?;
                match value {
                    Value::Object(object) => self.parse_object(path, object),
                    _ => Ok(()),
                }
            }
        }
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

/// The dynamic date formats a new string field is tried against, in order (`RootObjectMapper`'s defaults), except
/// for pure numbers, which "are too likely to be false positives" (`DynamicFieldsBuilder`).
fn dynamic_date(text: &str) -> Option<DateFormats> {
    if text.parse::<i64>().is_ok() || text.parse::<f64>().is_ok() {
        return None;
    }
    if is_strict_date_optional_time(text) {
        Some(DateFormats::iso())
    } else if DateFormat::SlashDateTime.parses(text) || DateFormat::SlashDate.parses(text) {
        Some(DateFormats::slashes())
    } else {
        None
    }
}

/// `epoch_millis` / `epoch_second`: an optionally negative number, optionally with a fraction.
fn is_epoch(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// `digits` ASCII digits read as a number within `range`.
fn number_in(text: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| range.contains(n))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `yyyy-MM-dd`, `yyyy-MM` or `yyyy`, each part of its exact width and valid (a strict resolver).
fn is_iso_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let widths_ok = matches!(parts.as_slice(), [y] if y.len() == 4)
        || matches!(parts.as_slice(), [y, m] if y.len() == 4 && m.len() == 2)
        || matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2);
    if !widths_ok {
        return false;
    }
    let Some(year) = number_in(parts[0], 0..=9999) else { return false };
    let Some(month) = parts.get(1).map_or(Some(1), |month| number_in(month, 1..=12)) else { return false };
    parts.get(2).is_none_or(|day| number_in(day, 1..=days_in_month(year, month)).is_some())
}

/// `HH[:mm[:ss[(.|,)fraction]]]` (`partial` false requires all of `HH:mm:ss`, without a fraction).
fn is_iso_time(text: &str, partial: bool) -> bool {
    let (clock, fraction) = match text.find(['.', ',']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let ranges = [0..=23, 0..=59, 0..=59];
    let fields_ok = parts.len() <= 3
        && (partial || parts.len() == 3)
        && parts.iter().zip(ranges).all(|(part, range)| part.len() == 2 && number_in(part, range).is_some());
    let fraction_ok = fraction.is_none_or(|digits| {
        parts.len() == 3 && (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    fields_ok && fraction_ok
}

fn is_time(text: &str) -> bool {
    is_iso_time(text, false) && !text.contains(['.', ','])
}

/// `Z`, `+HH:MM`, `+HHmm` or `+HH` (and `-`).
fn is_zone(zone: &str) -> bool {
    if zone == "Z" {
        return true;
    }
    let Some(offset) = zone.strip_prefix(['+', '-']) else { return false };
    let (hours, minutes) = match offset.len() {
        2 => (offset, "00"),
        4 => (&offset[..2], &offset[2..]),
        5 if offset.as_bytes()[2] == b':' => (&offset[..2], &offset[3..]),
        _ => return false,
    };
    number_in(hours, 0..=18).is_some() && number_in(minutes, 0..=59).is_some()
}

/// `strict_date_optional_time`: `yyyy[-MM[-dd]]`, then optionally a literal `T` (never a space) and
/// `HH[:mm[:ss[(.|,)fraction]]]` with an optional zone; the whole text consumed.
pub fn is_strict_date_optional_time(text: &str) -> bool {
    let Some((date, time)) = text.split_once('T') else { return is_iso_date(text) };
    if date.len() != 10 || !is_iso_date(date) {
        return false;
    }
    let zone_at = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    is_iso_time(clock, true) && (zone.is_empty() || is_zone(zone))
}

/// `yyyy/MM/dd`.
fn is_slash_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let [year, month, day] = parts.as_slice() else { return false };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return false;
    }
    let (Some(year), Some(month)) = (number_in(year, 0..=9999), number_in(month, 1..=12)) else { return false };
    number_in(day, 1..=days_in_month(year, month)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(mapping: &mut Mapping, id: &str, document: Value) -> Result<(), MappingError> {
        mapping.map_document(document.as_object().expect("a document is an object"), id)
    }

    /// Maps `documents` into a fresh mapping, each accepted, and returns the mapping as GET _mapping shows it.
    fn mapped(documents: &[Value]) -> Value {
        let mut mapping = Mapping::default();
        for (id, document) in documents.iter().enumerate() {
            map(&mut mapping, &id.to_string(), document.clone()).expect("accepted");
        }
        mapping.to_json()
    }

    /// A dynamic string's mapping: text with a keyword sub-field.
    fn text() -> Value {
        json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}})
    }

    /// From <https://www.elastic.co/docs/manage-data/data-store/mapping/dynamic-field-mapping>
    /// and <https://github.com/elastic/elasticsearch/blob/018a89bd4ae9dd809220751df4915799200e85f8/server/src/main/java/org/elasticsearch/index/mapper/DynamicFieldsBuilder.java>
    #[test]
    fn dynamic_types_follow_the_table() {
        let document = json!({
            "nothing": null, "flag": true, "ratio": 1.5, "count": 3, "object": {"inner": 1}, "list": [null, 2, 3],
            "name": "hello", "at": "2023-11-07T12:00:00.000Z", "day": "2015/09/02", "empty": []
        });
        assert_eq!(
            mapped(&[document])["properties"],
            json!({
                "flag": {"type": "boolean"}, "ratio": {"type": "float"}, "count": {"type": "long"},
                "object": {"properties": {"inner": {"type": "long"}}}, "list": {"type": "long"},
                "name": text(), "at": {"type": "date"},
                "day": {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"}
            }),
            "null and [] add nothing; an array takes its first non-null element's type"
        );
    }

    /// From <https://github.com/elastic/elasticsearch/blob/018a89bd4ae9dd809220751df4915799200e85f8/server/src/main/java/org/elasticsearch/index/mapper/DynamicFieldsBuilder.java>
    #[test]
    fn a_pure_number_string_is_text_never_a_date() {
        let mapping = mapped(&[json!({"millis": "1699358400000", "year": "2023", "decimal": "2023.5"})]);
        assert_eq!(mapping["properties"], json!({"millis": text(), "year": text(), "decimal": text()}));
    }

    /// From <https://github.com/elastic/elasticsearch/blob/1079ff6932d617db35929a07c8b56b7454c770f2/server/src/main/java/org/elasticsearch/common/time/Iso8601Parser.java>
    #[test]
    fn only_a_literal_t_separates_date_and_time() {
        let mapping = mapped(&[json!({
            "spaced": "2021-05-03 11:47:12,494+0000", "month": "2023-11", "day": "2021-05-03",
            "zoned": "2021-05-03T11:47:12,494+0000", "minutes": "2021-05-03T11:47", "not_a_day": "2021-02-30"
        })]);
        let date = json!({"type": "date"});
        assert_eq!(
            mapping["properties"],
            json!({"spaced": text(), "month": date, "day": date, "zoned": date, "minutes": date, "not_a_day": text()})
        );
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/subobjects.html>
    #[test]
    fn dotted_names_expand_into_objects_and_merge_with_them() {
        let mut mapping = Mapping::default();
        map(&mut mapping, "1", json!({"log.level": "info", "log": {"logger": "x"}, "a": {"b.c": 1}})).unwrap();
        assert_eq!(
            mapping.to_json()["properties"],
            json!({
                "log": {"properties": {"level": text(), "logger": text()}},
                "a": {"properties": {"b": {"properties": {"c": {"type": "long"}}}}}
            })
        );
        assert_eq!(mapping.total_fields(), 5 + 3, "log, 2 texts and 2 keywords; a, a.b and a.b.c");
    }

    /// Maps `first`, then returns the refusal of `second` (id "2"), checking it left the mapping as it was.
    fn refusal(first: Value, second: Value) -> MappingError {
        let mut mapping = Mapping::default();
        map(&mut mapping, "1", first).expect("the first document is accepted");
        let before = mapping.clone();
        let refusal = map(&mut mapping, "2", second).expect_err("the second document is refused");
        assert_eq!(mapping, before, "a refused document changes nothing");
        assert_eq!((refusal.status, refusal.error_type), (400, "document_parsing_exception"));
        refusal
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/subobjects.html>
    /// and <https://github.com/elastic/elasticsearch/blob/1bb4d6f003ee23471996c2dbac7c7f7b79c004c9/server/src/main/java/org/elasticsearch/index/mapper/DocumentParsingException.java>
    /// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/FieldMapper.java>
    #[test]
    fn an_object_meeting_a_text_field_is_refused() {
        let dotted = refusal(json!({"service": "a"}), json!({"service.name": "b", "new": 1}));
        assert_eq!(
            dotted.reason,
            "[1:2] failed to parse field [service] of type [text] in document with id '2'. Preview of field's value: '{name=b}'"
        );
        assert_eq!(dotted.caused_by.unwrap().error_type, "illegal_state_exception");
        let nested = refusal(json!({"aws": "x"}), json!({"aws.kinesis": {"shard": "1", "seq": 2}}));
        // Elasticsearch previews an object in its HashMap's order: the fields, in whatever order.
        let preview = nested.reason.strip_prefix(
            "[1:2] failed to parse field [aws] of type [text] in document with id '2'. Preview of field's value: '{kinesis={",
        );
        let preview = preview.and_then(|rest| rest.strip_suffix("}}'")).unwrap_or_else(|| panic!("{}", nested.reason));
        let mut fields: Vec<&str> = preview.split(", ").collect();
        fields.sort_unstable();
        assert_eq!(fields, ["seq=2", "shard=1"]);
    }

    /// From <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/DocumentParser.java>
    /// and <https://github.com/elastic/elasticsearch/blob/1bb4d6f003ee23471996c2dbac7c7f7b79c004c9/server/src/main/java/org/elasticsearch/index/mapper/DocumentParsingException.java>
    #[test]
    fn a_concrete_value_meeting_an_object_is_refused() {
        let refused = refusal(json!({"service": {"name": "b"}}), json!({"service": "a"}));
        assert_eq!(
            refused.reason,
            "[1:2] object mapping for [service] tried to parse field [service] as object, but found a concrete value"
        );
        assert_eq!(refused.caused_by, None);
        let deeper =
            refusal(json!({"kubernetes.labels.app": {"tier": "web"}}), json!({"kubernetes": {"labels.app": "x"}}));
        assert_eq!(
            deeper.reason,
            "[1:2] object mapping for [kubernetes.labels.app] tried to parse field [app] as object, but found a concrete value"
        );
        assert!(map(&mut Mapping::default(), "3", json!({"o": {"a": 1}, "o.b": null})).is_ok(), "null is no value");
    }

    /// From <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/FieldMapper.java>
    /// and <https://github.com/elastic/elasticsearch/blob/1079ff6932d617db35929a07c8b56b7454c770f2/server/src/main/java/org/elasticsearch/common/time/Iso8601Parser.java>
    #[test]
    fn a_string_that_is_no_date_meeting_a_date_field_is_refused() {
        let refused = refusal(json!({"ts": "2023-11-07T12:00:00Z"}), json!({"ts": "yesterday"}));
        assert_eq!(
            refused.reason,
            "[1:2] failed to parse field [ts] of type [date] in document with id '2'. Preview of field's value: 'yesterday'"
        );
        assert_eq!(
            refused.caused_by,
            Some(Cause::new(
                "illegal_argument_exception",
                "failed to parse date field [yesterday] with format [strict_date_optional_time||epoch_millis]"
            ))
        );
        let mut mapping = Mapping::default();
        map(&mut mapping, "1", json!({"ts": "2023-11-07"})).unwrap();
        map(&mut mapping, "2", json!({"ts": 1699358400000_i64})).expect("epoch millis");
        map(&mut mapping, "3", json!({"ts": "1699358400000"})).expect("epoch millis as text");
        map(&mut mapping, "4", json!({"ts": "2023"})).expect("a year, when the field is already a date");
        let spaced = map(&mut mapping, "5", json!({"ts": "2021-05-03 11:47:12"})).unwrap_err();
        assert!(spaced.reason.contains("of type [date]"), "{}", spaced.reason);
    }

    /// From <https://www.elastic.co/docs/manage-data/data-store/mapping/dynamic-field-mapping>
    /// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/FieldMapper.java>
    #[test]
    fn text_takes_numbers_and_booleans_and_a_long_takes_numeric_strings() {
        let mut mapping = Mapping::default();
        map(&mut mapping, "1", json!({"message": "x", "latency_ms": 1})).unwrap();
        map(&mut mapping, "2", json!({"message": 3, "latency_ms": "42"})).unwrap();
        map(&mut mapping, "3", json!({"message": [true, "y"], "latency_ms": 1.5})).unwrap();
        let refused = refusal(json!({"price": 1}), json!({"price": "cheap"}));
        assert_eq!(
            refused.reason,
            "[1:2] failed to parse field [price] of type [long] in document with id '2'. Preview of field's value: 'cheap'"
        );
        assert_eq!(refused.caused_by.unwrap().reason, "For input string: \"cheap\"");
        let in_array = refusal(json!({"n": [1, 2]}), json!({"n": [3, "four"]}));
        assert!(in_array.reason.contains("of type [long]"), "{}", in_array.reason);
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/8.18/mapping-settings-limit.html>
    /// and <https://github.com/elastic/elasticsearch/blob/1d618535e832c4067c5c13649c75a4de0be67869/server/src/internalClusterTest/java/org/elasticsearch/index/mapper/DynamicMappingIT.java>
    /// and <https://github.com/elastic/elasticsearch/blob/1bb4d6f003ee23471996c2dbac7c7f7b79c004c9/server/src/main/java/org/elasticsearch/index/mapper/DocumentParsingException.java>
    #[test]
    fn the_field_limit_allows_exactly_the_limit_and_counts_multi_fields() {
        let mut mapping = Mapping::with_limit(5);
        map(&mut mapping, "1", json!({"a": "x", "o": {"b": "y"}})).expect("2 + 1 + 2 = 5 fields: the limit");
        let before = mapping.clone();
        let refused = map(&mut mapping, "2", json!({"c": true})).unwrap_err();
        assert_eq!((refused.status, refused.error_type), (400, "document_parsing_exception"));
        assert_eq!(
            refused.reason,
            "[1:2] failed to parse: Limit of total fields [5] has been exceeded while adding new fields [1]"
        );
        assert_eq!(
            refused.caused_by,
            Some(Cause::new(
                "illegal_argument_exception",
                "Limit of total fields [5] has been exceeded while adding new fields [1]"
            ))
        );
        assert_eq!(mapping, before);
        map(&mut mapping, "3", json!({"a": "known", "o": {"b": "fields"}})).expect("known fields add nothing");

        let mut strings = Mapping::with_limit(3);
        let refused = map(&mut strings, "1", json!({"a": "x", "b": "y"})).unwrap_err();
        assert!(
            refused.reason.ends_with("while adding new fields [4]"),
            "each string is text + keyword: {}",
            refused.reason
        );
        strings.set_total_fields_limit(4);
        map(&mut strings, "1", json!({"a": "x", "b": "y"})).expect("replayed once the limit is raised");
        assert_eq!(strings.total_fields(), 4);
    }

    fn template_mapping() -> Mapping {
        let mut mapping = Mapping::default();
        mapping
            .put(&json!({"dynamic": "strict", "properties": {
                "timestamp": {"type": "date"},
                "status": {"type": "keyword"},
                "count": {"type": "integer"},
                "attributes": {"properties": {"kind": {"type": "keyword"}}},
                "labels": {"dynamic": true, "properties": {}},
                "message": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}}
            }}))
            .expect("a valid mapping");
        mapping
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/7.8/indices-put-template.html>
    /// and <https://github.com/elastic/elasticsearch/blob/17e9ef9eeae5bef37cf4bbf84185d5abdca34b6b/server/src/main/java/org/elasticsearch/index/mapper/StrictDynamicMappingException.java>
    /// and <https://github.com/elastic/elasticsearch/blob/1bb4d6f003ee23471996c2dbac7c7f7b79c004c9/server/src/main/java/org/elasticsearch/index/mapper/DocumentParsingException.java>
    #[test]
    fn a_strict_template_refuses_new_fields_where_they_appear() {
        let mut mapping = template_mapping();
        assert_eq!(mapping.total_fields(), 8, "message and message.raw count 2");
        let at_root = map(&mut mapping, "1", json!({"timestamp": "2023-11-07", "last_name": "x"})).unwrap_err();
        assert_eq!((at_root.status, at_root.error_type), (400, "strict_dynamic_mapping_exception"));
        assert_eq!(
            at_root.reason,
            "[1:2] mapping set to strict, dynamic introduction of [last_name] within [_doc] is not allowed"
        );
        let nested = map(&mut mapping, "2", json!({"attributes.color": null})).unwrap_err();
        assert_eq!(
            nested.reason,
            "[1:2] mapping set to strict, dynamic introduction of [color] within [attributes] is not allowed"
        );
        map(&mut mapping, "3", json!({"labels": {"team": "a"}})).expect("an object may be dynamic under a strict root");
        assert_eq!(mapping.to_json()["properties"]["labels"]["properties"]["team"], text());
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/7.8/indices-put-template.html>
    /// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/FieldMapper.java>
    #[test]
    fn explicit_types_win_over_dynamic_ones() {
        let mut mapping = template_mapping();
        map(&mut mapping, "1", json!({"timestamp": 1699358400000_i64, "status": 200, "count": "7", "message": 1}))
            .expect("each value read as its explicit type");
        map(&mut mapping, "2", json!({"status": true})).expect("a keyword takes a boolean");
        let object = map(&mut mapping, "3", json!({"status": {"message": "hey there"}})).unwrap_err();
        assert_eq!(
            object.reason,
            "[1:2] failed to parse field [status] of type [keyword] in document with id '3'. Preview of field's value: '{message=hey there}'"
        );
        let range = map(&mut mapping, "4", json!({"count": 3_000_000_000_i64})).unwrap_err();
        assert!(range.reason.contains("of type [integer]"), "{}", range.reason);
        let date = map(&mut mapping, "5", json!({"timestamp": "2021-05-03 11:47:12"})).unwrap_err();
        assert!(date.reason.contains("of type [date]"), "{}", date.reason);
        assert_eq!(
            mapping.put(&json!({"properties": {"status": {"type": "long"}}})),
            Err("mapper [status] cannot be changed from type [keyword] to [long]".into())
        );
    }

    /// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic.html>
    #[test]
    fn dynamic_false_keeps_new_fields_unmapped() {
        let mut mapping = Mapping::default();
        mapping.put(&json!({"dynamic": false, "properties": {"known": {"type": "long"}}})).unwrap();
        let before = mapping.clone();
        map(&mut mapping, "1", json!({"new": "x", "deep": {"er": 1}, "known": 2})).expect("accepted");
        assert_eq!(mapping, before, "nothing new is mapped");
        assert!(map(&mut mapping, "2", json!({"known": "two"})).is_err(), "mapped fields are still checked");
        mapping.put(&json!({"dynamic": true})).unwrap();
        map(&mut mapping, "3", json!({"new": "x"})).unwrap();
        assert_eq!(mapping.to_json()["properties"]["new"], text(), "mapped once dynamic again");
    }
}
