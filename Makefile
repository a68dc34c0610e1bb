# Two commands on a fresh machine, each doing its own set-up:
#   make serve   start the bridge with its built-in defaults (loopback, ports 4317/4318/9464)
#   make test    lint and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: serve test lint test-tools clean bench bench-quick bench-durability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	@echo "otlp-bridge is $(BIN)/otlp-bridge (or run: source $(BIN)/activate). In another terminal, here:"
	@echo "  $(BIN)/otlp-bridge check               # a synthetic export, confirmed on /metrics, then removed"
	@echo '  eval "$$($(BIN)/otlp-bridge env)"       # then start claude in that shell'
	$(BIN)/otlp-bridge serve $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Some tests use real servers and a real browser: Prometheus (and promtool) and Chromium,
# Debian's packages. Installed where we may (root, as in CI and containers); elsewhere the
# tests that need them report themselves skipped.
TEST_TOOLS := prometheus:prometheus promtool:prometheus chromium:chromium openssl:openssl \
	victoria-metrics:victoria-metrics dockerd:docker.io debootstrap:debootstrap zsh:zsh \
	prometheus-alertmanager:prometheus-alertmanager docker-compose:docker-compose
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing:$$missing (not root): the tests that need them will be skipped"; fi; fi

test: $(STAMP) test-tools lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

bench-durability: $(STAMP)
	$(BIN)/python -m benchmarks.durability --requests 3000 --clients 16

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
