# One command each: `make test` and `make demo` install what they need first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test fuzz demo bench lint clean system-deps

$(STAMP): pyproject.toml
	@command -v ffprobe >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		&& test -x /usr/bin/chromium && command -v npm >/dev/null 2>&1 || $(MAKE) system-deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@if [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg \
			postgresql chromium npm >/dev/null; \
	else \
		echo "ffmpeg, the PostgreSQL server (catalog tests), chromium or npm (browser tests)" \
			"is missing: install the Debian packages ffmpeg postgresql chromium npm as root" >&2; \
		exit 1; \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The property-based tests with fresh random examples (make test runs a fixed set).
fuzz: $(STAMP)
	BODYCAM_HYPOTHESIS=explore $(BIN)/python -m pytest -q $(FUZZ_ARGS) \
		tests/ringbuffer tests/crypto tests/serial tests/sim/test_sensor.py tests/firmware/test_eventlog.py

demo: $(STAMP)
	$(BIN)/bodycam demo

bench: $(STAMP)
	@failed=""; for b in benchmarks/*_bench.py; do echo "== $$b"; \
		$(BIN)/python $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that did not run:$$failed" >&2; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy firmware dock ringbuffer crypto sim vault bodycam_cli.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
