//! What a mapping holds at a dotted path (`Mapper`): an object and its `dynamic`, a disabled object, or a concrete
//! field of a `FieldType`, read from an explicit mapping and shown back as `GET _mapping` does; which values a
//! field's type takes.

use serde_json::{Map, Value, json};

use super::dates::DateFormats;
use super::join;

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
    pub(super) fn from_json(value: &Value) -> Result<Dynamic, String> {
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

    pub(super) fn to_json(self) -> Value {
        match self {
            Dynamic::True => json!(true),
            Dynamic::False => json!(false),
            Dynamic::Strict => json!("strict"),
        }
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
    pub(super) fn name(&self) -> &'static str {
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
    pub(super) fn from_name(name: &str, format: Option<&str>) -> Result<FieldType, String> {
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
    pub(super) fn refusal(&self, value: &Value) -> Option<Cause> {
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
    /// An object with `enabled: false`: whatever a document holds there stays in `_source`, neither read nor mapped.
    DisabledObject,
    /// A concrete field, its multi-fields (`fields`) by name, and the `HARMLESS_PARAMETERS` it was given, kept only
    /// to show them back as `GET _mapping` does.
    Field { field_type: FieldType, multi_fields: Vec<(String, FieldType)>, parameters: Map<String, Value> },
}

impl Mapper {
    pub(super) fn field(field_type: FieldType) -> Mapper {
        Mapper::Field { field_type, multi_fields: Vec::new(), parameters: Map::new() }
    }

    /// How much it counts toward `index.mapping.total_fields.limit`: objects and multi-fields count as fields do.
    pub(super) fn size(&self) -> usize {
        match self {
            Mapper::Object { .. } | Mapper::DisabledObject => 1,
            Mapper::Field { multi_fields, .. } => 1 + multi_fields.len(),
        }
    }

    /// The type `mapper [...] cannot be changed from type [...]` names.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Mapper::Object { .. } | Mapper::DisabledObject => "object",
            Mapper::Field { field_type, .. } => field_type.name(),
        }
    }

    /// An explicit mapping (`{"type": …}` or an object's `{"properties": …}`), with its properties as
    /// `(relative path, mapper)` in `nested`.
    pub(super) fn from_json(definition: &Value, nested: &mut Vec<(String, Mapper)>) -> Result<Mapper, String> {
        let Some(definition) = definition.as_object() else {
            return Err(format!("a field's mapping must be an object, not {definition}"));
        };
        let type_name = definition.get("type").and_then(Value::as_str);
        if type_name.is_none_or(|name| name == "object") {
            let enabled = definition.get("enabled").map(|enabled| boolean("enabled", enabled)).transpose()?;
            if enabled == Some(false) {
                if let Some(key) = definition.keys().find(|key| !matches!(key.as_str(), "type" | "enabled")) {
                    return Err(format!("the double does not emulate an object's [{key}] with [enabled: false]"));
                }
                return Ok(Mapper::DisabledObject);
            }
            for key in definition.keys() {
                if !matches!(key.as_str(), "type" | "dynamic" | "properties" | "enabled") {
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
                Mapper::Object { .. } | Mapper::DisabledObject => {
                    return Err(format!("multi-field [{name}] cannot be an object"));
                }
            }
        }
        let parameters = definition
            .iter()
            .filter(|(key, _)| HARMLESS_PARAMETERS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(Mapper::Field { field_type, multi_fields, parameters })
    }

    pub(super) fn to_json(&self) -> Value {
        match self {
            Mapper::Object { dynamic } => {
                let mut object = Map::new();
                if let Some(dynamic) = dynamic {
                    object.insert("dynamic".into(), dynamic.to_json());
                }
                Value::Object(object)
            }
            // Elasticsearch names the type of an object without properties.
            Mapper::DisabledObject => json!({"type": "object", "enabled": false}),
            Mapper::Field { field_type, multi_fields, parameters } => {
                let mut field = type_json(field_type);
                let object = field.as_object_mut().expect("a type renders as an object");
                object.extend(parameters.clone());
                if !multi_fields.is_empty() {
                    let fields: Map<String, Value> = multi_fields
                        .iter()
                        .map(|(name, field_type)| (name.clone(), multi_field_json(field_type)))
                        .collect();
                    object.insert("fields".into(), Value::Object(fields));
                }
                field
            }
        }
    }
}

/// A boolean mapping parameter, as `XContentMapValues.nodeBooleanValue` reads it.
pub(super) fn boolean(parameter: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(value) => Ok(*value),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        _ => Err(format!("Could not convert [{parameter}] to boolean")),
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

/// A field's type (and a date's format when it is not the default), as `GET _mapping` shows it.
fn type_json(field_type: &FieldType) -> Value {
    match field_type {
        FieldType::Date(formats) if *formats != DateFormats::iso() => {
            json!({"type": "date", "format": formats.to_string()})
        }
        other => json!({"type": other.name()}),
    }
}

/// A multi-field, as `GET _mapping` shows it: a keyword is a dynamic string's sub-field, shown with its
/// `ignore_above`.
fn multi_field_json(field_type: &FieldType) -> Value {
    match field_type {
        FieldType::Keyword => json!({"type": "keyword", "ignore_above": 256}),
        other => type_json(other),
    }
}

/// The `properties` of an explicit mapping, as `(path, mapper)` pairs, parents before their children.
pub(super) fn properties_from_json(
    properties: &Value,
    prefix: &str,
    out: &mut Vec<(String, Mapper)>,
) -> Result<(), String> {
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

/// An error's `caused_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub error_type: &'static str,
    pub reason: String,
}

impl Cause {
    pub(super) fn new(error_type: &'static str, reason: impl Into<String>) -> Cause {
        Cause { error_type, reason: reason.into() }
    }
}
