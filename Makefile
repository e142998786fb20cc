# globesms - the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
# The Lambda runtime's Python (template.yaml: python3.13); .python-version names it for pyenv.
PYTHON_VERSION := 3.13
PYTHON ?= python$(PYTHON_VERSION)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM_CLI := $(SAM_VENV)/.aws-sam-cli-1.170.0-python$(PYTHON_VERSION)
# Lock files with hashes, written by `make lock`: everything `make test` installs, and the layer's install set.
DEV_LOCK := requirements/lock-dev.txt
LAYER_LOCK := layers/globesms/requirements.txt
# uv alone, with hashes: pip installs it, and uv installs the dev lock (about 15 s where pip takes 70).
UV_LOCK := requirements/lock-uv.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(DEV_LOCK) $(UV_LOCK) 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: run test browser bytecode lint typecheck unit integration e2e bench soak build validate invoke-% start-api sam-env \
	lambda-base-image redrive recount pumping-release lock clean

# (Re)creates the virtualenv $(1) when it is missing or runs another Python than $(PYTHON_VERSION).
ensure_venv = $(1)/bin/python -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != "$(PYTHON_VERSION)")' \
	2>/dev/null || { rm -rf $(1) && $(PYTHON) -m venv $(1); }

## run: start the whole system on this machine (moto, API on 127.0.0.1:$${API_PORT:-3000}, pollers, provider emulators);
##   ARGS='...' passes flags to python -m local.run, e.g. ARGS='--bind 0.0.0.0' for sam local (docs/local.md)
run: $(STAMP)
	$(BIN)/python -m local.run $(ARGS)

## test: install everything, lint, type-check and run every test, spread over every core (pytest-xdist; each test
##   module stays on one worker, so a module's local stack starts once). Modules are handed out in the order they
##   are collected (tests/bench and tests/e2e first, whose stacks take longest; tests/unit's many short ones last,
##   filling the end), not xdist's default of the most tests first, which left the longest single-test modules
##   for last: one worker ran them while the other had nothing to do.
test: $(STAMP) lint typecheck browser bytecode
	$(BIN)/pytest -n auto --dist loadscope --no-loadscope-reorder

## bytecode: compile the project's own modules once, before the tests: every local stack starts ~15 Python processes
##   that import them, and where PYTHONDONTWRITEBYTECODE is set (CI images often set it) each would compile them
##   again (~2 s of CPU per stack). compileall writes the caches whatever that variable says.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 layers/globesms/globesms local functions bench tools

## browser: the docs page test (tests/integration/test_api_docs.py) renders /v1/docs in a headless Chromium and
##   skips without one; in CI (CI=true), as root, Debian's chromium is installed when it is missing
browser:
	@if [[ "$${CI:-}" == "true" && "$$(id -u)" == 0 ]] && ! command -v chromium >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi

## The install: uv from its own hashed lock, then the dev lock by uv (compiled to bytecode, as pip does). uv reads
##   PyPI, not pip's configuration: where it cannot install (a mirror only pip is set up for), pip does the same.
UV_INSTALL = $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode
$(STAMP): pyproject.toml $(DEV_LOCK) $(UV_LOCK)
	@$(call ensure_venv,$(VENV))
	$(BIN)/pip install -q --no-deps --require-hashes -r $(UV_LOCK)
	$(UV_INSTALL) --require-hashes -r $(DEV_LOCK) || { echo "uv could not install $(DEV_LOCK); pip installs it"; \
		$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK); }
	$(UV_INSTALL) --no-deps -e . || $(BIN)/pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

## lock: resolve pyproject.toml and requirements/sdk-*.txt into the lock files, with hashes, after changing a pin;
##   a version already locked stays unless UPGRADE=1. The layer's lock leaves out what the Lambda runtime provides
##   (boto3 and what it requires) and takes its versions from the dev lock, so the tests run what the layer ships.
RUNTIME_PROVIDED := boto3 botocore s3transfer jmespath urllib3 python-dateutil six
UV_COMPILE = UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile --quiet --generate-hashes \
	--python-version $(PYTHON_VERSION) $(if $(filter 1 yes true,$(UPGRADE)),--upgrade)
lock: $(STAMP)
	$(UV_COMPILE) --universal pyproject.toml --extra dev --extra cli $(wildcard requirements/sdk-*.txt) -o $(DEV_LOCK)
	grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"' | $(UV_COMPILE) --universal - -c $(DEV_LOCK) -o $(UV_LOCK)
	$(UV_COMPILE) --python-platform x86_64-manylinux_2_34 pyproject.toml -c $(DEV_LOCK) \
		$(addprefix --no-emit-package ,$(RUNTIME_PROVIDED)) -o $(LAYER_LOCK)

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

## soak: the local stack under faults, RECIPIENTS at RATE a second (default 30,000 at 40: about 15 minutes on 2
##   cores, where moto's DynamoDB process is the bottleneck; RECIPIENTS=100000 RATE=70 settled in 25.0 minutes
##   here, 26 with start and account, docs/performance.md); writes bench/results/soak.json
##   and fails on any duplicate, lost recipient or second over a provider's limit. Then the fuzz tests with
##   FUZZ_EXAMPLES (default 200) examples each, new random ones every run.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --recipients $(or $(RECIPIENTS),30000) $(if $(RATE),--rate $(RATE))
	GLOBESMS_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) $(BIN)/pytest tests/fuzz

## The SAM CLI lives in its own virtualenv: its pins clash with the project's.
$(SAM_CLI):
	@$(call ensure_venv,$(SAM_VENV))
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0
	@touch $@

validate: $(SAM_CLI)
	$(SAM_VENV)/bin/sam validate --lint

## build: sam build into .aws-sam/build; the functions' builder needs python3.13 on PATH (the SAM virtualenv's),
##   the layer is built by layers/globesms/Makefile from its lock
build: $(SAM_CLI)
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam build

## sam local, step by step in docs/local.md. Its settings (env.json, --add-host host.docker.internal:host-gateway,
##   --skip-pull-image, start-api's port) live in samconfig.toml, so a plain `sam local ...` behaves as these targets.
## sam-env: write env.json for the stack `make run ARGS='--bind 0.0.0.0'` runs (and its secrets into its moto)
sam-env: $(STAMP)
	$(BIN)/python -m local.sam_env

## invoke-<Function>: e.g. make invoke-SendApiFunction EVENT=events/send_api_post_messages.json (needs `make build`)
invoke-%: $(SAM_CLI)
	@test -n "$(EVENT)" || { echo "usage: make invoke-<Function> EVENT=events/<file>.json"; exit 2; }
	$(SAM_VENV)/bin/sam local invoke $* -e $(EVENT)

## start-api: the API in Lambda containers on 127.0.0.1:3001 (samconfig.toml; make run's API keeps 3000)
start-api: $(SAM_CLI)
	$(SAM_VENV)/bin/sam local start-api

## lambda-base-image: only where public.ecr.aws cannot be reached: build a stand-in for the Lambda Python base image
##   (as root; PYTHON_VERSION=3.13 overrides the template's Runtime). With internet access sam pulls the real one.
lambda-base-image:
	tools/lambda-base-image.sh $(PYTHON_VERSION)

## pumping-release: lift the hold on OTP to a country held as SMS pumping, e.g. make pumping-release COUNTRY=HK MINUTES=60 STACK=globesms-prod
pumping-release: $(STAMP)
	@test -n "$(COUNTRY)" || { echo "usage: make pumping-release COUNTRY=<XX> [MINUTES=60] [STACK=<name>]"; exit 2; }
	$(BIN)/python -m tools.pumping release '$(COUNTRY)' $(if $(MINUTES),--minutes $(MINUTES)) $(if $(STACK),--stack '$(STACK)')

## redrive: move a DLQ's messages back to their queue, e.g. make redrive QUEUE=AliyunDeadLetterQueue STACK=globesms-prod
##   QUEUE is a logical id (AliyunDeadLetterQueue, Aliyun, AliyunQueue) or a queue URL; MAX=<n> moves at most n,
##   DRY_RUN=1 lists without moving. STACK defaults to globesms-dev (globesms-local when AWS_ENDPOINT_URL is set).
redrive: $(STAMP)
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=<logical id or URL> [STACK=<name>] [MAX=<n>] [DRY_RUN=1]"; exit 2; }
	$(BIN)/python -m tools.redrive '$(QUEUE)' $(if $(STACK),--stack '$(STACK)') $(if $(MAX),--max $(MAX)) $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run)

## recount: set a batch's status counts (GET /v1/batches/{id}) again from its records, after StatusCountsFailuresAlarm,
##   e.g. make recount BATCH=01JD... STACK=globesms-prod; ALL=1 every batch in retention (once, after upgrading to
##   the counts: docs/deploy.md); DRY_RUN=1 prints before and after (tools/recount.py)
recount: $(STAMP)
	@test -n "$(BATCH)$(filter 1 yes true,$(ALL))" || { echo "usage: make recount BATCH=<batch id> | ALL=1 [STACK=<name>] [DRY_RUN=1]"; exit 2; }
	$(BIN)/python -m tools.recount $(if $(filter 1 yes true,$(ALL)),--all,'$(BATCH)') $(if $(STACK),--stack '$(STACK)') $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
