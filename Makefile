# Every target sets up .venv itself, so a fresh clone needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Serving needs only the runtime; the development tools (mypy, ruff, schemathesis, ...) are most
# of a first install's time, so only test, lint and bench install them.
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP := $(VENV)/.installed-dev
# Celery and procrastinate, only for bench-peers.
PEERS_STAMP := $(VENV)/.installed-peers

.PHONY: serve test lint bench bench-fanout bench-peers docs soak clean

$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[apprise]'
	touch $(SERVE_STAMP)

$(DEV_STAMP): $(SERVE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[apprise,dev]'
	touch $(DEV_STAMP)

$(PEERS_STAMP): $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[apprise,dev,peers]'
	touch $(PEERS_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/notifyd serve  # applies pending migrations first

test: $(DEV_STAMP)
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

bench-fanout: $(DEV_STAMP)
	$(BIN)/python -m bench.fanout

# notifyd beside Celery (Redis on 127.0.0.1:6379) and procrastinate (the PostgreSQL), a few
# minutes; BENCH_ARGS="--reps 3".
bench-peers: $(PEERS_STAMP)
	$(BIN)/python -m bench.peers $(BENCH_ARGS)

# The documentation site, into site/: --strict fails on a broken link, a missing page or a
# setting without a description; nothing is fetched (Material's fonts are off).
docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Not part of test: about 14 minutes (SOAK_MINUTES, or make soak SOAK_ARGS="--minutes 3").
soak: $(DEV_STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
