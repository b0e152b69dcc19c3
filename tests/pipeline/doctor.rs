//! The doctor against the doubles: a healthy stack (Elasticsearch's security, OpenSearch's) reported healthy and
//! left as it was, and each fault on its own named by the check it belongs to, with its fix; then the `doctor`
//! binary, here and through the deployed function.

use std::process::Command;

use chrono::Utc;
use kinesis_es_indexer::doctor::{self, Check, DoctorReport, Status};
use serde_json::{Value, json};
use testkit::{Blackhole, EsDouble, FirehoseDouble, Flavour, LambdaApiDouble, Principal};

use crate::auth::{credentials, signed_harness};
use crate::binary::start_function;
use crate::support::*;
use crate::tls::TempPem;

const USER: &str = "indexer";
const PASSWORD: &str = "correct-horse";
const FIREHOSE_ROLE: &str = "arn:aws:iam::123456789012:role/stack-FirehoseRole-1A2B3C";

/// The project's Firehose pipeline, as its file holds it.
fn project_pipeline() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/firehose-pipeline.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the project's pipeline")).expect("JSON")
}

/// Today's index for `logs-%Y.%m.%d`, as the test reads the clock.
fn today() -> String {
    Utc::now().format("logs-%Y.%m.%d").to_string()
}

/// Yesterday's, as the pattern made it.
fn yesterday() -> String {
    (Utc::now() - chrono::Duration::days(1)).format("logs-%Y.%m.%d").to_string()
}

/// The index Firehose writes to in these stacks, and the project's template for it, as `make firehose-pipeline
/// FIREHOSE_INDEX_NAME=logs-firehose` puts it.
const FIREHOSE_INDEX: &str = "logs-firehose";

fn firehose_template(pattern: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/firehose-index-template.json");
    let mut template: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the template")).expect("JSON");
    template["index_patterns"] = json!([pattern]);
    template
}

/// A stack as its operator would have set it up: the cluster over TLS (its CA given), a user with a password,
/// the project's pipeline installed, a Firehose stream ACTIVE and delivering to the same cluster.
struct Stack {
    es: EsDouble,
    firehose: FirehoseDouble,
    ca: TempPem,
    settings: Vec<(String, String)>,
}

impl Stack {
    async fn healthy(flavour: Flavour) -> Stack {
        Stack::healthy_at(EsDouble::start_tls().await, flavour, Some(project_pipeline())).await
    }

    /// The stack on `es`, with `pipeline` installed as the Firehose tier's.
    async fn healthy_at(es: EsDouble, flavour: Flavour, pipeline: Option<Value>) -> Stack {
        let mut principal = Principal::allowed(flavour);
        principal.username = USER.to_owned();
        principal.role_mappings = Some(json!({
            "logs_writer": {"backend_roles": [FIREHOSE_ROLE], "users": [USER], "hosts": [], "reserved": false}
        }));
        es.set_principal(Some(principal));
        es.require_basic_auth(Some((USER, PASSWORD)));
        if let Some(pipeline) = pipeline {
            es.install_pipeline("kinesis-es-indexer-firehose", &pipeline).expect("a pipeline");
            let template = firehose_template(&format!("{FIREHOSE_INDEX}*"));
            es.put_index_template("kinesis-es-indexer-firehose", &template).expect("a template");
        }
        let ca = TempPem::new(&es.ca_pem().expect("TLS"));
        // By name, so that the name is resolved and the certificate checked for it.
        let url = es.url().replace("127.0.0.1", "localhost");
        let firehose = FirehoseDouble::start().await;
        firehose.set_streams(&[STREAM]);
        let kind = match flavour {
            Flavour::Elasticsearch => "ElasticsearchDestinationDescription",
            Flavour::OpenSearch => "AmazonopensearchserviceDestinationDescription",
        };
        firehose.describe_stream(
            STREAM,
            "ACTIVE",
            json!({ kind: {"RoleARN": FIREHOSE_ROLE, "ClusterEndpoint": url, "IndexName": FIREHOSE_INDEX} }),
        );
        let settings = vec![
            ("ES_URL".to_owned(), url),
            ("ES_USERNAME".to_owned(), USER.to_owned()),
            ("ES_PASSWORD".to_owned(), PASSWORD.to_owned()),
            ("ES_CA_CERT".to_owned(), ca.0.to_string_lossy().into_owned()),
            ("ES_TIMEOUT_MS".to_owned(), "2000".to_owned()),
        ];
        Stack { es, firehose, ca, settings }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.settings.retain(|(key, _)| key != name);
        self.settings.push((name.to_owned(), value.to_owned()));
    }

    fn principal(&self, change: impl FnOnce(&mut Principal), flavour: Flavour) {
        let mut principal = Principal::allowed(flavour);
        principal.username = USER.to_owned();
        change(&mut principal);
        self.es.set_principal(Some(principal));
    }

    /// The principal of `flavour` with only these index privileges.
    fn privileges(&self, flavour: Flavour, privileges: &[&str]) {
        self.principal(|p| p.privileges = privileges.iter().map(|p| (*p).to_owned()).collect(), flavour);
    }

    async fn examine(&self) -> DoctorReport {
        let pairs: Vec<(&str, &str)> = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        examine(&deps(&self.es, Some(&self.firehose), &pairs)).await
    }
}

/// The doctor's report on `deps`, with 30 s for all its requests.
async fn examine(deps: &kinesis_es_indexer::Deps) -> DoctorReport {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    doctor::examine(deps, doctor::Budget { deadline, per_request: deps.config.cluster.timeout }).await
}

/// The check of that name (the first, when there are several).
fn check<'a>(report: &'a DoctorReport, name: &str) -> &'a Check {
    report.checks.iter().find(|check| check.check == name).unwrap_or_else(|| panic!("no {name} check: {report:#?}"))
}

/// Asserts that `name` failed with `found` and `fix` in its words, that no check before it failed, and returns the
/// report's lines for a closer look.
fn failed_at(report: &DoctorReport, name: &str, found: &[&str], fix: &[&str]) -> String {
    let lines = report.lines();
    if std::env::var_os("SHOW_DOCTOR").is_some() {
        eprintln!("----- {name}\n{lines}");
    }
    assert!(!report.healthy, "{lines}");
    let first = report.checks.iter().find(|check| check.status == Status::Fail).expect("a failure");
    assert_eq!(first.check, name, "the first failure is the fault's own check:\n{lines}");
    for words in found {
        assert!(first.found.contains(words), "{name}'s finding names {words:?}:\n{lines}");
    }
    let said_fix = first.fix.as_deref().unwrap_or_default();
    for words in fix {
        assert!(said_fix.contains(words), "{name}'s fix names {words:?}:\n{lines}");
    }
    lines
}

fn statuses(report: &DoctorReport) -> Vec<(&str, Status)> {
    report.checks.iter().map(|check| (check.check.as_str(), check.status)).collect()
}

#[tokio::test]
async fn a_healthy_elasticsearch_stack_is_reported_healthy_and_left_as_it_was() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    let report = stack.examine().await;
    let lines = report.lines();
    assert!(report.healthy, "{lines}");
    use Status::*;
    assert_eq!(
        statuses(&report),
        vec![
            ("configuration", Ok),
            ("dns", Ok),
            ("tcp", Ok),
            ("tls", Ok),
            ("authentication", Ok),
            ("permissions", Ok),
            ("pipeline", Ok),
            ("index", Ok),
            ("firehose", Ok),
            // Elasticsearch's security maps no AWS roles.
            ("firehose role", Skipped),
        ],
        "{lines}"
    );
    assert!(check(&report, "dns").found.contains("localhost resolves to"), "{lines}");
    assert!(
        check(&report, "authentication").found.contains(&format!("{USER} (realm default_native, roles [logs_writer])")),
        "{lines}"
    );
    assert!(check(&report, "index").found.contains(&today()), "{lines}");
    assert!(check(&report, "firehose").found.contains(STREAM), "{lines}");
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 0), "the doctor leaves nothing in the cluster");
    assert!(stack.firehose.records().is_empty(), "nor in Firehose");
}

#[tokio::test]
async fn a_healthy_opensearch_stack_is_reported_healthy_and_left_as_it_was() {
    use Status::*;
    // Today's index exists: the write permission is asked with a write that cannot happen.
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.create_index(&today());
    let report = stack.examine().await;
    let lines = report.lines();
    assert!(report.healthy, "{lines}");
    assert!(statuses(&report).iter().all(|(_, status)| *status == Ok), "{lines}");
    assert!(check(&report, "permissions").found.contains("may write documents"), "{lines}");
    assert!(check(&report, "firehose role").found.contains("logs_writer"), "{lines}");
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 1), "no document, no other index");

    // A new stack, no index yet: the write would create one, so only the creation is asked, nothing is made, and
    // the write permission is said to be unknown.
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    let report = stack.examine().await;
    let lines = report.lines();
    assert!(report.healthy, "{lines}");
    let permissions = check(&report, "permissions");
    assert_eq!(permissions.status, Status::Warn, "{lines}");
    assert!(permissions.found.contains("may create") && permissions.found.contains("not known"), "{lines}");
    assert!(check(&report, "index").found.contains("does not exist yet"), "{lines}");
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 0), "nothing created");
}

#[tokio::test]
async fn a_role_that_may_write_but_not_ask_is_told_to_deploy_the_doctors_permissions_not_failed() {
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.set_iam_refuses_gets(true);
    let report = stack.examine().await;
    let lines = report.lines();
    assert!(report.healthy, "nothing says records are not indexed:\n{lines}");
    let asked = check(&report, "authentication");
    assert_eq!(asked.status, Status::Warn, "{lines}");
    assert!(asked.found.contains("es:ESHttpGet") && asked.fix.as_deref().unwrap_or_default().contains("deploy"));
    assert_eq!(check(&report, "permissions").status, Status::Skipped, "{lines}");
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 0));
}

#[tokio::test]
async fn a_wrong_password_is_named_and_nothing_more_is_asked() {
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.set("ES_PASSWORD", "Tr0ub4dor&3");
    let report = stack.examine().await;
    let lines = failed_at(&report, "authentication", &["401", "security_exception", USER], &[USER, "password"]);
    for later in ["permissions", "pipeline", "index"] {
        assert_eq!(check(&report, later).status, Status::Skipped, "{lines}");
    }

    // OpenSearch's security plugin answers in plain text.
    let mut stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.set("ES_PASSWORD", "Tr0ub4dor&3");
    let report = stack.examine().await;
    failed_at(&report, "authentication", &["401: Unauthorized"], &[USER, "password"]);
}

#[tokio::test]
async fn a_domain_without_fine_grained_access_control_is_asked_with_the_function_s_signature() {
    let accepted = [("ASIADOCTOR", "doctor-secret", Some("doctor-token"))];
    let signing = vec![credentials("ASIADOCTOR", "doctor-secret", Some("doctor-token"))];
    let Some((h, _)) = signed_harness(&accepted, signing, &[], "").await else { return };
    let report = examine(&h.deps).await;
    let authentication = check(&report, "authentication");
    assert_eq!(authentication.status, Status::Ok, "{}", report.lines());
    assert!(authentication.found.contains("access policy admitted the signed requests"), "{}", report.lines());

    // Signed with a secret the domain does not know: Amazon's 403, before any security plugin.
    let signing = vec![credentials("ASIADOCTOR", "another-secret", Some("doctor-token"))];
    let Some((h, _)) = signed_harness(&accepted, signing, &[], "").await else { return };
    let report = examine(&h.deps).await;
    failed_at(&report, "authentication", &["403"], &["access policy", "FunctionRoleArn"]);
}

#[tokio::test]
async fn what_opensearch_cannot_be_asked_without_writing_is_said_not_guessed() {
    // An access policy without es:ESHttpPut: the creation probe is not asked, and nothing is made.
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.create_index(&yesterday());
    stack.es.set_iam_refuses_puts(true);
    let report = stack.examine().await;
    let permissions = check(&report, "permissions");
    assert_eq!(permissions.status, Status::Warn, "{}", report.lines());
    assert!(permissions.found.contains("creation not asked: the access policy refuses the doctor's PUT"));
    assert!(permissions.found.contains(&format!("a write to {} that could not happen", yesterday())));
    assert_eq!(stack.es.index_count(), 1);

    // A data stream takes only create, which cannot be conditional: its write is not probed.
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.add_data_stream(&today());
    let report = stack.examine().await;
    assert!(check(&report, "permissions").found.contains("writing to a data stream shows with the first batch"));
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 0));
}

#[tokio::test]
async fn a_rolling_pattern_needs_to_create_tomorrow_s_index_though_today_s_exists() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.es.create_index(&today());
    stack.privileges(Flavour::Elasticsearch, &["write"]);
    let report = stack.examine().await;
    failed_at(&report, "permissions", &["auto_configure or create_index", "a new day's index"], &["auto_configure"]);
}

#[tokio::test]
async fn a_security_plugin_not_ready_is_not_taken_for_a_cluster_without_security() {
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.set_security_unavailable(true);
    let report = stack.examine().await;
    failed_at(&report, "authentication", &["503", "OpenSearch Security not initialized"], &["health"]);
}

#[tokio::test]
async fn a_user_refused_bulk_writes_is_named_with_the_privilege_to_grant() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.privileges(Flavour::Elasticsearch, &["auto_configure"]);
    let report = stack.examine().await;
    failed_at(&report, "permissions", &[USER, &today(), "create_doc"], &["create_doc", "logs-*"]);

    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.create_index(&today());
    stack.privileges(Flavour::OpenSearch, &["create_index"]);
    let report = stack.examine().await;
    failed_at(
        &report,
        "permissions",
        &["may not write", "indices:data/write/bulk[s]"],
        &["indices:data/write/bulk", "logs-*"],
    );
    assert_eq!(stack.es.count(), 0);

    // A new day, today's index not made yet: the write is probed on yesterday's, which exists.
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.create_index(&yesterday());
    let report = stack.examine().await;
    let found = &check(&report, "permissions").found;
    assert!(report.healthy && found.contains(&format!("a write to {} that could not happen", yesterday())), "{found}");
    stack.privileges(Flavour::OpenSearch, &["create_index"]);
    let report = stack.examine().await;
    failed_at(&report, "permissions", &["may not write documents to", &yesterday()], &["make role-mapping"]);
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 1), "nothing written, today's index not made");
}

#[tokio::test]
async fn a_user_refused_index_creation_or_mapping_updates_is_named_with_the_privilege_to_grant() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.privileges(Flavour::Elasticsearch, &["write"]);
    let report = stack.examine().await;
    failed_at(&report, "permissions", &["auto_configure or create_index"], &["auto_configure", "logs-*"]);

    // Since 8.0, create_doc no longer grants the mapping updates a new field brings.
    stack.privileges(Flavour::Elasticsearch, &["create_doc", "create_index"]);
    let report = stack.examine().await;
    failed_at(&report, "permissions", &["auto_configure or write", "new field"], &["auto_configure"]);

    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.privileges(Flavour::OpenSearch, &["write"]);
    let report = stack.examine().await;
    failed_at(
        &report,
        "permissions",
        &["may not create", "indices:admin/create"],
        &["create indices", "make role-mapping"],
    );
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 0), "the refused probes made nothing");
}

#[tokio::test]
async fn a_fixed_index_that_exists_needs_no_permission_to_create_it() {
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.set("ES_INDEX", "app-logs");
    stack.es.create_index("app-logs");
    stack.privileges(Flavour::Elasticsearch, &["write"]);
    let report = stack.examine().await;
    assert!(report.healthy, "{}", report.lines());
    assert!(check(&report, "permissions").found.contains("may write documents to app-logs and add fields"));
}

#[tokio::test]
async fn the_opensearch_probes_leave_neither_a_document_nor_a_field() {
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.es.create_index(&today());
    stack.es.map_field(&today(), "message", "text");
    let before = stack.es.mapping(&today());
    let report = stack.examine().await;
    assert!(report.healthy, "{}", report.lines());
    assert_eq!(stack.es.mapping(&today()), before, "the conditional write added no field");
    assert_eq!((stack.es.count(), stack.es.index_count()), (0, 1));
}

#[tokio::test]
async fn a_missing_or_different_firehose_pipeline_is_named_with_the_command_that_installs_it() {
    let mut different = project_pipeline();
    different["processors"].as_array_mut().expect("processors").pop();
    let stack = Stack::healthy_at(EsDouble::start_tls().await, Flavour::Elasticsearch, Some(different)).await;
    let report = stack.examine().await;
    failed_at(&report, "pipeline", &["differ"], &["make firehose-pipeline REMOTE=1"]);

    let stack = Stack::healthy_at(EsDouble::start_tls().await, Flavour::Elasticsearch, None).await;
    let report = stack.examine().await;
    failed_at(&report, "pipeline", &["not installed", "written twice"], &["make firehose-pipeline REMOTE=1"]);
}

#[tokio::test]
async fn firehose_deliveries_that_would_skip_the_pipeline_are_named() {
    // The pipeline without the template that sends Firehose's index through it.
    let es = EsDouble::start_tls().await;
    es.install_pipeline("kinesis-es-indexer-firehose", &project_pipeline()).expect("a pipeline");
    let stack = Stack::healthy_at(es, Flavour::Elasticsearch, None).await;
    let report = stack.examine().await;
    failed_at(&report, "pipeline", &["no index template", "new _ids"], &["make firehose-pipeline REMOTE=1"]);

    // A template for another index than the stream's.
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack
        .es
        .put_index_template("kinesis-es-indexer-firehose", &firehose_template("kinesis-es-indexer-firehose*"))
        .unwrap();
    let report = stack.examine().await;
    failed_at(
        &report,
        "firehose",
        &["covers [kinesis-es-indexer-firehose*], not logs-firehose", "skip the pipeline"],
        &["FIREHOSE_INDEX_NAME=logs-firehose"],
    );
}

#[tokio::test]
async fn a_data_stream_behind_the_firehose_tier_is_named() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.es.add_data_stream(&today());
    let report = stack.examine().await;
    failed_at(&report, "index", &["data stream", "takes only create"], &["DeliveryStreamName=none"]);

    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.es.add_data_stream(&today());
    stack.set("FIREHOSE_STREAM_NAME", "");
    let pairs: Vec<(&str, &str)> = stack.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let without_firehose = deps(&stack.es, None, &pairs);
    let report = examine(&without_firehose).await;
    assert!(report.healthy, "{}", report.lines());
    assert!(check(&report, "index").found.contains("a data stream: documents are created in its write index"));
}

#[tokio::test]
async fn a_template_that_names_another_pipeline_or_an_exact_index_is_read_as_it_is() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    let mut elsewhere = firehose_template(&format!("{FIREHOSE_INDEX}*"));
    elsewhere["template"]["settings"]["index.default_pipeline"] = json!("someone-elses");
    stack.es.put_index_template("kinesis-es-indexer-firehose", &elsewhere).unwrap();
    let report = stack.examine().await;
    failed_at(&report, "pipeline", &["names someone-elses as the default pipeline"], &["make firehose-pipeline"]);

    // A pattern that is the stream's index itself, without a wildcard, covers it.
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.es.put_index_template("kinesis-es-indexer-firehose", &firehose_template(FIREHOSE_INDEX)).unwrap();
    let report = stack.examine().await;
    assert!(report.healthy, "{}", report.lines());
}

#[tokio::test]
async fn a_role_that_may_not_describe_its_stream_is_told_to_deploy() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.firehose.set_describe_refused(true);
    let report = stack.examine().await;
    let firehose = check(&report, "firehose");
    assert_eq!(firehose.status, Status::Warn, "{}", report.lines());
    assert!(firehose.found.contains("may not describe its stream") && firehose.found.contains("AccessDenied"));
    assert!(firehose.fix.as_deref().unwrap_or_default().contains("firehose:DescribeDeliveryStream"));
}

#[tokio::test]
async fn a_missing_firehose_stream_is_named() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.firehose.set_streams(&["another-stream"]);
    let report = stack.examine().await;
    failed_at(&report, "firehose", &["does not exist", STREAM, "not found"], &["DeliveryStreamName=none"]);
}

#[tokio::test]
async fn a_stream_delivering_to_another_cluster_or_an_unmapped_role_is_named() {
    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.firehose.describe_stream(
        STREAM,
        "ACTIVE",
        json!({"AmazonopensearchserviceDestinationDescription": {"RoleARN": FIREHOSE_ROLE, "ClusterEndpoint": "https://elsewhere.example.com", "IndexName": "x"}}),
    );
    let report = stack.examine().await;
    failed_at(&report, "firehose", &["elsewhere.example.com", "another cluster"], &["point the stream"]);

    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.principal(
        |p| p.role_mappings = Some(json!({"logs_writer": {"backend_roles": [], "users": [USER]}})),
        Flavour::OpenSearch,
    );
    let report = stack.examine().await;
    failed_at(&report, "firehose role", &[FIREHOSE_ROLE, "no role mapping"], &["make role-mapping"]);

    let stack = Stack::healthy(Flavour::OpenSearch).await;
    stack.principal(|p| p.role_mappings = None, Flavour::OpenSearch);
    let report = stack.examine().await;
    assert!(report.healthy, "{}", report.lines());
    let unread = check(&report, "firehose role");
    assert_eq!(unread.status, Status::Skipped, "{}", report.lines());
    assert!(unread.found.contains("may not read role mappings") && unread.found.contains("make role-mapping"));
}

#[tokio::test]
async fn a_certificate_for_another_name_is_shown_with_its_names_and_issuer() {
    let es = EsDouble::start_tls_for(&["search-logs.example.com"]).await;
    let stack = Stack::healthy_at(es, Flavour::Elasticsearch, Some(project_pipeline())).await;
    let report = stack.examine().await;
    let lines = failed_at(
        &report,
        "tls",
        &["search-logs.example.com", "issued by", "not valid for name"],
        &["search-logs.example.com"],
    );
    assert_eq!(check(&report, "authentication").status, Status::Skipped, "{lines}");
    drop(stack.ca);
}

#[tokio::test]
async fn a_vpc_endpoint_that_does_not_answer_is_named_with_the_security_group_to_open() {
    let blackhole = Blackhole::start().await.expect("a port whose accept queue is full");
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.set("ES_URL", &blackhole.url());
    stack.set("ES_TIMEOUT_MS", "300");
    let report = stack.examine().await;
    let lines = failed_at(&report, "tcp", &["did not answer within 300 ms"], &["security group", "VpcSubnetIds"]);
    assert_eq!(check(&report, "tls").status, Status::Skipped, "{lines}");
    assert_eq!(check(&report, "dns").status, Status::Ok, "{lines}");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_named() {
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.set("ES_URL", "https://vpc-logs-abc123.eu-west-1.es.invalid");
    let report = stack.examine().await;
    let lines = failed_at(&report, "dns", &["vpc-logs-abc123.eu-west-1.es.invalid", "does not resolve"], &["VPC"]);
    assert_eq!(check(&report, "tcp").status, Status::Skipped, "{lines}");
    assert_eq!(check(&report, "tls").status, Status::Skipped, "{lines}");

    // Over plain HTTP there is no TLS to skip.
    stack.set("ES_URL", "http://vpc-logs-abc123.eu-west-1.es.invalid");
    let report = stack.examine().await;
    let lines = failed_at(&report, "dns", &["does not resolve"], &["VPC"]);
    assert_eq!(check(&report, "tcp").status, Status::Skipped, "{lines}");
    assert!(!report.checks.iter().any(|check| check.check == "tls"), "{lines}");
}

#[tokio::test]
async fn a_port_nothing_listens_on_is_told_from_one_that_does_not_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.set("ES_URL", &format!("https://{closed}"));
    let report = stack.examine().await;
    failed_at(&report, "tcp", &["refused the connection", "nothing listens"], &["check the port in ES_URL"]);
}

#[tokio::test]
async fn an_expired_certificate_is_shown_with_its_dates() {
    let stack = Stack::healthy_at(EsDouble::start_tls_expired().await, Flavour::Elasticsearch, None).await;
    let report = stack.examine().await;
    failed_at(&report, "tls", &["Jan  1 00:00:00 2021", "expired"], &["renew the cluster's certificate"]);
}

#[tokio::test]
async fn a_certificate_from_an_issuer_not_trusted_is_shown_with_the_issuer_to_trust() {
    let mut stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.settings.retain(|(name, _)| name != "ES_CA_CERT");
    let report = stack.examine().await;
    failed_at(
        &report,
        "tls",
        &["127.0.0.1, localhost, ::1", "issued by CN=rcgen self signed cert"],
        &["trust the issuer CN=rcgen self signed cert", "EsCaCert"],
    );
}

#[tokio::test]
async fn an_alias_without_a_write_index_is_named() {
    let stack = Stack::healthy(Flavour::Elasticsearch).await;
    stack.es.add_alias_without_write_index(&today());
    let report = stack.examine().await;
    failed_at(&report, "index", &[&today(), "no write index"], &["is_write_index"]);
}

/// The `doctor` binary with `args`, the environment cleared but for `env`; its exit code and standard output.
async fn run_doctor(args: &[&str], env: Vec<(String, String)>) -> (Option<i32>, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_doctor")).env_clear().envs(env).args(args).output().expect("doctor runs")
    })
    .await
    .expect("joined");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!stdout.is_empty(), "the doctor printed nothing; stderr: {stderr}");
    (output.status.code(), stdout)
}

#[tokio::test]
async fn the_doctor_binary_exits_by_its_verdict_and_names_an_invalid_index_pattern() {
    let es = EsDouble::start().await;
    let env = |index: &str| vec![("ES_URL".to_owned(), es.url()), ("ES_INDEX".to_owned(), index.to_owned())];

    let (code, printed) = run_doctor(&[], env("logs-%Y.%m.%d")).await;
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("ok    index: ES_INDEX logs-%Y.%m.%d makes"), "{printed}");
    assert!(printed.ends_with("healthy: nothing above stops records from being indexed\n"), "{printed}");

    // A name with capitals is refused by every cluster: the cold start refuses it, and the doctor says so.
    let (code, printed) = run_doctor(&["--json"], env("Logs-%Y.%m.%d")).await;
    assert_eq!(code, Some(1), "{printed}");
    let report: DoctorReport = serde_json::from_str(&printed).expect("--json prints the report");
    let configuration = check(&report, "configuration");
    assert_eq!(configuration.status, Status::Fail);
    assert!(configuration.found.contains("ES_INDEX") && configuration.found.contains("uppercase"), "{printed}");
    assert_eq!(es.index_count(), 0);

    let (code, _) = tokio::task::spawn_blocking(|| {
        let output = Command::new(env!("CARGO_BIN_EXE_doctor")).arg("--frobnicate").output().expect("runs");
        (output.status.code(), ())
    })
    .await
    .expect("joined");
    assert_eq!(code, Some(2), "an unknown argument is the doctor's own failure");
}

#[tokio::test]
async fn the_doctor_runs_through_the_deployed_function_and_reads_its_event_source_mapping() {
    let es = EsDouble::start().await;
    let firehose = FirehoseDouble::start().await;
    firehose.set_streams(&[STREAM]);
    firehose.describe_stream(
        STREAM,
        "ACTIVE",
        json!({"ElasticsearchDestinationDescription": {"RoleARN": FIREHOSE_ROLE, "ClusterEndpoint": es.url()}}),
    );
    es.install_pipeline("kinesis-es-indexer-firehose", &project_pipeline()).expect("a pipeline");
    let api = LambdaApiDouble::start().await;
    let aws = [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "eu-west-1")];
    let mut function_env = vec![
        ("ES_URL", es.url()),
        ("FIREHOSE_STREAM_NAME", STREAM.to_owned()),
        ("AWS_ENDPOINT_URL_FIREHOSE", firehose.url()),
    ];
    function_env.extend(aws.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let pairs: Vec<(&str, &str)> = function_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _function = start_function(&api, &pairs);
    let mapping = |state: &str| {
        json!({
            "UUID": "a1b2c3d4-5678-90ab-cdef-11111EXAMPLE",
            "EventSourceArn": STREAM_ARN,
            "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:kinesis-es-indexer",
            "State": state,
            "StateTransitionReason": "User action",
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": true,
            "MaximumRetryAttempts": -1,
            "MaximumRecordAgeInSeconds": 64800,
            "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:s3:::stack-failedbatchesbucket"}},
            "LastProcessingResult": "OK"
        })
    };
    let operator_env = || {
        let mut env: Vec<(String, String)> = aws.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        env.push(("AWS_ENDPOINT_URL_LAMBDA".to_owned(), api.invoke_url()));
        env
    };

    // Another function's kind of source, listed first: only Kinesis mappings are this function's to judge, and
    // the Kinesis one is on the second page.
    let queue = json!({
        "UUID": "b2c3d4e5-6789-01ab-cdef-22222EXAMPLE",
        "EventSourceArn": "arn:aws:sqs:eu-west-1:123456789012:replays",
        "State": "Disabled",
        "LastProcessingResult": "PROBLEM: Function call failed"
    });
    api.set_event_source_mappings(vec![queue.clone(), mapping("Enabled")]);

    // Without the template that sends Firehose's index through the pipeline: the fix is the command for this
    // function and the stack's default Firehose index (the stream names none).
    let (code, printed) = run_doctor(&["--function", "kinesis-es-indexer"], operator_env()).await;
    assert_eq!(code, Some(1), "{printed}");
    let fix =
        "make firehose-pipeline REMOTE=1 FUNCTION=kinesis-es-indexer FIREHOSE_INDEX_NAME=kinesis-es-indexer-firehose";
    assert!(printed.contains(fix), "{printed}");
    es.put_index_template("kinesis-es-indexer-firehose", &firehose_template("kinesis-es-indexer-firehose*")).unwrap();
    let (code, printed) = run_doctor(&["--function", "kinesis-es-indexer", "--json"], operator_env()).await;
    let report: DoctorReport = serde_json::from_str(&printed).expect("a report");
    assert_eq!(code, Some(0), "{}", report.lines());
    let names: Vec<&str> = report.checks.iter().map(|check| check.check.as_str()).collect();
    assert_eq!(names.first(), Some(&"configuration"));
    assert_eq!(names.last(), Some(&"event source mapping"));
    assert!(check(&report, "firehose").found.contains(STREAM), "{}", report.lines());
    assert!(check(&report, "event source mapping").found.contains("app-logs: Enabled"), "{}", report.lines());

    api.set_event_source_mappings(vec![queue, mapping("Disabled")]);
    let (code, printed) = run_doctor(&["--function", "kinesis-es-indexer"], operator_env()).await;
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("FAIL  event source mapping: the mapping of app-logs is Disabled"), "{printed}");
    assert!(printed.contains("EventSourceMappingEnabled=true"), "{printed}");
    assert_eq!((es.count(), es.index_count()), (0, 0));
}
