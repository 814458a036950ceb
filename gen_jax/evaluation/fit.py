"""Fit a vector model and evaluate every view of it: the unit of the 2D studies (toy2d, contrast).

    rows = fit_and_evaluate(spec, data, Path("results/toy2d"), VectorEval(grid_n=400))

Training is keyed by the run's config (`gen_jax.evaluation.runs`); the evaluation is cached in the
run's directory keyed by its own config (`VectorEval`), so a second invocation with the same
configs reads both back in seconds, and a changed evaluation re-evaluates without retraining.
Each row: test NLL and its standard error (`evaluate_view`: log Z estimates for energy models), the
gap to the true entropy, the grid mass on the 2-D box, samples and the density on the grid (for
figures), training time, steps and parameters.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from gen_jax.core import ConfigError, Kind, Model, num_params
from gen_jax.core.capabilities import ShortRunSampler
from gen_jax.evaluation.rows import evaluate_view
from gen_jax.evaluation.runs import Run, RunSpec, evaluation_cache, run_dir, train_or_reuse
from gen_jax.evaluation.vector import VectorData
from gen_jax.evaluation.views import model_views
from gen_jax.likelihood.grid import evaluate_on_grid, grid_mass
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.metrics import mmd


@dataclasses.dataclass(frozen=True)
class VectorEval:
    """How the 2D studies evaluate a fitted model."""

    grid_n: int = 400  # cells a side of the density grid (figures and grid mass)
    n_samples: int = 5000  # model samples (figures, MMD, Parzen)
    normalize: NormalizeConfig = NormalizeConfig()  # log Z of energy models
    estimators: tuple[str, ...] = ()  # extra estimator views (`gen_jax.evaluation.views`)
    long_run_factor: int = 100  # short-run chains (CD): long-run chains are this many times longer
    seed: int = 0


def _grid_n(model: Model, view_name: str, default: int) -> int:
    est = model.estimators.get(view_name.split("/", 1)[1]) if "/" in view_name else None
    if est is None:  # the primary log_prob: a model may cap its grid in info["grid_n"] (expensive density)
        return min(default, model.info.get("grid_n") or default)
    return est.grid_n if est.grid_n else default


def _grid(view: Model, params, data: VectorData, key, n: int) -> dict:
    if data.box is None or view.kind == Kind.NONE or data.dim != 2:
        return {"log_density": None, "grid_mass": None, "grid_mass_outside": None}
    lp = jax.jit(lambda x: view.log_prob(params, x, key))
    log_density = evaluate_on_grid(lp, data.box, n)
    mass = outside = None
    if view.kind != Kind.UNNORMALIZED:
        mass, outside = grid_mass(lp, data.box, values=log_density)
    return {"log_density": log_density, "grid_mass": mass, "grid_mass_outside": outside}


def evaluate_fitted(run: Run, data: VectorData, ev: VectorEval) -> tuple[list[dict], dict]:
    """(rows, arrays): every view of a fitted model evaluated on data.test (see the module docstring)."""
    model, params = run.model, run.params
    key = jax.random.key(ev.seed + 7)
    t0 = time.perf_counter()
    sample = jax.jit(model.sample, static_argnums=2)
    samples = (
        np.asarray(sample(params, jax.random.fold_in(key, 1), ev.n_samples))
        if data.context_test is None
        else None
    )
    rows, arrays = [], {"samples": samples} if samples is not None else {}
    chains = short_and_long_run(model, params, data, ev, jax.random.fold_in(key, 3))
    for i, (name, view) in enumerate(model_views(model, ev.estimators)):
        t1 = time.perf_counter()
        normalized_view, row = _evaluate(name, view, params, data, key, ev, i)
        row.update(_grid(normalized_view, params, data, key, _grid_n(model, name, ev.grid_n)))
        row.update(chains, eval_seconds=time.perf_counter() - t1 + (t1 - t0 if i == 0 else 0.0))
        if row["log_density"] is not None:
            arrays[f"log_density_{i}"] = row["log_density"]
        rows.append(row)
    return rows, arrays


def short_and_long_run(model: Model, params, data: VectorData, ev: VectorEval, key) -> dict:
    """For a model trained with short-run chains (`ShortRunSampler`, contrastive divergence): the MMD
    to the test data of samples after as many Langevin steps as in training, and after
    `long_run_factor` times more. Short-run samples can look right while the energy's own long-run
    chains drift elsewhere (Nijkamp et al. 2019)."""
    runner = model.get(ShortRunSampler)
    if runner is None or data.context_test is not None:
        return {}
    n = min(ev.n_samples, len(data.test))
    draw = jax.jit(runner.sample, static_argnums=(2, 3))
    short = np.asarray(draw(params, key, n, runner.train_steps))
    long = np.asarray(draw(params, key, n, runner.train_steps * ev.long_run_factor))
    return {"mmd_short_run": mmd(short, data.test[:n]), "mmd_long_run": mmd(long, data.test[:n])}


def _evaluate(name, view, params, data: VectorData, key, ev: VectorEval, i: int):
    row, _, view = evaluate_view(
        name,
        view,
        params,
        data.test,
        key,
        reference=data.train,
        box=data.box,
        normalize_cfg=ev.normalize,
        normalize_key=jax.random.fold_in(key, 100 + i),
        context=data.context_test,
    )
    return view, row


def fit_and_evaluate(
    spec: RunSpec, data: VectorData, root: str | Path, ev: VectorEval, fresh: bool = False
) -> list[dict]:
    """Train (or reuse) the spec's run on data.train and evaluate every view on data.test; rows carry
    `samples` and `log_density` arrays for figures (see the module docstring)."""
    workdir = run_dir(root, spec)
    cache = evaluation_cache(workdir, "vector", ev)
    npz = cache.with_suffix(".npz")
    if not fresh and (workdir / "done.json").exists() and cache.exists() and npz.exists():
        rows, arrays, reused = json.loads(cache.read_text()), dict(np.load(npz)), True  # nothing to compute
    else:
        if spec.train.patience and data.validation is None:
            raise ConfigError(
                "early stopping (train.patience) selects on held-out data: give a validation file "
                "(--validation FILE), or set train.patience=null"
            )
        run = train_or_reuse(
            spec,
            root,
            data.training_data(),
            eval_data=data.eval_data(),
            fresh=fresh,
            desc=f"{data.name}/{spec.model}",
        )
        rows, arrays = evaluate_fitted(run, data, ev)
        reused = run.reused
        for row in rows:
            row.update(
                train_seconds=run.train_seconds,
                steps=run.steps,
                params=num_params(run.params),
                steps_per_sec=run.steps_per_sec,
                first_dispatch_seconds=run.first_dispatch_seconds,
                objective=run.model.info.get("objective", "max_likelihood"),
            )
        cache.write_text(
            json.dumps([{k: v for k, v in r.items() if k != "log_density"} for r in rows], indent=1)
        )
        np.savez_compressed(npz, **arrays)
    for i, row in enumerate(rows):
        row.update(dataset=data.name, true_entropy=data.true_entropy, reused=reused, run_dir=str(workdir))
        nll, h = row["test_nll"], data.true_entropy
        row["gap"] = None if nll is None or h is None else nll - h
        row["log_density"] = arrays.get(f"log_density_{i}")
        row["samples"] = arrays.get("samples")
    return rows
