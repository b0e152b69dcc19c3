//! `Config::from_lookup` end to end: each setting's default, range and refusal, named by its variable.

use super::endpoint::region_of;
use super::*;
use crate::config::preprocess::MessageJson;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn only_es_url_is_required_and_defaults_fill_the_rest() {
    let config = config(&[("ES_URL", "http://127.0.0.1:9200/")]).unwrap();
    assert_eq!(config.cluster.url, "http://127.0.0.1:9200");
    assert_eq!(config.bulk.max_bytes, DEFAULT_BULK_MAX_BYTES);
    assert_eq!(config.bulk.max_docs, DEFAULT_BULK_MAX_DOCS);
    assert_eq!(config.bulk.concurrency, DEFAULT_BULK_CONCURRENCY);
    assert_eq!(config.cluster.timeout, Duration::from_millis(DEFAULT_ES_TIMEOUT_MS));
    assert_eq!(config.documents.timestamp_field, "@timestamp");
    assert_eq!(config.firehose.stream, None);
    assert_eq!(config.cluster.auth, EsAuth::None);
    assert_eq!(config.cluster.compression, Compression::Gzip);
    assert_eq!(config.dead_letter, None);
}

#[test]
fn the_dead_letter_is_a_bucket_and_a_prefix() {
    let place = |pairs: &[(&str, &str)]| {
        let mut all = vec![("ES_URL", "http://h")];
        all.extend_from_slice(pairs);
        config(&all).map(|config| config.dead_letter)
    };
    let expected = |bucket: &str, prefix: &str| DeadLetterPlace { bucket: bucket.into(), prefix: prefix.into() };
    assert_eq!(
        place(&[("DEAD_LETTER_BUCKET", "stack-failedbatches-1a2b")]).unwrap(),
        Some(expected("stack-failedbatches-1a2b", "rejected-documents/"))
    );
    assert_eq!(
        place(&[("DEAD_LETTER_BUCKET", "b.c-d"), ("DEAD_LETTER_PREFIX", "dl/")]).unwrap(),
        Some(expected("b.c-d", "dl/"))
    );
    assert_eq!(place(&[("DEAD_LETTER_PREFIX", "dl/")]).unwrap(), None, "no bucket, no dead letter");
    for invalid in ["Upper", "ab", "s3://bucket", "a_b"] {
        assert_eq!(place(&[("DEAD_LETTER_BUCKET", invalid)]).unwrap_err().variable, "DEAD_LETTER_BUCKET");
    }
}

#[test]
fn preprocessing_is_merge_by_default_and_each_setting_is_checked_naming_its_variable() {
    let defaults = config(&[("ES_URL", "http://h")]).unwrap().preprocessing;
    assert_eq!((defaults.message_json, defaults.message_json_field.as_str()), (MessageJson::Merge, "json"));
    assert!(
        defaults.filter.patterns() == (None, None) && defaults.added_fields.is_empty() && !defaults.kinesis_metadata
    );
    let set = config(&[
        ("ES_URL", "http://h"),
        ("MESSAGE_JSON", "Nest"),
        ("MESSAGE_JSON_FIELD", "msg"),
        ("FILTER_EXCLUDE", "^DEBUG"),
        ("ADD_FIELDS", r#"{"env":"prod"}"#),
        ("ADD_KINESIS_METADATA", "TRUE"),
    ])
    .unwrap()
    .preprocessing;
    assert_eq!((set.message_json, set.message_json_field.as_str()), (MessageJson::Nest, "msg"));
    assert!(set.filter.patterns() == (None, Some("^DEBUG")) && !set.filter.keeps("DEBUG x") && set.kinesis_metadata);
    assert_eq!(set.added_fields.names().collect::<Vec<_>>(), ["env"]);
    for (pairs, variable, says) in [
        (("MESSAGE_JSON", "yes"), "MESSAGE_JSON", "merge, nest or off"),
        (("MESSAGE_JSON_FIELD", "aws"), "MESSAGE_JSON_FIELD", "writes itself"),
        (("FILTER_INCLUDE", "a("), "FILTER_INCLUDE", "regular expression"),
        (("FILTER_EXCLUDE", "*"), "FILTER_EXCLUDE", "regular expression"),
        (("ADD_FIELDS", "env=prod"), "ADD_FIELDS", "JSON object"),
        (("ADD_FIELDS", r#"{"@timestamp":"x"}"#), "ADD_FIELDS", "writes itself"),
        (("ADD_FIELDS", r#"{"json":1}"#), "ADD_FIELDS", "writes itself"),
        (("ADD_KINESIS_METADATA", "1"), "ADD_KINESIS_METADATA", "true or false"),
    ] {
        let error = config(&[("ES_URL", "http://h"), pairs]).unwrap_err();
        assert_eq!(error.variable, variable, "{error}");
        assert!(error.problem.contains(says), "{error}");
    }
}

#[test]
fn tls_verification_is_on_unless_switched_off_explicitly() {
    assert!(config(&[("ES_URL", "https://h")]).unwrap().cluster.tls_verify);
    assert!(!config(&[("ES_URL", "https://h"), ("ES_TLS_VERIFY", "false")]).unwrap().cluster.tls_verify);
    assert_eq!(config(&[("ES_URL", "https://h"), ("ES_TLS_VERIFY", "no")]).unwrap_err().variable, "ES_TLS_VERIFY");
    let both = [("ES_URL", "https://h"), ("ES_TLS_VERIFY", "false"), ("ES_CA_CERT", "/ca.pem")];
    assert_eq!(config(&both).unwrap_err().variable, "ES_TLS_VERIFY");
}

#[test]
fn compression_is_gzip_or_none() {
    assert_eq!(
        config(&[("ES_URL", "http://h"), ("ES_COMPRESSION", "NONE")]).unwrap().cluster.compression,
        Compression::None
    );
    assert_eq!(config(&[("ES_URL", "http://h"), ("ES_COMPRESSION", "zstd")]).unwrap_err().variable, "ES_COMPRESSION");
}

#[test]
fn a_missing_es_url_names_the_variable() {
    let error = config(&[]).unwrap_err();
    assert_eq!(error.variable, "ES_URL");
    assert!(error.to_string().starts_with("ES_URL: is required"), "{error}");
}

#[test]
fn a_url_without_scheme_or_with_inline_credentials_is_refused() {
    assert_eq!(config(&[("ES_URL", "localhost:9200")]).unwrap_err().variable, "ES_URL");
    assert_eq!(config(&[("ES_URL", "https://user:pw@host")]).unwrap_err().variable, "ES_URL");
    assert_eq!(config(&[("ES_URL", "https://host/?x=1")]).unwrap_err().variable, "ES_URL");
    let port = config(&[("ES_URL", "https://h:99999")]).unwrap_err();
    assert!(port.problem.starts_with("is not a valid URL (invalid port number)"), "{port}");
}

#[test]
fn numbers_out_of_range_or_not_numbers_name_their_variable() {
    let error = config(&[("ES_URL", "http://h"), ("BULK_MAX_DOCS", "0")]).unwrap_err();
    assert_eq!(error.variable, "BULK_MAX_DOCS");
    assert!(error.problem.contains("from 1 to 100000"), "{error}");
    let error = config(&[("ES_URL", "http://h"), ("ES_TIMEOUT_MS", "ten")]).unwrap_err();
    assert_eq!(error.variable, "ES_TIMEOUT_MS");
    assert_eq!(config(&[("ES_URL", "http://h"), ("BULK_MAX_BYTES", "1_048_576")]).unwrap().bulk.max_bytes, 1_048_576);
}

#[test]
fn a_request_timeout_is_at_least_the_least_time_a_request_can_have() {
    let timeout = |ms: &str| config(&[("ES_URL", "http://h"), ("ES_TIMEOUT_MS", ms)]).map(|c| c.cluster.timeout);
    assert_eq!(timeout("100").unwrap(), Duration::from_millis(100));
    assert_eq!(
        timeout("99").unwrap_err().to_string(),
        "ES_TIMEOUT_MS: expects a whole number from 100 to 900000, got 99"
    );
    assert_eq!(timeout("900000").unwrap(), Duration::from_secs(900));
}

#[test]
fn credentials_are_basic_or_api_key_never_both() {
    let basic = config(&[("ES_URL", "http://h"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")]).unwrap();
    assert_eq!(basic.cluster.auth, EsAuth::Basic { username: "u".into(), password: "p".into() });
    assert_eq!(format!("{:?}", basic.cluster.auth), "Basic(u, ***)");
    let key = config(&[("ES_URL", "http://h"), ("ES_API_KEY", "a2V5")]).unwrap();
    assert_eq!(key.cluster.auth, EsAuth::ApiKey("a2V5".into()));
    assert_eq!(format!("{:?}", key.cluster.auth), "ApiKey(***)");
    assert_eq!(config(&[("ES_URL", "http://h"), ("ES_USERNAME", "u")]).unwrap_err().variable, "ES_PASSWORD");
    let both = [("ES_URL", "http://h"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p"), ("ES_API_KEY", "k")];
    assert_eq!(config(&both).unwrap_err().variable, "ES_AUTH");
}

#[test]
fn an_aws_endpoint_is_signed_with_its_region_and_service() {
    let domain = config(&[("ES_URL", "https://search-logs-abc123.eu-west-1.es.amazonaws.com")]).unwrap();
    assert_eq!(domain.cluster.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
    let serverless =
        config(&[("ES_URL", "https://abc123.us-east-1.aoss.amazonaws.com"), ("AWS_REGION", "us-east-1")]).unwrap();
    assert_eq!(serverless.cluster.auth, EsAuth::SigV4 { region: "us-east-1".into(), service: "aoss".into() });
    // A domain in another region than the function is signed with its own region.
    let cross_region =
        config(&[("ES_URL", "https://vpc-logs-abc123.eu-west-1.es.amazonaws.com"), ("AWS_REGION", "eu-central-1")])
            .unwrap();
    assert_eq!(cross_region.cluster.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
    let region_from_env =
        config(&[("ES_URL", "https://search-logs.es.amazonaws.com"), ("AWS_REGION", "eu-central-1")]).unwrap();
    assert_eq!(region_from_env.cluster.auth, EsAuth::SigV4 { region: "eu-central-1".into(), service: "es".into() });
    let explicit =
        config(&[("ES_URL", "http://127.0.0.1:9200"), ("ES_AUTH", "sigv4"), ("AWS_REGION", "eu-west-1")]).unwrap();
    assert_eq!(explicit.cluster.auth, EsAuth::SigV4 { region: "eu-west-1".into(), service: "es".into() });
}

#[test]
fn the_signing_region_is_read_from_every_aws_endpoint_form() {
    let cases = [
        ("search-logs-abc123def456.eu-west-1.es.amazonaws.com", Some("eu-west-1")),
        ("vpc-my-logs-2-abc123def456.us-gov-west-1.es.amazonaws.com", Some("us-gov-west-1")),
        ("abc123def456ghi.us-east-1.aoss.amazonaws.com", Some("us-east-1")),
        ("search-logs-abc.cn-north-1.es.amazonaws.com.cn", Some("cn-north-1")),
        ("search-logs-abc.ap-southeast-4.es.amazonaws.com", Some("ap-southeast-4")),
        ("search-foo.es.amazonaws.com", None),
        ("vpc-logs.es.amazonaws.com", None),
        ("logs.es.example.com", None),
        ("es.amazonaws.com", None),
        ("search-logs-abc.eu-west.es.amazonaws.com", None),
    ];
    for (host, region) in cases {
        assert_eq!(region_of(host).as_deref(), region, "{host}");
    }
    let refused = config(&[("ES_URL", "https://search-foo.es.amazonaws.com")]).unwrap_err();
    assert_eq!(refused.variable, "AWS_REGION", "no region is invented from the domain's name: {refused}");
}

#[test]
fn the_domain_arn_and_the_url_must_name_the_same_domain() {
    let url = ("ES_URL", "https://vpc-app-logs-abc123def456.eu-west-1.es.amazonaws.com");
    let same = ("ES_DOMAIN_ARN", "arn:aws:es:eu-west-1:123456789012:domain/app-logs");
    assert!(config(&[url, same]).is_ok());
    for (arn, says) in [
        (
            "arn:aws:es:eu-west-1:123456789012:domain/app-metrics",
            "names domain app-metrics in eu-west-1, but ES_URL is app-logs",
        ),
        ("arn:aws:es:us-east-1:123456789012:domain/app-logs", "in us-east-1, but ES_URL is app-logs in eu-west-1"),
        ("arn:aws:es:eu-west-1:123456789012:collection/abc", "expects arn:aws:es:REGION:ACCOUNT:domain/NAME"),
    ] {
        let error = config(&[url, ("ES_DOMAIN_ARN", arn)]).unwrap_err();
        assert!(error.variable == "ES_DOMAIN_ARN" && error.problem.contains(says), "{arn}: {error}");
    }
    let custom =
        config(&[("ES_URL", "https://logs.example.com"), same, ("ES_AUTH", "sigv4"), ("AWS_REGION", "eu-west-1")]);
    assert!(custom.is_ok(), "a custom endpoint names no domain to compare");
    let serverless = config(&[("ES_URL", "https://abc123.eu-west-1.aoss.amazonaws.com"), same]).unwrap_err();
    assert!(serverless.problem.contains("Serverless"), "{serverless}");
}

#[test]
fn a_url_with_credentials_is_refused_without_quoting_them() {
    let error =
        config(&[("ES_URL", "https://indexer:Hunter2-pw@search-logs-abc.eu-west-1.es.amazonaws.com")]).unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("Hunter2-pw") && !text.contains("indexer:"), "{text}");
    assert!(text.contains("https://***@search-logs-abc.eu-west-1.es.amazonaws.com"), "{text}");
    assert_eq!(redact_url("https://u:p@h:9200/prefix?token=t"), "https://***@h:9200/prefix?***");
    assert_eq!(redact_url("https://h/prefix"), "https://h/prefix");
    assert_eq!(redact_url("https://h"), "https://h", "quoted as given: no path added");
    assert_eq!(redact_url("https://u:p@h?t=1"), "https://***@h?***");
    assert_eq!(redact_url("https://user@h:9200/"), "https://***@h:9200/");
    assert_eq!(redact_url("user:Hunter2-pw@host:9200"), "(not shown: not a URL, and it may hold credentials)");
    assert_eq!(redact_url("localhost:9200"), "localhost:9200");
    let secret_pasted =
        config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", r#"{"username":"u","password":"Hunter2-pw"}"#)]);
    assert!(!secret_pasted.unwrap_err().to_string().contains("Hunter2-pw"));
}

#[test]
fn credentials_can_come_from_a_secret_and_only_from_there() {
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es-indexer-AbCdEf";
    assert_eq!(
        config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", arn)]).unwrap().cluster.auth,
        EsAuth::Secret { arn: arn.into() }
    );
    let with_user = [("ES_URL", "https://h"), ("ES_SECRET_ARN", arn), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")];
    assert_eq!(config(&with_user).unwrap_err().variable, "ES_SECRET_ARN");
    assert_eq!(
        config(&[("ES_URL", "https://h"), ("ES_SECRET_ARN", "my-secret")]).unwrap_err().variable,
        "ES_SECRET_ARN"
    );
    let sigv4 = [("ES_URL", "https://h"), ("ES_SECRET_ARN", arn), ("ES_AUTH", "sigv4")];
    assert_eq!(config(&sigv4).unwrap_err().variable, "ES_AUTH");
}

#[test]
fn auth_modes_refuse_what_they_would_ignore() {
    let error = config(&[("ES_URL", "http://h"), ("ES_AUTH", "sigv4")]).unwrap_err();
    assert_eq!(error.variable, "AWS_REGION");
    let error = config(&[("ES_URL", "http://h"), ("ES_AUTH", "none"), ("ES_API_KEY", "k")]).unwrap_err();
    assert_eq!(error.variable, "ES_AUTH");
    assert_eq!(config(&[("ES_URL", "http://h"), ("ES_AUTH", "kerberos")]).unwrap_err().variable, "ES_AUTH");
    assert_eq!(config(&[("ES_URL", "http://h"), ("ES_AUTH", "api-key")]).unwrap_err().variable, "ES_API_KEY");
    let bad_service = [("ES_URL", "http://h"), ("ES_AUTH", "sigv4"), ("AWS_REGION", "x-1"), ("ES_SIGV4_SERVICE", "s3")];
    assert_eq!(config(&bad_service).unwrap_err().variable, "ES_SIGV4_SERVICE");
    let basic_on_aws =
        [("ES_URL", "https://search-x.eu-west-1.es.amazonaws.com"), ("ES_USERNAME", "u"), ("ES_PASSWORD", "p")];
    assert!(
        matches!(config(&basic_on_aws).unwrap().cluster.auth, EsAuth::Basic { .. }),
        "fine-grained access control's basic auth"
    );
}

#[test]
fn document_ids_come_from_kinesis_nowhere_or_a_field() {
    let mode = |value: &str| config(&[("ES_URL", "http://h"), ("ES_DOC_ID", value)]).map(|c| c.documents.doc_id);
    assert_eq!(config(&[("ES_URL", "http://h")]).unwrap().documents.doc_id, DocIdMode::Kinesis);
    assert_eq!(mode("none").unwrap(), DocIdMode::None);
    assert_eq!(mode("field:order.id").unwrap(), DocIdMode::Field("order.id".into()));
    for bad in ["field:", "field:a..b", "random", "None"] {
        assert_eq!(mode(bad).unwrap_err().variable, "ES_DOC_ID", "{bad}");
    }
}

#[test]
fn timestamp_skew_is_bounded_in_seconds() {
    let skew = |value: &str| config(&[("ES_URL", "http://h"), ("TIMESTAMP_MAX_SKEW_SECONDS", value)]);
    assert_eq!(
        config(&[("ES_URL", "http://h")]).unwrap().documents.timestamp_max_skew,
        Duration::from_secs(7 * 86_400),
        "a week by default, as docs/configuration.md says"
    );
    assert_eq!(skew("3600").unwrap().documents.timestamp_max_skew, Duration::from_secs(3600));
    assert_eq!(skew("5").unwrap_err().variable, "TIMESTAMP_MAX_SKEW_SECONDS");
}

#[test]
fn a_pipeline_id_must_be_safe_in_a_url() {
    let config_with = |id: &str| config(&[("ES_URL", "http://h"), ("ES_PIPELINE", id)]);
    assert_eq!(config_with("logs-enrich_v2").unwrap().cluster.pipeline.as_deref(), Some("logs-enrich_v2"));
    assert_eq!(config_with("a&b=c").unwrap_err().variable, "ES_PIPELINE");
    assert_eq!(config(&[("ES_URL", "http://h")]).unwrap().cluster.pipeline, None);
}

#[test]
fn a_bad_index_pattern_names_es_index() {
    for bad in ["Logs-%Y", "logs-{service}", "logs-{log_group|Other}"] {
        let error = config(&[("ES_URL", "http://h"), ("ES_INDEX", bad)]).unwrap_err();
        assert_eq!(error.variable, "ES_INDEX", "{bad}");
    }
    let routed = config(&[("ES_URL", "http://h"), ("ES_INDEX", "logs-{field:service.name}-default")]).unwrap();
    assert_eq!(routed.cluster.index.as_str(), "logs-{field:service.name}-default");
}

#[test]
fn a_record_may_inflate_to_anything_from_a_kib_to_a_gib() {
    let cap = |bytes: &str| {
        config(&[("ES_URL", "http://h"), ("MAX_RECORD_BYTES", bytes)]).map(|config| config.documents.max_record_bytes)
    };
    assert_eq!(cap("1024").unwrap(), 1024, "1 KiB, the least");
    assert_eq!(cap("1049601").unwrap(), 1_049_601, "1 MiB + 1 KiB + 1");
    assert_eq!(cap("1073741824").unwrap(), 1_073_741_824, "1 GiB, the most");
    assert_eq!(
        cap("1073741825").unwrap_err().to_string(),
        "MAX_RECORD_BYTES: expects a whole number from 1024 to 1073741824, got 1073741825"
    );
    assert_eq!(cap("1023").unwrap_err().variable, "MAX_RECORD_BYTES");
}
