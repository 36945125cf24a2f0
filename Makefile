# Every target that needs Python depends on `install`, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-tools test-all test-integration test-reliability reliability soak overload lint clean bench bench-quick bench-profile kcat-lib eval

install: $(STAMP)

# Re-runs only when pyproject.toml changes. torch is installed first and pinned to the CPU build
# (an unpinned torch pulls a multi-GB CUDA build).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: install
	$(BIN)/recstream demo

test: install test-tools
	$(BIN)/python -m pytest -q --durations=12

# System tools the tests drive for real: the Prometheus server and promtool, kcat and shellcheck
# (Debian packages). Installed only when missing; as root, or through passwordless sudo. Their tests
# skip where a tool is missing, except under CI=true, where a missing tool fails them.
TOOL_PACKAGES = prometheus kcat shellcheck
test-tools:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v kcat >/dev/null \
	  && command -v shellcheck >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TOOL_PACKAGES) >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TOOL_PACKAGES) >/dev/null; } \
	  || echo "could not install $(TOOL_PACKAGES) (apt-get): their tests will be skipped (and fail under CI=true)"; }

test-integration: install test-tools
	$(BIN)/python -m pytest -q -m "integration and not slow"

# Crash, broker, hostile-input, erase and backpressure tests, the long (slow) versions included.
test-reliability: install
	$(BIN)/python -m pytest -q -m reliability

# The same scenarios, longer, with the figures written into RELIABILITY.md.
reliability: install
	$(BIN)/recstream reliability --json docs/reliability.json --write RELIABILITY.md

# Two workers on a 500,000-event wide stream with every fault mixed in, into RELIABILITY.md (~45 min).
soak: install
	$(BIN)/recstream reliability --soak --json docs/soak.json --write RELIABILITY.md

# The long overload alone, three times in a row, into RELIABILITY.md (~25 min).
overload: install
	$(BIN)/recstream reliability --overload-runs 3 --json docs/overload-runs.json --write RELIABILITY.md

test-all: install test-tools
	$(BIN)/python -m pytest -q -m ""

lint: install
	$(BIN)/lint-imports

clean:
	rm -rf .recstream .pytest_cache .hypothesis

# Prequential accuracy on MovieLens against the baselines, the retrained ALS and SASRec included (about 25
# minutes on two cores); writes the JSON and plot EVALUATION.md shows.
eval: install
	$(BIN)/recstream evaluate --json docs/evaluation/ml-latest-small.json --plot docs/evaluation/hit-at-10.png

# One worker as a busy site sees it (issue 14) into BENCHMARKS.md: wide and file-order backlogs, every event's
# latency at a subscriber, the broker ceiling, items, the index at the worker's k, state bytes by history length.
bench: install
	$(BIN)/recstream bench --json docs/bench.json --write BENCHMARKS.md

bench-quick: install
	$(BIN)/recstream bench --quick

# py-spy samples of a worker eating a backlog, into BENCHMARKS.md.
bench-profile: install
	$(BIN)/recstream bench-profile --write BENCHMARKS.md

# kcat from Debian links librdkafka 2.0.2, which the embedded broker rejects: link the wheel's newer one.
kcat-lib: install
	@mkdir -p .recstream/kcat-lib
	@ln -sf "$$($(BIN)/python -c 'import confluent_kafka, pathlib; d = pathlib.Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"; print(next(d.glob("librdkafka*.so*")))')" .recstream/kcat-lib/librdkafka.so.1
	@echo "export LD_LIBRARY_PATH=$$PWD/.recstream/kcat-lib"
