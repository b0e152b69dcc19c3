//! The mapping's own tests: what Elasticsearch 8 makes of documents and mappings, per the sources `mod.rs` lists.

use super::mappers::Cause;
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
    let deeper = refusal(json!({"kubernetes.labels.app": {"tier": "web"}}), json!({"kubernetes": {"labels.app": "x"}}));
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

/// A fresh mapping with this root mapping put, which must be accepted.
fn put(root: Value) -> Mapping {
    let mut mapping = Mapping::default();
    mapping.put(&root).expect("a valid mapping");
    mapping
}

/// Maps each document into `mapping`, each accepted, and returns its properties as GET _mapping shows them.
fn properties_after(mapping: &mut Mapping, documents: &[Value]) -> Value {
    for (id, document) in documents.iter().enumerate() {
        map(mapping, &id.to_string(), document.clone()).expect("accepted");
    }
    mapping.to_json()["properties"].clone()
}

/// A `match_mapping_type: string` template mapping strings to keywords.
fn strings_as_keyword() -> Value {
    json!({"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}})
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-field-mapping.html#date-detection>
#[test]
fn without_date_detection_a_date_string_is_a_string() {
    let mut mapping = put(json!({"date_detection": false}));
    let properties = properties_after(&mut mapping, &[json!({"at": "2023-11-07T12:00:00.000Z", "day": "2015/09/02"})]);
    assert_eq!(properties, json!({"at": text(), "day": text()}));
    let mut keywords = put(json!({"date_detection": false, "dynamic_templates": [strings_as_keyword()]}));
    let properties = properties_after(&mut keywords, &[json!({"at": "2023-11-07T12:00:00.000Z"})]);
    assert_eq!(properties, json!({"at": {"type": "keyword", "ignore_above": 1024}}), "the string template takes it");
    assert_eq!(put(json!({"date_detection": true})).to_json()["date_detection"], true, "shown once set");
    assert_eq!(
        Mapping::default().put(&json!({"date_detection": "no"})),
        Err("Could not convert [date_detection] to boolean".into())
    );
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
#[test]
fn the_first_dynamic_template_that_matches_maps_a_new_field() {
    let mut mapping = put(json!({"dynamic_templates": [
        {"never": {"mapping": {"type": "boolean"}}},
        strings_as_keyword(),
        {"all_strings_as_text": {"match_mapping_type": "string", "mapping": {"type": "text"}}}
    ]}));
    let properties = properties_after(&mut mapping, &[json!({"a": "x", "b": {"c": "y"}, "n": 1, "r": 1.5})]);
    let keyword = json!({"type": "keyword", "ignore_above": 1024});
    assert_eq!(
        properties,
        json!({"a": keyword, "b": {"properties": {"c": keyword}}, "n": {"type": "long"}, "r": {"type": "float"}}),
        "a template without conditions never applies; what no template takes is mapped as without templates"
    );
    assert_eq!(mapping.total_fields(), 5, "a keyword without multi-fields counts 1");
    map(&mut mapping, "1", json!({"a": 2, "n": "3"})).expect("read by the mapped types");
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
/// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/DynamicTemplate.java>
#[test]
fn a_detected_date_matches_date_not_string() {
    let mut mapping = put(json!({"dynamic_templates": [
        strings_as_keyword(),
        {"dates_as_text": {"match_mapping_type": "date", "mapping": {"type": "text"}}}
    ]}));
    let properties = properties_after(&mut mapping, &[json!({"at": "2023-11-07T12:00:00Z", "name": "x"})]);
    assert_eq!(properties, json!({"at": {"type": "text"}, "name": {"type": "keyword", "ignore_above": 1024}}));
    let mut strings_only = put(json!({"dynamic_templates": [strings_as_keyword()]}));
    let properties = properties_after(&mut strings_only, &[json!({"at": "2023-11-07T12:00:00Z"})]);
    assert_eq!(properties, json!({"at": {"type": "date"}}), "date detection first, then the templates of dates");
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
#[test]
fn match_unmatch_path_match_and_path_unmatch_take_simple_wildcards() {
    let mut mapping = put(json!({"dynamic_templates": [
        {"ids": {"match": "*_id", "unmatch": "skip_*", "mapping": {"type": "keyword"}}},
        {"labels": {
            "path_match": "labels.*", "path_unmatch": "labels.private.*", "match_mapping_type": "string",
            "mapping": {"type": "keyword"}
        }}
    ]}));
    let document = json!({
        "user_id": 7, "skip_id": 8, "id": 9,
        "labels": {"team": "a", "deep": {"tier": "web"}, "private": {"token": "t"}}
    });
    let keyword = json!({"type": "keyword"});
    assert_eq!(
        properties_after(&mut mapping, &[document]),
        json!({
            "user_id": keyword, "skip_id": {"type": "long"}, "id": {"type": "long"},
            "labels": {"properties": {
                "team": keyword, "deep": {"properties": {"tier": keyword}}, "private": {"properties": {"token": text()}}
            }}
        }),
        "match without match_mapping_type takes every type; * in a path spans dots"
    );
    let mut listed = put(json!({"dynamic_templates": [
        {"either": {"match": ["first_*", "*_last"], "match_mapping_type": "long", "mapping": {"type": "keyword"}}}
    ]}));
    let properties = properties_after(&mut listed, &[json!({"first_a": 1, "b_last": 2, "middle": 3, "first_s": "x"})]);
    assert_eq!(
        properties,
        json!({"first_a": keyword, "b_last": keyword, "middle": {"type": "long"}, "first_s": text()})
    );
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
#[test]
fn dynamic_type_stands_for_the_type_dynamic_mapping_would_give() {
    let mut mapping = put(json!({"dynamic_templates": [
        {"as_detected": {"match_mapping_type": "*", "mapping": {"type": "{dynamic_type}"}}}
    ]}));
    let document = json!({
        "n": 1, "r": 1.5, "s": "x", "b": true, "at": "2023-11-07", "day": "2015/09/02", "o": {"i": 1}
    });
    assert_eq!(
        properties_after(&mut mapping, &[document]),
        json!({
            "n": {"type": "long"}, "r": {"type": "float"}, "s": {"type": "text"}, "b": {"type": "boolean"},
            "at": {"type": "date"},
            "day": {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"},
            "o": {"properties": {"i": {"type": "long"}}}
        }),
        "a string is text without a keyword; a double is a float; a date keeps the format that detected it"
    );
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
/// and <https://github.com/elastic/elasticsearch/blob/1bb4d6f003ee23471996c2dbac7c7f7b79c004c9/server/src/main/java/org/elasticsearch/index/mapper/DocumentParsingException.java>
#[test]
fn a_template_s_type_reads_the_value_and_counts_toward_the_limit() {
    let mut mapping = put(json!({"dynamic_templates": [
        {"numbers": {"match": "count_*", "mapping": {"type": "long"}}}
    ]}));
    let before = mapping.clone();
    let refused = map(&mut mapping, "1", json!({"count_a": "many"})).unwrap_err();
    assert_eq!((refused.status, refused.error_type), (400, "document_parsing_exception"));
    assert!(refused.reason.contains("failed to parse field [count_a] of type [long]"), "{}", refused.reason);
    assert_eq!(mapping, before, "a refused document changes nothing");

    let mut limited = Mapping::with_limit(2);
    limited.put(&json!({"dynamic_templates": [strings_as_keyword()]})).unwrap();
    map(&mut limited, "1", json!({"a": "x", "b": "y"})).expect("two keywords: the limit");
    let refused = map(&mut limited, "2", json!({"c": "z"})).unwrap_err();
    assert_eq!(
        refused.reason,
        "[1:2] failed to parse: Limit of total fields [2] has been exceeded while adding new fields [1]"
    );
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
/// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/DynamicTemplate.java>
#[test]
fn what_the_double_does_not_emulate_in_a_template_is_refused() {
    let refusal = |template: Value| Mapping::default().put(&json!({"dynamic_templates": [template]})).unwrap_err();
    let regex = refusal(json!({"r": {"match_pattern": "regex", "match": "^a$", "mapping": {"type": "keyword"}}}));
    assert_eq!(regex, "the double does not emulate [match_pattern: regex]");
    let runtime = refusal(json!({"r": {"match_mapping_type": "string", "runtime": {}}}));
    assert!(runtime.starts_with("the double does not emulate runtime fields"), "{runtime}");
    let unknown = refusal(json!({"t": {"match_mapping_typ": "string", "mapping": {"type": "keyword"}}}));
    assert_eq!(unknown, "Illegal dynamic template parameter: [match_mapping_typ]");
    let type_name = refusal(json!({"t": {"match_mapping_type": "text", "mapping": {"type": "keyword"}}}));
    assert!(type_name.starts_with("No field type matched on [text]"), "{type_name}");
    let flattened = refusal(json!({"t": {"match_mapping_type": "object", "mapping": {"type": "flattened"}}}));
    assert!(
        flattened.starts_with("dynamic template [t] has invalid content")
            && flattened.ends_with("caused by [the double does not map fields of type [flattened]]"),
        "{flattened}"
    );
    assert_eq!(refusal(json!([])), "Dynamic template syntax error. An array of named objects is expected.");
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
/// and <https://github.com/elastic/elasticsearch/blob/main/server/src/main/java/org/elasticsearch/index/mapper/RootObjectMapper.java>
#[test]
fn a_mapping_update_replaces_the_templates() {
    let mut mapping = put(json!({"dynamic_templates": [strings_as_keyword()]}));
    map(&mut mapping, "1", json!({"a": "x"})).unwrap();
    let booleans = json!({"booleans_as_keyword": {"match_mapping_type": "boolean", "mapping": {"type": "keyword"}}});
    mapping.put(&json!({"dynamic_templates": [booleans]})).unwrap();
    map(&mut mapping, "2", json!({"b": "y", "c": true})).unwrap();
    assert_eq!(mapping.to_json()["dynamic_templates"], json!([booleans]));
    let properties = mapping.to_json()["properties"].clone();
    assert_eq!(
        properties,
        json!({"a": {"type": "keyword", "ignore_above": 1024}, "b": text(), "c": {"type": "keyword"}}),
        "fields mapped before keep their mapping"
    );
    mapping.put(&json!({"properties": {"d": {"type": "long"}}})).unwrap();
    assert_eq!(mapping.to_json()["dynamic_templates"], json!([booleans]), "kept when none is given");
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/enabled.html>
#[test]
fn a_disabled_object_takes_anything_and_maps_nothing() {
    let mut mapping = put(json!({"properties": {"json": {"type": "object", "enabled": false}}}));
    let before = mapping.clone();
    for (id, document) in [
        json!({"json": {"message": 1}}),
        json!({"json": {"message": {"x": 1}}}),
        json!({"json": "text"}),
        json!({"json": [1, {"a": "b"}, null]}),
        json!({"json.message": "dotted"}),
    ]
    .into_iter()
    .enumerate()
    {
        map(&mut mapping, &id.to_string(), document).expect("accepted");
    }
    assert_eq!(mapping, before, "nothing is mapped under it");
    assert_eq!(mapping.total_fields(), 1, "the object itself");
    assert_eq!(mapping.to_json()["properties"], json!({"json": {"type": "object", "enabled": false}}));
    let without_type = put(json!({"properties": {"json": {"enabled": false}}}));
    assert_eq!(without_type, before);
    assert_eq!(
        mapping.put(&json!({"properties": {"json": {"type": "object"}}})),
        Err("the [enabled] parameter can't be updated for the object mapping [json]".into())
    );
    let mut templated = put(json!({"dynamic_templates": [
        {"opaque": {"match": "raw", "mapping": {"type": "object", "enabled": false}}}
    ]}));
    map(&mut templated, "1", json!({"raw": {"a": 1}})).unwrap();
    map(&mut templated, "2", json!({"raw": {"a": "x"}})).expect("a template may disable an object too");
    assert_eq!(templated.total_fields(), 1);
}

/// From <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-templates.html>
/// and <https://www.elastic.co/guide/en/elasticsearch/reference/current/dynamic-field-mapping.html#date-detection>
/// and <https://www.elastic.co/guide/en/elasticsearch/reference/current/enabled.html>
#[test]
fn templates_date_detection_and_disabled_objects_show_back_and_round_trip() {
    let definition = json!({
        "date_detection": false,
        "dynamic_templates": [
            strings_as_keyword(),
            {"labels": {"path_match": ["labels.*", "tags.*"], "unmatch": "x", "mapping": {"type": "keyword"}}},
            {"all": {"match_mapping_type": "*", "mapping": {"type": "{dynamic_type}"}}}
        ],
        "properties": {"json": {"type": "object", "enabled": false}, "status": {"type": "keyword"}}
    });
    let mapping = put(definition.clone());
    assert_eq!(mapping.to_json(), definition, "as GET _mapping shows it");
    assert_eq!(put(mapping.to_json()), mapping, "what is shown puts back the same mapping");
}
