"""The 2D likelihood comparison: every model on every toy density, against the true entropy.

    python -m experiments.toy2d --preset demo                       # make demo
    python -m experiments.toy2d --preset full                       # make toy
    python -m experiments.toy2d --datasets moons,my.npy --models nsf,gmm train.steps=5000
    python -m experiments.toy2d --train my_train.npy --test my_test.csv --models nsf,maf,realnvp,gmm
    python -m experiments.toy2d --preset tabular --train x.npy --validation v.npy --test t.npy  # 6-D, 10-D

Any config field is an override (`key=value`, e.g. model_options.nsf.num_bins=16); runs are keyed by
their config and reused when it is the same. Writes results/toy2d/results.json (one row per dataset
x model view), results.md, one PNG per 2-D dataset (true density and each model's density on top,
samples below) and, with parzen_samples > 0, the Parzen comparison (parzen.json, parzen.md). `gap`
is the test NLL minus the true entropy of the data (nats), the distance to the best any model can do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax

from experiments.configs.toy2d import PRESETS, Toy2DConfig
from gen_jax.core import ConfigError
from gen_jax.evaluation import parzen
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.fit import fit_and_evaluate
from gen_jax.evaluation.runs import RunSpec, make_spec
from gen_jax.evaluation.tables import machine_description, markdown_table, write_results
from gen_jax.evaluation.vector import VectorData, load_vector_data, range_report
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
    "log_z_grid",
    "log_z_ais",
    "log_z_ais_se",
    "reused",
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


def datasets(cfg: Toy2DConfig) -> list[VectorData]:
    """The datasets of the config: your own files, or each toy / file name."""
    if cfg.files is not None:
        return [load_vector_data(cfg.files, seed=cfg.seed)]
    if not cfg.datasets:
        raise ConfigError("no data: give your files (--train FILE --test FILE [--validation FILE])")
    return [load_vector_data(ds, cfg.n_train, cfg.n_test, cfg.seed) for ds in cfg.datasets]


def run_spec(cfg: Toy2DConfig, name: str, data: VectorData) -> RunSpec:
    """The keyed run of one model on one dataset."""
    data_key = {"dataset": data.name, "digest": data.digest}
    options, overrides = cfg.model_options, cfg.train_overrides
    return make_spec(name, (data.dim,), options, cfg.train, overrides, data_key, cfg.seed, data.context_dim)


def run_dataset(cfg: Toy2DConfig, data: VectorData, fresh: bool) -> tuple[list[dict], list[dict]]:
    """(rows, Parzen rows) of every model on one dataset, and its figure."""
    out = Path(cfg.out)
    report = range_report(data.train, data.test)
    if "warning" in report:
        print(f"warning: {data.name}: {report['warning']}", flush=True)
    panels, rows, entries = [], [], []
    if data.true_log_prob is not None and data.box is not None:
        density = evaluate_on_grid(data.true_log_prob, data.box, cfg.eval.grid_n)
        panels.append(
            dict(label=f"truth (H={data.true_entropy:.3f})", log_density=density, samples=data.test)
        )
    ev = dataclasses.replace(cfg.eval, seed=cfg.seed, n_samples=max(cfg.eval.n_samples, cfg.parzen_samples))
    for name in cfg.models:
        results = fit_and_evaluate(run_spec(cfg, name, data), data, out, ev, fresh)
        if cfg.parzen_samples:
            entries.append(parzen.rows_entry(results, name))
        for res in results:
            res.update(report)
            rows.append(res)
            label = f"{res['model']} ({res['likelihood_kind']})"
            if res["test_nll"] is not None:
                label += f"\nNLL {res['test_nll']:.3f}"
            panels.append(dict(label=label, log_density=res["log_density"], samples=res["samples"]))
            print(summary(res), flush=True)
    if data.box is not None:
        n = cfg.eval.n_samples
        panels = [{**p, "samples": None if p["samples"] is None else p["samples"][:n]} for p in panels]
        density_and_samples_figure(
            out / f"{data.name}.png", f"{data.name}: density (top), samples (bottom)", data.box, panels
        )
    parzen_rows = []
    if entries:
        entries.append(parzen.training_set_entry(data, cfg.parzen_samples, cfg.parzen_val))
        parzen_rows = parzen.compare(data, entries, cfg.parzen_val)
    return rows, parzen_rows


def run(cfg: Toy2DConfig, fresh: bool = False) -> list[dict]:
    """Every dataset x model; writes the results (see the module docstring)."""
    print(
        f"toy2d: {len(cfg.datasets) if cfg.files is None else 1} dataset(s) x {len(cfg.models)} models on "
        f"{jax.devices()[0].platform}",
        flush=True,
    )
    rows, parzen_rows = [], []
    for data in datasets(cfg):
        r, p = run_dataset(cfg, data, fresh)
        rows, parzen_rows = rows + r, parzen_rows + p
    out = Path(cfg.out)
    write_results(out, rows, KEYS, markdown(rows))
    if parzen_rows:
        parzen.write(out, parzen_rows)
    print(
        f"\nwrote {out / 'results.json'} ({len(rows)} rows)\n\n{(out / 'results.md').read_text()}", flush=True
    )
    return rows


def summary(r: dict) -> str:
    """One line per row, as the run goes."""
    parts = [f"{r['dataset']:>12s} {r['model']:>14s} {r['likelihood_kind']:>12s}"]
    if r["test_nll"] is not None:
        parts.append(f"NLL {r['test_nll']:.4f} ± {r['test_nll_se']:.4f}")
    if r["gap"] is not None:
        parts.append(f"gap {r['gap']:+.4f}")
    if r["grid_mass"] is not None:
        parts.append(f"mass {r['grid_mass']:.4f}")
    parts.append(f"{r['train_seconds']:.1f}s" + (" (reused)" if r.get("reused") else ""))
    return "  ".join(parts)


def markdown(rows: list[dict]) -> str:
    """results.md: the table with what its columns mean and the machine."""
    head = (
        "Test NLL in nats (± standard error); H(p) is the true entropy of the data (Monte Carlo, 200,000 "
        "samples), the floor of any model's expected NLL; gap = NLL - H(p). Grid mass is the model's density "
        f"integrated over the plotting box.\nMachine: {machine_description()}.\n\n"
    )
    warnings = sorted({f"- {r['dataset']}: {r['warning']}" for r in rows if r.get("warning")})
    tail = ("\nWarnings:\n" + "\n".join(warnings) + "\n") if warnings else ""
    return head + markdown_table(rows, COLUMNS, digits={"train_seconds": 1, "test_nll_se": 4}) + tail


SHORTHANDS = {
    "--datasets": ("datasets", "list"),
    "--models": ("models", "list"),
    "--steps": ("train.steps", "value"),
    "--lr": ("train.lr", "value"),
    "--batch-size": ("train.batch_size", "value"),
    "--seed": ("seed", "value"),
    "--out": ("out", "value"),
    "--train": ("files.train", "value"),
    "--test": ("files.test", "value"),
    "--validation": ("files.validation", "value"),
}


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("toy2d", PRESETS, run, argv, default_preset="demo", shorthands=SHORTHANDS, doc=__doc__)


if __name__ == "__main__":
    main()
