//! Dynamic mapping of a new field: its JSON type as detected from its first value, the mapper Elasticsearch gives it,
//! and the root's `dynamic_templates` that may give another.

use serde_json::{Map, Value, json};

use super::dates::{DateFormats, dynamic_date};
use super::mappers::{FieldType, Mapper};

/// A new field's JSON type as dynamic templates' `match_mapping_type` names it (`DynamicTemplate.XContentFieldType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonType {
    Object,
    String,
    Long,
    Double,
    Boolean,
    /// A string that date detection parsed.
    Date,
    /// Only from binary documents (CBOR, Smile), never from JSON.
    Binary,
}

impl JsonType {
    const ALL: [JsonType; 7] = [
        JsonType::Object,
        JsonType::String,
        JsonType::Long,
        JsonType::Double,
        JsonType::Boolean,
        JsonType::Date,
        JsonType::Binary,
    ];

    fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::String => "string",
            JsonType::Long => "long",
            JsonType::Double => "double",
            JsonType::Boolean => "boolean",
            JsonType::Date => "date",
            JsonType::Binary => "binary",
        }
    }

    fn from_name(name: &str) -> Result<JsonType, String> {
        JsonType::ALL.into_iter().find(|json_type| json_type.name() == name).ok_or_else(|| {
            let names: Vec<&str> = JsonType::ALL.iter().map(|json_type| json_type.name()).collect();
            format!("No field type matched on [{name}], possible values are [{}]", names.join(", "))
        })
    }

    /// What `{dynamic_type}` stands for in a template's mapping: the type dynamic mapping would give
    /// (`XContentFieldType.defaultMappingType`), a JSON double being a float.
    fn default_mapping_type(self) -> &'static str {
        match self {
            JsonType::String => "text",
            JsonType::Double => "float",
            other => other.name(),
        }
    }
}

/// What dynamic mapping makes of a new field's first value (`DynamicFieldsBuilder`): its JSON type and, for a date,
/// the dynamic date format that parsed it.
#[derive(Debug, Clone)]
pub(super) struct Detected {
    pub(super) json_type: JsonType,
    date_formats: Option<DateFormats>,
}

impl Detected {
    /// `None` for `null` and `[]`, which add nothing.
    pub(super) fn of(value: &Value, date_detection: bool) -> Option<Detected> {
        let detected = |json_type| Some(Detected { json_type, date_formats: None });
        match value {
            Value::Null | Value::Array(_) => None,
            Value::Object(_) => detected(JsonType::Object),
            Value::Bool(_) => detected(JsonType::Boolean),
            Value::Number(number) if number.is_f64() => detected(JsonType::Double),
            Value::Number(_) => detected(JsonType::Long),
            Value::String(text) => match dynamic_date(text).filter(|_| date_detection) {
                Some(formats) => Some(Detected { json_type: JsonType::Date, date_formats: Some(formats) }),
                None => detected(JsonType::String),
            },
        }
    }

    /// The mapper Elasticsearch gives a new field no dynamic template takes.
    pub(super) fn default_mapper(&self) -> Mapper {
        match (self.json_type, &self.date_formats) {
            (JsonType::Object, _) => Mapper::Object { dynamic: None },
            // Binary is never detected from JSON.
            (JsonType::String | JsonType::Binary, _) => Mapper::Field {
                field_type: FieldType::Text,
                multi_fields: vec![("keyword".to_owned(), FieldType::Keyword)],
                parameters: Map::new(),
            },
            (JsonType::Long, _) => Mapper::field(FieldType::Long),
            // "we use float by default instead of double"
            (JsonType::Double, _) => Mapper::field(FieldType::Float),
            (JsonType::Boolean, _) => Mapper::field(FieldType::Boolean),
            (JsonType::Date, formats) => {
                Mapper::field(FieldType::Date(formats.clone().unwrap_or_else(DateFormats::iso)))
            }
        }
    }
}

/// One of the root's `dynamic_templates` (`DynamicTemplate`): which new fields it takes, and the mapping it gives
/// them. Patterns are Elasticsearch's simple ones (`*` for any text); a condition with no pattern holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DynamicTemplate {
    name: String,
    /// `match`, on the field's own name.
    name_patterns: Vec<String>,
    /// `unmatch`, on the field's own name.
    name_exclusions: Vec<String>,
    /// `path_match`, on the full dotted path.
    path_patterns: Vec<String>,
    /// `path_unmatch`, on the full dotted path.
    path_exclusions: Vec<String>,
    /// The JSON types it takes: every one for `*`, or when it matches names without `match_mapping_type`; none
    /// when it has neither (such a template never applies).
    json_types: Vec<JsonType>,
    mapping: Map<String, Value>,
}

impl DynamicTemplate {
    /// The root's `dynamic_templates`: a list of `{"name": {conditions…, "mapping": {…}}}`, each checked as
    /// `RootObjectMapper` checks it.
    pub(super) fn parse_all(templates: &Value) -> Result<Vec<DynamicTemplate>, String> {
        let syntax_error = || "Dynamic template syntax error. An array of named objects is expected.".to_owned();
        let templates = templates.as_array().ok_or_else(syntax_error)?;
        templates
            .iter()
            .map(|named| {
                let named = named.as_object().ok_or_else(syntax_error)?;
                let [(name, definition)] = named.iter().collect::<Vec<_>>()[..] else {
                    return Err("A dynamic template must be defined with a name".to_owned());
                };
                let template = DynamicTemplate::parse(name, definition)?;
                template.validate()?;
                Ok(template)
            })
            .collect()
    }

    fn parse(name: &str, definition: &Value) -> Result<DynamicTemplate, String> {
        let Some(definition) = definition.as_object() else {
            return Err(format!("dynamic template [{name}] must be an object"));
        };
        let patterns = |parameter: &str| -> Result<Vec<String>, String> {
            match definition.get(parameter) {
                None => Ok(Vec::new()),
                Some(Value::Array(patterns)) => patterns
                    .iter()
                    .map(|pattern| {
                        pattern.as_str().map(str::to_owned).ok_or_else(|| {
                            format!(
                                "[{parameter}] values must either be a string or list of strings, but was [{}]",
                                Value::Array(patterns.clone())
                            )
                        })
                    })
                    .collect(),
                Some(Value::String(pattern)) => Ok(vec![pattern.clone()]),
                Some(other) => Ok(vec![other.to_string()]),
            }
        };
        for (key, value) in definition {
            match key.as_str() {
                "match" | "unmatch" | "path_match" | "path_unmatch" | "match_mapping_type" | "mapping" => {}
                "match_pattern" => match value.as_str() {
                    Some("simple" | "default") => {}
                    Some("regex") => return Err("the double does not emulate [match_pattern: regex]".into()),
                    _ => return Err(format!("No matching pattern matched on [{}]", value_text(value))),
                },
                "runtime" => return Err(format!("the double does not emulate runtime fields ([runtime] of [{name}])")),
                other => return Err(format!("Illegal dynamic template parameter: [{other}]")),
            }
        }
        let Some(mapping) = definition.get("mapping") else {
            return Err(format!("template [{name}] must have either mapping or runtime set"));
        };
        let Some(mapping) = mapping.as_object() else {
            return Err(format!("the [mapping] of dynamic template [{name}] must be an object"));
        };
        let (name_patterns, path_patterns) = (patterns("match")?, patterns("path_match")?);
        let json_types = match definition.get("match_mapping_type") {
            Some(Value::String(any)) if any == "*" => JsonType::ALL.to_vec(),
            Some(Value::Array(names)) => {
                names.iter().map(|name| JsonType::from_name(&value_text(name))).collect::<Result<_, _>>()?
            }
            Some(single) => vec![JsonType::from_name(&value_text(single))?],
            None if name_patterns.is_empty() && path_patterns.is_empty() => Vec::new(),
            None => JsonType::ALL.to_vec(),
        };
        Ok(DynamicTemplate {
            name: name.to_owned(),
            name_patterns,
            name_exclusions: patterns("unmatch")?,
            path_patterns,
            path_exclusions: patterns("path_unmatch")?,
            json_types,
            mapping: mapping.clone(),
        })
    }

    /// Refuses a template whose mapping gives no field for any of its JSON types, as Elasticsearch 8 does
    /// (`RootObjectMapper.validateDynamicTemplate`): here that includes what the double does not emulate. A mapping
    /// using `{name}` can only be checked against a real field.
    fn validate(&self) -> Result<(), String> {
        if Value::Object(self.mapping.clone()).to_string().contains("{name}") {
            return Ok(());
        }
        let mut last_error = None;
        for &json_type in &self.json_types {
            let detected = Detected { json_type, date_formats: None };
            match self.mapper_for(&format!("__dynamic__{}", self.name), &detected) {
                Ok(_) => return Ok(()),
                Err(why) => last_error = Some(why),
            }
        }
        let Some(why) = last_error else { return Ok(()) };
        let types: Vec<&str> = self.json_types.iter().map(|json_type| json_type.name()).collect();
        Err(format!(
            "dynamic template [{}] has invalid content [{}], attempted to validate it with the following match_mapping_type: [{}], caused by [{why}]",
            self.name,
            self.to_json()[&self.name],
            types.join(", ")
        ))
    }

    /// Whether it takes a new field (`DynamicTemplate.match`).
    pub(super) fn takes(&self, path: &str, name: &str, json_type: JsonType) -> bool {
        let any_matches = |patterns: &[String], text: &str| patterns.iter().any(|pattern| simple_match(pattern, text));
        (self.path_patterns.is_empty() || any_matches(&self.path_patterns, path))
            && (self.name_patterns.is_empty() || any_matches(&self.name_patterns, name))
            && !any_matches(&self.path_exclusions, path)
            && !any_matches(&self.name_exclusions, name)
            && self.json_types.contains(&json_type)
    }

    /// The mapper (and its properties, as `(relative path, mapper)`) it gives the new field `name`: its mapping with
    /// `{name}` and `{dynamic_type}` replaced, typed by dynamic mapping when it names no type. A date it takes
    /// keeps the dynamic date format that detected it unless the mapping sets one.
    pub(super) fn mapper_for(
        &self,
        name: &str,
        detected: &Detected,
    ) -> Result<(Mapper, Vec<(String, Mapper)>), String> {
        let dynamic_type = detected.json_type.default_mapping_type();
        let mut mapping = substitute(&Value::Object(self.mapping.clone()), name, dynamic_type);
        let definition = mapping.as_object_mut().expect("an object stays an object");
        definition.entry("type").or_insert_with(|| dynamic_type.into());
        if let Some(formats) = &detected.date_formats
            && definition["type"] == "date"
        {
            definition.entry("format").or_insert_with(|| formats.to_string().into());
        }
        let mut nested = Vec::new();
        let mapper = Mapper::from_json(&mapping, &mut nested)?;
        Ok((mapper, nested))
    }

    /// The template as `GET _mapping` shows it (`DynamicTemplate.toXContent`).
    pub(super) fn to_json(&self) -> Value {
        let mut conditions = Map::new();
        let patterns = [
            ("match", &self.name_patterns),
            ("path_match", &self.path_patterns),
            ("unmatch", &self.name_exclusions),
            ("path_unmatch", &self.path_exclusions),
        ];
        for (parameter, patterns) in patterns {
            match patterns.as_slice() {
                [] => {}
                [pattern] => {
                    conditions.insert(parameter.into(), pattern.as_str().into());
                }
                patterns => {
                    conditions.insert(parameter.into(), json!(patterns));
                }
            }
        }
        let matches_names = !self.name_patterns.is_empty() || !self.path_patterns.is_empty();
        match self.json_types.as_slice() {
            [json_type] => {
                conditions.insert("match_mapping_type".into(), json_type.name().into());
            }
            all if all.len() == JsonType::ALL.len() && matches_names => {}
            all if all.len() == JsonType::ALL.len() => {
                conditions.insert("match_mapping_type".into(), "*".into());
            }
            [] => {}
            some => {
                let names: Vec<&str> = some.iter().map(|json_type| json_type.name()).collect();
                conditions.insert("match_mapping_type".into(), json!(names));
            }
        }
        conditions.insert("mapping".into(), Value::Object(self.mapping.clone()));
        json!({ &self.name: conditions })
    }
}

/// A scalar as Java's `toString` gives it (strings unquoted), as Elasticsearch reads a template's parameters.
fn value_text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// `{name}`, `{dynamic_type}` and `{dynamicType}` replaced in every key and string of a template's mapping
/// (`DynamicTemplate.processMap`).
fn substitute(value: &Value, name: &str, dynamic_type: &str) -> Value {
    let replace = |text: &str| {
        text.replace("{name}", name).replace("{dynamic_type}", dynamic_type).replace("{dynamicType}", dynamic_type)
    };
    match value {
        Value::Object(object) => Value::Object(
            object.iter().map(|(key, value)| (replace(key), substitute(value, name, dynamic_type))).collect(),
        ),
        Value::Array(values) => {
            Value::Array(values.iter().map(|value| substitute(value, name, dynamic_type)).collect())
        }
        Value::String(text) => Value::String(replace(text)),
        other => other.clone(),
    }
}

/// Elasticsearch's `Regex.simpleMatch`: `*` stands for any text (dots included), everything else for itself.
fn simple_match(pattern: &str, text: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else { return pattern == text };
    let Some(rest) = text.strip_prefix(head) else { return false };
    tail.is_empty()
        || (0..=rest.len()).filter(|&at| rest.is_char_boundary(at)).any(|at| simple_match(tail, &rest[at..]))
}
