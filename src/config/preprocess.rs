//! What is done to documents on the way, as configured: structured messages (`MESSAGE_JSON`), include and exclude
//! filters (`FILTER_INCLUDE`, `FILTER_EXCLUDE`), static fields (`ADD_FIELDS`) and the record's provenance
//! (`ADD_KINESIS_METADATA`). Parsed and checked once at cold start; `record` applies them.

use regex::Regex;

use crate::config::{ConfigError, boolean, choice};

/// How a CloudWatch Logs event whose message is one JSON object becomes a document (`MESSAGE_JSON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageJson {
    /// Its fields are the document's, at the top level; the envelope's own fields (`aws`, `cloud`) win a clash, and
    /// the message's clashing fields are kept under `MESSAGE_JSON_FIELD`.
    Merge,
    /// The object under `MESSAGE_JSON_FIELD`.
    Nest,
    /// The message stays a string in `message`.
    Off,
}

impl MessageJson {
    /// Every mode, in the order `MESSAGE_JSON`'s refusal lists them.
    pub const ALL: [MessageJson; 3] = [MessageJson::Merge, MessageJson::Nest, MessageJson::Off];

    /// The setting's value, as `MESSAGE_JSON` spells it.
    pub fn name(self) -> &'static str {
        match self {
            MessageJson::Merge => "merge",
            MessageJson::Nest => "nest",
            MessageJson::Off => "off",
        }
    }
}

/// Which documents are indexed: those whose text the include pattern matches (all, without one), except those the
/// exclude pattern matches. Exclude wins.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    /// Compiles both patterns; the error names the variable and says why.
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Filter, ConfigError> {
        let compile = |variable: &'static str, pattern: Option<&str>| {
            pattern
                .map(|pattern| {
                    Regex::new(pattern).map_err(|error| {
                        ConfigError::new(variable, format!("is not a valid regular expression: {error}"))
                    })
                })
                .transpose()
        };
        Ok(Filter { include: compile("FILTER_INCLUDE", include)?, exclude: compile("FILTER_EXCLUDE", exclude)? })
    }

    /// The include and exclude patterns as configured (for the Ready line, and for tests that read records
    /// themselves).
    pub fn patterns(&self) -> (Option<&str>, Option<&str>) {
        (self.include.as_ref().map(Regex::as_str), self.exclude.as_ref().map(Regex::as_str))
    }

    /// Whether a document whose text (a CloudWatch Logs event's message, or any other document's own text) is
    /// `text` is indexed.
    pub fn keeps(&self, text: &str) -> bool {
        self.include.as_ref().is_none_or(|include| include.is_match(text))
            && !self.exclude.as_ref().is_some_and(|exclude| exclude.is_match(text))
    }
}

/// The top-level fields the indexer writes into documents besides the timestamp field: a text's `message`, the
/// provenance under `aws` (`aws.kinesis`, CloudWatch Logs' `aws.cloudwatch`) and CloudWatch Logs' `cloud`. Neither
/// `ADD_FIELDS` nor `MESSAGE_JSON_FIELD` may name them, and a merged message's own fields that would change them
/// are set aside (`record::message`).
pub const WRITTEN_FIELDS: [&str; 3] = ["message", "aws", "cloud"];

/// Static fields merged into every document (`ADD_FIELDS`): each written as `"key":value`, compact, so that a
/// document gains them in the buffer it is built in. A document's own field of the same name wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddedFields {
    fields: Vec<(String, Vec<u8>)>,
}

/// At most this many static fields: a document's own fields are matched against them while it is scanned, one bit
/// each.
pub const MAX_ADDED_FIELDS: usize = 64;

impl AddedFields {
    /// Reads `ADD_FIELDS`' JSON object. `reserved` are the names the indexer writes itself (the timestamp field,
    /// `message`, `aws`, `cloud`, …), which a static field may not take.
    pub fn parse(text: &str, reserved: &[&str]) -> Result<AddedFields, ConfigError> {
        let refused = |problem: String| ConfigError::new("ADD_FIELDS", problem);
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).map_err(|error| {
            refused(format!("expects a JSON object of fields, such as {{\"env\":\"prod\"}}: {error}"))
        })?;
        if object.len() > MAX_ADDED_FIELDS {
            return Err(refused(format!("has {} fields, more than the {MAX_ADDED_FIELDS} allowed", object.len())));
        }
        let mut fields = Vec::with_capacity(object.len());
        for (key, value) in object {
            if key.is_empty() {
                return Err(refused("has a field with an empty name".to_owned()));
            }
            if let Some(name) = reserved.iter().find(|name| **name == key) {
                return Err(refused(format!("names {name:?}, which the indexer writes itself: choose another name")));
            }
            let mut fragment = serde_json::to_vec(&key).expect("a string serialises");
            fragment.push(b':');
            serde_json::to_writer(&mut fragment, &value).expect("a value serialises");
            fields.push((key, fragment));
        }
        Ok(AddedFields { fields })
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The names, in order: bit `i` of a document's `present` mask is the `i`th.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(key, _)| key.as_str())
    }

    /// Writes `,"key":value` for every field whose bit in `present` is not set (the document has its own).
    pub fn write_missing(&self, out: &mut Vec<u8>, present: u64) {
        for (i, (_, fragment)) in self.fields.iter().enumerate() {
            if present & (1 << i) == 0 {
                out.push(b',');
                out.extend_from_slice(fragment);
            }
        }
    }
}

/// Everything done to documents on the way.
#[derive(Debug, Clone)]
pub struct Preprocess {
    pub message_json: MessageJson,
    /// Where `Nest` puts the message's object, and `Merge` the message's fields that clash with the envelope's.
    pub message_json_field: String,
    pub filter: Filter,
    pub added_fields: AddedFields,
    /// Whether every document gains `aws.kinesis` (stream, shard, sequence number, partition key, arrival time).
    pub kinesis_metadata: bool,
}

pub const DEFAULT_MESSAGE_JSON_FIELD: &str = "json";

impl Preprocess {
    /// Reads `MESSAGE_JSON`, `MESSAGE_JSON_FIELD`, `FILTER_INCLUDE`, `FILTER_EXCLUDE`, `ADD_FIELDS` and
    /// `ADD_KINESIS_METADATA` through `get`; a field the indexer writes itself (the timestamp field, `message`,
    /// `aws`, `cloud`, the Firehose target field) cannot be taken by a setting.
    pub fn parse(
        get: &impl Fn(&str) -> Option<String>,
        timestamp_field: &str,
        firehose_target_field: &str,
    ) -> Result<Preprocess, ConfigError> {
        let message_json = choice(get, "MESSAGE_JSON", &MessageJson::ALL.map(|mode| (mode.name(), mode)))?
            .unwrap_or(MessageJson::Merge);
        let [message, aws, cloud] = WRITTEN_FIELDS;
        let written = [timestamp_field, message, aws, cloud, firehose_target_field];
        let message_json_field = get("MESSAGE_JSON_FIELD").unwrap_or_else(|| DEFAULT_MESSAGE_JSON_FIELD.to_owned());
        if let Some(name) = written.iter().find(|name| **name == message_json_field) {
            return Err(ConfigError::new(
                "MESSAGE_JSON_FIELD",
                format!("is {name:?}, which the indexer writes itself"),
            ));
        }
        let filter = Filter::new(get("FILTER_INCLUDE").as_deref(), get("FILTER_EXCLUDE").as_deref())?;
        let mut reserved = written.to_vec();
        reserved.push(&message_json_field);
        let added_fields = match get("ADD_FIELDS") {
            None => AddedFields::default(),
            Some(text) => AddedFields::parse(&text, &reserved)?,
        };
        let kinesis_metadata = boolean(get, "ADD_KINESIS_METADATA", false)?;
        Ok(Preprocess { message_json, message_json_field, filter, added_fields, kinesis_metadata })
    }
}

impl Preprocess {
    /// What is left when nothing reshapes a document: a CloudWatch Logs message stays a string and nothing is added;
    /// the filters stay, so that the same documents are made, in the same places.
    pub fn plain(&self) -> Preprocess {
        Preprocess {
            message_json: MessageJson::Off,
            added_fields: AddedFields::default(),
            kinesis_metadata: false,
            ..self.clone()
        }
    }
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            message_json: MessageJson::Merge,
            message_json_field: DEFAULT_MESSAGE_JSON_FIELD.to_owned(),
            filter: Filter::default(),
            added_fields: AddedFields::default(),
            kinesis_metadata: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_wins_over_include_and_no_pattern_keeps_everything() {
        let filter = Filter::new(Some("ERROR|WARN"), Some("healthcheck")).unwrap();
        let kept: Vec<bool> = ["ERROR db down", "INFO ok", "WARN healthcheck slow", "info"]
            .into_iter()
            .map(|text| filter.keeps(text))
            .collect();
        assert_eq!(kept, [true, false, false, false]);
        assert!(Filter::default().keeps("anything") && Filter::default().patterns() == (None, None));
        let only_exclude = Filter::new(None, Some("^DEBUG")).unwrap();
        assert_eq!((only_exclude.keeps("DEBUG x"), only_exclude.keeps("INFO DEBUG")), (false, true));
    }

    #[test]
    fn an_invalid_pattern_names_its_variable() {
        let error = Filter::new(Some("ok"), Some("(unclosed")).unwrap_err();
        assert_eq!(error.variable, "FILTER_EXCLUDE");
        assert!(error.problem.contains("not a valid regular expression"), "{error}");
        assert_eq!(Filter::new(Some("[z-a]"), None).unwrap_err().variable, "FILTER_INCLUDE");
    }

    #[test]
    fn added_fields_are_written_compact_except_those_the_document_has() {
        let fields =
            AddedFields::parse(r#"{"env":"prod","tags":["a", "b"],"team":{"name":"x"}}"#, &["message"]).unwrap();
        assert_eq!(fields.names().collect::<Vec<_>>(), ["env", "tags", "team"]);
        let mut out = Vec::new();
        fields.write_missing(&mut out, 0b010);
        assert_eq!(String::from_utf8(out).unwrap(), r#","env":"prod","team":{"name":"x"}"#);
        assert!(AddedFields::parse("[1]", &[]).unwrap_err().problem.contains("JSON object"));
        assert!(AddedFields::parse(r#"{"message":1}"#, &["message"]).unwrap_err().problem.contains("\"message\""));
        assert!(AddedFields::parse(r#"{"":1}"#, &[]).unwrap_err().problem.contains("empty name"));
        let many = format!("{{{}}}", (0..65).map(|i| format!("\"f{i}\":1")).collect::<Vec<_>>().join(","));
        assert!(AddedFields::parse(&many, &[]).unwrap_err().problem.contains("more than the 64"));
    }

    #[test]
    fn sixty_four_added_fields_are_taken_and_sixty_five_refused() {
        let object =
            |n: usize| format!("{{{}}}", (0..n).map(|i| format!("\"f{i}\":{i}")).collect::<Vec<_>>().join(","));
        let most = AddedFields::parse(&object(64), &[]).unwrap();
        assert_eq!(most.names().count(), 64, "the documented maximum");
        let refused = AddedFields::parse(&object(65), &[]).unwrap_err();
        assert_eq!(refused.to_string(), "ADD_FIELDS: has 65 fields, more than the 64 allowed");
    }
}
