"""Presets of the flow benchmark (`experiments/bench_flows.py`, `make bench-flows`): typed data."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchFlowsConfig:
    """The fixed work of `make bench-flows` and how often it is measured.

    models: of the benchmark's flows (realnvp, nsf; `experiments.benchlib.BENCH`); datasets: 2D toys.
    Each (model, dataset) is measured `runs` times, each a fresh process: `steps` Adam steps of batch
    512, `steps_per_dispatch` of them per jitted dispatch; compute_dtype: float32 (the benchmark) or
    bfloat16 (mixed precision).
    """

    runs: int = 3
    steps: int = 3000
    steps_per_dispatch: int = 100
    compute_dtype: str = "float32"
    models: tuple[str, ...] = ("realnvp", "nsf")
    datasets: tuple[str, ...] = ("moons", "checkerboard")
    out: str = "results/bench"


PRESETS = {
    "default": BenchFlowsConfig(),
    "smoke": BenchFlowsConfig(runs=1, steps=300, datasets=("moons",), out="results/bench_smoke"),
}
