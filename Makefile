# kinesis-es-indexer: `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help run test soak fuzz lint events clean firehose-pipeline

EVENT ?= events/kinesis.json

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: ## Run the indexer end to end on EVENT (default events/kinesis.json) against the local doubles and moto's Firehose; RELEASE=1 for an optimised build
	python3 scripts/run_local.py $(if $(RELEASE),--release) $(EVENT)

test: ## Unit, integration, soak and property tests; template.yaml checks; sample events; a local run without Firehose
	python3 events/generate.py --check
	python3 -c "import cfnlint, samtranslator" 2> /dev/null || python3 -m pip install --quiet cfn-lint aws-sam-translator
	python3 -m unittest discover -s tests -p '*_test.py'
	cargo test --workspace
	cargo run --quiet --example run_local -- events/malformed.json > /dev/null

SOAK_SEEDS ?= 3000
SOAK_RECORDS ?= 100
soak: ## Redelivery under random faults: SOAK_SEEDS (3000) seeds x 3 batches x SOAK_RECORDS (100); SOAK_FIRST_SEED replays one
	SOAK_SEEDS=$(SOAK_SEEDS) SOAK_RECORDS=$(SOAK_RECORDS) cargo test --release --test pipeline soak -- --nocapture

FUZZ_SECONDS ?= 120
fuzz: ## Fuzz record decoding with cargo-fuzz for FUZZ_SECONDS (120); installs cargo-fuzz, runs on stable via RUSTC_BOOTSTRAP
	command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
	python3 fuzz/seed_corpus.py
	RUSTC_BOOTSTRAP=1 cargo fuzz run decode_record fuzz/corpus/decode_record fuzz/regressions/decode_record -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

lint: ## rustfmt and clippy, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

events: ## Regenerate the sample events in events/
	python3 events/generate.py

clean: ## Remove build output
	cargo clean

firehose-pipeline: ## Install the ingest pipeline that keeps Firehose's deliveries on the same _id (needs ES_URL)
	python3 scripts/firehose_pipeline.py
