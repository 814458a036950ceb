"""The Fashion-MNIST likelihood benchmark: test bits/dim of every family, each labelled with its kind.

    python -m experiments.images --preset cpu                          # make images
    python -m experiments.images --preset full                         # one GPU
    python -m experiments.images --models pixel_cat,pixelcnn setup.train_overrides.pixelcnn.steps=500
    python -m experiments.images eval_run=results/images/runs/fashion_mnist/glow-<hash>   # make eval

Every image model's `log_prob` is in nats of the *discrete* 8-bit image (continuous models account
for their dequantization), so bits/dim is one conversion for all (`gen_jax.core.units`). Each way a
model gives log p(x) (its log_prob, its estimators, and the estimator views of the config, e.g.
Glow's importance-weighted dequantization) is a row labelled with its kind. Runs are keyed by their
config and reused. Writes results/images/results.json, results.md, a sample grid per model,
samples.png and (quality.num_samples > 0) the sample-quality report quality.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from experiments.configs.images import PRESETS, ImagesConfig
from gen_jax.evaluation import quality
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.images import evaluate_image_run, load_image_splits, run_samples, trained_image_model
from gen_jax.evaluation.notes import dequantization_note, energy_note
from gen_jax.evaluation.rows import UNTRUSTED
from gen_jax.evaluation.runs import RunSpec, restore
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.plotting import image_grid, image_panels

KEYS = (
    "dataset",
    "model",
    "likelihood_kind",
    "test_bpd",
    "test_bpd_se",
    "test_bpd_bracket",
    "trust",
    "log_z_ais",
    "log_z_ais_se",
    "log_z_ais_ess",
    "log_z_is",
    "log_z_is_se",
    "log_z_is_ess",
    "log_z_learned",
    "n_eval",
    "minus_own_bpd",
    "minus_own_bpd_se",
    "paired",
    "params",
    "train_seconds",
    "train_steps",
    "images_per_sec",
    "eval_seconds",
)
COLUMNS = [
    ("model", "model"),
    ("kind_str", "kind"),
    ("bpd_str", "test bits/dim"),
    ("test_bpd_se", "± se"),
    ("bracket_str", "certain bracket"),
    ("n_eval", "test images"),
    ("minus_own_bpd", "minus own view, paired"),
    ("minus_own_bpd_se", "± se "),
    ("params", "params"),
    ("train_seconds", "train s"),
    ("train_steps", "steps"),
    ("images_per_sec", "train images/s"),
    ("eval_seconds", "eval s"),
]


def run(cfg: ImagesConfig, fresh: bool = False) -> list[dict]:
    """Train (or reuse) and evaluate every model; write the tables and figures."""
    out = Path(cfg.out)
    train_set, test_set = load_image_splits(cfg.setup)
    rows, runs = [], {}
    for name in cfg.setup.models:
        runs[name] = run = trained_image_model(name, cfg.setup, train_set, test_set, fresh)
        model_rows = evaluate_image_run(run, test_set.images, train_set.images, cfg.eval)
        samples = run_samples(run, cfg.n_samples, cfg.setup.seed)
        image_grid(out / f"samples_{name}.png", samples, f"{name} samples")
        np.save(out / f"samples_{name}.npy", samples)
        for r in model_rows:
            print(summary(r), flush=True)
        rows += model_rows
    write_results(out, rows, KEYS, markdown(rows))
    image_panels(out / "samples.png", [(m, np.load(out / f"samples_{m}.npy")[:36]) for m in cfg.setup.models])
    if cfg.quality.num_samples:
        draws = {m: (lambda n, r=r: run_samples(r, n, cfg.setup.seed)) for m, r in runs.items()}
        qrows = quality.report(
            cfg.quality, train_set, test_set, rows, draws, cfg.setup.seed, cfg.setup.dataset
        )
        quality.write(out, qrows)
    print(
        f"\nwrote {out / 'results.json'} ({len(rows)} rows)\n\n{(out / 'results.md').read_text()}", flush=True
    )
    return rows


def eval_saved(cfg: ImagesConfig, run_dir: str) -> list[dict]:
    """Evaluate one saved run alone (`make eval CKPT=<run directory>`), with this config's evaluation."""
    from gen_jax.evaluation.runs import Run
    from gen_jax.training import TrainConfig

    saved = json.loads((Path(run_dir) / "config.json").read_text())
    spec = RunSpec(
        saved["model"],
        tuple(saved["event_shape"]),
        saved["options"],
        TrainConfig(**saved["train"]),
        saved["data"],
        saved.get("context_dim"),
    )
    train_set, test_set = load_image_splits(dataclasses.replace(cfg.setup, models=(spec.model,)))
    model = spec.build()
    n = max(spec.train.batch_size, min(len(train_set), spec.train.init_examples))
    params = restore(model, spec, Path(run_dir), train_set.images[:n])
    run = Run(spec, model, params, Path(run_dir), float("nan"), 0, float("nan"), float("nan"), True)
    rows = evaluate_image_run(run, test_set.images, train_set.images, cfg.eval)
    for r in rows:
        print(summary(r))
    return rows


def summary(r: dict) -> str:
    """One line per row, as the run goes."""
    bpd = (
        f"{r['test_bpd']:.3f} ± {r['test_bpd_se']:.3f} bits/dim"
        if r.get("test_bpd") is not None
        else "no density"
    )
    return (
        f"{r['model']:>24s} {r['likelihood_kind']:>12s}  {bpd}  ({r.get('train_seconds') or 0:.0f}s training)"
    )


def _display(r: dict) -> dict:
    undetermined = r.get("trust") in UNTRUSTED
    bracket = r.get("test_bpd_bracket")
    return {
        **r,
        "kind_str": f"{r['likelihood_kind']}" + (" (undetermined)" if undetermined else ""),
        "bpd_str": "see bracket"
        if undetermined
        else (None if r.get("test_bpd") is None else f"{r['test_bpd']:.3f}"),
        "bracket_str": None if not bracket else f"[{bracket[0]:.3f}, {bracket[1]:.3f}]",
    }


def markdown(rows: list[dict]) -> str:
    """results.md: the table, what kinds mean, and the notes that say how far to trust each number."""
    head = (
        "Fashion-MNIST test bits/dim (lower is better; ± the standard error over test images, and of the "
        "log Z estimate where there is one). kind says what the number is: exact; lower_bound (of log p, so "
        "the bits/dim is an upper bound); estimate. Continuous models are scored on uniformly dequantized "
        "data: one draw is a bound, k draws importance-weighted an estimate (`/iwK`). An energy model whose "
        "AIS weights rest on fewer than 10% of its chains is 'undetermined': its certain bracket is the "
        f"number.\nMachine: {machine_description()}.\n\n"
    )
    digits = {
        "test_bpd_se": 3,
        "minus_own_bpd": 4,
        "minus_own_bpd_se": 4,
        "train_seconds": 0,
        "images_per_sec": 1,
        "eval_seconds": 0,
    }
    table = markdown_table([_display(r) for r in rows], COLUMNS, digits=digits)
    return head + table + dequantization_note(rows) + "".join(energy_note(r) for r in rows if r.get("ais"))


SHORTHANDS = {
    "--models": ("setup.models", "list"),
    "--out": ("out", "value"),
    "--data-dir": ("setup.data_dir", "value"),
    "--eval": ("eval_run", "value"),
}


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("images", PRESETS, dispatch, argv, default_preset="cpu", shorthands=SHORTHANDS, doc=__doc__)


def dispatch(cfg: ImagesConfig, fresh: bool = False):
    """`eval_run` evaluates one saved run; otherwise the whole benchmark."""
    if cfg.eval_run:
        return eval_saved(cfg, cfg.eval_run)
    return run(cfg, fresh)


if __name__ == "__main__":
    main()
