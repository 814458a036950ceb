"""Anomaly detection: models trained on Fashion-MNIST score MNIST, noise, constant and flipped images.

    python -m experiments.ood --preset cpu                            # make ood
    python -m experiments.ood --models pixel_cat,pixelcnn
    python -m experiments.ood user_sets.letters=path/to/emnist-images-idx3-ubyte.gz

Where raw likelihood fails and what fixes it. Every model is the images study's run of the same
config (reused when it finished there), and each of its views gives the scores of
`gen_jax.evaluation.ood`: log p (or minus the energy), typicality (one image, and batches of M),
the likelihood ratio against a background trained on perturbed images (its own keyed run), the
PNG-complexity correction, and for energy models the norm of the score. Higher is always more
in-distribution, Fashion-MNIST test is the positive class, and each (view, score, OOD set) gets
AUROC, AUPRC and the false positive rate at 95% true positives. Per-image numbers are cached in each
run's directory keyed by this config, so a rerun only recomputes the metrics.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import jax
import numpy as np

from experiments.configs.ood import PRESETS, OODConfig
from gen_jax.core import Kind
from gen_jax.data.images import load_images
from gen_jax.evaluation import ood
from gen_jax.evaluation.cli import run_cli
from gen_jax.evaluation.images import image_spec, load_image_splits, trained_image_model
from gen_jax.evaluation.ood import SET_TITLES, ood_markdown
from gen_jax.evaluation.runs import RunSpec, evaluation_cache, train_or_reuse
from gen_jax.evaluation.tables import write_results
from gen_jax.plotting import score_histograms
from gen_jax.training import Progress, TrainConfig

KEYS = ("model", "score", "ood_set", "auroc", "auprc", "fpr95", "n_in", "n_out")


def load_sets(cfg: OODConfig, train_set, test_set) -> tuple[dict, str]:
    """(set name -> uint8 images, note on the typicality reference). "in": shuffled Fashion-MNIST test;
    "reference": training images (held out of training when the setup holds some out)."""
    full = load_images(cfg.setup.dataset, "train", data_dir=cfg.setup.data_dir).shuffled(cfg.setup.seed)
    n_ref = min(cfg.n_reference, len(full))
    if len(train_set) < len(full):
        reference, note = full.images[len(train_set) :][:n_ref], "training images held out of training"
    else:
        reference, note = full.images[-n_ref:], f"{n_ref} training images (seen in training)"
    mixed = load_images(cfg.setup.dataset, "test", data_dir=cfg.setup.data_dir).shuffled(cfg.seed).images
    sets = {"in": mixed[: cfg.n_images], "reference": reference}
    for name in cfg.ood_sets:
        sets[name] = ood_set(name, cfg, mixed)[: cfg.n_images]
    for name, path in cfg.user_sets.items():
        x = ood.load_image_set(path)
        sets[name] = x[np.random.default_rng(cfg.seed).permutation(len(x))][: cfg.n_images]
    return sets, note


def ood_set(name: str, cfg: OODConfig, test_images: np.ndarray) -> np.ndarray:
    """One named out-of-distribution set (`test_images`: the in-distribution test set, shuffled)."""
    if name == "mnist":
        return load_images("mnist", "test", data_dir=cfg.setup.data_dir).shuffled(cfg.seed).images
    if name == "noise":
        return ood.uniform_noise(cfg.n_images, cfg.seed + 1)
    if name == "constant":
        return ood.constant_images(cfg.n_images, cfg.seed + 2)
    if name == "vflip":  # the other end of the shuffled test set: disjoint from "in" for n <= 5000
        return ood.vertical_flip(test_images[::-1][: cfg.n_images])
    raise ValueError(
        f"unknown OOD set {name!r}; built in: mnist, noise, constant, vflip (add your own with "
        "user_sets.NAME=PATH, a .npy array or IDX file of uint8 28x28 images)"
    )


def background_run(name: str, cfg: OODConfig, train_set, fresh: bool):
    """The likelihood-ratio background of `name`: the same architecture trained by the same loop on the
    training images with a fraction of pixels replaced by uniform noise (`ood.perturb`)."""
    spec = image_spec(cfg.setup, name, train_set)
    train = TrainConfig(**{**dataclasses.asdict(spec.train), **cfg.background_train.get(name, {})})
    data = {**spec.data, "dataset": f"{cfg.setup.dataset}_perturbed", "rate": cfg.background_rate}
    spec = RunSpec(name, spec.event_shape, spec.options, train, data)
    images = ood.perturb(train_set.images, jax.random.key(cfg.seed + 5), cfg.background_rate)
    return train_or_reuse(spec, cfg.out, images, fresh=fresh, desc=f"background/{name}")


def view_arrays(view_name, view, params, sets, cfg, batch, background=None) -> dict:
    """quantity -> set -> per-image array: log_p on every set (the first max_images), the background's
    log_p, and for an unnormalized view the score norm."""
    out = {"log_p": {}, "bg_log_p": {}, "grad_norm": {}}
    key = jax.random.fold_in(jax.random.key(cfg.seed + 11), zlib.crc32(view_name.encode()) & 0x7FFFFFFF)
    for i, (set_name, images) in enumerate(sets.items()):
        n = min(
            cfg.n_reference if set_name == "reference" else cfg.n_images, cfg.max_images.get(view_name, 10**9)
        )
        x, k = images[:n], jax.random.fold_in(key, i)
        out["log_p"][set_name] = ood.log_probs(view, params, x, k, batch)
        if background is not None and set_name != "reference":
            out["bg_log_p"][set_name] = ood.log_probs(background[0], background[1], x, k, batch)
        if view.kind == Kind.UNNORMALIZED and set_name != "reference":
            out["grad_norm"][set_name] = ood.score_norms(view, params, x, k, batch)
    return out


def score_model(name: str, cfg: OODConfig, train_set, test_set, sets: dict, fresh: bool) -> dict:
    """view -> arrays for one model (cached in its run directory, keyed by this config's scoring part)."""
    run = trained_image_model(name, cfg.setup, train_set, test_set, fresh)
    bg = background_run(name, cfg, train_set, fresh) if name in cfg.background_models else None
    key = (
        cfg.background_rate,
        cfg.background_train.get(name),
        cfg.n_images,
        cfg.n_reference,
        cfg.max_images,
        sorted(sets),
        cfg.user_sets,
        cfg.seed,
        bg.spec.key if bg else None,
    )
    path = evaluation_cache(run.workdir, "ood", key).with_suffix(".npz")
    views = [(v, view) for v, view in run.model.views() if view.kind != Kind.NONE]
    if path.exists() and not fresh:
        with np.load(path) as f:
            flat = {k: f[k] for k in f.files}
    else:
        flat, bg_views, progress = (
            {},
            dict(bg.model.views()) if bg else {},
            Progress(len(views), f"{name}: score", unit="view"),
        )
        for v, view in views:
            batch = cfg.eval_batch.get(v, cfg.eval_batch.get(name, 500))
            background = (bg_views[v], bg.params) if bg and v in bg_views else None
            for q, by_set in view_arrays(v, view, run.params, sets, cfg, batch, background).items():
                flat.update({f"{v}|{s}|{q}": a for s, a in by_set.items()})
            progress.update(1)
        progress.close()
        np.savez_compressed(path, **flat)
    arrays = {}
    for k, a in flat.items():
        v, s, q = k.split("|")
        arrays.setdefault(v, {}).setdefault(q, {})[s] = a
    return {"model": run.model, "views": dict(views), "arrays": arrays}


def run(cfg: OODConfig, fresh: bool = False) -> list[dict]:
    """Score every model's views on every set; metrics, histograms and the table."""
    out = Path(cfg.out)
    train_set, test_set = load_image_splits(cfg.setup)
    sets, note = load_sets(cfg, train_set, test_set)
    set_names = [s for s in sets if s not in ("in", "reference")]
    bits = {s: ood.png_bits(x) for s, x in sets.items() if s != "reference"}
    rows = []
    for name in cfg.models:
        scored = score_model(name, cfg, train_set, test_set, sets, fresh)
        if not scored["views"]:
            print(f"{name}: no density (kind none): no likelihood-based score; skipped", flush=True)
            continue
        scores = {}
        for v, view in scored["views"].items():
            scores[v] = ood.view_scores(view, scored["arrays"][v], bits, set_names, cfg.typicality_batch)
            rows += ood.metric_rows(v, scores[v], set_names)
        score_histograms(
            out / f"hist_{name}.png",
            f"{name}: scores (higher = more in-distribution)",
            scores,
            set_names,
            SET_TITLES,
        )
        for r in rows:
            if r["ood_set"] == set_names[0] and r["model"].split("/")[0] == name:
                print(f"{r['model']:>20s} {r['score']:>20s}  AUROC {r['auroc']:.3f}", flush=True)
    write_results(out, rows, KEYS, ood_markdown(rows, cfg, note))
    print(
        f"\nwrote {out / 'results.json'} ({len(rows)} rows)\n\n{(out / 'results.md').read_text()}", flush=True
    )
    return rows


SHORTHANDS = {
    "--models": ("models", "list"),
    "--out": ("out", "value"),
    "--data-dir": ("setup.data_dir", "value"),
}


def main(argv=None) -> None:
    """The command line (see the module docstring)."""
    run_cli("ood", PRESETS, run, argv, default_preset="cpu", shorthands=SHORTHANDS, doc=__doc__)


if __name__ == "__main__":
    main()
