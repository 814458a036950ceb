"""The tables of `make bench-images-peers` (the orchestrator's side; standard library only): medians
over runs, PyTorch's best mode, gen_jax / PyTorch ratios, images_peers.md and images_peers.json.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from experiments.bench_images_peers import FAMILIES, LIBRARIES

BUSY_WARNING = 0.1  # other processes' share of the cores during a run above which the table warns
LIBRARY_NAMES = {
    "gen_jax": "gen_jax",
    "torch_eager": "PyTorch eager",
    "torch_compile": "PyTorch compiled",
    "torch_eager_nchw": "PyTorch eager NCHW",
    "torch_compile_nchw": "PyTorch compiled NCHW",
}
KEYS = (
    "family",
    "library",
    "train_steps_per_sec",
    "train_images_per_sec",
    "eval_images_per_sec",
    "first_step_seconds",
    "eval_first_call_seconds",
    "peak_rss_mb",
    "params",
    "init_test_bpd",
    "final_test_bpd",
    "final_train_bpd",
    "batch",
    "steps",
    "version",
    "others_busy",
    "runs",
)
METRICS = (
    "train_steps_per_sec",
    "train_images_per_sec",
    "eval_images_per_sec",
    "first_step_seconds",
    "eval_first_call_seconds",
    "peak_rss_mb",
    "init_test_bpd",
    "final_test_bpd",
    "final_train_bpd",
    "others_busy",
)


def median_row(runs: list[dict]) -> dict:
    """Medians over runs of every metric (non-finite and missing values left out)."""
    row = {k: runs[0].get(k) for k in ("family", "library", "params", "batch", "steps", "version")}
    for k in METRICS:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        row[k] = statistics.median(vals) if vals else None
    row["runs"] = runs
    return row


def best_torch(
    rows: list[dict], family: str, metric: str, higher: bool = True
) -> tuple[float | None, str | None]:
    """PyTorch's number for `metric`: the better of its eager and compiled medians, and which it was."""
    best = (None, None)
    for r in rows:
        if r["family"] != family or not r["library"].startswith("torch_") or r.get(metric) is None:
            continue
        v = r[metric]
        if best[0] is None or (v > best[0] if higher else v < best[0]):
            best = (v, r["library"][len("torch_") :])
    return best


def ratios(rows: list[dict]) -> list[dict]:
    """Per family: gen_jax's train steps/s and eval images/s, PyTorch's best (and its mode), and
    gen_jax / PyTorch for both."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        ours = next((r for r in rows if r["family"] == family and r["library"] == "gen_jax"), None)
        row = {"family": family}
        for metric, short in (("train_steps_per_sec", "train"), ("eval_images_per_sec", "eval")):
            theirs, mode = best_torch(rows, family, metric)
            mine = ours.get(metric) if ours else None
            row[f"gen_jax_{short}"] = mine
            row[f"torch_{short}"] = theirs
            row[f"torch_{short}_mode"] = mode
            row[f"ratio_{short}"] = mine / theirs if mine and theirs else None
        out.append(row)
    return out


def _fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def _ratio(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def family_table(rows: list[dict], family: str) -> str:
    """One family: each metric a row, each library a column, and gen_jax / PyTorch's best."""
    libs = [lib for lib in LIBRARIES if any(r["family"] == family and r["library"] == lib for r in rows)]
    by = {r["library"]: r for r in rows if r["family"] == family}
    spec = FAMILIES.get(family, {})
    head = f"**{family}** ({spec.get('what', '')}; batch {spec.get('batch', '-')})\n\n"
    lines = ["| | " + " | ".join(LIBRARY_NAMES[lib] for lib in libs) + " | gen_jax / PyTorch |"]
    lines.append("|---|" + "---|" * (len(libs) + 1))
    metrics = [
        ("train_steps_per_sec", "train steps/s", 2, True),
        ("train_images_per_sec", "train images/s", 0, True),
        ("eval_images_per_sec", "eval images/s", 0, True),
        ("first_step_seconds", "first step s (compile included)", 1, False),
        ("eval_first_call_seconds", "first eval call s", 1, False),
        ("peak_rss_mb", "peak RSS MB", 0, False),
        ("params", "parameters", 0, None),
        ("init_test_bpd", "test bits/dim at init (same weights)", 3, None),
        ("final_test_bpd", "test bits/dim after training", 3, None),
        ("final_train_bpd", "train loss bits/dim (last steps)", 3, None),
    ]
    for key, label, digits, higher in metrics:
        cells = [_fmt(by[lib].get(key), digits) for lib in libs]
        ratio = ""
        if higher is not None and "gen_jax" in by and by["gen_jax"].get(key):
            theirs, mode = best_torch(rows, family, key, higher)
            if theirs:
                ratio = f"{_ratio(by['gen_jax'][key] / theirs)} (vs {mode})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return head + "\n".join(lines) + "\n"


def summary_table(rows: list[dict]) -> str:
    lines = [
        "| family | gen_jax train steps/s | PyTorch train steps/s | gen_jax / PyTorch "
        "| gen_jax eval images/s | PyTorch eval images/s | gen_jax / PyTorch | params (gen_jax / PyTorch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ratios(rows):
        params = {x["library"]: x.get("params") for x in rows if x["family"] == r["family"]}
        torch_params = next((v for k, v in params.items() if k.startswith("torch_") and v), None)
        lines.append(
            f"| {r['family']} | {_fmt(r['gen_jax_train'], 2)} | {_fmt(r['torch_train'], 2)}"
            + (f" ({r['torch_train_mode']})" if r["torch_train_mode"] else "")
            + f" | {_ratio(r['ratio_train'])} | {_fmt(r['gen_jax_eval'], 0)} | {_fmt(r['torch_eval'], 0)}"
            + (f" ({r['torch_eval_mode']})" if r["torch_eval_mode"] else "")
            + f" | {_ratio(r['ratio_eval'])} | {_fmt(params.get('gen_jax'), 0)} / {_fmt(torch_params, 0)} |"
        )
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict], meta: dict) -> str:
    """images_peers.md: the summary, one table per family, the machine and versions, what differs."""
    busy = [x["others_busy"] for r in rows for x in r.get("runs", []) if x.get("others_busy") is not None]
    load = (
        f"; other processes kept {100 * min(busy):.0f}-{100 * max(busy):.0f}% of the cores busy during the "
        "runs"
        if busy
        else ""
    )
    head = (
        f"gen_jax's image families against the same models in PyTorch: the `cpu` preset sizes of `make "
        f"images`, {meta['steps']} training steps each ({meta['warmup']} warm-up steps left out of steps/s), "
        "Adam 1e-3 with global-norm clipping at 1.0 and the warm-up + cosine schedule, the same "
        f"batches and the same initial parameters (exported once from gen_jax; data: {meta['data']}); "
        f"evaluation: the log-likelihood or bound on a batch of {meta['eval_batch']} test images, no "
        f"gradient, {meta['eval_reps']} timed calls after a first one. Medians of {meta['runs']} run(s), "
        "each a fresh process. PyTorch's number is the faster of eager and `torch.compile` (named in "
        f"brackets). Machine: {meta['machine']}{load}. Versions: {meta['versions']}.\n\n"
    )
    if busy and max(busy) > BUSY_WARNING:
        head += (
            f"**The machine was not idle** (other work kept up to {100 * max(busy):.0f}% of its cores busy "
            "during a run): PyTorch's OpenMP threads slow down many-fold when they share cores, XLA's far "
            "less, so these ratios overstate gen_jax's lead; rerun on an idle machine.\n\n"
        )
    md = head + summary_table(rows) + "\n"
    for family in dict.fromkeys(r["family"] for r in rows):
        md += family_table(rows, family) + "\n"
    return md + WHAT_DIFFERS.format(warmup=meta["warmup"], reps=meta["eval_reps"])


WHAT_DIFFERS = """What differs (the work is matched, not the code):
- Execution. gen_jax jits the whole optimizer step (loss, gradient, clipping, Adam) and runs
  {warmup} steps per `lax.scan` dispatch, each batch a slice of the exported batches laid out in order on
  the device; XLA:CPU compiles the convolutions as gen_jax's im2col matrix products. PyTorch runs a
  plain loop (zero_grad, loss, backward, `clip_grad_norm_`, `Adam(fused=True)`, `LambdaLR` with
  optax's warm-up + cosine schedule) with `torch.set_num_threads(cores)`, the model and the images in
  channels_last, oneDNN convolutions; "compiled" wraps the loss and the log-likelihood in
  `torch.compile` (inductor, default mode, a fresh cache directory per process, so its first step
  includes a cold compile as JAX's does; inductor's compile workers are child processes whose memory
  is not in the peak RSS column).
- Layers. The same functions (checked to float precision from the same parameters by
  tests/test_bench_images_peers.py), with these formulation choices: PixelCNN masked convolutions
  convolve with their live taps only in both (gen_jax leaves masked taps out of its im2col; PyTorch
  slices the live rows or columns of the full kernel and pads asymmetrically), the kernel parameters
  keep the full kernel shape in both (so the masked weights count as parameters in both); strided
  convolutions pad 'SAME' as XLA does (0 before, 1 after) rather than PyTorch's symmetric padding=1;
  the VAE's pixel shuffle uses PyTorch's channel order (the up-convolution's output channels are
  permuted to match when loading gen_jax's parameters); the diffusion U-Net's attention is
  `F.scaled_dot_product_attention` with separate query/key/value/output projections (Flax's
  single-head MultiHeadDotProductAttention); GroupNorm eps 1e-6 (Flax's default) in both.
- Randomness. Each library draws its own dequantization noise, VAE latents and diffusion times and
  noises (so the bits/dim columns agree only within Monte Carlo error; the PixelCNN's are exact).
- Timing. Steps/s is the steady state after the first {warmup} steps in both (gen_jax: after its
  first dispatch of {warmup}). First step: from the model with its parameters in memory to the end of
  the first optimizer step, compilation included; gen_jax's is `train`'s set-up plus its first
  dispatch less {warmup} - 1 steady-state steps, PyTorch's is measured directly. Evaluation: the first
  call (compilation) scores the initial parameters, then {reps} timed calls the trained ones. Every row
  uses the same learning rate, 1e-3 (the `cpu` preset trains the diffusion model at 2e-3).
- Load. Each run records the share of the cores other processes used meanwhile (the machine's busy
  time less the run's own CPU time); PyTorch's OpenMP threads spin and stall when another process
  holds a core (one busy core cut its VAE from about 30 to 9 steps/s eager, 26 to 1.3 compiled),
  XLA's thread pool degrades far less, so only rows measured on an idle machine compare the two.
- Peak RSS is the kernel's high-water mark of each run's own process (VmHWM: `experiments.memory`).
"""


def write(out: Path, rows: list[dict], meta: dict) -> str:
    """images_peers.json (rows restricted to KEYS) and images_peers.md; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    data = {"meta": meta, "rows": [{k: clean(r.get(k)) for k in KEYS} for r in rows]}
    (out / "images_peers.json").write_text(json.dumps(data, indent=1) + "\n")
    md = markdown(rows, meta)
    (out / "images_peers.md").write_text(md)
    return md
