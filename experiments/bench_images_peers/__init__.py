"""gen_jax's four convolutional image families against the same models in PyTorch, side by side.

    python -m experiments.bench_images_peers                       # make bench-images-peers
    python -m experiments.bench_images_peers --runs 1 --steps 30 --families vae   # a smoke run

The work: each family at the size of the `cpu` preset of `make images` (`FAMILIES`: the one table of
model kwargs and batch sizes, read by both libraries), trained for `steps` optimizer steps on the
same batches from the same initial parameters, with the same optimizer (Adam 1e-3, global-norm
clipping at 1.0, warm-up then cosine decay to zero over the run, `TRAIN`), then evaluated (the
log-likelihood or bound, no gradient) on the same test batch.

- gen_jax: `make_model(name, (28, 28, 1), **kwargs)` trained by `gen_jax.training.train`,
  `STEPS_PER_DISPATCH` steps per jitted `lax.scan`, on the exported batches in order; evaluation by
  `jax.jit(model.log_prob)`. `gen_jax_run.py` is the child entry.
- PyTorch (CPU build, `torch_models.py`): the same layers, built to compute the same function (a test
  loads gen_jax's parameters and compares log-probabilities to float precision); a plain loop
  (zero_grad, loss, backward, `clip_grad_norm_`, fused Adam, `LambdaLR` with optax's schedule),
  `torch.set_num_threads(cores)`, channels_last, oneDNN convolutions; each run once eager and once
  under `torch.compile` (inductor), and the faster counts as PyTorch's number. `torch_run.py` is the
  child entry, run with the peers' python (`.venv-peers`, never a gen_jax dependency).

The orchestrator (`__main__`) exports, once per family, the training batches, the test batch and
gen_jax's initial parameters (`model.init`, Glow's data-dependent actnorm included) to one .npz that
every child reads; each measurement is a fresh process that prints one `BENCH {json}` line. Writes
results/bench/images_peers.json and images_peers.md (medians of `runs` runs; `tables.py`) and
images_peers_config.yaml. Presets and fields: experiments/configs/bench_images_peers.py (the defaults
below are its defaults; the earlier flags are shorthands of its fields).

This module is the shared part, importable from either venv (numpy and the standard library only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

IMAGE_SHAPE = (28, 28, 1)
NUM_DIMS = 28 * 28

# The `cpu` preset of `make images` (experiments/configs/images.py), one row per family: the gen_jax
# model name, its options in gen_jax's spelling (the PyTorch twin takes the same names, and the earlier
# `hidden` for Glow's `channels` and the VAE's `dense_width`), the training batch size.
FAMILIES: dict[str, dict] = {
    "pixelcnn": dict(
        model="pixelcnn",
        kwargs=dict(channels=32, num_layers=6, first_kernel=5, head_hidden=64, num_mixtures=5),
        batch=16,
        what="gated PixelCNN 6 x 32 channels, 5-component discretized logistic mixture",
    ),
    "vae": dict(
        model="vae",
        kwargs=dict(latent_dim=32, encoder_channels=(32, 64), decoder_channels=(64, 32), dense_width=256),
        batch=64,
        what="conv VAE (32, 64) / (64, 32), 32-d latent, logistic mixture decoder, ELBO",
    ),
    "glow": dict(
        model="glow",
        kwargs=dict(num_levels=2, steps_per_level=4, channels=32, num_blocks=1),
        batch=32,
        what="Glow 2 scales x 4 steps, ResNet conditioners 32 channels, learned prior",
    ),
    "diffusion": dict(
        model="diffusion",
        kwargs=dict(data="8bit", unet_channels=(64, 64), unet_patch=2, elbo_samples=4),
        batch=32,
        what="VDM diffusion, U-Net (64, 64) on 2x2 patches, ELBO loss, bound with 4 times",
    ),
}
TRAIN = dict(lr=1e-3, clip_norm=1.0, warmup_steps=10, end_lr_fraction=0.0)  # Adam, cosine to zero
STEPS_PER_DISPATCH = 10  # gen_jax's lax.scan block; also the warm-up steps left out of steps/s
DEFAULT_STEPS = 110  # per measurement: 10 warm-up + 100 timed steps (5-20 s of steady state on 2 cores)
EVAL_BATCH = 128  # test images per evaluation call
EVAL_REPS = 5  # timed evaluation calls, after one untimed call
# PyTorch runs channels_last; the *_nchw variants (NCHW-contiguous, for a check of that choice) run
# only when asked for (`libraries`)
LIBRARIES = ("gen_jax", "torch_eager", "torch_compile", "torch_eager_nchw", "torch_compile_nchw")
DEFAULT_LIBRARIES = ("gen_jax", "torch_eager", "torch_compile")


def nats_to_bpd(nats: float | None) -> float | None:
    """Nats per 28x28 image -> bits per dimension."""
    return None if nats is None else nats / (NUM_DIMS * math.log(2.0))


def lr_factor(step: int, steps: int, warmup_steps: int, end_fraction: float = 0.0) -> float:
    """optax.warmup_cosine_decay_schedule(0, 1, min(warmup, steps - 1), steps, end) at `step`, as
    gen_jax's TrainConfig builds it: the PyTorch loop's LambdaLR factor."""
    warmup = min(warmup_steps, steps - 1)
    if warmup > 0 and step < warmup:
        return step / warmup
    span = max(steps - warmup, 1)
    frac = min(max(step - warmup, 0), span) / span
    return end_fraction + (1.0 - end_fraction) * 0.5 * (1.0 + math.cos(math.pi * frac))


# ----------------------------------------------------------------------------- the exported file


def save_export(path: str | Path, arrays: dict, params: dict, consts: dict, meta: dict) -> Path:
    """One .npz per family: `arrays` (batches, test, ...), parameters and constants by path, meta JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = dict(arrays)
    out.update({f"param/{k}": np.asarray(v) for k, v in params.items()})
    out.update({f"const/{k}": np.asarray(v) for k, v in consts.items()})
    out["meta"] = np.asarray(json.dumps(meta))
    np.savez(path, **out)
    return path


def load_export(path: str | Path) -> dict:
    """{"meta": dict, "params": {path: array}, "consts": {path: array}, other arrays by name}."""
    out: dict = {"params": {}, "consts": {}}
    with np.load(path) as f:
        for k in f.files:
            if k.startswith("param/"):
                out["params"][k[len("param/") :]] = f[k]
            elif k.startswith("const/"):
                out["consts"][k[len("const/") :]] = f[k]
            elif k == "meta":
                out["meta"] = json.loads(str(f[k]))
            else:
                out[k] = f[k]
    return out
