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

.PHONY: install demo test test-slow lint toy bench-flows images eval clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null
	$(VENV)/bin/pip install -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the 2D likelihood comparison: 3 datasets x (3 flows + 2 baselines), a few minutes on CPU
	$(PY) -m experiments.toy2d --preset demo $(ARGS)
	$(PY) -m experiments.readme

test: install  ## the test suite (under 10 minutes on 2 CPU cores)
	$(PY) -m pytest -q -n 2 -m "not slow" $(ARGS)

test-slow: install  ## the long end-to-end image tests (smoke runs of every image model, Glow checks)
	$(PY) -m pytest -q -n 2 -m slow $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

toy: install  ## every toy dataset x every model, longer training
	$(PY) -m experiments.toy2d --preset full --resume $(ARGS)
	$(PY) -m experiments.readme

.PHONY: parzen
parzen: install  ## GAN + flows + baselines + "the training set itself" on 8gaussians, checkerboard: Parzen vs true NLL
	$(PY) -m experiments.toy2d --preset parzen --resume $(ARGS)
	$(PY) -m experiments.readme

bench-flows: install  ## RealNVP and NSF on moons and checkerboard: steps/s, compile time, NLL, memory
	$(PY) -m experiments.bench_flows $(ARGS)
	$(PY) -m experiments.readme

# The peer libraries live in their own venv, never as gen_jax dependencies. torch==2.13.0 first (the
# CPU build; an unpinned torch pulls a multi-GB CUDA build), and pinned again beside the others.
PEERS_VENV ?= .venv-peers
PEERS_PKGS ?= flowjax==19.1.2 normflows==1.7.3 numpy
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --upgrade pip >/dev/null
	$(PEERS_VENV)/bin/pip install torch==2.13.0
	$(PEERS_VENV)/bin/pip install torch==2.13.0 $(PEERS_PKGS)
	touch $(PEERS_STAMP)

.PHONY: bench-peers bench-scale
bench-peers: install $(PEERS_STAMP)  ## the bench-flows work in gen_jax, flowjax and normflows side by side
	$(PY) -m experiments.bench_peers --peer-python $(PEERS_VENV)/bin/python $(ARGS)
	$(PY) -m experiments.readme

bench-scale: install  ## steps/s and examples/s of the NSF and the image models on 1-8 (simulated) devices
	$(PY) -m experiments.bench_scale $(ARGS)
	$(PY) -m experiments.readme

.PHONY: bench-families
bench-families: install  ## train-step throughput of every family: compile s, steps/s, GFLOP/s, and what each optimization buys
	$(PY) -m experiments.bench_families $(ARGS)
	$(PY) -m experiments.readme

.PHONY: diffusion
diffusion: install  ## diffusion on moons: bound vs probability-flow ODE vs NSF, ODE cost and NFE, samplers
	$(PY) -m experiments.diffusion_likelihood --resume $(ARGS)
	$(PY) -m experiments.readme

.PHONY: contrast
contrast: install  ## normalized vs unnormalized: flows, EBMs (DSM/SSM + AIS log Z), baselines, two demos, 3x3 patches
	$(PY) -m experiments.contrast --resume $(ARGS)
	$(PY) -m experiments.readme

images: install  ## Fashion-MNIST bits/dim of every family (PRESET=cpu: <= 20 min per model on CPU; PRESET=full: GPU)
	$(PY) -m experiments.images --preset $(or $(PRESET),cpu) --resume $(ARGS)
	$(PY) -m experiments.readme

.PHONY: ood
ood: install  ## anomaly detection: Fashion-MNIST models score MNIST, noise, constant, flipped images (reuses make images)
	$(PY) -m experiments.ood --preset $(or $(PRESET),cpu) --resume $(ARGS)
	$(PY) -m experiments.readme

eval: install  ## evaluate one saved image model alone: make eval CKPT=results/images/runs/<model>
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=results/images/runs/<model>"; exit 2; }
	$(PY) -m experiments.images --eval $(CKPT) $(ARGS)

.PHONY: vae-estimators
vae-estimators: install  ## IWAE vs prior-sampling estimates of log p(x) against k (up to 5000), from a trained VAE run
	$(PY) -m experiments.vae_estimators --run $(or $(RUN),results/images/runs/vae) $(ARGS)

clean:
	rm -rf results .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
