"""Presets of the 2D diffusion-likelihood study (`experiments/diffusion_likelihood.py`, `make diffusion`)."""

from __future__ import annotations

import dataclasses

from experiments.configs.toy2d import PRESETS as TOY_PRESETS
from experiments.configs.toy2d import Toy2DConfig


@dataclasses.dataclass(frozen=True)
class DiffusionStudyConfig:
    """The diffusion model and the NSF trained as `toy` trains them, then their likelihoods compared."""

    toy: Toy2DConfig  # its models' options and training (the `full` toy2d preset: make toy's runs)
    datasets: tuple[str, ...] = ("moons",)
    precise_samples: int = 1024  # stratified times per point of the low-noise bound
    sample_timing: int = 5000  # samples per timed sampler
    out: str = "results/diffusion"


PRESETS = {
    "default": DiffusionStudyConfig(
        toy=dataclasses.replace(TOY_PRESETS["full"], models=("diffusion", "nsf"))
    ),
    "smoke": DiffusionStudyConfig(
        toy=dataclasses.replace(
            TOY_PRESETS["smoke"], models=("diffusion", "nsf"), out="results/diffusion_smoke"
        ),
        precise_samples=16,
        sample_timing=50,
        out="results/diffusion_smoke",
    ),
}
