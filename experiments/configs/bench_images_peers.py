"""Presets of the image models side by side with PyTorch (`experiments/bench_images_peers`, `make
bench-images-peers`): typed data, built once."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BenchImagesPeersConfig:
    """Which families and libraries, on what data, for how long.

    families: of pixelcnn, vae, glow, diffusion; libraries: of gen_jax, torch_eager, torch_compile,
    torch_eager_nchw, torch_compile_nchw (torch under `peer_python`, the peers' venv). Each measured
    `runs` times, `steps` optimizer steps each, of which the first `steps_per_dispatch` are warm-up
    (gen_jax's scanned block; at least 2 blocks); `eval_reps` timed evaluation calls. data:
    fashion_mnist (IDX files / TFDS, from `data_dir`, None: $GEN_JAX_DATA_DIR) or random;
    torch_threads: None: the machine's cores.
    """

    runs: int = 3
    steps: int = 110
    steps_per_dispatch: int = 10
    eval_reps: int = 5
    families: tuple[str, ...] = ("pixelcnn", "vae", "glow", "diffusion")
    libraries: tuple[str, ...] = ("gen_jax", "torch_eager", "torch_compile")
    data: str = "fashion_mnist"
    data_dir: str | None = None
    peer_python: str = ".venv-peers/bin/python"
    torch_threads: int | None = None
    out: str = "results/bench"


PRESETS = {
    "default": BenchImagesPeersConfig(),
    "smoke": BenchImagesPeersConfig(runs=1, steps=30, families=("vae",), out="results/bench_smoke"),
}
