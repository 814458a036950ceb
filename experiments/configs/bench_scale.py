"""Presets of the scaling table (`experiments/bench_scale.py`, `make bench-scale`): typed data, built once."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchScaleConfig:
    """Which models run on how many devices, at which batches, for how long.

    models: the flow benchmark's NSF and the image models of the `cpu` preset; devices: simulated CPU
    device counts; batch: the image models' batch (NSF: 512); real_batches: the image batches on a
    real accelerator; dispatches: timed dispatches after the first (which compiles), of
    `image_steps_per_dispatch` steps for the image models (NSF: 100); no_real: only the simulated
    devices.
    """

    models: tuple[str, ...] = ("nsf", "glow", "pixelcnn", "vae", "diffusion", "ebm_dsm_ladder")
    devices: tuple[int, ...] = (1, 2, 4, 8)
    batch: int = 64
    real_batches: tuple[int, ...] = (64, 256, 1024)
    dispatches: int = 3
    image_steps_per_dispatch: int = 5
    no_real: bool = False
    out: str = "results/bench"


PRESETS = {
    "default": BenchScaleConfig(),
    "smoke": BenchScaleConfig(models=("nsf", "vae"), devices=(1, 2), dispatches=1, out="results/bench_smoke"),
}
