# Two commands on a fresh machine, each doing its own set-up:
#   make serve   start the bridge with its built-in defaults (loopback, ports 4317/4318/9464)
#   make test    lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: serve test lint prometheus clean bench-durability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/otlp-bridge serve $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .

# The Prometheus tests scrape with a real server (Debian's package). Installed where we may
# (root, as in CI and containers); elsewhere those tests say they were skipped.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "prometheus not installed and not root: the real-Prometheus tests will be skipped"; fi; }

test: $(STAMP) prometheus lint
	$(BIN)/python -m pytest -q

bench-durability: $(STAMP)
	$(BIN)/python -m benchmarks.durability --requests 3000 --clients 16

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
