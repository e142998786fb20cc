# globesms - the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/*.txt 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck unit integration e2e bench soak build validate invoke-% start-api sam-env \
	lambda-base-image redrive clean

## run: start the whole system on this machine (moto, API on 127.0.0.1:$${API_PORT:-3000}, pollers, provider emulators);
##   ARGS='...' passes flags to python -m local.run, e.g. ARGS='--bind 0.0.0.0' for sam local (docs/local.md)
run: $(STAMP)
	$(BIN)/python -m local.run $(ARGS)

## test: install everything, lint, type-check and run every test
test: $(STAMP) lint typecheck
	$(BIN)/pytest

$(STAMP): pyproject.toml $(wildcard requirements/*.txt)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,cli]' $(foreach f,$(wildcard requirements/*.txt),-r $(f))
	@rm -f $(VENV)/.installed-* && touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

## bench: speed, cost and memory beside their references (official SDKs, import boto3, phonenumbers, list prices);
##   writes bench/results/latest.json and prints the table (docs/performance.md). ONLY=signing,cold_start,... picks.
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY))

## soak: the local stack under faults, RECIPIENTS (default 30,000: about 14 minutes on 2 cores, where the local
##   AWS emulator is the bottleneck; RECIPIENTS=100000 takes about an hour and 10+ GB); writes bench/results/soak.json
##   and fails on any duplicate, lost recipient or second over a provider's limit. Then the fuzz tests with
##   FUZZ_EXAMPLES (default 200) examples each, new random ones every run.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --recipients $(or $(RECIPIENTS),30000)
	GLOBESMS_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) $(BIN)/pytest tests/fuzz

## The SAM CLI lives in its own virtualenv: its pins clash with the project's.
$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0

validate: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam validate --lint

build: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam build

## sam local, step by step in docs/local.md. Its settings (env.json, --add-host host.docker.internal:host-gateway,
##   --skip-pull-image, start-api's port) live in samconfig.toml, so a plain `sam local ...` behaves as these targets.
## sam-env: write env.json for the stack `make run ARGS='--bind 0.0.0.0'` runs (and its secrets into its moto)
sam-env: $(STAMP)
	$(BIN)/python -m local.sam_env

## invoke-<Function>: e.g. make invoke-SendApiFunction EVENT=events/send_api_post_messages.json (needs `make build`)
invoke-%: $(SAM_VENV)/bin/sam
	@test -n "$(EVENT)" || { echo "usage: make invoke-<Function> EVENT=events/<file>.json"; exit 2; }
	$(SAM_VENV)/bin/sam local invoke $* -e $(EVENT)

## start-api: the API in Lambda containers on 127.0.0.1:3001 (samconfig.toml; make run's API keeps 3000)
start-api: $(SAM_VENV)/bin/sam
	$(SAM_VENV)/bin/sam local start-api

## lambda-base-image: only where public.ecr.aws cannot be reached: build a stand-in for the Lambda Python base image
##   (as root; PYTHON_VERSION=3.13 overrides the template's Runtime). With internet access sam pulls the real one.
lambda-base-image:
	tools/lambda-base-image.sh $(PYTHON_VERSION)

## redrive: move a DLQ's messages back to their queue, e.g. make redrive QUEUE=AliyunDeadLetterQueue STACK=globesms-prod
##   QUEUE is a logical id (AliyunDeadLetterQueue, Aliyun, AliyunQueue) or a queue URL; MAX=<n> moves at most n,
##   DRY_RUN=1 lists without moving. STACK defaults to globesms-dev (globesms-local when AWS_ENDPOINT_URL is set).
redrive: $(STAMP)
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=<logical id or URL> [STACK=<name>] [MAX=<n>] [DRY_RUN=1]"; exit 2; }
	$(BIN)/python -m tools.redrive '$(QUEUE)' $(if $(STACK),--stack '$(STACK)') $(if $(MAX),--max $(MAX)) $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
