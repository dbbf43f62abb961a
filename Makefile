# The doors: `make dev` runs the service, `make test` runs every check. Each installs what it needs,
# from the lock in requirements/ (every package pinned with its hashes), with plain pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
LOCKS := requirements/runtime.txt requirements/test.txt
# `make lock` resolves with uv, in an environment of its own so that .venv stays exactly the lock.
LOCKER := .venv-lock
UV_VERSION := 0.13.10
# The newest versions pyproject.toml allows, for `make test-latest`.
LATEST := .venv-latest

# Root installs with apt directly, anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test test-fast test-latest lint lock browser ocr proxy bench bench-load bench-relay clean

# A fresh environment whenever a lock changes: pip installs what a lock names but never removes
# what it no longer names, and tests/test_lock.py checks that nothing else is installed.
$(VENV)/.created: $(LOCKS)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "DocuChat needs Python 3.11 or newer"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	touch $@

# The service's packages as locked, then the project itself: no dependency of its own is
# resolved, and it is built by the locked setuptools, not one fetched for an isolated build.
$(VENV)/.installed: requirements/runtime.txt pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The test tools as locked: the same versions of the service's packages, and the tools beside them.
$(VENV)/.installed-test: requirements/test.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	touch $@

# OCR is optional for the service: if Tesseract cannot be installed, it runs with OCR off.
dev: $(VENV)/.installed
	@$(MAKE) --no-print-directory ocr || echo "could not install Tesseract: OCR stays off"
	$(BIN)/docuchat dev --port $(PORT)

# ruff's rules and format, and mypy, at their locked versions.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The web client's test drives Debian's Chromium (through Playwright, by its executable path).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser test"; \
		$(SUDO) apt-get install -y -q chromium || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }; }

# Scanned pages are read by Debian's Tesseract with its Persian data (the service runs without
# it, with OCR off; the tests read real scans).
ocr:
	@command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx fas || { \
		echo "installing Debian's tesseract-ocr and tesseract-ocr-fas for OCR"; \
		$(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-fas || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-fas; }; }

# The proxy test runs Debian's nginx with deploy/nginx.conf (the test starts and stops its own).
proxy:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		echo "installing Debian's nginx for the proxy test"; \
		$(SUDO) apt-get install -y -q nginx || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q nginx; }; }

# Everything: lint, then the whole suite against real services, with a coverage floor.
test: lint browser ocr proxy
	$(BIN)/pytest --cov --cov-report=term-missing --cov-fail-under=85

# The whole suite on the newest versions pyproject.toml allows, in a fresh environment of its own,
# so a release that breaks DocuChat shows up here before a lock refresh brings it in. The tests
# marked `locked` (the environment equals the lock) are left out: this one is not locked.
test-latest: browser ocr proxy
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -e '.[test]'
	$(LATEST)/bin/pytest -m 'not locked'

# Refreshes the lock on purpose, for CI's platform (CPython 3.11 on x86_64 Linux with Debian 12's
# glibc) whichever machine runs it: the newest versions pyproject.toml allows. With
# `make lock UPGRADE=` the pins that still fit are kept (after adding a dependency, say). The tests
# and the service pin the same versions: the runtime lock is resolved within the test lock.
UPGRADE ?= --upgrade
LOCK_WITH = $(LOCKER)/bin/uv pip compile --quiet --generate-hashes --custom-compile-command 'make lock' \
	--python-version 3.11 --python-platform x86_64-manylinux_2_36 pyproject.toml requirements/install.in
lock: $(LOCKER)/bin/uv
	$(LOCK_WITH) --extra test $(UPGRADE) -o requirements/test.txt
	$(LOCK_WITH) --constraint requirements/test.txt -o requirements/runtime.txt

$(LOCKER)/bin/uv:
	$(PYTHON) -m venv $(LOCKER)
	$(LOCKER)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# The tests that need no running service (pure pipeline, events, outcomes, rules): seconds.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m fast -q

# Every environment and cache this Makefile made; the locks stay.
clean:
	rm -rf $(VENV) $(LATEST) $(LOCKER) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*

# The measurements the README quotes (bench/).
bench: $(VENV)/.installed-test ocr
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.ocr
	$(BIN)/python -m bench.chat
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.usage
	$(BIN)/python -m bench.signin
	$(BIN)/python -m bench.fairness
	$(BIN)/python -m bench.load

# Only the load bench: 200 chat streams and 20 uploaders for 60 s.
bench-load: $(VENV)/.installed-test
	$(BIN)/python -m bench.load

bench-relay: $(VENV)/.installed-test
	$(BIN)/python -m bench.relay
