"""Presets of the VAE estimator study (`experiments/vae_estimators.py`, `make vae-estimators`)."""

from __future__ import annotations

import dataclasses

from experiments.configs.images import CPU, SMOKE
from gen_jax.evaluation.images import ImageSetup


@dataclasses.dataclass(frozen=True)
class EstimatorStudyConfig:
    """IWAE against prior sampling against k, on a few test images, from a trained latent-variable
    model (the images study's run of `model`)."""

    setup: ImageSetup
    model: str = "vae"
    ks: tuple[int, ...] = (1, 10, 100, 1000, 5000)
    images: int = 16
    repeats: int = 4
    chunk_size: int = 100
    seed: int = 0
    out: str = "results/vae_estimators"


PRESETS = {
    "cpu": EstimatorStudyConfig(setup=CPU.setup),
    "smoke": EstimatorStudyConfig(
        setup=SMOKE.setup,
        ks=(1, 4, 16),
        images=4,
        repeats=2,
        chunk_size=4,
        out="results/vae_estimators_smoke",
    ),
}
