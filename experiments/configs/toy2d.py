"""Presets of the 2D likelihood comparison (`experiments/toy2d.py`)."""

from __future__ import annotations

import dataclasses

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
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)  # model -> TrainConfig fields
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # model -> builder kwargs
    n_train: int = 50_000
    n_test: int = 10_000
    grid_n: int = 400  # cells a side of the density grid (plots and grid mass)
    n_samples: int = 5000
    seed: int = 0
    out: str = "results/toy2d"
    parzen_samples: int = 10_000  # model samples per Parzen estimate (parzen.json); 0 turns it off
    parzen_val: int = 2000  # held-out training points that choose the Parzen bandwidth


_FLOWS = ("realnvp", "maf", "nsf")
_BASELINES = ("gaussian", "gmm")
# smooth (SiLU) conditioners suit the smooth densities; the spline flow keeps ReLU, which draws
# the checkerboard's sharp edges better
_KWARGS = {
    "realnvp": {"activation": "silu"},
    "maf": {"num_layers": 8, "activation": "silu"},
    "gmm": {"num_components": 10},
}
_BASELINE_TRAIN = {"gaussian": {"steps": 1000, "lr": 1e-2}, "gmm": {"steps": 3000, "lr": 1e-2}}
# the GAN (no density; samples only): Adam with b1 = 0.5, as usual for two-player training
_GAN_TRAIN = {"gan": {"steps": 10000, "lr": 1e-3, "b1": 0.5, "warmup_steps": 200}}

PRESETS: dict[str, Toy2DConfig] = {
    # make demo: 3 datasets x 3 flows + 2 baselines, a few minutes on 2 CPU cores
    "demo": Toy2DConfig(
        datasets=("moons", "checkerboard", "pinwheel"),
        models=_FLOWS + _BASELINES,
        train=TrainConfig(steps=6000, batch_size=512, lr=2e-3, warmup_steps=200, checkpoint_every=2000),
        train_overrides=_BASELINE_TRAIN,
        model_kwargs=_KWARGS,
        parzen_samples=0,  # the Parzen comparison belongs to `make parzen` / `make toy`
    ),
    # make toy: every dataset, longer training
    "full": Toy2DConfig(
        datasets=ALL_DATASETS,
        models=_FLOWS + _BASELINES + ("diffusion", "gan"),
        train=TrainConfig(steps=20000, batch_size=512, lr=2e-3, warmup_steps=500, checkpoint_every=5000),
        train_overrides={**_BASELINE_TRAIN, **_GAN_TRAIN},
        model_kwargs=_KWARGS,
    ),
    # make parzen: the GAN beside flows and baselines, and the Parzen-window comparison (parzen.md),
    # on 8gaussians (modes to count) and checkerboard (exact entropy); `full`'s training, ~25 min on CPU
    "parzen": Toy2DConfig(
        datasets=("8gaussians", "checkerboard"),
        models=_FLOWS + _BASELINES + ("gan",),
        train=TrainConfig(steps=20000, batch_size=512, lr=2e-3, warmup_steps=500, checkpoint_every=5000),
        train_overrides={**_BASELINE_TRAIN, **_GAN_TRAIN},
        model_kwargs=_KWARGS,
        out="results/toy2d_parzen",
    ),
    # tests: seconds
    "smoke": Toy2DConfig(
        datasets=("moons", "checkerboard"),
        models=_FLOWS + _BASELINES,
        train=TrainConfig(
            steps=40, batch_size=128, steps_per_dispatch=20, checkpoint_every=20, progress=False
        ),
        train_overrides={"gmm": {"lr": 1e-2}},
        model_kwargs={
            "maf": {"num_layers": 2},
            "realnvp": {"num_layers": 2},
            "nsf": {"num_layers": 2},
            "diffusion": {
                "hidden": 32,
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
        grid_n=40,
        n_samples=200,
        parzen_samples=1000,
        parzen_val=500,
    ),
}


def get_config(preset: str) -> Toy2DConfig:
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}") from None
