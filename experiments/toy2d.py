"""The 2D likelihood comparison: every model on every toy density, against the true entropy.

    python -m experiments.toy2d --preset demo            # make demo
    python -m experiments.toy2d --preset full            # make toy
    python -m experiments.toy2d --datasets moons,my.npy --models nsf,gmm --steps 5000 --resume

Writes results/toy2d/results.json (one row per dataset x model), results.md and one PNG per
dataset (true density and each model's density on top, samples below). `gap` is test NLL
minus the true entropy of the data (nats), the distance to the best any model can do.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax

from experiments import parzen_report
from experiments.common import (
    build_model,
    fit_and_evaluate,
    load_vector_data,
    machine_description,
    markdown_table,
    train_config_for,
    write_results,
)
from experiments.configs.toy2d import Toy2DConfig, get_config
from gen_jax.likelihood.grid import evaluate_on_grid
from gen_jax.plotting import density_and_samples_figure

KEYS = (
    "dataset",
    "model",
    "likelihood_kind",
    "test_nll",
    "test_nll_se",
    "true_entropy",
    "gap",
    "grid_mass",
    "train_seconds",
    "steps",
    "params",
)
COLUMNS = [
    ("dataset", "dataset"),
    ("model", "model"),
    ("likelihood_kind", "kind"),
    ("test_nll", "test NLL"),
    ("test_nll_se", "± se"),
    ("true_entropy", "H(p)"),
    ("gap", "gap"),
    ("grid_mass", "grid mass"),
    ("train_seconds", "train s"),
    ("steps", "steps"),
    ("params", "params"),
]


def run(cfg: Toy2DConfig, resume: bool = False) -> list[dict]:
    out = Path(cfg.out)
    rows = []
    parzen_rows = []  # the Parzen-window comparison (parzen.json / parzen.md), beside results.json
    for ds in cfg.datasets:
        data = load_vector_data(ds, cfg.n_train, cfg.n_test, cfg.seed)
        panels = []
        if data.true_log_prob is not None and data.box is not None:
            panels.append(
                dict(
                    label=f"truth (H={data.true_entropy:.3f})",
                    log_density=evaluate_on_grid(data.true_log_prob, data.box, cfg.grid_n),
                    samples=data.test[: cfg.n_samples],
                )
            )
        entries = []
        for name in cfg.models:
            model = build_model(name, (data.dim,), cfg.model_kwargs)
            tcfg = dataclasses.replace(train_config_for(name, cfg.train, cfg.train_overrides), seed=cfg.seed)
            workdir = out / "runs" / data.name / name
            results = fit_and_evaluate(
                model, data, tcfg, workdir, resume, cfg.grid_n, cfg.n_samples, cfg.seed
            )
            if cfg.parzen_samples:
                entries.append(
                    parzen_report.fitted_entry(model, data, workdir, results, cfg.parzen_samples, cfg.seed)
                )
            for res in results:
                rows.append(res)
                label = f"{res['model']} ({res['likelihood_kind']})"
                if res["test_nll"] is not None:
                    label += f"\nNLL {res['test_nll']:.3f}"
                panels.append(dict(label=label, log_density=res["log_density"], samples=res["samples"]))
                print(_summary(res), flush=True)
        if data.box is not None:
            title = f"{data.name}: density (top), samples (bottom)"
            density_and_samples_figure(out / f"{data.name}.png", title, data.box, panels)
        if entries:
            entries.append(parzen_report.training_set_entry(data, cfg.parzen_samples, cfg.parzen_val))
            parzen_rows += parzen_report.compare(data, entries, cfg.parzen_val)
    write_results(out, rows, KEYS, _markdown(rows))
    if parzen_rows:
        parzen_report.write(out, parzen_rows)
    return rows


def _summary(r: dict) -> str:
    parts = [f"{r['dataset']:>12s} {r['model']:>10s} {r['likelihood_kind']:>12s}"]
    if r["test_nll"] is not None:
        parts.append(f"NLL {r['test_nll']:.4f} ± {r['test_nll_se']:.4f}")
    if r["gap"] is not None:
        parts.append(f"gap {r['gap']:+.4f}")
    if r["grid_mass"] is not None:
        parts.append(f"mass {r['grid_mass']:.4f}")
    parts.append(f"{r['train_seconds']:.1f}s")
    return "  ".join(parts)


def _markdown(rows: list[dict]) -> str:
    head = (
        "Test NLL in nats on 10,000 fresh samples (± standard error); H(p) is the true entropy of the data "
        "(Monte Carlo, 200,000 samples), the floor of any model's expected NLL; gap = NLL - H(p). "
        "Grid mass is the model's density integrated over the plotting box.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    return head + markdown_table(rows, COLUMNS, digits={"train_seconds": 1, "test_nll_se": 4})


def parse_args(argv=None) -> tuple[Toy2DConfig, bool]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", help="demo | full | smoke")
    p.add_argument("--datasets", help="comma-separated toy names or .npy/.csv paths")
    p.add_argument("--models", help="comma-separated model names")
    p.add_argument("--steps", type=int, help="training steps of the neural models")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output directory")
    p.add_argument("--resume", action="store_true", help="reuse finished runs and continue interrupted ones")
    a = p.parse_args(argv)
    cfg = get_config(a.preset)
    changes = {}
    if a.datasets:
        changes["datasets"] = tuple(a.datasets.split(","))
    if a.models:
        changes["models"] = tuple(a.models.split(","))
    if a.seed is not None:
        changes["seed"] = a.seed
    if a.out:
        changes["out"] = a.out
    train_changes = {
        k: v for k, v in dict(steps=a.steps, batch_size=a.batch_size, lr=a.lr).items() if v is not None
    }
    if train_changes:
        changes["train"] = dataclasses.replace(cfg.train, **train_changes)
    return dataclasses.replace(cfg, **changes), a.resume


def main(argv=None) -> None:
    cfg, resume = parse_args(argv)
    print(
        f"toy2d: {len(cfg.datasets)} datasets x {len(cfg.models)} models on {jax.devices()[0].platform}",
        flush=True,
    )
    rows = run(cfg, resume)
    print(f"\nwrote {Path(cfg.out) / 'results.json'} ({len(rows)} rows)")
    print(Path(cfg.out, "results.md").read_text())


if __name__ == "__main__":
    main()
