"""What every experiment shares: data splits, fit-and-evaluate on the model surface, tables."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data.arrays import load_array
from gen_jax.data.toy2d import TOY_DATASETS, get_toy
from gen_jax.likelihood.grid import evaluate_on_grid, grid_mass
from gen_jax.likelihood.normalize import LOG_Z_KEYS, NormalizeConfig, normalize
from gen_jax.models import Kind, Model, evaluate_nll, make_model, num_params
from gen_jax.training import TrainConfig, TrainResult, train


@dataclasses.dataclass
class VectorData:
    """A train/test split of vector data, with the true density when it is known."""

    name: str
    train: np.ndarray
    test: np.ndarray
    true_log_prob: Callable | None = None
    true_entropy: float | None = None
    true_entropy_se: float | None = None
    box: tuple[float, float, float, float] | None = None  # plotting / grid box, 2-D data only

    @property
    def dim(self) -> int:
        return self.train.shape[1]


def load_vector_data(spec: str, n_train: int, n_test: int, seed: int = 0) -> VectorData:
    """A toy2d dataset by name (fresh samples) or a `.npy`/`.csv` file (shuffled 90/10 split)."""
    if spec in TOY_DATASETS:
        toy = get_toy(spec)
        key = jax.random.key(seed)
        train = np.asarray(toy.sample(jax.random.fold_in(key, 0), n_train))
        test = np.asarray(toy.sample(jax.random.fold_in(key, 1), n_test))
        h, se = toy.entropy()
        return VectorData(spec, train, test, toy.log_prob, h, se, toy.box)
    if not spec.endswith((".npy", ".csv")):
        raise ValueError(
            f"unknown dataset {spec!r}: give a 2D toy ({', '.join(TOY_DATASETS)}) or a .npy/.csv path"
        )
    x = load_array(spec)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_te = max(1, len(x) // 10)
    test, train = x[perm[:n_te]], x[perm[n_te:]]
    box = None
    if x.shape[1] == 2:
        lo, hi = x.min(0), x.max(0)
        pad = 0.1 * (hi - lo)
        box = (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    return VectorData(Path(spec).stem, train, test, box=box)


def fit_and_evaluate(
    model: Model,
    data: VectorData,
    train_cfg: TrainConfig,
    workdir: Path,
    resume: bool = False,
    grid_n: int = 300,
    n_samples: int = 5000,
    seed: int = 0,
    normalize_cfg: NormalizeConfig | None = None,
) -> list[dict]:
    """Train `model` on `data.train`, evaluate on `data.test`; cache the outcome in workdir.

    Returns one row per way the model gives log p(x) (its `log_prob`, then each of its
    `estimators`), each a dict with the table fields (test NLL and its standard error, gap to
    the true entropy, grid mass on the box, time, steps, params) plus `log_density` on the
    plotting grid and `samples`, for figures. A finished run found in `workdir` (with resume)
    is loaded, not retrained.

    A view whose kind is UNNORMALIZED (an energy model) is first normalized by the kind-based
    step (`gen_jax.likelihood.normalize`, configured by `normalize_cfg`): its row then reports
    the normalized model (kind "estimate" for AIS) and `log_z_grid`, `log_z_ais`, `log_z_ais_se`,
    `log_z_ais_ess`; those keys are None for every other view.
    """
    done = workdir / "outcome.json"
    if resume and done.exists():
        rows = json.loads(done.read_text())
        arrays = np.load(workdir / "outcome.npz")
        for i, row in enumerate(rows):
            row["log_density"] = arrays[f"log_density_{i}"] if f"log_density_{i}" in arrays else None
            row["samples"] = arrays["samples"]
        return rows

    result: TrainResult = train(
        model,
        data.train,
        train_cfg,
        workdir,
        eval_data=data.test,
        resume=resume,
        desc=f"{data.name}/{model.name}",
    )
    params = result.params
    key = jax.random.key(seed + 7)
    t0 = time.perf_counter()
    samples = np.asarray(
        jax.jit(model.sample, static_argnums=2)(params, jax.random.fold_in(key, 1), n_samples)
    )
    rows, arrays = [], {"samples": samples}
    for i, (name, view) in enumerate(model.views()):
        t1 = time.perf_counter()
        declared_kind = str(view.kind)
        view, log_z = normalize(
            view,
            params,
            data.train,
            jax.random.fold_in(key, 100 + i),
            data.box,
            normalize_cfg or NormalizeConfig(),
        )
        row = dict(
            dataset=data.name,
            model=name,
            likelihood_kind=str(view.kind),
            true_entropy=data.true_entropy,
            train_seconds=result.train_seconds,
            steps=int(result.state.step),
            params=num_params(params),
            steps_per_sec=result.steps_per_sec,
            first_dispatch_seconds=result.first_dispatch_seconds,
            objective=view.info.get("objective", "max_likelihood"),
            declared_kind=declared_kind,
            **{k: log_z[k] for k in LOG_Z_KEYS},
            **_evaluate_view(view, params, data, key, _grid_n(model, name, grid_n)),
        )
        row["eval_seconds"] = time.perf_counter() - t1 + (time.perf_counter() - t0 if i == 0 else 0.0)
        if row["log_density"] is not None:
            arrays[f"log_density_{i}"] = row["log_density"]
        rows.append(row)
    done.write_text(json.dumps([{k: v for k, v in r.items() if k != "log_density"} for r in rows], indent=1))
    np.savez_compressed(workdir / "outcome.npz", **arrays)
    return [{**r, "samples": samples} for r in rows]


def _grid_n(model: Model, view_name: str, default: int) -> int:
    est = model.estimators.get(view_name.split("/", 1)[1]) if "/" in view_name else None
    if est is None:  # the primary log_prob: a model may cap its grid in info["grid_n"] (expensive density)
        return min(default, model.info.get("grid_n") or default)
    return est.grid_n if est.grid_n else default


def _evaluate_view(model: Model, params, data: VectorData, key, grid_n: int) -> dict:
    """Test NLL, gap and grid mass of one way of computing log p(x)."""
    test_nll = test_nll_se = mass = outside = log_density = None
    if model.kind != Kind.NONE:
        test_nll, test_nll_se, _ = evaluate_nll(model, params, data.test, key)
        if model.log_prob_se:  # an error shared by every example (e.g. an AIS log Z) adds in quadrature
            test_nll_se = math.hypot(test_nll_se, model.log_prob_se)
        if data.box is not None:
            lp = jax.jit(lambda x: model.log_prob(params, x, key))
            log_density = evaluate_on_grid(lp, data.box, grid_n)
            if model.kind != Kind.UNNORMALIZED:
                mass, outside = grid_mass(lp, data.box, values=log_density)
    gap = None if test_nll is None or data.true_entropy is None else test_nll - data.true_entropy
    return dict(
        test_nll=test_nll,
        test_nll_se=test_nll_se,
        gap=gap,
        grid_mass=mass,
        grid_mass_outside=outside,
        log_density=log_density,
    )


def build_model(name: str, event_shape: tuple[int, ...], model_kwargs: dict) -> Model:
    return make_model(name, event_shape, **model_kwargs.get(name, {}))


def train_config_for(name: str, base: TrainConfig, overrides: dict) -> TrainConfig:
    return dataclasses.replace(base, **overrides.get(name, {}))


# ----------------------------------------------------------------------------- tables


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(
    rows: Sequence[dict], columns: Sequence[tuple[str, str]], digits: dict | None = None
) -> str:
    """A markdown table; `columns` are (key, header) pairs."""
    digits = digits or {}
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k), digits.get(k, 3)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def write_results(
    out_dir: Path, rows: list[dict], keys: Sequence[str], md: str, name: str = "results"
) -> None:
    """`results.json` (rows restricted to `keys`, in that order) and `results.md`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = [{k: _jsonable(r.get(k)) for k in keys} for r in rows]
    (out_dir / f"{name}.json").write_text(json.dumps(clean, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(md)


def _jsonable(v):
    if isinstance(v, (np.floating, jnp.floating)):
        v = float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def machine_description() -> str:
    import os
    import platform

    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    n = len(jax.devices())
    return f"{dev.platform}:{dev.device_kind} ({n} device(s)); host {cpu}, {os.cpu_count()} cores"
