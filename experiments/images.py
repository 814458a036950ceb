"""The Fashion-MNIST likelihood benchmark: test bits/dim of every family, each labelled with its kind.

    python -m experiments.images --preset cpu            # make images
    python -m experiments.images --preset full           # one GPU
    python -m experiments.images --models pixel_cat,pixelcnn --resume
    python -m experiments.images --eval results/images/runs/pixelcnn   # make eval CKPT=...

Every image model's `log_prob` returns the log-likelihood of the *discrete* 8-bit image in nats
(continuous models account for their dequantization themselves, see gen_jax/data/transforms.py),
so bits/dim is one conversion for all (gen_jax/likelihood/units.py). Each way a model gives
log p(x) (its log_prob and each estimator) is a row. Writes results/images/results.json,
results.md and one sample grid per model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np

from experiments import image_quality
from experiments.common import (
    build_model,
    machine_description,
    markdown_table,
    train_config_for,
    write_results,
)
from experiments.configs.images import ImagesConfig, get_config
from gen_jax.data.images import IMAGE_SHAPE, ImageData, load_images
from gen_jax.likelihood.normalize import ais_log_z, has_noise_path, normalize
from gen_jax.likelihood.units import nats_to_bits_per_dim
from gen_jax.models import Kind, Model, evaluate_nll, num_params
from gen_jax.plotting import image_grid, image_panels
from gen_jax.training import TrainConfig, restore_params, train

KEYS = (
    "dataset",
    "model",
    "likelihood_kind",
    "test_bpd",
    "test_bpd_se",
    "params",
    "train_seconds",
    "train_steps",
    "device",
    "samples_png",
)
COLUMNS = [
    ("model", "model"),
    ("likelihood_kind", "kind"),
    ("test_bpd", "test bits/dim"),
    ("test_bpd_se", "± se"),
    ("n_eval", "test images"),
    ("params", "params"),
    ("train_seconds", "train s"),
    ("train_steps", "steps"),
    ("images_per_sec", "train images/s"),
    ("device", "device"),
]
D = int(np.prod(IMAGE_SHAPE))


def load_data(cfg: ImagesConfig) -> tuple[ImageData, ImageData]:
    train_set = load_images(cfg.dataset, "train", data_dir=cfg.data_dir).shuffled(cfg.seed).take(cfg.n_train)
    test_set = load_images(cfg.dataset, "test", data_dir=cfg.data_dir).take(cfg.n_test)
    print(f"data: {len(train_set)} train images from {train_set.source}, {len(test_set)} test", flush=True)
    return train_set, test_set


def _device() -> str:
    dev = jax.devices()[0]
    return f"{dev.platform}:{dev.device_kind}"


def evaluate_views(
    model: Model,
    params,
    test: np.ndarray,
    cfg: ImagesConfig,
    key,
    dataset: str = "fashion_mnist",
    reference: np.ndarray | None = None,
) -> list[dict]:
    """Test bits/dim (± standard error) for the model's log_prob and each of its estimators.

    An unnormalized view (an energy model) is first normalized by an AIS estimate of its log Z
    (`gen_jax.likelihood.normalize`, base fitted to `reference` training images): its bits/dim is
    then an estimate whose ± includes the log Z standard error, and the row carries the AIS
    details (`ais`: log Z, se, ESS, and log Z at fewer temperatures, the convergence check).
    """
    rows = []
    for view_name, view in model.views():
        if view.kind == Kind.NONE:
            rows.append(dict(dataset=dataset, model=view_name, likelihood_kind=str(view.kind)))
            continue
        extra = {}
        bracket = view.parts.get("log_z_bracket")
        if view.kind == Kind.UNNORMALIZED:
            if reference is None:
                raise ValueError(f"{view_name} is unnormalized: evaluate_views needs reference images")
            view, extra = _normalize_images(view, params, reference, cfg, jax.random.fold_in(key, 1000))
        n = cfg.eval_examples.get(view_name, len(test))
        batch = cfg.eval_batch.get(view_name, cfg.eval_batch.get(model.name, 500))
        nll, se, _ = evaluate_nll(
            view, params, test[:n], jax.random.fold_in(key, len(rows)), batch_size=batch
        )
        se_total = se if view.log_prob_se is None else float(np.hypot(se, view.log_prob_se))
        if bracket is not None and "ais" in extra:
            # log Z known to lie in [lo, hi] a priori: the bits/dim lie in the matching interval
            # (up to the test-set noise se), whatever AIS found; AIS's log Z should land inside it
            log_z = extra["ais"]["log_z"]
            extra["ais"]["log_z_bracket"] = [float(b) for b in bracket]
            extra["test_bpd_bracket"] = [float(nats_to_bits_per_dim(nll - log_z + b, D)) for b in bracket]
        rows.append(
            dict(
                dataset=dataset,
                model=view_name,
                likelihood_kind=str(view.kind),
                test_bpd=float(nats_to_bits_per_dim(nll, D)),
                test_bpd_se=float(nats_to_bits_per_dim(se_total, D)),
                n_eval=n,
                **extra,
            )
        )
    return rows


def _normalize_images(view: Model, params, reference: np.ndarray, cfg: ImagesConfig, key):
    """(normalized view, {"ais": details}): AIS log Z at cfg.normalize, and at the fewer
    temperatures of cfg.ais_check_temps with the same chains' settings (log Z should stop rising)."""
    reference = np.asarray(reference[: cfg.ais_reference], np.float32)
    normalized, est = normalize(view, params, reference, key, None, cfg.normalize)
    a = cfg.normalize.ais
    by_temps = {}
    for k in cfg.ais_check_temps:
        res = ais_log_z(view, params, reference, jax.random.fold_in(key, k), cfg.normalize, num_temps=k)
        by_temps[str(k)] = dict(log_z=res.log_z, se=res.log_z_se, ess=res.ess)
    by_temps[str(a.num_temps)] = dict(
        log_z=est["log_z_ais"], se=est["log_z_ais_se"], ess=est["log_z_ais_ess"]
    )
    own_gaussian = "ais_gaussian" in view.parts
    noise = has_noise_path(view) and (a.path == "noise" or (a.path == "auto" and not own_gaussian))
    details = dict(
        log_z=est["log_z_ais"],
        log_z_se=est["log_z_ais_se"],
        ess=est["log_z_ais_ess"],
        num_chains=a.num_chains,
        num_temps=a.num_temps,
        transition=a.transition,
        path=_path_description(view, noise, own_gaussian),
        log_z_bound=est.get("log_z_ais_bound"),
        by_temps=by_temps,
    )
    return normalized, {"ais": details}


def _path_description(view: Model, noise: bool, own_gaussian: bool) -> str:
    units = "logit units" if view.info.get("logit_alpha") is not None else "gray levels"
    if own_gaussian:
        start = "from the energy's own Gaussian (chains in the coordinates that whiten it)"
    else:
        start = "from a Gaussian fitted to training images"
    if noise:
        lo, hi = view.info["noise_range"]
        return f"noise path, sigma {hi:g} -> {lo:g} {units}, {start}"
    geometric = "geometric path tempering in the correction, " if own_gaussian else "geometric path "
    return geometric + start


def run_model(
    name: str, cfg: ImagesConfig, train_set: ImageData, test_set: ImageData, resume: bool
) -> list[dict]:
    out = Path(cfg.out)
    workdir = out / "runs" / name
    done = workdir / "outcome.json"
    if resume and done.exists():
        if not (out / f"samples_{name}.npy").exists():  # a run finished before samples were kept
            from experiments.image_quality import model_samples

            key = jax.random.fold_in(jax.random.key(cfg.seed + 11), 99)
            samples = model_samples(name, workdir, cfg.model_kwargs, train_set.images, key, cfg.n_samples)
            np.save(out / f"samples_{name}.npy", samples)
        return json.loads(done.read_text())
    model = build_model(name, IMAGE_SHAPE, cfg.model_kwargs)
    tcfg = dataclasses.replace(train_config_for(name, cfg.train, cfg.train_overrides), seed=cfg.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model_config.json").write_text(
        json.dumps(dict(model=name, kwargs=cfg.model_kwargs.get(name, {}), dataset=cfg.dataset), indent=1)
    )
    result = train(
        model, train_set.images, tcfg, workdir, eval_data=test_set.images, resume=resume, desc=name
    )
    key = jax.random.key(cfg.seed + 11)
    rows = evaluate_views(
        model, result.params, test_set.images, cfg, key, cfg.dataset, reference=train_set.images
    )
    png = out / f"samples_{name}.png"
    samples = jax.jit(model.sample, static_argnums=2)(
        result.params, jax.random.fold_in(key, 99), cfg.n_samples
    )
    image_grid(png, np.asarray(samples), f"{name} samples")
    np.save(out / f"samples_{name}.npy", np.asarray(samples))
    for r in rows:
        r.update(
            params=num_params(result.params),
            train_seconds=result.train_seconds,
            train_steps=int(result.state.step),
            images_per_sec=_images_per_sec(result, workdir, tcfg.batch_size),
            device=_device(),
            samples_png=str(png),
        )
    done.write_text(json.dumps(rows, indent=1))
    return rows


def eval_checkpoint(workdir: str | Path, cfg: ImagesConfig) -> list[dict]:
    """Evaluate a saved run alone (`make eval CKPT=results/images/runs/<model>`)."""
    workdir = Path(workdir)
    meta_path = workdir / "model_config.json"
    if not meta_path.exists():
        raise FileNotFoundError(
            f"{meta_path} not found: CKPT must be a run directory written by experiments.images"
        )
    meta = json.loads(meta_path.read_text())
    model = build_model(meta["model"], IMAGE_SHAPE, {meta["model"]: meta["kwargs"]})
    tcfg = TrainConfig(**json.loads((workdir / "train_config.json").read_text()))
    cfg = dataclasses.replace(cfg, dataset=meta["dataset"])
    test_set = load_images(cfg.dataset, "test", data_dir=cfg.data_dir).take(cfg.n_test)
    example = load_images(cfg.dataset, "train", data_dir=cfg.data_dir).shuffled(tcfg.seed).images
    params = restore_params(
        model, workdir, example[: max(tcfg.batch_size, min(len(example), tcfg.init_examples))]
    )
    rows = evaluate_views(
        model, params, test_set.images, cfg, jax.random.key(cfg.seed + 11), cfg.dataset, reference=example
    )
    for r in rows:
        r.update(params=num_params(params), device=_device())
    return rows


def run(cfg: ImagesConfig, resume: bool = False) -> list[dict]:
    train_set, test_set = load_data(cfg)
    rows = []
    for name in cfg.models:
        for r in run_model(name, cfg, train_set, test_set, resume):
            rows.append(r)
            print(_summary(r), flush=True)
    rows += _finished_elsewhere(Path(cfg.out), cfg.models)
    write_results(Path(cfg.out), rows, KEYS, markdown(rows, cfg))
    samples_figure(Path(cfg.out), [r["model"] for r in rows if "/" not in r["model"]])
    if cfg.quality.num_samples:  # Parzen bits/dim and the FID-like feature distance (quality.md)
        chosen = tuple(m for m in cfg.models if cfg.quality.models is None or m in cfg.quality.models)
        quality_rows = image_quality.report(
            cfg.quality, train_set, test_set, rows, chosen, Path(cfg.out) / "runs", cfg.model_kwargs, cfg.seed
        )
        image_quality.write(Path(cfg.out), quality_rows)
    return rows


def _images_per_sec(result, workdir: Path, batch_size: int) -> float:
    """Steady-state training images/s; for a run resumed at its end (nothing left to train in this
    call), the whole run's rate from its metrics.jsonl (compilation included)."""
    if math.isfinite(result.steps_per_sec):
        return result.steps_per_sec * batch_size
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    timed = [r for r in rows if "time" in r and "loss" in r]
    return timed[-1]["step"] * batch_size / timed[-1]["time"] if timed else math.nan


def samples_figure(out: Path, models: list[str], n: int = 36) -> None:
    """samples.png: the first n samples of every finished model, side by side (the README's picture)."""
    panels = [
        (m, np.load(out / f"samples_{m}.npy")[:n]) for m in models if (out / f"samples_{m}.npy").exists()
    ]
    if panels:
        image_panels(out / "samples.png", panels)


def _finished_elsewhere(out: Path, models: tuple[str, ...]) -> list[dict]:
    """Rows of models finished by earlier runs into `out` (e.g. `--models glow` after a full run), so
    that results.json and the table always show every finished model."""
    rows = []
    for done in sorted((out / "runs").glob("*/outcome.json")):
        if done.parent.name not in models:
            rows += json.loads(done.read_text())
    return rows


def _summary(r: dict) -> str:
    bpd = (
        f"{r['test_bpd']:.3f} ± {r['test_bpd_se']:.3f} bits/dim"
        if r.get("test_bpd") is not None
        else "no density"
    )
    return (
        f"{r['model']:>24s} {r['likelihood_kind']:>12s}  {bpd}  ({r.get('train_seconds', 0):.0f}s training)"
    )


def markdown(rows: list[dict], cfg: ImagesConfig) -> str:
    head = (
        f"{cfg.dataset} test bits/dim (lower is better; ± standard error over test images, and of the log Z "
        "estimate where there is one). kind says what the number is: exact, lower_bound (of log p, so the "
        "bits/dim is an upper bound), estimate. Continuous models are scored on uniformly dequantized data.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    table = markdown_table(
        rows, COLUMNS, digits={"test_bpd": 3, "test_bpd_se": 3, "train_seconds": 0, "images_per_sec": 1}
    )
    return head + table + "".join(_ais_note(r) for r in rows if r.get("ais"))


def _ais_note(row: dict) -> str:
    """How far to trust an energy model's bits/dim: its AIS log Z against the number of temperatures."""
    a = row["ais"]
    steps = sorted(a["by_temps"].items(), key=lambda kv: int(kv[0]))
    ladder = ", ".join(f"K={k}: {v['log_z']:.1f} ± {v['se']:.1f} (ESS {v['ess']:.1f})" for k, v in steps)
    rise = steps[-1][1]["log_z"] - steps[0][1]["log_z"]
    per_dim = nats_to_bits_per_dim(rise, D)
    n, ess = a["num_chains"], a["ess"]
    if ess < 0.1 * n:
        weights = (
            f"an ESS of {ess:.1f} of {n} says a few chains carry the whole estimate and its ± understates "
            "the error: trust the number to about the last rise, not the ±"
        )
    else:
        weights = (
            f"the weights are even (ESS {ess:.0f} of {n}), so the ± is a fair error of this run, and the "
            "bias left is of the order of the last rise"
        )
    return (
        f"\n**{row['model']}**: log Z by AIS ({n} chains, {a['transition']} transitions, "
        f"{a.get('path', 'geometric path from a Gaussian fitted to training images')}): {ladder}. "
        f"AIS estimates log Z from below in expectation (Jensen), so this bits/dim is optimistic by the "
        f"unknown remaining gap. From K={steps[0][0]} to K={steps[-1][0]} log Z rose by {rise:.1f} nats "
        f"({per_dim:.3f} bits/dim); {weights}.{_bracket_note(row)}\n"
    )


def _bracket_note(row: dict) -> str:
    """The a-priori interval of a bounded-correction energy (`ebm(correction_bound=...)`)."""
    if not row.get("test_bpd_bracket"):
        return ""
    lo_z, hi_z = row["ais"]["log_z_bracket"]
    lo, hi = row["test_bpd_bracket"]
    inside = lo_z <= row["ais"]["log_z"] <= hi_z
    return (
        f" Independently of AIS, the network's term is bounded (|f| < {hi_z:g}) on a normalized Gaussian, "
        f"so log Z lies in ({lo_z:g}, {hi_z:g}) and the bits/dim in **[{lo:.3f}, {hi:.3f}]** for certain "
        f"(up to the ± over test images); the AIS log Z "
        f"{'lies inside' if inside else 'lies OUTSIDE (a bug)'}."
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", help="cpu | full | smoke")
    p.add_argument("--models", help="comma-separated model names")
    p.add_argument("--out", help="output directory")
    p.add_argument("--data-dir", help="directory of the IDX files (default: $GEN_JAX_DATA_DIR)")
    p.add_argument(
        "--resume", action="store_true", help="reuse finished models and continue interrupted ones"
    )
    p.add_argument("--eval", metavar="RUN_DIR", help="only evaluate the checkpoint in this run directory")
    p.add_argument(
        "--quality",
        action="store_true",
        help="write quality.md (Parzen bits/dim, feature distance) also when --models picks a subset",
    )
    a = p.parse_args(argv)
    cfg = get_config(a.preset)
    changes = {}
    if a.models:
        changes["models"] = tuple(a.models.split(","))
        if not a.quality:  # a partial run skips the sample-quality table unless asked for it
            changes["quality"] = dataclasses.replace(cfg.quality, num_samples=0)
    if a.out:
        changes["out"] = a.out
    if a.data_dir:
        changes["data_dir"] = a.data_dir
    return dataclasses.replace(cfg, **changes), a


def main(argv=None) -> None:
    cfg, a = parse_args(argv)
    if a.eval:
        rows = eval_checkpoint(a.eval, cfg)
        for r in rows:
            print(_summary({**r, "train_seconds": 0}))
        return
    rows = run(cfg, a.resume)
    print(f"\nwrote {Path(cfg.out) / 'results.json'} ({len(rows)} rows)")
    print(Path(cfg.out, "results.md").read_text())


if __name__ == "__main__":
    main()
