# kinesis-es-indexer: `make help` lists the targets.
.DEFAULT_GOAL := help
.PHONY: help run test soak bench fleet fuzz lint build invoke deploy package events clean firehose-pipeline index-template role-mapping replay doctor mutants

EVENT ?= events/kinesis.json

# The Python tools (moto, cfn-lint, the SAM CLI, cargo-lambda, zig) live in a virtual environment of the project's
# own, .venv, made with the machine's python3: an externally managed Python (PEP 668: Debian, Ubuntu, Homebrew) is
# never asked to install anything, and what pip installs is on the recipes' PATH. deploy/requirements/ lists them.
VENV := .venv
SYSTEM_PYTHON := $(shell command -v python3 2> /dev/null)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export SAM_CLI_TELEMETRY ?= 0
# The function's architecture, for make build and make deploy alike; the template's Architecture defaults to the same.
ARCH ?= x86_64

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: $(VENV)/.installed-run ## Run the indexer end to end on EVENT (default events/kinesis.json) against the local doubles and moto's Firehose; RELEASE=1 for an optimised build
	python3 scripts/run_local.py $(if $(RELEASE),--release) $(EVENT)

test: $(VENV)/.installed-test ## Unit, integration, soak and property tests; template.yaml checks (cfn-lint, sam validate --lint); the deploy tooling; sample events; a local run without Firehose
	python3 events/generate.py --check
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-eu-west-1} sam validate --lint
	REQUIRE_PYTHON_TOOLS=1 cargo test --workspace
	python3 -m unittest discover -s tests -p '*_test.py'
	cargo run --quiet --example run_local -- events/malformed.json > /dev/null
	cargo run --quiet --example run_local -- events/preprocessing.json | grep "documents_filtered\|skipped: 1" > /dev/null
	cargo run --quiet --example run_local -- tests/fixtures/kpl_aggregates.json 2>&1 | grep "is not a Kinesis event" > /dev/null
	BENCH_SMALL=1 BENCH_RUNS=1 cargo test --quiet --bench bench > /dev/null

SOAK_SEEDS ?= 3000
SOAK_RECORDS ?= 100
soak: ## Redelivery under random faults: SOAK_SEEDS (3000) seeds x 3 batches x SOAK_RECORDS (100); SOAK_FIRST_SEED replays one
	SOAK_SEEDS=$(SOAK_SEEDS) SOAK_RECORDS=$(SOAK_RECORDS) cargo test --release --test pipeline soak -- --nocapture

# What the tests let through, on the change at hand: every mutant cargo-mutants makes of the lines that differ from
# MUTANTS_BASE (origin/main), each tried against the unit and pipeline tests. Every change runs it before it is called
# done; a mutant that lives is a test to write, or an equivalence to explain. MUTANTS_ARGS passes more (a shard:
# --shard 0/4; --list to see them first).
MUTANTS_BASE ?= origin/main
mutants: ## cargo-mutants on the lines changed against MUTANTS_BASE (origin/main): each mutant against the unit and pipeline tests
	@command -v cargo-mutants > /dev/null || cargo install --locked cargo-mutants
	@git rev-parse --verify --quiet $(MUTANTS_BASE) > /dev/null || { echo "no $(MUTANTS_BASE): set MUTANTS_BASE to the commit the change starts from" >&2; exit 2; }
	@mkdir -p target
	git diff $(MUTANTS_BASE) -- src > target/mutants.diff
	cargo mutants --in-diff target/mutants.diff --timeout 300 --output target --cargo-test-arg=--lib --cargo-test-arg=--test --cargo-test-arg=pipeline $(MUTANTS_ARGS)

bench: ## CPU per record (and × an empty handler's), wall, peak RSS, bytes, cold start of the release bootstrap per batch kind (BENCH_RUNS=5, BENCH_KINDS=all)
	cargo bench --bench bench

fleet: ## Fleets of instances draining 40 batches each into a 2+2 write pool, fixed against adaptive concurrency in each of six regimes (heavy, moderate, light; each with a node lost for 5 s): pool utilisation, direct goodput, parked share, items per document, drain, billed time; FLEET_REGIMES, FLEET_RUNS, FLEET_SHARDS, FLEET_THREADS, FLEET_QUEUE, FLEET_SERVICE_MS, FLEET_PER_ITEM_US, FLEET_LOSS_MS, FLEET_SPELL_MS, FLEET_POLL_MS shape it; FLEET_SETTINGS=NAME=value,… sets the function's variables
	FLEET_REGIMES=$${FLEET_REGIMES:-all} cargo test --profile fleet --test fleet -- --nocapture

FUZZ_SECONDS ?= 120
fuzz: ## Fuzz record decoding with cargo-fuzz for FUZZ_SECONDS (120); installs cargo-fuzz, runs on stable via RUSTC_BOOTSTRAP
	command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
	python3 fuzz/seed_corpus.py
	RUSTC_BOOTSTRAP=1 cargo fuzz run decode_record fuzz/corpus/decode_record fuzz/regressions/decode_record -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

lint: ## rustfmt and clippy, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

build: $(VENV)/.installed-deploy ## Build target/lambda/bootstrap/bootstrap with cargo-lambda for ARCH (x86_64, arm64): plain cargo for this Linux machine's own architecture, else cargo-zigbuild with the zig cargo-lambda brings, adding the Rust target with rustup
	python3 scripts/deploy.py build --architecture $(ARCH)

invoke: $(VENV)/.installed-deploy ## Run the function under `cargo lambda watch` on 127.0.0.1 and invoke it with EVENT; prints the batch response
	python3 scripts/invoke_local.py $(EVENT)

# ARCH given on the command line (or in the environment) changes the saved Architecture; else the saved one holds.
deploy: $(VENV)/.installed-deploy ## Build and deploy (needs AWS credentials): a first deploy asks what its kind of deployment needs (8 for a public domain, up to 12; docs/deploy.md) and saves the answers in samconfig.toml; later ones ask nothing. ARCH=arm64 changes the architecture, SET="Name=value …" saved answers, RECONFIGURE=1 asks again, SAM_ENV names another stack's saved answers
	python3 scripts/deploy.py deploy $(if $(filter command line environment,$(origin ARCH)),--architecture $(ARCH)) $(if $(SAM_ENV),--config-env $(SAM_ENV)) $(if $(RECONFIGURE),--reconfigure) $(foreach setting,$(SET),--set $(setting))

package: $(VENV)/.installed-deploy ## sam build and sam package for the Serverless Application Repository into BUCKET (one the repository may read: docs/deploy.md), the listing offering ARCH only; then sam publish --template packaged.json
	python3 scripts/deploy.py package --architecture $(ARCH) --bucket "$(BUCKET)"

events: ## Regenerate the sample events in events/
	python3 events/generate.py

clean: ## Remove build output (cargo's, SAM's and the fuzzer's)
	cargo clean
	rm -rf .aws-sam fuzz/target fuzz/corpus fuzz/artifacts

replay: ## Bring back the batches Lambda gave up on (BUCKET: the stack's FailedBatchesBucket) and Firehose's backed-up documents (BUCKET: FirehoseBackupBucket, --prefix failed-documents/); REMOTE=1 FUNCTION=name: through the deployed function (no path to the cluster needed); else locally, FUNCTION=name copying its environment; REPLAY_FLAGS adds --delete-replayed, --dry-run, --prefix P
	cargo run --release --quiet --features replay --bin replay -- $(if $(REMOTE),--remote) $(if $(BUCKET),--bucket $(BUCKET)) $(if $(FUNCTION),--function $(FUNCTION)) $(REPLAY_FLAGS)

doctor: ## Check a deployed stack from inside its function (FUNCTION=<stack>-indexer: its role, network and settings; and its event source mappings, with your credentials), or from here with this shell's ES_URL and ES_AUTH settings; one line a check with the fix, exit status 0 when healthy; JSON=1 prints the report as JSON
	cargo run --release --features replay --bin doctor -- $(if $(FUNCTION),--function $(FUNCTION)) $(if $(JSON),--json)

firehose-pipeline: $(VENV)/.installed-cluster ## Install the ingest pipeline that keeps Firehose's deliveries on the same _id (ES_URL and the function's ES_AUTH settings; FIREHOSE_INDEX_NAME: the stack's output); REMOTE=1 FUNCTION=<stack>-indexer through the deployed function, from inside its VPC; DEV_TOOLS=1 prints the requests for Dev Tools instead
	python3 scripts/firehose_pipeline.py

index-template: $(VENV)/.installed-cluster ## Install an index template that fits what the function writes for the indices ES_INDEX makes (ES_URL and the function's ES_AUTH settings; TIMESTAMP_FIELD, MESSAGE_JSON_FIELD; INDEX_TEMPLATE_PATTERN overrides the pattern); REMOTE=1 FUNCTION=<stack>-indexer through the deployed function; DEV_TOOLS=1 prints the request for Dev Tools instead
	python3 scripts/index_template.py

role-mapping: $(VENV)/.installed-cluster ## Print the fine-grained access control requests that let the stack's roles write, for Dev Tools (STACK=name reads the roles from its outputs, or FUNCTION_ROLE_ARN, FIREHOSE_ROLE_ARN; ES_INDEX, FIREHOSE_INDEX_NAME)
	python3 scripts/role_mapping.py

# The virtual environment, made once; `python3 -m venv` needs the OS's venv package on Debian and Ubuntu.
$(VENV)/bin/python3:
	@test -n "$(SYSTEM_PYTHON)" || { echo "make: python3 is not on PATH: install Python 3 (Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: xcode-select --install, or brew install python)" >&2; exit 1; }
	@$(SYSTEM_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(SYSTEM_PYTHON) -m venv' failed: install the OS's venv package (Debian/Ubuntu: sudo apt-get install python3-venv; Fedora: sudo dnf install python3), then run make again" >&2; exit 1; }
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check --upgrade pip

# Each set of tools, installed when its list changes.
$(VENV)/.installed-%: deploy/requirements/%.txt $(VENV)/bin/python3 $(wildcard deploy/requirements/*.txt)
	$(VENV)/bin/python3 -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@
