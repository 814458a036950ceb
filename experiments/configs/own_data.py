"""Presets of the own-data check (`experiments/own_data.py`, `make own-data`)."""

from __future__ import annotations

import dataclasses

from gen_jax.evaluation.fit import VectorEval
from gen_jax.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class OwnDataConfig:
    """Datasets outside the toy suite, written as train/test files and read back as a user's would be,
    at their raw scale and rescaled (a x + b per `rescalings`), through every model of `models`."""

    datasets: tuple[str, ...] = ("mix6d", "sine10d", "shifted2d")
    rescalings: tuple[tuple[float, float], ...] = ((1.0, 0.0), (100.0, -500.0), (0.01, 3.0))
    models: tuple[str, ...] = ("nsf", "maf", "realnvp", "gmm", "gaussian")
    train: TrainConfig = TrainConfig(
        steps=6000, batch_size=512, lr=2e-3, warmup_steps=200, checkpoint_every=2000
    )
    train_overrides: dict = dataclasses.field(
        default_factory=lambda: {"gaussian": {"steps": 1000, "lr": 1e-2}, "gmm": {"steps": 3000, "lr": 1e-2}}
    )
    model_options: dict = dataclasses.field(
        default_factory=lambda: {
            # eight layers each: in 6 and 10 dimensions the coupling flows' random permutations need
            # the depth to couple every coordinate with every other (NSF mix6d: 0.46 nats above its
            # entropy with 4 layers, 0.08 with 8; python -m experiments.own_data models=[nsf] ...)
            "nsf": {"num_layers": 8},
            "maf": {"num_layers": 8, "activation": "silu"},
            "realnvp": {"num_layers": 8, "activation": "silu"},
            "gmm": {"num_components": 10},
        }
    )
    n_train: int = 50_000
    n_test: int = 10_000
    n_entropy: int = 200_000  # samples of the true density for its entropy
    eval: VectorEval = VectorEval(grid_n=200, n_samples=2000)
    seed: int = 0
    out: str = "results/own_data"


PRESETS = {
    "default": OwnDataConfig(),
    "smoke": OwnDataConfig(
        datasets=("mix6d", "shifted2d"),
        rescalings=((1.0, 0.0), (100.0, -500.0)),
        models=("nsf", "gaussian"),
        train=TrainConfig(
            steps=60, batch_size=128, steps_per_dispatch=30, checkpoint_every=None, progress=False
        ),
        train_overrides={},
        model_options={"nsf": {"num_layers": 2, "hidden": (16,)}},
        n_train=1000,
        n_test=300,
        n_entropy=2000,
        eval=VectorEval(grid_n=30, n_samples=100),
        out="results/own_data_smoke",
    ),
}
