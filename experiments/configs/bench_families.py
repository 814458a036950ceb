"""Presets of the family throughput benchmark (`experiments/bench_families.py`, `make bench-families`):
typed data, built once."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchFamiliesConfig:
    """Which families are measured, and how long.

    families: family labels (e.g. "flow/nsf", "vae") or model names (e.g. "nsf", "glow"); empty: all.
    variants: of `experiments.bench_families.VARIANTS` and "default" (always measured); empty: every
    variant that applies to the family.
    steps: steady-state steps timed per measurement (the vector families 10x that); runs: fresh
    processes per (family, variant), and per matmul probe of `probe_n` x `probe_n` float32.
    """

    runs: int = 3
    steps: int = 60
    families: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    probe_n: int = 2048
    out: str = "results/bench"


PRESETS = {
    "default": BenchFamiliesConfig(),
    "smoke": BenchFamiliesConfig(
        runs=1, steps=10, families=("nsf", "vae"), probe_n=256, out="results/bench_smoke"
    ),
}
