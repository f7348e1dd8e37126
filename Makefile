# The project's two entry points: `make demo` runs the main job, `make test` the tests.
# Both create their own virtual environment (.venv) and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-soak lint typecheck unit bench schemas clean mcp-servers vm-deps graph-deps git-deps browser-deps zygote

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

NPM_STAMP := mcp-servers/node_modules/.installed

# The npm MCP servers the examples and tests use, pinned by mcp-servers/package-lock.json.
$(NPM_STAMP): mcp-servers/package.json mcp-servers/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: MCP server tests will be skipped"; exit 0; }
	cd mcp-servers && npm ci --no-audit --no-fund --loglevel=error
	touch $@

mcp-servers: $(NPM_STAMP)

# The sandbox's zygote compiled from C (the Python zygote serves where no compiler is).
zygote: $(STAMP)
	scripts/install-cc.sh
	-$(BIN)/python -m luminaguard.hypervisor.sandbox.native

# QEMU, dash, lz4, cpio for the micro-VM tests (skipped with the reason where missing).
vm-deps:
	scripts/install-vm-deps.sh
	scripts/install-runsc.sh

# Graphviz's dot, to render `plan --format dot` in a test (skipped with the reason where missing).
graph-deps:
	scripts/install-graphviz.sh

# git for the GitOps source tests (skipped with the reason where missing).
git-deps:
	scripts/install-git.sh

# Debian's chromium for the web page's tests, driven by Playwright (a dev dependency);
# skipped with the reason where it cannot be installed.
browser-deps:
	scripts/install-browser.sh

DEMO_STATE := .luminaguard-demo

# Validate and plan everything, then run a workload in the namespace sandbox: it halts
# (exit 3) at its Red step, is approved, resumes to completion, and the audit verifies.
demo: $(STAMP) $(NPM_STAMP) zygote
	$(BIN)/luminaguard validate examples/ policies/ workloads/
	$(BIN)/luminaguard plan examples/ policies/ --workload repo-report
	$(BIN)/luminaguard policy test policies/ --coverage
	$(BIN)/luminaguard doctor
	$(BIN)/python -m luminaguard.hypervisor.linux.work_disk $(DEMO_STATE)  # a last demo's /work disks
	rm -rf $(DEMO_STATE)
	$(BIN)/luminaguard run examples/04-sandbox-report --state $(DEMO_STATE) --run-id demo; \
	  code=$$?; test $$code -eq 3 || { echo "expected exit 3 (halted), got $$code"; exit 1; }
	$(BIN)/luminaguard approvals --state $(DEMO_STATE)
	$(BIN)/luminaguard approve demo publish --state $(DEMO_STATE) --as demo --reason "make demo"
	$(BIN)/luminaguard resume demo --state $(DEMO_STATE)
	$(BIN)/luminaguard status demo --state $(DEMO_STATE)
	$(BIN)/luminaguard audit verify --state $(DEMO_STATE)
	$(BIN)/luminaguard policy replay --audit $(DEMO_STATE) examples/04-sandbox-report
	cat $(DEMO_STATE)/runs/demo/agents/reporter/work/published/report.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

PYTEST := $(BIN)/pytest --cov --cov-report=term --cov-fail-under=85 --durations=15

# Two shards at once (what runs things, and the rest), coverage combined: see the script.
unit: $(STAMP) $(NPM_STAMP) zygote vm-deps graph-deps git-deps browser-deps
	scripts/pytest-shards.sh

test: lint typecheck unit

# The same tests SOAK times in a row while stress-ng keeps every core busy (a Python busy
# loop per core where it cannot be installed); stops at the first failing pass.
SOAK ?= 5
test-soak: $(STAMP) $(NPM_STAMP) zygote vm-deps graph-deps git-deps browser-deps
	scripts/soak.sh $(SOAK) $(PYTEST)

# Every benchmark, each printing its figures and its peers (bench/README.md); the README's
# Measured table is then rewritten from what they printed (bench/measure.py).
bench: $(STAMP) $(NPM_STAMP) zygote vm-deps git-deps
	scripts/install-bwrap.sh
	$(BIN)/python bench/measure.py

schemas: $(STAMP)
	$(BIN)/luminaguard schema --out schemas
	$(BIN)/luminaguard serve --openapi > schemas/openapi.json

clean:
	-$(BIN)/python -m luminaguard.hypervisor.linux.work_disk $(DEMO_STATE) .luminaguard
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage $(DEMO_STATE) .luminaguard \
	  luminaguard/hypervisor/sandbox/build
