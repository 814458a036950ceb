"""Normalized vs unnormalized: flows, energy models trained without their normalizer, baselines, in one
table with the truth, and a tiny discrete world where everything is exact.

    python -m experiments.contrast                                  # make contrast (with experiments.demos)
    python -m experiments.contrast --datasets moons,rings patches=null
    python -m experiments.contrast --preset smoke                   # seconds

- 2D datasets x models: every view of every model (an energy model's log p~ normalized by its AIS
  log Z, with the grid log Z beside it as the check), plus a "truth" row (the true density's test NLL
  and the MMD between two independent true samples, the floor of both columns), the sample MMD of
  each model, and the Parzen comparison (parzen.md). Figure per dataset.
- patches: 3x3 binary patches of binarized Fashion-MNIST (512 states): table, factorized Bernoulli,
  autoregressive, energy models by exact ML and by pseudo-likelihood; exact test NLL for each, the
  exact entropy of the empirical test distribution, AIS log Z against enumeration and reverse AIS
  from exact samples (the sandwich).
Writes results/contrast/results.json, results.md, ais_sandwich.json, parzen.* and PNGs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from experiments.configs.contrast import PRESETS, ContrastConfig
from gen_jax.data.patches import binary_patches, empirical_entropy
from gen_jax.evaluation import parzen
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.fit import fit_and_evaluate
from gen_jax.evaluation.notes import contrast_checks
from gen_jax.evaluation.rows import evaluate_view
from gen_jax.evaluation.runs import cached, evaluation_cache, make_spec, train_or_reuse
from gen_jax.evaluation.tables import machine_description, markdown_table, row_summary, write_results
from gen_jax.evaluation.vector import load_vector_data, truth_row
from gen_jax.likelihood.grid import evaluate_on_grid
from gen_jax.likelihood.normalize import sandwich_log_z
from gen_jax.metrics import mmd
from gen_jax.plotting import density_and_samples_figure

COLUMNS = [  # (row key, table header); the rows of results.json carry exactly these keys
    ("dataset", "dataset"),
    ("model", "model"),
    ("objective", "objective"),
    ("likelihood_kind", "kind"),
    ("test_nll", "test NLL"),
    ("test_nll_se", "± se"),
    ("true_entropy", "H"),
    ("gap", "gap"),
    ("log_z_grid", "log Z grid"),
    ("log_z_ais", "log Z AIS"),
    ("log_z_ais_se", "± se "),
    ("log_z_learned", "log Z learned"),
    ("sample_mmd", "MMD²"),
    ("mmd_short_run", "MMD² short-run"),
    ("mmd_long_run", "MMD² long-run"),
    ("train_seconds", "train s"),
]
KEYS = tuple(k for k, _ in COLUMNS)
PATCHES = "patches3x3"


def run_toy(cfg: ContrastConfig, fresh: bool) -> tuple[list[dict], list[dict]]:
    """Rows and Parzen rows of every 2D dataset x model."""
    out, rows, parzen_rows = Path(cfg.out), [], []
    ev = dataclasses.replace(cfg.eval, seed=cfg.seed)
    for ds in cfg.datasets:
        data = load_vector_data(ds, cfg.n_train, cfg.n_test, cfg.seed)
        if data.box is None or data.true_log_prob is None:
            raise ValueError(f"the contrast needs 2D datasets with a known density; {ds!r} is not one")
        truth = truth_row(data, ev.n_samples, cfg.seed)
        density = evaluate_on_grid(data.true_log_prob, data.box, ev.grid_n)
        panels = [
            dict(
                label=f"truth (H={data.true_entropy:.3f})",
                log_density=density,
                samples=data.test[: ev.n_samples],
            )
        ]
        rows.append(truth)
        entries = []
        for name in cfg.models:
            where = {"dataset": data.name, "digest": data.digest}
            spec = make_spec(name, (2,), cfg.model_options, cfg.train, cfg.train_overrides, where, cfg.seed)
            results = fit_and_evaluate(spec, data, out, ev, fresh)
            entries.append(parzen.rows_entry(results, name))
            value = _sample_mmd(Path(results[0]["run_dir"]), results[0]["samples"], data.test[: ev.n_samples])
            for res in results:
                res["sample_mmd"] = value
                rows.append(res)
                label = f"{res['model']} ({res['likelihood_kind']})" + (
                    f"\nNLL {res['test_nll']:.3f}" if res["test_nll"] is not None else ""
                )
                panels.append(dict(label=label, log_density=res["log_density"], samples=res["samples"]))
                print(row_summary(res), flush=True)
        title = f"{data.name}: density, normalized exp(-E) for energy models (top); samples (bottom)"
        density_and_samples_figure(out / f"{data.name}.png", title, data.box, panels)
        if cfg.parzen_samples:
            entries.append(parzen.training_set_entry(data, cfg.parzen_samples, cfg.parzen_val))
            parzen_rows += parzen.compare(data, entries, cfg.parzen_val)
    return rows, parzen_rows


def _sample_mmd(workdir: Path, samples: np.ndarray, truth: np.ndarray) -> float:
    path = evaluation_cache(workdir, "mmd", {"n_model": len(samples), "n_true": len(truth)})
    return cached(path, lambda: {"sample_mmd": mmd(samples, truth)})["sample_mmd"]


def run_patches(cfg: ContrastConfig, fresh: bool) -> tuple[list[dict], list[dict]]:
    """Rows of the tiny world, and the AIS sandwich of each enumerable unnormalized model."""
    p = cfg.patches
    train_x, test_x = binary_patches(
        p.data_name, p.n_train, p.n_test, p.size, p.threshold, cfg.seed, p.data_dir
    )
    h_test, n_mmd = empirical_entropy(test_x), min(cfg.eval.n_samples, len(test_x))
    digest = f"patches:{p.data_name}:{p.size}:{p.threshold}:{p.n_train}:{p.n_test}:{cfg.seed}"
    rows, sandwich = [], []
    for name in p.models:
        steps = 0 if name in p.closed_form else p.train.steps  # closed form: fitted by init on all of train
        train = dataclasses.replace(
            p.train, steps=steps, init_examples=len(train_x) if steps == 0 else p.train.init_examples
        )
        spec = make_spec(
            name,
            train_x.shape[1:],
            p.model_options,
            train,
            {},
            {"dataset": PATCHES, "digest": digest},
            cfg.seed,
        )
        key = jax.random.key(cfg.seed)
        cache = evaluation_cache(
            Path(cfg.out) / "runs" / PATCHES, name, (spec.key, p.normalize, p.reverse_ais)
        )
        saved = cached(
            cache,
            lambda spec=spec, key=key: _patch_row(cfg, spec, key, train_x, test_x, h_test, n_mmd, fresh),
        )
        rows.append(saved["row"])
        if saved["sandwich"]:
            sandwich.append(saved["sandwich"])
        print(row_summary(saved["row"]), flush=True)
    return rows, sandwich


def _patch_row(cfg, spec, key, train_x, test_x, h_test, n_mmd, fresh) -> dict:
    p = cfg.patches
    run = train_or_reuse(spec, cfg.out, train_x, fresh=fresh, desc=f"{PATCHES}/{spec.model}")
    row, _, _ = evaluate_view(
        spec.model,
        run.model,
        run.params,
        test_x,
        jax.random.fold_in(key, 2),
        reference=train_x,
        normalize_cfg=p.normalize,
        normalize_key=jax.random.fold_in(key, 1),
    )
    samples = jax.jit(run.model.sample, static_argnums=2)(run.params, jax.random.fold_in(key, 3), n_mmd)
    row.update(
        dataset=PATCHES,
        objective=run.model.info.get("objective", "max_likelihood"),
        true_entropy=h_test,
        gap=row["test_nll"] - h_test,
        sample_mmd=mmd(np.asarray(samples), test_x[:n_mmd]),
        train_seconds=run.train_seconds,
    )
    sw = None
    if p.reverse_ais and row.get("log_z_method") == "enumeration":
        sw = sandwich_log_z(run.model, run.params, train_x, row, jax.random.fold_in(key, 4), p.normalize)
    return {"row": {k: row.get(k) for k in KEYS}, "sandwich": sw}


def markdown(rows: list[dict], sandwich: list[dict], seconds: dict) -> str:
    """results.md: the table, what it means, the checks and the time per part."""
    head = (
        "Test NLL in nats (± standard error). Energy models (kind `estimate`) are normalized by their "
        "AIS log Z, whose standard error is included in ± se; `log Z grid` is the midpoint-rule integral "
        "over the data box widened on each side, the check. For `patches3x3` the 'grid' is the sum over all "
        "512 states (exact) and H is the exact entropy of the empirical test distribution. H for the 2D data "
        "is the true entropy; gap = NLL - H. MMD² between model samples and as many true samples; the "
        "`truth` row gives its floor (two "
        f"independent true samples).\nMachine: {machine_description()}.\n\n"
    )
    digits = {"train_seconds": 1, "test_nll_se": 4, "log_z_ais_se": 4, "sample_mmd": 5}
    md = head + markdown_table(rows, COLUMNS, digits={**digits, "mmd_short_run": 5, "mmd_long_run": 5})
    lines = contrast_checks(rows, sandwich, PATCHES)
    md += ("\n### Checks\n\n" + "".join(f"- {line}\n" for line in lines)) if lines else ""
    return md + "\nWall time per part (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + "\n"


def run(cfg: ContrastConfig, fresh: bool = False) -> list[dict]:
    """The 2D part and the tiny world; writes the results (see the module docstring)."""
    out = Path(cfg.out)
    rows, sandwich, seconds, parzen_rows = [], [], {}, []
    t0 = time.perf_counter()
    if cfg.datasets:
        rows, parzen_rows = run_toy(cfg, fresh)
        seconds["2D"] = time.perf_counter() - t0
    if cfg.patches is not None:
        t1 = time.perf_counter()
        patch_rows, sandwich = run_patches(cfg, fresh)
        rows += patch_rows
        seconds["tiny world"] = time.perf_counter() - t1
    write_results(out, rows, KEYS, markdown(rows, sandwich, seconds))
    (out / "ais_sandwich.json").write_text(json.dumps(sandwich, indent=1) + "\n")
    if parzen_rows:
        parzen.write(out, parzen_rows)
    print(
        f"\nwrote {out / 'results.json'} ({len(rows)} rows)\n\n{(out / 'results.md').read_text()}", flush=True
    )
    return rows


SHORTHANDS = {
    "--datasets": ("datasets", "list"),
    "--models": ("models", "list"),
    "--steps": ("train.steps", "value"),
    "--seed": ("seed", "value"),
    "--out": ("out", "value"),
    "--data-dir": ("patches.data_dir", "value"),
}


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("contrast", PRESETS, run, argv, default_preset="default", shorthands=SHORTHANDS, doc=__doc__)


if __name__ == "__main__":
    main()
