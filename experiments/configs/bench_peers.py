"""Presets of the side-by-side flow benchmark (`experiments/bench_peers`, `make bench-peers`): typed
data, built once."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchPeersConfig:
    """The work of `make bench-flows` in each library, and how often it is measured.

    libraries: of gen_jax, flowjax, normflows (the peers run under `peer_python`, the peers' venv);
    models x datasets as in bench-flows; each measured `runs` times, `steps` steps each, libraries
    interleaved; torch_threads: normflows' torch threads (None: the machine's cores).
    """

    runs: int = 3
    steps: int = 3000
    libraries: tuple[str, ...] = ("gen_jax", "flowjax", "normflows")
    models: tuple[str, ...] = ("realnvp", "nsf")
    datasets: tuple[str, ...] = ("moons", "checkerboard")
    peer_python: str = ".venv-peers/bin/python"
    torch_threads: int | None = None
    out: str = "results/bench"


PRESETS = {
    "default": BenchPeersConfig(),
    "smoke": BenchPeersConfig(runs=1, steps=200, datasets=("moons",), out="results/bench_smoke"),
}
