"""What the image studies share: the data, keyed runs of each model, and its bits/dim rows.

    train_set, test_set = load_image_splits(data)               # ImagesData: dataset, sizes, seed
    run = trained_image_model(name, setup, train_set, test_set)  # reused when its config matches
    rows = evaluate_image_run(run, test_set.images, train_set.images, ev)

`ImageSetup` is the part of an image study's config that determines trained models (which dataset,
the models' options, their training); every image study (images, ood, vae_estimators, ode_ladder)
builds its runs from the images preset's setup, so they share one trained model per config.
`ImageEval` is how a model is scored; its rows are cached in the run directory keyed by it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import jax
import numpy as np

from gen_jax.core import ConfigError, Kind, nats_to_bits_per_dim, num_params
from gen_jax.core.capabilities import NormalizedBase
from gen_jax.data.images import IMAGE_SHAPE, ImageData, load_images
from gen_jax.evaluation.config import config_hash
from gen_jax.evaluation.rows import UNTRUSTED, evaluate_view
from gen_jax.evaluation.runs import Run, RunSpec, evaluation_cache, make_spec, train_or_reuse
from gen_jax.evaluation.views import model_views
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig, ais_log_z, pilot_step_sizes
from gen_jax.training import Progress, TrainConfig

D = math.prod(IMAGE_SHAPE)


@dataclasses.dataclass(frozen=True)
class ImageSetup:
    """What determines an image study's trained models."""

    models: tuple[str, ...]
    train: TrainConfig
    train_overrides: dict = dataclasses.field(default_factory=dict)  # model -> TrainConfig fields
    model_options: dict = dataclasses.field(default_factory=dict)  # model -> builder options
    dataset: str = "fashion_mnist"
    data_dir: str | None = None  # None: TFDS, then $GEN_JAX_DATA_DIR, then /usr/share/datasets
    n_train: int | None = None  # None: all 60,000
    n_test: int | None = None  # None: all 10,000
    seed: int = 0
    runs: str = "results/images"  # where the runs live (their directories are keyed by config)


@dataclasses.dataclass(frozen=True)
class ImageEval:
    """How an image model is scored: extra estimator views (`gen_jax.evaluation.views`), how many test
    images and images per call each view gets, and the log Z of energy models (AIS with a ladder of
    temperatures as the convergence check; importance sampling as an independent estimate)."""

    estimators: dict = dataclasses.field(default_factory=dict)  # model -> tuple of estimator specs
    eval_examples: dict = dataclasses.field(default_factory=dict)  # view name -> test images
    eval_batch: dict = dataclasses.field(default_factory=dict)  # view name or model -> images per call
    default_batch: int = 500
    normalize: NormalizeConfig = NormalizeConfig(
        ais=AISConfig(num_chains=64, num_temps=2000, num_pilot=64, pilot_temps=200, flow_coordinates="latent")
    )
    ais_reference: int = 10_000  # training images the AIS base is fitted to
    ais_check_temps: tuple[int, ...] = (200, 600)
    seed: int = 0


def load_image_splits(setup: ImageSetup) -> tuple[ImageData, ImageData]:
    """(training set in the setup's shuffled order, test set), from TFDS or IDX files."""
    train = (
        load_images(setup.dataset, "train", data_dir=setup.data_dir).shuffled(setup.seed).take(setup.n_train)
    )
    test = load_images(setup.dataset, "test", data_dir=setup.data_dir).take(setup.n_test)
    print(f"data: {len(train)} train images from {train.source}, {len(test)} test", flush=True)
    return train, test


def image_spec(setup: ImageSetup, name: str, train_set: ImageData) -> RunSpec:
    """The keyed run of one image model."""
    data = {"dataset": setup.dataset, "n_train": len(train_set), "seed": setup.seed}
    return make_spec(
        name, IMAGE_SHAPE, setup.model_options, setup.train, setup.train_overrides, data, setup.seed
    )


def trained_image_model(
    name: str, setup: ImageSetup, train_set: ImageData, test_set: ImageData, fresh: bool = False
) -> Run:
    """The model's run (trained now unless a finished run of the same config exists)."""
    return train_or_reuse(
        image_spec(setup, name, train_set),
        setup.runs,
        train_set.images,
        eval_data=test_set.images,
        fresh=fresh,
        desc=name,
    )


def ais_ladder(view, params, reference: np.ndarray, key, ev: ImageEval, est: dict) -> dict:
    """AIS log Z at the ladder's fewer temperatures (same chains' settings), beside the main run's; with
    `pilot_temps` every rung takes the main run's pilot step sizes (one pilot for the whole ladder)."""
    by_temps = {}
    steps = pilot_step_sizes(view, params, reference, key, ev.normalize)  # the main run's (same key)
    for k in ev.ais_check_temps:
        res = ais_log_z(
            view, params, reference, jax.random.fold_in(key, k), ev.normalize, num_temps=k, step_sizes=steps
        )
        by_temps[str(k)] = dict(log_z=res.log_z, se=res.log_z_se, ess=res.ess)
    a = ev.normalize.ais
    by_temps[str(a.num_temps)] = dict(
        log_z=est["log_z_ais"], se=est["log_z_ais_se"], ess=est["log_z_ais_ess"]
    )
    return dict(
        by_temps=by_temps,
        num_chains=a.num_chains,
        num_temps=a.num_temps,
        transition=a.transition,
        path=a.path,
        pilot_temps=a.pilot_temps,
        latent=a.flow_coordinates == "latent" and _has_latent_map(view),
    )


def _has_latent_map(view) -> bool:
    base = view.get(NormalizedBase)
    return base is not None and base.from_latent is not None


def evaluate_image_run(run: Run, test: np.ndarray, reference: np.ndarray, ev: ImageEval) -> list[dict]:
    """Bits/dim rows of every view of a trained image model (cached in its run directory, keyed by `ev`
    and the model's name): `evaluate_view` in bits/dim, plus the AIS ladder of an energy model."""
    cache = evaluation_cache(run.workdir, "images", (ev, run.spec.model))
    if cache.exists():
        return json.loads(cache.read_text())
    key = jax.random.key(ev.seed + 11)
    reference = np.asarray(reference[: ev.ais_reference], np.float32)
    views = model_views(run.model, ev.estimators.get(run.spec.model, ()))
    _check_view_keys(ev, run.spec.model, [name for name, _ in views])
    rows, progress = [], Progress(len(views), f"{run.spec.model}: evaluate", unit="view")
    per_view = {}  # view name -> per-image NLL: each view is paired with the ones before it
    z_se = {}  # view name -> the standard error of its log Z (bits/dim), 0 for normalized views
    for i, (name, view) in enumerate(views):
        t0 = time.perf_counter()
        n = ev.eval_examples.get(name, len(test))
        batch = ev.eval_batch.get(name, ev.eval_batch.get(run.spec.model, ev.default_batch))
        row, per, normalized = evaluate_view(
            name,
            view,
            run.params,
            test[:n],
            jax.random.fold_in(key, i),
            reference=reference,
            normalize_cfg=ev.normalize,
            batch_size=batch,
            num_dims=D,
            normalize_key=jax.random.fold_in(key, 1000),
        )
        if per is not None:
            z_se[name] = float(nats_to_bits_per_dim(normalized.log_prob_se or 0.0, D))  # common to all images
            row["paired"] = {
                other: paired_difference(per, nll, math.hypot(z_se[name], z_se[other]))
                for other, nll in per_view.items()
            }
            own_trusted = not rows or rows[0].get("trust") not in UNTRUSTED  # its log Z is a number
            if per_view and own_trusted:
                own = row["paired"][views[0][0]] if views[0][0] in per_view else {}
                row.update(minus_own_bpd=own.get("bpd"), minus_own_bpd_se=own.get("se"))
            per_view[name] = per
        if view.kind == Kind.UNNORMALIZED and ev.ais_check_temps:
            row["ais"] = ais_ladder(view, run.params, reference, jax.random.fold_in(key, 1000), ev, row)
        row.update(
            dataset=run.spec.data["dataset"],
            params=num_params(run.params),
            train_seconds=run.train_seconds,
            train_steps=run.steps,
            eval_seconds=time.perf_counter() - t0,
            images_per_sec=None if not run.steps_per_sec else run.steps_per_sec * run.spec.train.batch_size,
        )
        rows.append(row)
        progress.update(1, **({"bpd": row["test_bpd"]} if row.get("test_bpd") is not None else {}))
    progress.close()
    cache.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return rows


def _check_view_keys(ev: ImageEval, model: str, names: list[str]) -> None:
    """A key of eval_examples / eval_batch naming this model's views must name one of them (a typo
    would otherwise be ignored silently)."""
    for field in ("eval_examples", "eval_batch"):
        for key in getattr(ev, field):
            if (key == model or key.startswith(model + "/")) and key not in names and key != model:
                raise ConfigError(f"eval.{field}: {key!r} is not a view of {model}; its views: {names}")


def paired_difference(per_nll: np.ndarray, other_nll: np.ndarray, shift_se: float = 0.0) -> dict:
    """One view against another on the same test images (the first n both scored): the mean paired
    difference of their NLLs in bits/dim (negative: this view gives the higher log p), its standard
    error and n. `shift_se`: the standard error of a shift common to every image (the log Z of an
    energy model's view, in bits/dim), added in quadrature."""
    n = min(len(per_nll), len(other_nll))
    d = np.asarray(nats_to_bits_per_dim(np.asarray(per_nll[:n]) - np.asarray(other_nll[:n]), D))
    se = float(np.hypot(d.std(ddof=1) / np.sqrt(n), shift_se)) if n > 1 else float("nan")
    return {"bpd": float(d.mean()), "se": se, "n": int(n)}


def run_samples(run: Run, n: int, seed: int = 0, chunk: int = 500) -> np.ndarray:
    """n samples of a trained model, drawn `chunk` at a time; cached in the run directory."""
    cache = run.workdir / f"samples-{n}-{config_hash((seed, n))}.npy"
    if cache.exists():
        return np.load(cache)
    draw = jax.jit(run.model.sample, static_argnums=2)
    key = jax.random.fold_in(jax.random.key(seed + 11), 99)
    chunk = min(chunk, n)
    parts = [np.asarray(draw(run.params, jax.random.fold_in(key, i), chunk)) for i in range(-(-n // chunk))]
    samples = np.concatenate(parts)[:n]
    np.save(cache, samples)
    return samples


def best_row(rows: list[dict], name: str, exact_only: bool = False) -> dict | None:
    """The model's view with the lowest bits/dim among those with a normalized number (exact ones
    only with `exact_only`)."""
    usable = [
        r
        for r in rows
        if (r["model"] == name or r["model"].startswith(name + "/"))
        and r.get("test_bpd") is not None
        and r["likelihood_kind"] not in (str(Kind.NONE), str(Kind.UNNORMALIZED))
        and (not exact_only or r["likelihood_kind"] == str(Kind.EXACT))
    ]
    return min(usable, key=lambda r: r["test_bpd"]) if usable else None


def setup_hash(setup: ImageSetup) -> str:
    """A short hash of a setup (for naming derived outputs)."""
    return config_hash(setup)
