# kinesis-es-indexer: `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help run test soak bench fleet fuzz lint build invoke deploy package events clean firehose-pipeline index-template replay

EVENT ?= events/kinesis.json
# The function's architecture, for make build and make deploy alike; the template's Architecture defaults to the same.
ARCH ?= x86_64

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Run the indexer end to end on EVENT (default events/kinesis.json) against the local doubles and moto's Firehose; RELEASE=1 for an optimised build
	python3 scripts/run_local.py $(if $(RELEASE),--release) $(EVENT)

test: ## Unit, integration, soak and property tests; template.yaml checks; sample events; a local run without Firehose
	python3 events/generate.py --check
	python3 -c "import cfnlint, samtranslator" 2> /dev/null || python3 -m pip install --quiet cfn-lint aws-sam-translator
	python3 -c "import moto.server, boto3, botocore, flask_cors" 2> /dev/null || python3 -m pip install --quiet "moto[server]>=5,<6" boto3 botocore
	REQUIRE_PYTHON_TOOLS=1 cargo test --workspace
	python3 -m unittest discover -s tests -p '*_test.py'
	cargo run --quiet --example run_local -- events/malformed.json > /dev/null
	cargo run --quiet --example run_local -- events/preprocessing.json | grep -q "documents_filtered\|skipped: 1"
	cargo run --quiet --example run_local -- tests/fixtures/kpl_aggregates.json 2>&1 | grep -q "is not a Kinesis event"
	BENCH_SMALL=1 BENCH_RUNS=1 cargo test --quiet --bench bench > /dev/null

SOAK_SEEDS ?= 3000
SOAK_RECORDS ?= 100
soak: ## Redelivery under random faults: SOAK_SEEDS (3000) seeds x 3 batches x SOAK_RECORDS (100); SOAK_FIRST_SEED replays one
	SOAK_SEEDS=$(SOAK_SEEDS) SOAK_RECORDS=$(SOAK_RECORDS) cargo test --release --test pipeline soak -- --nocapture

bench: ## CPU per record (and × an empty handler's), wall, peak RSS, bytes, cold start of the release bootstrap per batch kind (BENCH_RUNS=5, BENCH_KINDS=all)
	cargo bench --bench bench

fleet: ## 8 instances draining 40 batches each into a 2+2 write pool, adaptive against fixed concurrency: parked share, items per document, drain time; FLEET_SPELL_MS adds a busy spell (FLEET_SHARDS, FLEET_BATCHES, FLEET_POLL_MS, FLEET_SERVICE_MS, FLEET_PER_ITEM_US shape it; FLEET_SETTINGS=NAME=value,… sets the function's variables)
	cargo test --release --test fleet -- --nocapture

FUZZ_SECONDS ?= 120
fuzz: ## Fuzz record decoding with cargo-fuzz for FUZZ_SECONDS (120); installs cargo-fuzz, runs on stable via RUSTC_BOOTSTRAP
	command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
	python3 fuzz/seed_corpus.py
	RUSTC_BOOTSTRAP=1 cargo fuzz run decode_record fuzz/corpus/decode_record fuzz/regressions/decode_record -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

lint: ## rustfmt and clippy, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

build: ## Build target/lambda/bootstrap/bootstrap with cargo-lambda for ARCH (x86_64; arm64 needs the aarch64 target and zig)
	command -v cargo-lambda > /dev/null || python3 -m pip install --quiet cargo-lambda
ifeq ($(ARCH),arm64)
	python3 -c "import ziglang" 2> /dev/null || python3 -m pip install --quiet ziglang
	cargo lambda build --release --bin bootstrap --arm64
else
	cargo lambda build --release --bin bootstrap --x86-64 --compiler cargo
	python3 scripts/check_glibc.py target/lambda/bootstrap/bootstrap
endif
	python3 scripts/check_architecture.py target/lambda/bootstrap/bootstrap $(ARCH)

invoke: ## Run the function under `cargo lambda watch` on 127.0.0.1 and invoke it with EVENT; prints the batch response
	python3 scripts/invoke_local.py $(EVENT)

deploy: ## sam build and sam deploy --guided for ARCH (x86_64, or arm64), checking the built binary's machine type in between; SAM_ENV picks saved answers from deploy/samconfig.toml (copied from deploy/samconfig.example.toml) (installs the SAM CLI with pip if missing; needs AWS credentials)
	command -v sam > /dev/null || python3 -m pip install --quiet aws-sam-cli
	command -v cargo-lambda > /dev/null || python3 -m pip install --quiet cargo-lambda
ifeq ($(ARCH),arm64)
	python3 -c "import ziglang" 2> /dev/null || python3 -m pip install --quiet ziglang
endif
	sam build --beta-features --parameter-overrides Architecture=$(ARCH)
	python3 scripts/check_architecture.py .aws-sam/build/Function/bootstrap $(ARCH)
	# Saved answers (SAM_ENV) carry their own Architecture: parameter overrides given here would replace all of them.
	sam deploy --guided $(if $(SAM_ENV),--config-file deploy/samconfig.toml --config-env $(SAM_ENV),--parameter-overrides Architecture=$(ARCH))

package: ## sam build and sam package for the Serverless Application Repository into BUCKET (one the repository may read: docs/deploy.md); then sam publish --template packaged.yaml
	command -v sam > /dev/null || python3 -m pip install --quiet aws-sam-cli
	command -v cargo-lambda > /dev/null || python3 -m pip install --quiet cargo-lambda
	sam build --beta-features --parameter-overrides Architecture=$(ARCH)
	python3 scripts/check_architecture.py .aws-sam/build/Function/bootstrap $(ARCH)
	sam package --s3-bucket $(BUCKET) --output-template-file packaged.yaml

events: ## Regenerate the sample events in events/
	python3 events/generate.py

clean: ## Remove build output (cargo's, SAM's and the fuzzer's)
	cargo clean
	rm -rf .aws-sam fuzz/target fuzz/corpus fuzz/artifacts

replay: ## Bring back the batches Lambda gave up on (BUCKET: the stack's FailedBatchesBucket) and Firehose's backed-up documents (BUCKET: FirehoseBackupBucket, --prefix failed-documents/); REMOTE=1 FUNCTION=name: through the deployed function (no path to the cluster needed); else locally, FUNCTION=name copying its environment; REPLAY_FLAGS adds --delete-replayed, --dry-run, --prefix P
	cargo run --release --quiet --features replay --bin replay -- $(if $(REMOTE),--remote) $(if $(BUCKET),--bucket $(BUCKET)) $(if $(FUNCTION),--function $(FUNCTION)) $(REPLAY_FLAGS)

firehose-pipeline: ## Install the ingest pipeline that keeps Firehose's deliveries on the same _id (ES_URL and the function's ES_AUTH settings; FIREHOSE_INDEX_NAME: the stack's output)
	python3 -c "import botocore" 2> /dev/null || python3 -m pip install --quiet botocore
	python3 scripts/firehose_pipeline.py

index-template: ## Install an index template that fits what the function writes for the indices ES_INDEX makes (ES_URL and the function's ES_AUTH settings; TIMESTAMP_FIELD, MESSAGE_JSON_FIELD; INDEX_TEMPLATE_PATTERN overrides the pattern)
	python3 -c "import botocore" 2> /dev/null || python3 -m pip install --quiet botocore
	python3 scripts/index_template.py
