# The doors: `make dev` runs the service, `make test` runs every check. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

# Root installs with apt directly, anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test test-fast lint browser ocr proxy bench bench-load bench-relay clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "DocuChat needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# OCR is optional for the service: if Tesseract cannot be installed, it runs with OCR off.
dev: $(VENV)/.installed
	@$(MAKE) --no-print-directory ocr || echo "could not install Tesseract: OCR stays off"
	$(BIN)/docuchat dev --port $(PORT)

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

test: lint browser ocr proxy
	$(BIN)/pytest --cov --cov-report=term-missing --cov-fail-under=85

# The tests that need no running service (pure pipeline, events, outcomes, rules): seconds.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m fast -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*

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

bench-load: $(VENV)/.installed-test
	$(BIN)/python -m bench.load

bench-relay: $(VENV)/.installed-test
	$(BIN)/python -m bench.relay
