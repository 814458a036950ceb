"""Presets of the image probability-flow ODE check (`experiments/ode_ladder.py`, `make ode-ladder`)."""

from __future__ import annotations

import dataclasses

from experiments.configs.images import CPU, SMOKE
from gen_jax.evaluation.images import ImageSetup


@dataclasses.dataclass(frozen=True)
class ODELadderConfig:
    """A tolerance ladder of the images study's diffusion model on the same test images and draws."""

    setup: ImageSetup
    model: str = "diffusion"
    tolerances: tuple[float, ...] = (1e-3, 1e-4, 1e-5)  # rtol = atol of each rung, loosest first
    n_images: int = 500
    batch: int = 50
    probe_images: int = 50  # images of the probe-variance study
    probes: int = 8  # probes per image there (the dequantization held fixed)
    seed: int = 0
    out: str = "results/ode_ladder"


PRESETS = {
    "cpu": ODELadderConfig(setup=CPU.setup),
    "smoke": ODELadderConfig(
        setup=SMOKE.setup,
        tolerances=(1e-1, 3e-2),
        n_images=4,
        batch=2,
        probe_images=2,
        probes=2,
        out="results/ode_ladder_smoke",
    ),
}
