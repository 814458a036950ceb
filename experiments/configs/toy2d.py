"""Presets of the 2D likelihood comparison (`experiments/toy2d.py`): typed data, built once."""

from __future__ import annotations

import dataclasses

from experiments.configs.own_data import OwnDataConfig
from gen_jax.evaluation.fit import VectorEval
from gen_jax.evaluation.vector import DataFiles
from gen_jax.training import TrainConfig

ALL_DATASETS = (
    "8gaussians",
    "checkerboard",
    "rings",
    "circles",
    "moons",
    "swissroll",
    "2spirals",
    "pinwheel",
)


@dataclasses.dataclass(frozen=True)
class Toy2DConfig:
    """Datasets x models: what trains, on what, and how it is evaluated.

    datasets: toy names (fresh samples, known density) or .npy/.csv paths (a 90/10 split); `files`
    instead: your own train / test (/ validation, context) files. model_options: model -> builder
    options; train_overrides: model -> TrainConfig fields for that model.
    """

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    files: DataFiles | None = None
    n_train: int = 50_000
    n_test: int = 10_000
    eval: VectorEval = VectorEval(grid_n=400, n_samples=5000)
    seed: int = 0
    out: str = "results/toy2d"
    parzen_samples: int = 10_000  # model samples per Parzen estimate (parzen.json); 0 turns it off
    parzen_val: int = 2000  # held-out training points that choose the Parzen bandwidth


FLOWS = ("realnvp", "maf", "nsf")
BASELINES = ("gaussian", "gmm")
# smooth (SiLU) conditioners suit the smooth densities; the spline flow keeps ReLU, which draws the
# checkerboard's sharp edges better
OPTIONS = {
    "realnvp": {"activation": "silu"},
    "maf": {"num_layers": 8, "activation": "silu"},
    "gmm": {"num_components": 10},
}
BASELINE_TRAIN = {"gaussian": {"steps": 1000, "lr": 1e-2}, "gmm": {"steps": 3000, "lr": 1e-2}}
# the GAN (no density; samples only): Adam with b1 = 0.5, as usual for two-player training
GAN_TRAIN = {"gan": {"steps": 10000, "lr": 1e-3, "b1": 0.5, "warmup_steps": 200}}
# your own files beyond 2-D (`--preset tabular --train ... --validation ... --test ...`): the settings
# `make own-data` measured on 6-D and 10-D data (early stopping on the validation file, lr 5e-3, up to
# 16000 steps, wider and deeper flows; experiments/configs/own_data.py says why each is what it is)
TABULAR = OwnDataConfig()
LONG = TrainConfig(steps=20000, batch_size=512, lr=2e-3, warmup_steps=500, checkpoint_every=5000)

PRESETS: dict[str, Toy2DConfig] = {
    # make demo: 3 datasets x 3 flows + 2 baselines, a few minutes on 2 CPU cores
    "demo": Toy2DConfig(
        datasets=("moons", "checkerboard", "pinwheel"),
        models=FLOWS + BASELINES,
        train=TrainConfig(steps=6000, batch_size=512, lr=2e-3, warmup_steps=200, checkpoint_every=2000),
        train_overrides=BASELINE_TRAIN,
        model_options=OPTIONS,
        parzen_samples=0,  # the Parzen comparison belongs to `make parzen` / `make toy`
    ),
    # make toy: every dataset, longer training
    "full": Toy2DConfig(
        datasets=ALL_DATASETS,
        models=FLOWS + BASELINES + ("diffusion", "gan"),
        train=LONG,
        train_overrides={**BASELINE_TRAIN, **GAN_TRAIN},
        model_options=OPTIONS,
        eval=VectorEval(grid_n=400, n_samples=10_000),
        out="results/toy2d_full",
    ),
    # make parzen: the GAN beside flows and baselines, and the Parzen-window comparison (parzen.md),
    # on 8gaussians (modes to count) and checkerboard (exact entropy)
    "parzen": Toy2DConfig(
        datasets=("8gaussians", "checkerboard"),
        models=FLOWS + BASELINES + ("gan",),
        train=LONG,
        train_overrides={**BASELINE_TRAIN, **GAN_TRAIN},
        model_options=OPTIONS,
        eval=VectorEval(grid_n=400, n_samples=10_000),
        out="results/toy2d_parzen",
    ),
    "tabular": Toy2DConfig(
        datasets=(),
        models=FLOWS + BASELINES,
        train=TABULAR.train,
        train_overrides=TABULAR.train_overrides,
        model_options=TABULAR.model_options,
        eval=TABULAR.eval,
        parzen_samples=0,
        out="results/tabular",
    ),
    # tests: seconds
    "smoke": Toy2DConfig(
        datasets=("moons", "checkerboard"),
        models=FLOWS + BASELINES,
        train=TrainConfig(
            steps=40, batch_size=128, steps_per_dispatch=20, checkpoint_every=20, progress=False
        ),
        train_overrides={"gmm": {"lr": 1e-2}},
        model_options={
            "maf": {"num_layers": 2},
            "realnvp": {"num_layers": 2},
            "nsf": {"num_layers": 2},
            "diffusion": {
                "width": 32,
                "num_blocks": 1,
                "elbo_samples": 8,
                "sample_steps": 20,
                "ode_rtol": 1e-3,
                "ode_atol": 1e-3,
                "ode_grid_n": 16,
            },
        },
        n_train=2000,
        n_test=500,
        eval=VectorEval(grid_n=40, n_samples=1000),
        parzen_samples=1000,
        parzen_val=500,
    ),
}
