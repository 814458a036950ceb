"""gen_jax side by side with other flow libraries on the exact work of `make bench-flows`.

    python -m experiments.bench_peers                          # make bench-peers (installs .venv-peers)
    python -m experiments.bench_peers --runs 1 --steps 200     # a short smoke run

The work is `experiments.bench_flows`': RealNVP (8 affine couplings, MLP 2x64 ReLU) and NSF (4
rational-quadratic spline couplings, 8 bins, tail bound 4, MLP 2x64), standard normal base, moons
and checkerboard (the same 50,000 training and 10,000 test points), Adam 1e-3 constant, batch 512,
float32. Every library gets the same arrays and the same batch order: both are exported once from
gen_jax to an .npz (`export_data`) holding `train`, `test` and `order`, a (steps, 512) int array
whose row i indexes step i's batch (epoch-wise shuffles, without replacement within an epoch).

- gen_jax: `experiments.bench_flows.run_once` with `batch_order` (the batches laid out in order on
  the device, `gen_jax.training.sequential_batches`), its usual 100 steps per `lax.scan` dispatch.
- flowjax (JAX): `flowjax.flows.coupling_flow`, trained by `flowjax.train.train_utils.step`, the
  jitted step `flowjax.train.fit_to_data` runs, driven over the same batches as its loop drives it.
- normflows (PyTorch, CPU build): the layers built from normflows' coupling primitives with plain
  MLP 2x64 conditioners, a plain PyTorch loop (zero_grad, -log_prob(batch).mean(), backward, step),
  `torch.set_num_threads(os.cpu_count())`.

The peers run in their own virtual environment (`.venv-peers`, which `make bench-peers` creates),
never as gen_jax dependencies: `flowjax_run.py` and `normflows_run.py` import only their library and
numpy. Each run is a fresh process; the orchestrator (`__main__`) writes results/bench/peers.json,
peers.md (medians of `runs` runs) and peers_config.yaml (the resolved config; presets and fields:
experiments/configs/bench_peers.py, the earlier flags shorthands of fields).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

LIBRARIES = ("gen_jax", "flowjax", "normflows")
PEERS = ("flowjax", "normflows")
MODELS = ("realnvp", "nsf")
DATASETS = ("moons", "checkerboard")
BATCH = 512
N_TRAIN, N_TEST = 50_000, 10_000
KEYS = (
    "library",
    "model",
    "dataset",
    "steps_per_sec",
    "first_step_seconds",
    "total_seconds",
    "test_nll",
    "gap",
    "peak_rss_mb",
    "params",
    "version",
    "runs",
)
METRICS = ("steps_per_sec", "first_step_seconds", "total_seconds", "test_nll", "gap", "peak_rss_mb")


def batch_order(n: int, steps: int, batch_size: int = BATCH, seed: int = 0) -> np.ndarray:
    """(steps, batch_size) int32 indices into n examples: consecutive epochs, each a fresh shuffle,
    cut into batches (an epoch's remainder runs into the next epoch's first batch)."""
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    perms = [rng.permutation(n) for _ in range(-(-need // n))]
    return np.concatenate(perms)[:need].reshape(steps, batch_size).astype(np.int32)


def export_data(path: str | Path, dataset: str, steps: int, seed: int = 0) -> Path:
    """Write the benchmark's arrays of `dataset` (train, test, true_entropy) and a batch order of
    `steps` batches to `path` (.npz): the one file every library reads."""
    from gen_jax.evaluation.vector import load_vector_data

    data = load_vector_data(dataset, N_TRAIN, N_TEST, seed=0)  # bench_flows.run_once's arrays
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        train=np.asarray(data.train, np.float32),
        test=np.asarray(data.test, np.float32),
        order=batch_order(len(data.train), steps, BATCH, seed),
        true_entropy=np.float64(data.true_entropy),
    )
    return path


def load_export(path: str | Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def speed_ratios(rows: list[dict]) -> list[dict]:
    """Per (model, dataset): each library's steps/s and gen_jax's steps/s divided by each peer's."""
    by = {(r["library"], r["model"], r["dataset"]): r for r in rows}
    out = []
    pairs = dict.fromkeys((r["model"], r["dataset"]) for r in rows)
    for model, dataset in pairs:
        row = {"model": model, "dataset": dataset}
        ours = by.get(("gen_jax", model, dataset))
        for lib in LIBRARIES:
            r = by.get((lib, model, dataset))
            row[f"{lib}_steps_per_sec"] = r["steps_per_sec"] if r else None
        for lib in PEERS:
            r = by.get((lib, model, dataset))
            ok = ours and r and r["steps_per_sec"]
            row[f"ratio_{lib}"] = ours["steps_per_sec"] / r["steps_per_sec"] if ok else None
        out.append(row)
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    """peers.md: the speed-ratio table, the full table, the machine and what differs."""
    from gen_jax.evaluation.tables import markdown_table

    ratio_cols = [("model", "model"), ("dataset", "dataset")]
    ratio_cols += [(f"{lib}_steps_per_sec", f"{lib} steps/s") for lib in LIBRARIES]
    ratio_cols += [(f"ratio_{lib}", f"gen_jax / {lib}") for lib in PEERS]
    ratios = [dict(r) for r in speed_ratios(rows)]
    for r in ratios:  # "2.13x"
        for lib in PEERS:
            v = r[f"ratio_{lib}"]
            r[f"ratio_{lib}"] = None if v is None else f"{v:.2f}x"
    cols = [
        ("model", "model"),
        ("dataset", "dataset"),
        ("library", "library"),
        ("steps_per_sec", "steps/s"),
        ("first_step_seconds", "first step s"),
        ("total_seconds", "total s"),
        ("test_nll", "test NLL"),
        ("gap", "gap"),
        ("peak_rss_mb", "peak RSS MB"),
        ("params", "params"),
    ]
    order = {lib: i for i, lib in enumerate(LIBRARIES)}
    full = sorted(rows, key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 99,
                                       r["dataset"], order.get(r["library"], 99)))  # fmt: skip
    digits = {f"{lib}_steps_per_sec": 0 for lib in LIBRARIES}
    ent = meta.get("entropy") or {}
    entropies = " (" + ", ".join(f"{k} {v:.4f}" for k, v in ent.items()) + ")" if ent else ""
    head = (
        f"The work of `make bench-flows` in each library: {meta['steps']} steps, batch 512, Adam 1e-3 "
        "constant, float32, the same training and test arrays and the same batch order (exported once "
        f"from gen_jax); medians of {meta['runs']} run(s), each a fresh process. steps/s: steady state, "
        "after the first step; first step: compilation (JAX) or first-call overhead (PyTorch) plus one "
        "step; test NLL in nats on the 10,000 test points; gap = test NLL - true entropy"
        f"{entropies}. Machine: {meta['machine']}. Versions: {meta['versions']}.\n\n"
    )
    md = head + markdown_table(ratios, ratio_cols, digits=digits) + "\n"
    md += markdown_table(
        full,
        cols,
        digits={
            "steps_per_sec": 0,
            "first_step_seconds": 2,
            "total_seconds": 1,
            "test_nll": 4,
            "gap": 4,
            "peak_rss_mb": 0,
        },
    )
    return md + "\n" + WHAT_DIFFERS


WHAT_DIFFERS = """What differs (the work is matched, not the code):
- gen_jax runs 100 optimizer steps per jitted `lax.scan` dispatch, each batch a contiguous slice of
  the batches laid out in order on the device; flowjax dispatches its jitted `step` once per batch
  from Python (as `fit_to_data` does: batches are slices of one device array, a key split per step),
  and PyTorch runs eagerly, op by op, on tensors made once from the same numpy arrays, with
  `torch.set_num_threads(os.cpu_count())` unless `--torch-threads` says otherwise (the machine line
  gives the count used). gen_jax compiles its small step with XLA:CPU's LLVM fusion emitters
  (`gen_jax.training.CPU_COMPILER_OPTIONS`, chosen by the step's flop count).
- Conditioners: MLP 2x64 ReLU everywhere. gen_jax's run feature-major (`gen_jax.nn.mlp.
  FeatureMajorMLP`) and, like normflows, zero the last layer (each flow starts as the identity);
  hidden biases are drawn U(+-1/sqrt(fan_in)) in all three (PyTorch's and Equinox's default; gen_jax
  sets it for its flows); flowjax's `eqx.nn.MLP` keeps its default initialisation of the last layer
  and adds its output to the transformer's initial parameters.
- RealNVP: gen_jax soft-clamps the log-scale (5 tanh(s/5)); flowjax's default affine transformer has
  scale softplus(.) + 0.01; normflows' `AffineCouplingBlock` uses exp(s) (its RealNVP example:
  `MLP([1, 64, 64, 2], init_zeros=True)`, a `Permute(2, "swap")` after each block).
- NSF: flowjax's `RationalQuadraticSpline(knots=7, interval=4)` (8 bins) also learns the two boundary
  derivatives (25 outputs per dimension, not 23: about 2% more parameters) and finds the bin by
  `searchsorted`; normflows' stock `CoupledRationalQuadraticSpline` adds a residual conditioner and an
  unconditional spline, so its layer is built here from `PiecewiseRationalQuadraticCoupling` (linear
  tails, bound 4, alternating masks) with a plain MLP 2x64 conditioner. All three evaluate the
  spline's closed form on the way to the latent (log p, training: flowjax's `invert=True` default)
  and solve its quadratic when sampling. Minimum bin size and slope: 1e-4 (gen_jax), 1e-3 (flowjax,
  normflows).
- Base: a fixed standard normal in all three (flowjax `StandardNormal`, normflows
  `DiagGaussian(trainable=False)`, gen_jax `flows.StandardNormal`).
- Peak RSS is the kernel's high-water mark of each run's own process (VmHWM: `experiments.memory`).
"""


def median_row(runs: list[dict]) -> dict:
    import statistics

    row = {k: runs[0].get(k) for k in ("library", "model", "dataset", "params", "version")}
    for k in METRICS:
        vals = [r[k] for r in runs if r.get(k) is not None and math.isfinite(r[k])]
        row[k] = statistics.median(vals) if vals else None
    row["runs"] = runs
    return row
