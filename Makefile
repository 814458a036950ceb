# gen_jax: every target installs what it needs into .venv first.
# CPU by default; on a GPU machine run `make install EXTRAS=dev,cuda` once.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(EXTRAS)
ARGS ?=

# Offline data (Fashion-MNIST / MNIST IDX files) for tests and image experiments, if present.
GEN_JAX_DATA_DIR ?= $(wildcard ../shared/data)
export GEN_JAX_DATA_DIR

.PHONY: install demo test lint toy bench-flows clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null
	$(VENV)/bin/pip install -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the 2D likelihood comparison: 3 datasets x (3 flows + 2 baselines), a few minutes on CPU
	$(PY) -m experiments.toy2d --preset demo $(ARGS)

test: install  ## the test suite (under 10 minutes on 2 CPU cores)
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

toy: install  ## every toy dataset x every model, longer training
	$(PY) -m experiments.toy2d --preset full --resume $(ARGS)

bench-flows: install  ## RealNVP and NSF on moons and checkerboard: steps/s, compile time, NLL, memory
	$(PY) -m experiments.bench_flows $(ARGS)

clean:
	rm -rf results .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
