"""Anomaly detection: models trained on Fashion-MNIST score MNIST, noise, constant and flipped images.

    python -m experiments.ood --preset cpu --resume          # make ood
    python -m experiments.ood --models pixel_cat,pixelcnn --resume
    python -m experiments.ood --set letters=path/to/emnist-images-idx3-ubyte.gz --resume

Where raw likelihood fails and what fixes it. Every model of `make images` is reused from
results/images/runs/<model>/ (trained there with the images preset when it is missing), and each
of its views (log_prob and each estimator) gives the scores of `gen_jax.ood`: log p (or minus
the energy), typicality (one image, and batches of M), the likelihood ratio against a background
model trained on perturbed images (results/ood/background/<model>/, the same training loop), the
PNG-complexity correction, and for energy models the norm of the score. Higher is always more
in-distribution, Fashion-MNIST test is the positive class, and each (model, score, OOD set) gets
AUROC, AUPRC and the false positive rate at 95% true positives.

Writes results/ood/results.json, results.md and hist_<model>.png; the per-image numbers are cached
in results/ood/scores/ so that a rerun with --resume only recomputes the metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import zlib
from pathlib import Path

import jax
import numpy as np

from experiments import images as images_exp
from experiments.common import build_model, machine_description, train_config_for, write_results
from experiments.configs import images as images_configs
from experiments.configs.ood import OODConfig, get_config
from gen_jax import ood
from gen_jax.data.images import IMAGE_SHAPE, ImageData, load_images
from gen_jax.models import Kind, Model
from gen_jax.training import TrainConfig, restore_params, train

KEYS = ("model", "score", "ood_set", "auroc", "auprc", "fpr95", "n_in", "n_out")
SET_TITLES = {"mnist": "MNIST", "noise": "uniform noise", "constant": "constant", "vflip": "flipped FMNIST"}
SCORE_NOTES = {
    "log_p": "log p(x) of the view (exact, bound or estimate, as its kind says)",
    "energy": "-E(x) of an energy model (log p + an unknown constant log Z: the same ranking)",
    "typicality": "-|NLL(x) - mean NLL of training images| (Nalisnick et al. 2019)",
    "typicality_batch": "the same for the mean NLL of a batch of M images; n_in, n_out count batches",
    "complexity": "log2 p(x) + L(x), L the PNG length in bits (Serra et al. 2020; minus their S)",
    "likelihood_ratio": "log p(x) - log p_background(x), the background trained on perturbed images "
    "(Ren et al. 2019)",
    "score_norm": "-||grad_x log p~(x)||, energy models only",
}


@dataclasses.dataclass
class ScoredSets:
    """The images every model scores: Fashion-MNIST test ("in"), training images for the
    typicality reference, and each out-of-distribution set, all uint8 (n, 28, 28, 1)."""

    inside: np.ndarray
    reference: np.ndarray
    ood: dict[str, np.ndarray]
    reference_note: str

    def named(self) -> dict[str, np.ndarray]:
        return {"in": self.inside, "reference": self.reference, **self.ood}


def images_config(cfg: OODConfig) -> images_configs.ImagesConfig:
    """The `make images` preset whose runs are reused (and whose training recipe trains the rest)."""
    icfg = images_configs.get_config(cfg.images_preset)
    changes = {"out": cfg.images_out} if cfg.images_out else {}
    if cfg.data_dir:
        changes["data_dir"] = cfg.data_dir
    return dataclasses.replace(icfg, **changes)


def load_sets(cfg: OODConfig, icfg) -> tuple[ImageData, ImageData, ScoredSets]:
    """(train set and test set exactly as `experiments.images.load_data` makes them, the scored sets).

    The typicality reference is training images the models did not see when the images preset
    holds some out (n_train < 60,000), else the last n_reference of the same shuffled order
    (seen in training: the cpu models see each image a few times at most, so the in-sample NLL is
    close to the held-out one)."""
    full = load_images(icfg.dataset, "train", data_dir=icfg.data_dir).shuffled(icfg.seed)
    train_set = full.take(icfg.n_train)
    test = load_images(icfg.dataset, "test", data_dir=icfg.data_dir)
    n_ref = min(cfg.n_reference, len(full))
    if len(train_set) < len(full):
        reference = full.images[len(train_set) :][:n_ref]
        note = f"{len(reference)} training images held out of training"
    else:
        reference = full.images[-n_ref:]
        note = f"{n_ref} training images (seen in training: the preset trains on all {len(full)})"
    mixed = test.shuffled(cfg.seed).images
    n = cfg.n_images
    sets = {}
    for name in cfg.ood_sets:
        sets[name] = ood_set(name, cfg, icfg, mixed)[:n]
    for name, path in cfg.user_sets.items():
        x = ood.load_image_set(path)
        sets[name] = x[np.random.default_rng(cfg.seed).permutation(len(x))][:n]
    return train_set, test.take(icfg.n_test), ScoredSets(mixed[:n], reference, sets, note)


def ood_set(name: str, cfg: OODConfig, icfg, test_images: np.ndarray) -> np.ndarray:
    """One named out-of-distribution set (`test_images`: the in-distribution test set, shuffled)."""
    n = cfg.n_images
    if name == "mnist":
        return load_images("mnist", "test", data_dir=icfg.data_dir).shuffled(cfg.seed).images
    if name == "noise":
        return ood.uniform_noise(n, cfg.seed + 1)
    if name == "constant":
        return ood.constant_images(n, cfg.seed + 2)
    if name == "vflip":  # the other end of the shuffled test set: disjoint from "in" for n <= 5000
        return ood.vertical_flip(test_images[::-1][:n])
    raise ValueError(
        f"unknown OOD set {name!r}; built in: mnist, noise, constant, vflip (add your own with "
        "--set NAME=PATH, a .npy array or IDX file of uint8 28x28 images)"
    )


# ----------------------------------------------------------------------------- models


def _last_step(workdir: Path) -> int | None:
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
    return max(steps) if steps else None


def trained_model(name: str, icfg, train_set: ImageData, test_set: ImageData) -> tuple[Model, object, dict]:
    """(model, params, run info) of `make images`' run of `name`, training it first (with the
    images preset, `experiments.images.run_model`) when it has not finished there."""
    workdir = Path(icfg.out) / "runs" / name
    if not (workdir / "outcome.json").exists():
        print(f"{name}: no finished run in {workdir}; training it with the images preset", flush=True)
        images_exp.run_model(name, icfg, train_set, test_set, resume=True)
    meta = json.loads((workdir / "model_config.json").read_text())
    model = build_model(meta["model"], IMAGE_SHAPE, {meta["model"]: meta["kwargs"]})
    tcfg = TrainConfig(**json.loads((workdir / "train_config.json").read_text()))
    x = train_set.images
    params = restore_params(model, workdir, x[: max(tcfg.batch_size, min(len(x), tcfg.init_examples))], tcfg)
    return model, params, dict(kwargs=meta["kwargs"], step=_last_step(workdir))


def background_model(
    name: str, kwargs: dict, cfg: OODConfig, icfg, train_images: np.ndarray, resume: bool
) -> tuple[Model, object, dict]:
    """The likelihood-ratio background of `name`: the same architecture trained, by the one
    training loop, on the training images with a fraction `cfg.background_rate` of pixels
    replaced by uniform noise (`gen_jax.ood.perturb`), with the images preset's recipe and the
    overrides of `cfg.background_train` (fewer steps, weight decay)."""
    workdir = Path(cfg.out) / "background" / name
    model = build_model(name, IMAGE_SHAPE, {name: kwargs})
    tcfg = train_config_for(name, icfg.train, icfg.train_overrides)
    tcfg = dataclasses.replace(tcfg, seed=icfg.seed, **cfg.background_train.get(name, {}))
    data = ood.perturb(train_images, jax.random.key(cfg.seed + 5), cfg.background_rate)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "model_config.json").write_text(
        json.dumps(dict(model=name, kwargs=kwargs, dataset=icfg.dataset, rate=cfg.background_rate), indent=1)
    )
    result = train(model, data, tcfg, workdir, resume=resume, desc=f"background/{name}")
    return model, result.params, dict(step=int(result.state.step), train_seconds=result.train_seconds)


# ----------------------------------------------------------------------------- per-image numbers


def _cap(cfg: OODConfig, view_name: str, n: int) -> int:
    return min(n, cfg.max_images.get(view_name, n))


def _view_key(seed: int, view_name: str):
    return jax.random.fold_in(jax.random.key(seed + 11), zlib.crc32(view_name.encode()) & 0x7FFFFFFF)


def view_arrays(
    view_name: str, view: Model, params, sets: dict, cfg: OODConfig, batch: int, background=None
) -> dict[str, np.ndarray]:
    """`view|set|quantity` -> per-image array: log_p on every set (the first `_cap` images), the
    background's log_p (same view of the background model) and, for an unnormalized view, the
    score norm. Which quantities there are depends on `view.kind` and nothing else."""
    out = {}
    key = _view_key(cfg.seed, view_name)
    for i, (set_name, images) in enumerate(sets.items()):
        n = _cap(cfg, view_name, cfg.n_reference if set_name == "reference" else cfg.n_images)
        x = images[:n]
        k = jax.random.fold_in(key, i)
        out[f"{view_name}|{set_name}|log_p"] = ood.log_probs(view, params, x, k, batch)
        if background is not None and set_name != "reference":
            bg_view, bg_params = background
            out[f"{view_name}|{set_name}|bg_log_p"] = ood.log_probs(bg_view, bg_params, x, k, batch)
        if view.kind == Kind.UNNORMALIZED and set_name != "reference":
            out[f"{view_name}|{set_name}|grad_norm"] = ood.score_norms(view, params, x, k, batch)
    return out


def model_arrays(name: str, cfg: OODConfig, icfg, data, resume: bool) -> tuple[Model, dict, dict]:
    """(model, arrays, info) for one model, from the cache under out/scores/ when --resume finds
    one computed with the same settings and checkpoints, else scored now (and cached)."""
    train_set, test_set, sets = data
    model, params, run = trained_model(name, icfg, train_set, test_set)
    bg = None
    if name in cfg.background_models:
        bg = background_model(name, run["kwargs"], cfg, icfg, train_set.images, resume)
    signature = dict(
        step=run["step"],
        background_step=bg[2]["step"] if bg else None,
        background_rate=cfg.background_rate if bg else None,
        background_train=cfg.background_train.get(name) if bg else None,
        n_images=cfg.n_images,
        n_reference=cfg.n_reference,
        max_images={v: cfg.max_images[v] for v, _ in model.views() if v in cfg.max_images},
        sets=sorted(sets.named()),
        user_sets={k: str(v) for k, v in cfg.user_sets.items()},
        seed=cfg.seed,
        reference=sets.reference_note,
    )
    cache = Path(cfg.out) / "scores"
    meta_path, npz_path = cache / f"{name}.json", cache / f"{name}.npz"
    if resume and meta_path.exists() and npz_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["signature"] == json.loads(json.dumps(signature)):
            with np.load(npz_path) as f:
                return model, {k: f[k] for k in f.files}, meta
        print(f"{name}: cached scores in {cache} were computed with other settings; recomputing", flush=True)
    t0 = time.perf_counter()
    arrays = {}
    bg_views = dict(bg[0].views()) if bg else {}
    for view_name, view in model.views():
        if view.kind == Kind.NONE:
            continue
        batch = icfg.eval_batch.get(view_name, icfg.eval_batch.get(name, 500))
        background = (bg_views[view_name], bg[1]) if view_name in bg_views else None
        arrays.update(view_arrays(view_name, view, params, sets.named(), cfg, batch, background))
        print(f"{view_name}: scored ({time.perf_counter() - t0:.0f}s)", flush=True)
    meta = dict(signature=signature, seconds=time.perf_counter() - t0, background=bg[2] if bg else None)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **arrays)
    meta_path.write_text(json.dumps(meta, indent=1))
    return model, arrays, meta


def complexity_bits(cfg: OODConfig, sets: ScoredSets, resume: bool) -> dict[str, np.ndarray]:
    """L(x) (PNG bits) of every scored image, set by set; model-free, cached like the scores."""
    path = Path(cfg.out) / "scores" / "png_bits.npz"
    named = {k: v for k, v in sets.named().items() if k != "reference"}
    # the same seed, sizes and set names (user sets: the same paths) give the same images
    signature = json.dumps(dict(seed=cfg.seed, n={k: len(v) for k, v in named.items()}, user=cfg.user_sets))
    if resume and path.exists():
        with np.load(path) as f:
            if str(f["__signature__"]) == signature:
                return {k: f[k] for k in f.files if k != "__signature__"}
    bits = {k: ood.png_bits(v) for k, v in named.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, __signature__=np.asarray(signature), **bits)
    return bits


# ----------------------------------------------------------------------------- scores and metrics


def view_scores(view_name: str, view: Model, arrays: dict, bits: dict, set_names, m: int) -> dict:
    """set -> {score name -> scores} for one view (the typicality reference from its arrays)."""
    get = lambda s, q: arrays.get(f"{view_name}|{s}|{q}")
    ref = get("reference", "log_p")
    ref = ref[np.isfinite(ref)]
    lengths = [len(get(s, "log_p")) for s in ["in", *set_names]]
    batch = m if m and min(lengths) >= 2 * m else None  # at least 2 batches on each side
    out = {}
    for s in ["in", *set_names]:
        lp = get(s, "log_p")
        out[s] = ood.ood_scores(
            view.kind,
            lp,
            float(np.mean(ref)),
            bits=bits[s][: len(lp)],
            log_p_background=get(s, "bg_log_p"),
            grad_norm=get(s, "grad_norm"),
            batch_size=batch,
        )
    return out


def metric_rows(model: Model, arrays: dict, bits: dict, cfg: OODConfig, set_names) -> tuple[list, dict]:
    """(rows of KEYS, view -> set -> scores) for every view with a density."""
    rows, scores = [], {}
    for view_name, view in model.views():
        if view.kind == Kind.NONE:
            continue
        by_set = view_scores(view_name, view, arrays, bits, set_names, cfg.typicality_batch)
        scores[view_name] = by_set
        for score in by_set["in"]:
            for s in set_names:
                s_in, s_out = by_set["in"][score], by_set[s][score]
                rows.append(
                    dict(
                        model=view_name,
                        score=score,
                        ood_set=s,
                        **ood.detection_metrics(s_in, s_out),
                        n_in=len(s_in),
                        n_out=len(s_out),
                    )
                )
    return rows, scores


# ----------------------------------------------------------------------------- outputs


def histogram_figure(path: Path, model_name: str, scores: dict, set_names) -> None:
    """One panel per (view, score): the score's histogram on Fashion-MNIST test against each OOD
    set, each normalized to unit area. The axis spans Fashion-MNIST test and the first OOD set
    (MNIST, the headline pair) with a margin; values of the other sets beyond it are piled into
    the edge bins (noise and constant images are often thousands of nats away)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(v, s) for v, by_set in scores.items() for s in by_set["in"]]
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (view, score) in zip(axes.ravel(), panels, strict=False):
        series = {"FMNIST test": scores[view]["in"][score]}
        series.update({SET_TITLES.get(s, s): scores[view][s][score] for s in set_names})
        core = np.concatenate([v[np.isfinite(v)] for v in list(series.values())[:2]])
        lo, hi = np.quantile(core, [0.005, 0.995]) if len(core) else (0.0, 1.0)
        pad = 0.15 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        bins = np.linspace(lo, hi, 41)
        for label, v in series.items():
            clipped = np.clip(np.nan_to_num(v, neginf=lo, posinf=hi), lo, hi)
            ax.hist(clipped, bins=bins, density=True, histtype="step", lw=1.2, label=label)
        ax.set_title(f"{view}: {score}", fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{model_name}: scores (higher = more in-distribution)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rows: list[dict], cfg: OODConfig, notes: dict) -> str:
    """One row per (view, score): AUROC, AUPRC, FPR95 on MNIST and AUROC on the other sets; the
    best MNIST AUROC of each model family in bold."""
    set_names = list(dict.fromkeys(r["ood_set"] for r in rows))
    first = "mnist" if "mnist" in set_names else set_names[0]
    others = [s for s in set_names if s != first]
    table = {}
    for r in rows:
        table.setdefault((r["model"], r["score"]), {})[r["ood_set"]] = r
    best = {}
    for (model, _), by_set in table.items():
        family = model.split("/")[0]
        best[family] = max(best.get(family, -1.0), by_set[first]["auroc"])
    t = lambda s: SET_TITLES.get(s, s)
    head = [
        "model",
        "score",
        f"{t(first)} AUROC",
        f"{t(first)} AUPRC",
        f"{t(first)} FPR95",
        *[f"{t(s)} AUROC" for s in others],
        "n_in / n_out",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (model, score), by_set in table.items():
        m = by_set[first]
        a = f"{m['auroc']:.3f}"
        if m["auroc"] >= best[model.split("/")[0]] - 1e-12:
            a = f"**{a}**"
        cells = [model, score, a, f"{m['auprc']:.3f}", f"{m['fpr95']:.3f}"]
        cells += [f"{by_set[s]['auroc']:.3f}" if s in by_set else "-" for s in others]
        cells.append(f"{m['n_in']} / {m['n_out']}")
        lines.append("| " + " | ".join(cells) + " |")
    scores = list(dict.fromkeys(r["score"] for r in rows))
    described = []
    for s in scores:
        base = "typicality_batch" if s.startswith("typicality_batch") else s
        described.append(f"`{s}`: {SCORE_NOTES.get(base, s)}")
    head_text = (
        "Models trained on Fashion-MNIST score Fashion-MNIST test (the positive class) against each "
        "out-of-distribution set. Every score is oriented so that higher = more in-distribution: AUROC "
        "0.5 is chance, below 0.5 the score prefers the wrong images. FPR95: the fraction of OOD images "
        f"accepted when 95% of the test images are. Bold: the best {t(first)} AUROC of each model.\n"
        f"Machine: {machine_description()}.\n"
        f"Scores: {'; '.join(described)}. Typicality reference: {notes['reference']}; batch M = "
        f"{cfg.typicality_batch}; background perturbation rate {cfg.background_rate}.\n\n"
    )
    timing = "".join(f"- {k}: {v}\n" for k, v in notes.get("timing", {}).items())
    return (
        head_text + "\n".join(lines) + "\n" + (f"\nScoring time per model (s):\n{timing}" if timing else "")
    )


def run(cfg: OODConfig, resume: bool = False) -> list[dict]:
    icfg = images_config(cfg)
    data = load_sets(cfg, icfg)
    sets = data[2]
    set_names = list(sets.ood)
    print(
        f"data: {len(sets.inside)} test images, sets {', '.join(set_names)}; {sets.reference_note}",
        flush=True,
    )
    bits = complexity_bits(cfg, sets, resume)
    out = Path(cfg.out)
    rows, timing = [], {}
    for name in cfg.models:
        if all(v.kind == Kind.NONE for _, v in build_model(name, IMAGE_SHAPE, icfg.model_kwargs).views()):
            print(f"{name}: no density (kind none): no likelihood-based score; skipped", flush=True)
            continue
        model, arrays, meta = model_arrays(name, cfg, icfg, data, resume)
        model_rows, scores = metric_rows(model, arrays, bits, cfg, set_names)
        (out / "scores" / f"{name}.rows.json").write_text(json.dumps(model_rows, indent=1))
        histogram_figure(out / f"hist_{name}.png", name, scores, set_names)
        timing[name] = f"{meta['seconds']:.1f}"
        rows += model_rows
        for r in model_rows:
            if r["ood_set"] == set_names[0]:
                print(f"{r['model']:>20s} {r['score']:>20s}  AUROC {r['auroc']:.3f}", flush=True)
    for done in sorted((out / "scores").glob("*.rows.json")):  # models finished by earlier runs
        if done.name.removesuffix(".rows.json") not in cfg.models:
            rows += json.loads(done.read_text())
    write_results(out, rows, KEYS, markdown(rows, cfg, dict(reference=sets.reference_note, timing=timing)))
    return rows


def parse_args(argv=None) -> OODConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", help="cpu | smoke")
    p.add_argument("--models", help="comma-separated model names")
    p.add_argument("--out", help="output directory")
    p.add_argument("--images-out", help="where the `make images` runs are (default: the preset's)")
    p.add_argument("--data-dir", help="directory of the IDX files (default: $GEN_JAX_DATA_DIR)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an extra OOD set: a .npy array, an IDX images file or a directory with one (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="reuse cached scores and background checkpoints")
    a = p.parse_args(argv)
    cfg = get_config(a.preset)
    changes = {}
    if a.models:
        changes["models"] = tuple(a.models.split(","))
    if a.out:
        changes["out"] = a.out
    if a.images_out:
        changes["images_out"] = a.images_out
    if a.data_dir:
        changes["data_dir"] = a.data_dir
    if a.set:
        user = dict(cfg.user_sets)
        for spec in a.set:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                p.error(f"--set takes NAME=PATH, got {spec!r}")
            user[name] = path
        changes["user_sets"] = user
    return dataclasses.replace(cfg, **changes), a.resume


def main(argv=None) -> None:
    cfg, resume = parse_args(argv)
    rows = run(cfg, resume)
    print(f"\nwrote {Path(cfg.out) / 'results.json'} ({len(rows)} rows)")
    print(Path(cfg.out, "results.md").read_text())


if __name__ == "__main__":
    main()
