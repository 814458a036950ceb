# gen_jax: every target installs what it needs into .venv first. Results go under results/ only;
# README.md and docs/ change only by `make readme`. Runs are keyed by their config: running a target
# twice reuses the finished work. Any config field: make toy ARGS="train.steps=5000 models=[nsf]".
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

.PHONY: install demo test test-slow lint readme toy parzen bench-flows images eval clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null
	$(VENV)/bin/pip install -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the 2D likelihood comparison: 3 datasets x (3 flows + 2 baselines), a few minutes on CPU
	$(PY) -m experiments.toy2d --preset demo $(ARGS)

test: install  ## the test suite (under 10 minutes on 2 CPU cores)
	$(PY) -m pytest -q -n 2 -m "not slow" --durations=25 $(ARGS)

test-slow: install  ## the long end-to-end image tests (smoke runs of every image model, Glow checks)
	$(PY) -m pytest -q -n 2 -m slow $(ARGS)

lint: install  ## ruff, formatting, the import contracts (layers, no cycles) and the size of functions
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m experiments.codeshape gen_jax experiments

readme: install  ## README.md and docs/*.md from the results (the only target that writes them)
	$(PY) -m experiments.readme

toy: install  ## every toy dataset x every model, longer training
	$(PY) -m experiments.toy2d --preset full $(ARGS)

parzen: install  ## GAN + flows + baselines + "the training set itself" on 8gaussians, checkerboard: Parzen vs true NLL
	$(PY) -m experiments.toy2d --preset parzen $(ARGS)

.PHONY: own-data
own-data: install  ## your-own-data check: three datasets outside the toy suite, raw and rescaled, every vector model
	$(PY) -m experiments.own_data $(ARGS)

bench-flows: install  ## RealNVP and NSF on moons and checkerboard: steps/s, compile time, NLL, memory
	$(PY) -m experiments.bench_flows $(ARGS)

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

.PHONY: bench-peers bench-scale bench-images-peers
bench-peers: install $(PEERS_STAMP)  ## the bench-flows work in gen_jax, flowjax and normflows side by side
	$(PY) -m experiments.bench_peers --peer-python $(PEERS_VENV)/bin/python $(ARGS)

bench-images-peers: install $(PEERS_STAMP)  ## the cpu preset's image models in gen_jax and PyTorch side by side
	$(PY) -m experiments.bench_images_peers --peer-python $(PEERS_VENV)/bin/python $(ARGS)

bench-scale: install  ## steps/s and examples/s of the NSF and the image models on 1-8 (simulated) devices
	$(PY) -m experiments.bench_scale $(ARGS)

.PHONY: bench-families
bench-families: install  ## train-step throughput of every family: compile s, steps/s, GFLOP/s, and what each optimization buys
	$(PY) -m experiments.bench_families $(ARGS)

.PHONY: diffusion
diffusion: install  ## diffusion on moons: bound vs probability-flow ODE vs NSF, ODE cost and NFE, samplers
	$(PY) -m experiments.diffusion_likelihood $(ARGS)

.PHONY: contrast
contrast: install  ## normalized vs unnormalized: flows, EBMs + AIS log Z, baselines, the 3x3 world; two demonstrations
	$(PY) -m experiments.contrast $(ARGS)
	$(PY) -m experiments.demos

images: install  ## Fashion-MNIST bits/dim of every family (PRESET=cpu: <= 20 min per model on CPU; PRESET=full: GPU)
	$(PY) -m experiments.images --preset $(or $(PRESET),cpu) $(ARGS)

.PHONY: ood ode-ladder binary
ood: install  ## anomaly detection: Fashion-MNIST models score MNIST, noise, constant, flipped images (reuses make images)
	$(PY) -m experiments.ood --preset $(or $(PRESET),cpu) $(ARGS)

ode-ladder: install  ## the image probability-flow ODE at rtol = atol 1e-3, 1e-4, 1e-5 on the same images (reuses make images)
	$(PY) -m experiments.ode_ladder --preset $(or $(PRESET),cpu) $(ARGS)

binary: install  ## the 28x28 binary world: naive table to RBM on binarized Fashion-MNIST, MNIST as OOD (~40 min)
	$(PY) -m experiments.binary $(ARGS)

eval: install  ## evaluate one saved image run alone: make eval CKPT=results/images/runs/fashion_mnist/<model>-<hash>
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=results/images/runs/fashion_mnist/<model>-<hash>" >&2; exit 2; }
	$(PY) -m experiments.images eval_run=$(CKPT) $(ARGS)

.PHONY: vae-estimators
vae-estimators: install  ## IWAE vs prior-sampling estimates of log p(x) against k (up to 5000), from the images VAE
	$(PY) -m experiments.vae_estimators $(ARGS)

clean:
	rm -rf results .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
