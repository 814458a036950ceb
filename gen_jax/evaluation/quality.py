"""Sample quality beside likelihood for the image models: Parzen bits/dim and a feature distance.

For every model of `make images` (through the Model surface: `model.sample` only) and for "the
training set itself" (N training images as samples: a model that memorises its data, with no
density on new images, true bits/dim +inf), the images study reports:

- **Parzen bits/dim**: a Gaussian kernel density estimate on N samples, fitted in the dequantized
  space y = (x + u) / 256 in [0, 1)^784 (`gen_jax.likelihood.parzen`; bandwidth chosen on held-out
  training images that are never kernel centres), scored on dequantized test images and put in
  the same discrete units as every model's own bits/dim: -log q(y) + D log 256 per image
  (`gen_jax.data.transforms`), divided by D ln 2.
- **Feature distance (FID-like)**: the Frechet distance between Gaussians fitted to the
  penultimate-layer features of a small MLP classifier trained here on the same dataset, between
  N samples and the test images. It is NOT the Inception FID (different network, features and
  image size): its numbers are comparable only with each other, not with published FIDs.
- Each entry's rank by Parzen and by its true bits/dim, and the pairs Parzen orders the wrong
  way (`gen_jax.evaluation.parzen.is_reversed`). Only exact numbers (the PixelCNN, the per-pixel
  counts) and the training set's +inf count as the truth a reversal is judged against: a bound (the
  VAE's ELBO, Glow's one-draw dequantization, the diffusion bound) or an estimate (IWAE, an
  importance-weighted dequantization, an energy model's AIS) is shown with its kind and orders
  nothing.

`write` produces `quality.json` and `quality.md` beside the study's results.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax.core import Kind, nats_to_bits_per_dim
from gen_jax.data.images import IMAGE_SHAPE, check_uint8_images
from gen_jax.data.transforms import LOG_256, center, dequantize
from gen_jax.evaluation import parzen as parzen_report
from gen_jax.evaluation.tables import machine_description, markdown_table
from gen_jax.likelihood.parzen import parzen_estimate, parzen_log_prob

D = math.prod(IMAGE_SHAPE)
TRAINING_SET = parzen_report.TRAINING_SET
KEYS = (
    "dataset",
    "model",
    "true_nll_kind",
    "true_bpd",
    "true_bpd_se",
    "parzen_bpd",
    "parzen_bpd_se",
    "bandwidth",
    "num_samples",
    "rank_parzen",
    "rank_true",
    "reversed_against",
    "feature_distance",
    "classifier_accuracy",
)
COLUMNS = [
    ("model", "model"),
    ("true_nll_kind", "its bits/dim is"),
    ("true_str", "true bits/dim"),
    ("parzen_bpd", "Parzen bits/dim"),
    ("parzen_bpd_se", "± se"),
    ("bandwidth", "h"),
    ("num_samples", "N"),
    ("rank_parzen", "rank (Parzen)"),
    ("rank_true", "rank (truth)"),
    ("reversed_str", "Parzen reverses the truth against"),
    ("feature_distance", "feature distance (FID-like)"),
]


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """num_samples: samples per entry (0 turns the report off), or num_samples_by_model[name] for a
    model whose sampler is slow (Parzen's number depends on N: the table shows it); n_val: held-out
    training images for the bandwidth; n_test: test images scored; models: which models (None: all
    of the run); classifier_*: the feature network's training."""

    num_samples: int = 0
    num_samples_by_model: dict = dataclasses.field(default_factory=dict)  # slow samplers: fewer (N shown)
    n_val: int = 1000
    n_test: int = 2000
    models: tuple[str, ...] | None = None
    classifier_hidden: tuple[int, ...] = (512, 128)
    classifier_steps: int = 3000
    classifier_batch: int = 256
    classifier_lr: float = 1e-3


# ----------------------------------------------------------------------------- the feature network


class FeatureClassifier(nn.Module):
    """MLP on pixel centres (x + 1/2) / 256 -> (class logits, penultimate features)."""

    hidden: tuple[int, ...] = (512, 128)
    num_classes: int = 10

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = center(images).reshape(images.shape[0], -1)
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        return nn.Dense(self.num_classes)(h), h


def train_classifier(images, labels, cfg: QualityConfig, seed: int = 0):
    """Params of a `FeatureClassifier` trained with Adam on (uint8 images, int labels), all steps in
    one jitted `lax.scan` (batches drawn on the device)."""
    net = FeatureClassifier(tuple(cfg.classifier_hidden))
    x, y = jnp.asarray(check_uint8_images(images)), jnp.asarray(labels, jnp.int32)
    key = jax.random.key(seed)
    params = net.init(key, x[:1])["params"]
    opt = optax.adam(cfg.classifier_lr)

    def loss(p, xb, yb):
        logits, _ = net.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def fit(params, x, y):
        def step(carry, k):
            p, s = carry
            idx = jax.random.randint(k, (cfg.classifier_batch,), 0, x.shape[0])
            g = jax.grad(loss)(p, x[idx], y[idx])
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        keys = jax.random.split(jax.random.fold_in(key, 1), cfg.classifier_steps)
        return jax.lax.scan(step, (params, opt.init(params)), keys)[0][0]

    return fit(params, x, y)


@functools.partial(jax.jit, static_argnames="hidden")
def _outputs_in_chunks(params, chunks, hidden):
    net = FeatureClassifier(hidden)
    return jax.lax.map(lambda xb: jnp.concatenate(net.apply({"params": params}, xb), axis=-1), chunks)


def classifier_outputs(params, images, hidden=(512, 128), chunk: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of uint8 images, in memory-bounded chunks."""
    images = check_uint8_images(images)
    n = len(images)
    chunk = min(chunk, n)
    pad = (-n) % chunk
    x = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)]) if pad else images
    out = _outputs_in_chunks(params, jnp.asarray(x).reshape(-1, chunk, *IMAGE_SHAPE), tuple(hidden))
    both = np.asarray(out).reshape(n + pad, -1)[:n]
    k = FeatureClassifier.num_classes
    return both[:, :k], both[:, k:]


def frechet_distance(fa, fb) -> float:
    """|mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca Cb)^(1/2)) between Gaussians fitted to two feature sets.

    tr (Ca Cb)^(1/2) = tr (Ca^(1/2) Cb Ca^(1/2))^(1/2), computed with symmetric eigensolvers
    (float64), so it is real and exact for positive semi-definite covariances.
    """
    fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1] or min(len(fa), len(fb)) < 2:
        raise ValueError(f"frechet_distance needs two (n >= 2, d) feature arrays, got {fa.shape}, {fb.shape}")
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(sqrt_a @ cb @ sqrt_a)
    tr_sqrt = np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum((fa.mean(0) - fb.mean(0)) ** 2) + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)


# ----------------------------------------------------------------------------- Parzen in bits/dim


def parzen_bits_per_dim(samples, validation, test, key: jax.Array):
    """Parzen estimate of the test bits/dim from uint8 samples, in the models' discrete units.

    All three sets are dequantized (y = (x + u) / 256) so the kernel density lives where every
    continuous image model's does; returns (ParzenResult in nats of y, per-test-image bits/dim).
    """
    ys = [
        np.asarray(dequantize(jnp.asarray(check_uint8_images(a, what)), jax.random.fold_in(key, i)))
        for i, (a, what) in enumerate(((samples, "samples"), (validation, "validation"), (test, "test")))
    ]
    result = parzen_estimate(*ys)
    nll = -np.asarray(parzen_log_prob(ys[0], result.bandwidth)(ys[2]), np.float64) + D * LOG_256
    return result, nats_to_bits_per_dim(nll, D)


# ----------------------------------------------------------------------------- the report


def true_bpd(rows: list[dict], name: str) -> tuple[float | None, float | None, str]:
    """The model's own test bits/dim: its exact view when it has one, else the lowest of its views
    with a normalized number (a bound or an estimate: shown, never counted as truth)."""
    from gen_jax.evaluation.images import best_row
    from gen_jax.evaluation.rows import UNTRUSTED

    trusted = [r for r in rows if r.get("trust") not in UNTRUSTED]  # an undetermined log Z is no number
    best = best_row(trusted, name, exact_only=True) or best_row(trusted, name)
    if best is None:
        untrusted = [r for r in rows if r["model"] == name and r.get("test_bpd_bracket")]
        if untrusted:
            lo, hi = untrusted[0]["test_bpd_bracket"]
            return None, None, f"undetermined, bracket [{lo:.3f}, {hi:.3f}]"
        return None, None, str(Kind.NONE)
    return best["test_bpd"], best["test_bpd_se"], best["likelihood_kind"]


def report(
    qcfg: QualityConfig,
    train_set,
    test_set,
    rows: list[dict],
    samples_of: dict,
    seed: int = 0,
    dataset: str = "fashion_mnist",
) -> list[dict]:
    """Parzen bits/dim, feature distance, ranks and reversals for each model of `samples_of` (name ->
    n -> uint8 samples, e.g. `gen_jax.evaluation.images.run_samples`) and the training set."""
    n = max([qcfg.num_samples, *qcfg.num_samples_by_model.values()])
    if len(train_set.images) < n + qcfg.n_val:
        raise ValueError(
            f"{len(train_set.images)} training images cannot give {n} kernel centres and {qcfg.n_val} "
            "disjoint validation images; lower quality num_samples / n_val"
        )
    val = train_set.images[-qcfg.n_val :]
    test = test_set.images[: qcfg.n_test]
    key = jax.random.key(seed + 8)
    clf = train_classifier(train_set.images[: -qcfg.n_val], train_set.labels[: -qcfg.n_val], qcfg, seed)
    logits, test_features = classifier_outputs(clf, test_set.images, qcfg.classifier_hidden)
    accuracy = float(np.mean(np.argmax(logits, 1) == test_set.labels))
    print(f"feature classifier: test accuracy {accuracy:.4f}", flush=True)

    entries = []
    for name, draw in samples_of.items():
        samples = draw(qcfg.num_samples_by_model.get(name, qcfg.num_samples))
        entries.append((name, samples, *true_bpd(rows, name)))
    n_train = qcfg.num_samples
    entries.append((TRAINING_SET, train_set.images[:n_train], math.inf, None, parzen_report.SINGULAR))

    out, per_example = [], []
    for j, (name, samples, bpd, bpd_se, kind) in enumerate(entries):
        pz, per_bpd = parzen_bits_per_dim(samples, val, test, jax.random.fold_in(key, 1000 + j))
        _, features = classifier_outputs(clf, samples, qcfg.classifier_hidden)
        per_example.append(per_bpd)
        out.append(
            dict(
                dataset=dataset,
                model=name,
                true_nll_kind=kind,
                true_nll=bpd,  # in bits/dim here: the ranking helpers only compare like with like
                true_nll_se=bpd_se,
                parzen_nll=float(per_bpd.mean()),
                parzen_se=float(per_bpd.std(ddof=1) / math.sqrt(len(per_bpd))),
                bandwidth=pz.bandwidth,
                num_samples=len(samples),
                feature_distance=frechet_distance(features, test_features),
                classifier_accuracy=accuracy,
            )
        )
        r = out[-1]
        print(f"{name:>24s}  Parzen {r['parzen_nll']:.3f} bits/dim  FD {r['feature_distance']:.3f}")
    parzen_report.rank_rows(out, "parzen_nll", "rank_parzen")
    parzen_report.rank_rows(out, "true_nll", "rank_true")
    for i, a in enumerate(out):
        a["reversed_against"] = [
            b["model"]
            for j, b in enumerate(out)
            if j != i and parzen_report.is_reversed(a, b, per_example[i], per_example[j])
        ]
    for r in out:
        r.update(
            true_bpd=r.pop("true_nll"),
            true_bpd_se=r.pop("true_nll_se"),
            parzen_bpd=r.pop("parzen_nll"),
            parzen_bpd_se=r.pop("parzen_se"),
        )
    return out


def _display(r: dict) -> dict:
    t = r["true_bpd"]
    if t is None and r["true_nll_kind"].startswith("undetermined"):
        true_str = r["true_nll_kind"]
    elif t is None:
        true_str = "none (no density)"
    elif math.isinf(t):
        true_str = "+inf (no density)"
    else:
        true_str = f"{t:.3f}" + (f" ± {r['true_bpd_se']:.3f}" if r["true_bpd_se"] is not None else "")
        true_str += " (bound)" if r["true_nll_kind"] == str(Kind.LOWER_BOUND) else ""
    return {**r, "true_str": true_str, "reversed_str": ", ".join(r["reversed_against"]) or "-"}


def markdown(rows: list[dict]) -> str:
    """quality.md: the table and what it means."""
    acc = rows[0]["classifier_accuracy"] if rows else float("nan")
    n = rows[0]["num_samples"] if rows else 0
    head = (
        f"Parzen-window bits/dim from N samples per entry (N = {n} unless the N column says fewer: "
        "slow samplers), beside each "
        "model's own test bits/dim ('bound': an upper bound on it). The KDE is fitted on dequantized "
        "samples (x + u) / 256 and reported in the same discrete units as the models (+ log 256 per "
        "pixel); h is chosen on held-out training images. 'The training set itself' uses N training "
        "images as samples (no density on new images: true bits/dim +inf). A reversal: Parzen and the "
        "truth order a pair oppositely, both beyond 2 standard errors; only exact bits/dim (and +inf) "
        "count as truth, bounds and estimates are shown with their kind and order no pair. Feature "
        "distance: Frechet distance between Gaussians fitted to the 128-d penultimate features of a small "
        "MLP classifier "
        f"trained here (test accuracy {acc:.3f}), samples vs test images. FID-like, NOT the Inception "
        "FID: compare these numbers only with each other.\n"
        f"Machine: {machine_description()}.\n\n"
    )
    body = markdown_table(
        [_display(r) for r in rows],
        COLUMNS,
        digits={"parzen_bpd": 3, "parzen_bpd_se": 3, "bandwidth": 3, "feature_distance": 3},
    )
    return head + body


def write(out_dir: Path, rows: list[dict]) -> None:
    """quality.json and quality.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = [{k: parzen_report.jsonable(r.get(k)) for k in KEYS} for r in rows]
    (out_dir / "quality.json").write_text(json.dumps(clean, indent=1) + "\n")
    (out_dir / "quality.md").write_text(markdown(rows))
