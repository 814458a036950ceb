"""Out-of-distribution (anomaly) scores from any trained image model, and how to grade them.

    lp = log_probs(view, params, images, key)                  # log p(x) per image, nats
    scores = ood_scores(view.kind, lp, train_mean_log_p=m, bits=png_bits(images), ...)
    detection_metrics(scores_in["typicality"], scores_out["typicality"])   # auroc, auprc, fpr95

Convention: every score here is oriented so that HIGHER = MORE IN-DISTRIBUTION, and the
metrics take the in-distribution images as the positive class. A score with AUROC < 0.5 ranks
the out-of-distribution images as *more* typical than the real ones: that is the failure of raw
likelihood this module exists to show (a model of Fashion-MNIST gives MNIST digits, mostly black
background, a higher log p than Fashion-MNIST itself).

Every score is computed from the common model surface (`log_prob`, `kind`, `views()`) and never
from a family's internals; only `kind` decides which scores make sense:

- `log_p`: log p(x) of the discrete 8-bit image, nats, whatever the view gives (exact, a lower
  bound, an estimate). For an UNNORMALIZED view (an energy model) log_prob is -E(x) = log p(x) +
  log Z with log Z unknown; log Z is one constant for every image, so -E(x) ranks images exactly
  as log p would: that score is named `energy` (i.e. minus the energy).
- `typicality` (Nalisnick et al. 2019): -|NLL(x) - mean training NLL|, zero at the mean NLL of
  held-out training images and lower the further an image is on either side. In the batch form
  (`typicality_batch<M>`) the statistic is the mean NLL of a batch of M images, scored once per
  batch: metrics then count batches, not images. Both are valid for an energy model too (log Z
  cancels in the difference).
- `likelihood_ratio` (Ren et al. 2019): log p(x) - log p_background(x), the background model the
  same architecture trained on training images corrupted by `perturb`: the background learns the
  low-level statistics (smoothness, how much black) that dominate log p, and the ratio keeps what
  is specific to the training data.
- `complexity` (Serra et al. 2020): log2 p(x) + L(x) in bits, L(x) the length of the image
  losslessly compressed as PNG (`png_bits`). The compressor is a "universal" model, log2 p_0(x) =
  -L(x), so this is again a likelihood ratio, log2 p(x) / p_0(x), with a background that needs no
  training. Serra et al. write S(x) = -l_M(x) - L(x) with l_M the log-likelihood in bits, i.e.
  S = NLL_bits(x) - L(x), and flag large S as out-of-distribution; `complexity` is -S.
- `score_norm` (UNNORMALIZED views only): -||grad_x log p~(x)||, minus the norm of the model's
  score at the image (log Z has no gradient). A trained energy has small gradients near the data
  it was fitted to, so in-distribution images are expected to have the smaller norm, the larger
  (less negative) score.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model
from gen_jax.data.arrays import DataError
from gen_jax.data.idx import IDXError, read_idx
from gen_jax.data.images import IMAGE_SHAPE, check_uint8_images
from gen_jax.evaluation.config import config_hash
from gen_jax.evaluation.tables import machine_description

LN2 = math.log(2.0)

# ----------------------------------------------------------------------------- metrics
# The in-distribution images are the positive class; a detector calls "in-distribution" when
# score >= threshold. Ties are handled as scikit-learn does (one threshold per distinct value).


def _check_scores(score_in, score_out) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(score_in, np.float64).ravel()
    s_out = np.asarray(score_out, np.float64).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError(
            f"need scores of both classes, got {len(s_in)} in- and {len(s_out)} out-of-distribution"
        )
    bad = int(np.isnan(s_in).sum() + np.isnan(s_out).sum())
    if bad:
        raise ValueError(f"{bad} scores are NaN: a detection metric cannot rank them; fix the score first")
    return s_in, s_out


def auroc(score_in, score_out) -> float:
    """Area under the ROC curve = P(score_in > score_out) + P(tie) / 2 (the Mann-Whitney U
    statistic over n_in * n_out pairs), computed from average ranks."""
    s_in, s_out = _check_scores(score_in, score_out)
    values, inverse, counts = np.unique(
        np.concatenate([s_in, s_out]), return_inverse=True, return_counts=True
    )
    first = np.cumsum(counts) - counts  # 0-based rank of the first member of each tie group
    avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each distinct value
    rank_sum = avg_rank[inverse[: len(s_in)]].sum()
    n_in, n_out = len(s_in), len(s_out)
    return float((rank_sum - n_in * (n_in + 1) / 2.0) / (n_in * n_out))


def _curve(s_in: np.ndarray, s_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) at each distinct threshold, from the highest down."""
    scores = np.concatenate([s_in, s_out])
    positive = np.concatenate([np.ones(len(s_in)), np.zeros(len(s_out))])
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    last_of_group = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]  # inf-safe
    tp = np.cumsum(positive)[last_of_group]
    fp = (last_of_group + 1) - tp
    return tp, fp


def auprc(score_in, score_out) -> float:
    """Average precision with the in-distribution class positive, as scikit-learn defines it:
    sum over thresholds of (recall step) * precision, no interpolation."""
    s_in, s_out = _check_scores(score_in, score_out)
    tp, fp = _curve(s_in, s_out)
    precision = tp / (tp + fp)
    recall = tp / len(s_in)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(score_in, score_out, tpr: float = 0.95) -> float:
    """The fraction of out-of-distribution images let through (false positive rate) at the first
    threshold that keeps at least `tpr` of the in-distribution images. Lower is better."""
    s_in, s_out = _check_scores(score_in, score_out)
    tp, fp = _curve(s_in, s_out)
    reached = np.flatnonzero(tp / len(s_in) >= tpr - 1e-12)
    return float(fp[reached[0]] / len(s_out))


def detection_metrics(score_in, score_out) -> dict:
    """{"auroc", "auprc", "fpr95"} of a score that should be higher in-distribution."""
    return dict(
        auroc=auroc(score_in, score_out),
        auprc=auprc(score_in, score_out),
        fpr95=fpr_at_tpr(score_in, score_out, 0.95),
    )


# ----------------------------------------------------------------------------- per-image quantities


def _chunked(fn, images: np.ndarray, key, batch_size: int) -> np.ndarray:
    """fn(x_chunk, key) over `images` in chunks of one static shape (the last one padded)."""
    n = len(images)
    if n == 0:
        return np.zeros((0,), np.float64)
    batch_size = max(1, min(batch_size, n))
    pad = (-n) % batch_size
    x = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)]) if pad else images
    out = [
        np.asarray(fn(jnp.asarray(x[s : s + batch_size]), jax.random.fold_in(key, i)), np.float64)
        for i, s in enumerate(range(0, n + pad, batch_size))
    ]
    return np.concatenate(out)[:n]


def _no_nan(values: np.ndarray, what: str) -> np.ndarray:
    bad = np.isnan(values)
    if bad.any():  # a model that cannot evaluate an input does not vouch for it: lowest score
        warnings.warn(
            f"{what}: {int(bad.sum())} of {len(values)} values are NaN; counted as -inf", stacklevel=3
        )
        values = np.where(bad, -np.inf, values)
    return values


def log_probs(view: Model, params, images: np.ndarray, key, batch_size: int = 500) -> np.ndarray:
    """log p(x) in nats per 8-bit image from `view.log_prob` (one jit, memory-bounded chunks).

    Unlike `evaluate_nll` an infinite value is kept (an image a model calls impossible is the
    least typical there is); a NaN is counted as -inf, with a warning."""
    if view.kind == Kind.NONE:
        raise ValueError(f"{view.name} has no density (kind none): no likelihood-based OOD score")
    images = check_uint8_images(images, f"images scored by {view.name}")
    lp = jax.jit(view.log_prob)
    return _no_nan(_chunked(lambda x, k: lp(params, x, k), images, key, batch_size), view.name)


def score_norms(view: Model, params, images: np.ndarray, key, batch_size: int = 500) -> np.ndarray:
    """||grad_x log p~(x)|| per image (gray-level units), for an UNNORMALIZED view.

    The gradient is taken of `log_prob` at a float32 copy of the image, so it is whatever the
    model's density of the continuous variable is there (an energy model dequantizes x + u inside
    log_prob; the gradient w.r.t. x is its score at x + u). Normalized views are refused: their
    log p of a discrete image has no gradient in the pixel values."""
    if view.kind != Kind.UNNORMALIZED:
        raise ValueError(
            f"{view.name} is {view.kind}: the score norm is for unnormalized (energy) views, whose "
            "log_prob is a differentiable function of continuous pixel values"
        )
    images = check_uint8_images(images, f"images scored by {view.name}")

    def norms(params, x, key):
        g = jax.grad(lambda v: jnp.sum(view.log_prob(params, v, key)))(x.astype(jnp.float32))
        return jnp.sqrt(jnp.sum(jnp.square(g), axis=tuple(range(1, g.ndim))))

    fn = jax.jit(norms)
    return _no_nan(
        _chunked(lambda x, k: fn(params, x, k), images, key, batch_size), f"{view.name} score norm"
    )


def png_bits(images: np.ndarray) -> np.ndarray:
    """L(x): the length in bits of each uint8 image saved as a losslessly compressed PNG file
    (Pillow, zlib at its highest level, `optimize=True`). The file's fixed headers (IHDR, IEND:
    the same ~60 bytes for every 28x28 gray image) are included: a constant, so no ranking changes."""
    from PIL import Image

    images = check_uint8_images(images, "images to compress")
    out = np.empty(len(images), np.float64)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img[..., 0]), mode="L").save(buf, format="PNG", optimize=True)
        out[i] = 8.0 * buf.tell()
    return out


# ----------------------------------------------------------------------------- scores


def typicality(nll, train_mean_nll: float) -> np.ndarray:
    """-|NLL(x) - mean training NLL| per image: 0 at the training mean, symmetric about it."""
    return -np.abs(np.asarray(nll, np.float64) - train_mean_nll)


def batch_typicality(nll, train_mean_nll: float, batch_size: int) -> np.ndarray:
    """-|mean NLL of a batch - mean training NLL|, one value per batch of `batch_size` images
    (consecutive images; a remainder that fills no batch is dropped)."""
    nll = np.asarray(nll, np.float64)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = len(nll) // batch_size
    if n_batches == 0:
        raise ValueError(
            f"{len(nll)} images fill no batch of {batch_size}; score more images or use smaller M"
        )
    means = nll[: n_batches * batch_size].reshape(n_batches, batch_size).mean(axis=1)
    return -np.abs(means - train_mean_nll)


def likelihood_ratio(log_p, log_p_background) -> np.ndarray:
    """log p(x) - log p_background(x) (nats). -inf - (-inf) (an image both call impossible) is
    counted as -inf, the least typical."""
    with np.errstate(invalid="ignore"):
        r = np.asarray(log_p, np.float64) - np.asarray(log_p_background, np.float64)
    return np.where(np.isnan(r), -np.inf, r)


def complexity(log_p_nats, bits) -> np.ndarray:
    """log2 p(x) + L(x) (bits): minus Serra et al.'s S(x) = NLL_bits(x) - L(x)."""
    return np.asarray(log_p_nats, np.float64) / LN2 + np.asarray(bits, np.float64)


def score_names(kind: Kind, background: bool, batch_size: int | None) -> list[str]:
    """The scores `ood_scores` returns for a view of this kind."""
    if kind == Kind.NONE:
        return []
    names = ["energy" if kind == Kind.UNNORMALIZED else "log_p", "typicality"]
    if batch_size:
        names.append(f"typicality_batch{batch_size}")
    names.append("complexity")
    if background:
        names.append("likelihood_ratio")
    if kind == Kind.UNNORMALIZED:
        names.append("score_norm")
    return names


def ood_scores(
    kind: Kind,
    log_p,
    train_mean_log_p: float,
    bits=None,
    log_p_background=None,
    grad_norm=None,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Every score (higher = more in-distribution) of one set of images from one view.

    Args:
      kind: the view's kind; it alone decides which scores there are (see `score_names`).
      log_p: the view's log_prob of each image (nats).
      train_mean_log_p: mean log_prob of held-out training images (the typicality reference).
      bits: PNG length of each image (`png_bits`), for `complexity`.
      log_p_background: the background model's log_prob (same view), for `likelihood_ratio`.
      grad_norm: `score_norms` of each image, for `score_norm` (UNNORMALIZED views).
      batch_size: M of the batch typicality; None leaves it out.
    """
    if kind == Kind.NONE:
        raise ValueError("a model without a density (kind none) has no likelihood-based OOD score")
    log_p = np.asarray(log_p, np.float64)
    nll, mean_nll = -log_p, -float(train_mean_log_p)
    out = {"energy" if kind == Kind.UNNORMALIZED else "log_p": log_p, "typicality": typicality(nll, mean_nll)}
    if batch_size:
        out[f"typicality_batch{batch_size}"] = batch_typicality(nll, mean_nll, batch_size)
    if bits is not None:
        out["complexity"] = complexity(log_p, bits)
    if log_p_background is not None:
        out["likelihood_ratio"] = likelihood_ratio(log_p, log_p_background)
    if kind == Kind.UNNORMALIZED:
        if grad_norm is None:
            raise ValueError("an unnormalized view's scores include score_norm: pass grad_norm (score_norms)")
        out["score_norm"] = -np.asarray(grad_norm, np.float64)
    return out


# ----------------------------------------------------------------------------- background training data


def perturb(images, key, rate: float) -> np.ndarray:
    """Training images for the likelihood-ratio background (Ren et al. 2019): each pixel is
    replaced, with probability `rate`, by a value drawn uniformly from 0..255 (so it changes with
    probability rate * 255/256). uint8 in, uint8 out, the same shape."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"perturbation rate must be in [0, 1], got {rate}")
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8:
        raise DataError(f"perturb takes uint8 images (pixel values 0..255), got {images.dtype}")
    k_mask, k_value = jax.random.split(key)
    mask = jax.random.bernoulli(k_mask, rate, images.shape)
    values = jax.random.randint(k_value, images.shape, 0, 256, jnp.int32).astype(jnp.uint8)
    return np.asarray(jnp.where(mask, values, images))


# ----------------------------------------------------------------------------- out-of-distribution sets
# Each returns uint8 images (n, 28, 28, 1), deterministic given its seed.


def uniform_noise(n: int, seed: int = 0) -> np.ndarray:
    """Every pixel independent and uniform on 0..255."""
    return np.random.default_rng(seed).integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)


def constant_images(n: int, seed: int = 0) -> np.ndarray:
    """One gray value per image, drawn uniformly from 0..255: the simplest images there are."""
    values = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None, None], (n, *IMAGE_SHAPE)).copy()


def vertical_flip(images: np.ndarray) -> np.ndarray:
    """The images upside down: the same pixel statistics, the wrong shapes."""
    return np.ascontiguousarray(check_uint8_images(images)[:, ::-1])


def load_image_set(path: str | Path) -> np.ndarray:
    """A user's out-of-distribution images: a `.npy` array of uint8 (n, 28, 28[, 1]), an IDX
    images file (`*-images-idx3-ubyte[.gz]`), or a directory holding exactly one such file."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"image set {path} does not exist; give a .npy file, an IDX images file or a directory"
        )
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and "idx3-ubyte" in p.name)
        if len(found) != 1:
            listing = ", ".join(p.name for p in found) or "none"
            raise DataError(
                f"{path}: expected exactly one IDX images file (*-images-idx3-ubyte[.gz]), found {listing}; "
                "give the path of the file itself"
            )
        path = found[0]
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path} is not a plain .npy array ({e}); save it with np.save(arr)") from None
    else:
        try:
            x = read_idx(path)
        except IDXError as e:
            raise DataError(f"{path}: not a .npy file and not a readable IDX file: {e}") from None
    x = check_uint8_images(x, str(path))
    if len(x) == 0:
        raise DataError(f"{path} holds no images")
    return x


# ----------------------------------------------------------------------------- a view's scores and metrics


def view_scores(view: Model, arrays: dict, bits: dict, set_names, m: int | None) -> dict:
    """set -> {score name -> scores} for one view, from its per-image arrays (`quantity` -> set ->
    array: "log_p", and where computed "bg_log_p", "grad_norm"; "reference" holds the training images'
    log_p, the typicality reference). Batch typicality needs at least 2 batches of m on each side."""
    ref = arrays["log_p"]["reference"]
    ref = ref[np.isfinite(ref)]
    lengths = [len(arrays["log_p"][s]) for s in ["in", *set_names]]
    batch = m if m and min(lengths) >= 2 * m else None
    out = {}
    for s in ["in", *set_names]:
        lp = arrays["log_p"][s]
        out[s] = ood_scores(
            view.kind,
            lp,
            float(np.mean(ref)),
            bits=bits[s][: len(lp)],
            log_p_background=arrays.get("bg_log_p", {}).get(s),
            grad_norm=arrays.get("grad_norm", {}).get(s),
            batch_size=batch,
        )
    return out


def metric_rows(view_name: str, by_set: dict, set_names) -> list[dict]:
    """One row per (score, OOD set): AUROC, AUPRC, FPR at 95% TPR, and the counts."""
    rows = []
    for score in by_set["in"]:
        for s in set_names:
            s_in, s_out = by_set["in"][score], by_set[s][score]
            rows.append(
                dict(
                    model=view_name,
                    score=score,
                    ood_set=s,
                    **detection_metrics(s_in, s_out),
                    n_in=len(s_in),
                    n_out=len(s_out),
                )
            )
    return rows


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


def ood_markdown(rows: list[dict], cfg, note: str) -> str:
    """The OOD study's results.md: one row per (view, score): AUROC, AUPRC, FPR95 on the first set and
    AUROC on the others; the best first-set AUROC of each model in bold, among scores resting on at
    least `cfg.min_bold_n` images (or batches) per side. `cfg`: the study's config."""
    set_names = list(dict.fromkeys(r["ood_set"] for r in rows))
    first, others = set_names[0], set_names[1:]
    table = {}
    for r in rows:
        table.setdefault((r["model"], r["score"]), {})[r["ood_set"]] = r
    best = {}  # bold only a score resting on at least cfg.min_bold_n images (or batches) on each side
    for (model, _), by_set in table.items():
        m = by_set[first]
        if min(m["n_in"], m["n_out"]) >= cfg.min_bold_n:
            best[model.split("/")[0]] = max(best.get(model.split("/")[0], -1.0), m["auroc"])
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
        enough = min(m["n_in"], m["n_out"]) >= cfg.min_bold_n
        bold = enough and m["auroc"] >= best[model.split("/")[0]] - 1e-12
        a = f"**{a}**" if bold else a
        cells = [model, score, a, f"{m['auprc']:.3f}", f"{m['fpr95']:.3f}"]
        cells += [f"{by_set[s]['auroc']:.3f}" if s in by_set else "-" for s in others] + [
            f"{m['n_in']} / {m['n_out']}"
        ]
        lines.append("| " + " | ".join(cells) + " |")
    described = [
        f"`{s}`: {SCORE_NOTES.get('typicality_batch' if s.startswith('typicality_batch') else s, s)}"
        for s in dict.fromkeys(r["score"] for r in rows)
    ]
    return (
        "Models trained on Fashion-MNIST score Fashion-MNIST test (the positive class) against each "
        "out-of-distribution set. Every score is oriented so that higher = more in-distribution: AUROC 0.5 "
        "is chance, below 0.5 the score prefers the wrong images. FPR95: the fraction of OOD images accepted "
        f"when 95% of the test images are. Bold: the best {t(first)} AUROC of each model among scores "
        f"resting on at least {cfg.min_bold_n} images (or batches) on each side.\n"
        f"Machine: {machine_description()}.\nScores: {'; '.join(described)}. Typicality reference: {note}; "
        f"batch M = {cfg.typicality_batch}; background perturbation rate {cfg.background_rate}; config "
        f"{config_hash(cfg)}.\n\n" + "\n".join(lines) + "\n"
    )
