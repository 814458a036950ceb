"""Anomaly detection (`gen_jax.evaluation.ood`, `make ood`): metrics against scikit-learn, the scores, the
perturbation, the OOD sets, and the experiment end to end on synthetic images."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ood as ood_exp
from experiments.configs.ood import PRESETS
from gen_jax.core import Kind, Model
from gen_jax.data import images as images_data
from gen_jax.data.arrays import DataError
from gen_jax.evaluation import ood
from gen_jax.evaluation.config import resolve

sklearn_metrics = pytest.importorskip("sklearn.metrics")


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(5, 300, 2)
    levels = [3, 10, 1000][seed % 3]  # few distinct values: many ties
    s_in = rng.integers(0, levels, n_in) + (seed % 2) * 0.7 * rng.integers(0, 2, n_in)
    s_out = rng.integers(0, levels, n_out) - 0.5 * rng.integers(0, 2, n_out)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[s_in, s_out]
    assert ood.auroc(s_in, s_out) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
    assert ood.auprc(s_in, s_out) == pytest.approx(sklearn_metrics.average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = sklearn_metrics.roc_curve(y, s, drop_intermediate=False)
    assert ood.fpr_at_tpr(s_in, s_out, 0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)


def test_metrics_edge_cases():
    assert ood.detection_metrics([2.0, 3.0], [0.0, 1.0]) == dict(auroc=1.0, auprc=1.0, fpr95=0.0)
    assert ood.auroc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert ood.auroc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5  # all tied: chance
    assert ood.fpr_at_tpr([0.0, 1.0], [2.0, 3.0]) == 1.0
    assert ood.auroc([-np.inf, 0.0], [-np.inf, -np.inf]) == pytest.approx(0.75)
    # infinite scores (an image a model calls impossible) rank like any very low finite value
    s_in, s_out = np.array([-np.inf, -np.inf, 0.0, 1.0]), np.array([-np.inf, 0.0, -np.inf])
    finite = lambda s: np.where(np.isinf(s), -1e30, s)
    for metric in (ood.auroc, ood.auprc, ood.fpr_at_tpr):
        assert metric(s_in, s_out) == pytest.approx(metric(finite(s_in), finite(s_out)), abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        ood.auroc([np.nan, 1.0], [0.0])
    with pytest.raises(ValueError, match="both classes"):
        ood.auroc([], [0.0])


# ----------------------------------------------------------------------------- scores


def test_typicality_zero_at_the_training_mean_and_symmetric():
    mean = 2500.0
    assert ood.typicality([mean], mean)[0] == 0.0
    d = np.array([1.0, 10.0, 300.0])
    np.testing.assert_array_equal(ood.typicality(mean + d, mean), ood.typicality(mean - d, mean))
    assert np.all(ood.typicality(mean + d, mean) < 0) and np.all(np.diff(ood.typicality(mean + d, mean)) < 0)
    # batch form: one value per batch of M (the remainder dropped), the mean NLL against the mean
    nll = np.array([mean - 5, mean + 5, mean + 10, mean + 30, 7.0])
    np.testing.assert_allclose(ood.batch_typicality(nll, mean, 2), [0.0, -20.0])
    with pytest.raises(ValueError, match="no batch"):
        ood.batch_typicality(nll, mean, 6)


def test_score_orientation_and_names():
    lp = np.array([-100.0, -200.0])
    out = ood.ood_scores(Kind.EXACT, lp, -150.0, bits=np.array([1000.0, 10.0]), log_p_background=lp + 1)
    assert list(out) == ood.score_names(Kind.EXACT, background=True, batch_size=None)
    np.testing.assert_allclose(out["complexity"], lp / np.log(2) + [1000.0, 10.0])
    np.testing.assert_allclose(out["likelihood_ratio"], [-1.0, -1.0])
    np.testing.assert_allclose(out["typicality"], [-50.0, -50.0])
    assert ood.likelihood_ratio([-np.inf], [-np.inf])[0] == -np.inf
    with pytest.raises(ValueError, match="no likelihood-based"):
        ood.ood_scores(Kind.NONE, lp, 0.0)
    assert ood.score_names(Kind.NONE, True, 10) == []


def _quadratic_energy_model(center: float = 100.0, scale: float = 20.0) -> Model:
    """An UNNORMALIZED view built by hand: log p~(x) = -|x - c|^2 / (2 s^2), score norm |x - c| / s^2."""

    def log_prob(params, x, key=None):
        z = (jnp.asarray(x, jnp.float32) - center) / scale
        return -0.5 * jnp.sum(z**2, axis=(1, 2, 3))

    return Model(
        name="quadratic",
        event_shape=(28, 28, 1),
        kind=Kind.UNNORMALIZED,
        init=lambda key, x: {},
        loss=None,
        log_prob=log_prob,
        sample=None,
    )


def test_score_norm_dispatches_on_kind_only(key):
    view = _quadratic_energy_model()
    x = np.stack([np.full((28, 28, 1), 100, np.uint8), np.full((28, 28, 1), 140, np.uint8)])
    norms = ood.score_norms(view, {}, x, key, batch_size=1)
    np.testing.assert_allclose(norms, [0.0, 40.0 * 28 / 20.0**2], rtol=1e-5)
    lp = ood.log_probs(view, {}, x, key)
    scores = ood.ood_scores(view.kind, lp, float(lp.mean()), grad_norm=norms, batch_size=None)
    assert set(scores) == {"energy", "typicality", "score_norm"}
    assert scores["score_norm"][0] > scores["score_norm"][1]  # nearer the mode: more in-distribution
    with pytest.raises(ValueError, match="unnormalized"):
        ood.score_norms(view.replace(kind=Kind.EXACT), {}, x, key)


def test_png_length_of_constant_far_below_noise():
    bits_const = ood.png_bits(ood.constant_images(8, seed=0))
    bits_noise = ood.png_bits(ood.uniform_noise(8, seed=0))
    assert np.all(bits_const < 0.2 * bits_noise.min())
    assert np.all(bits_noise > 8 * 28 * 28)  # uniform noise does not compress


def test_perturb_keeps_range_and_dtype_and_changes_the_given_fraction(key):
    images = ood.constant_images(200, seed=3)
    for rate in (0.0, 0.1, 0.5):
        out = ood.perturb(images, jax.random.fold_in(key, int(rate * 10)), rate)
        assert out.dtype == np.uint8 and out.shape == images.shape
        changed = float(np.mean(out != images))
        assert changed == pytest.approx(rate * 255 / 256, abs=0.01)
    np.testing.assert_array_equal(ood.perturb(images, key, 0.0), images)
    with pytest.raises(ValueError, match="rate"):
        ood.perturb(images, key, 1.5)
    with pytest.raises(DataError, match="uint8"):
        ood.perturb(images.astype(np.float32), key, 0.1)


# ----------------------------------------------------------------------------- OOD sets


def test_ood_sets_are_seeded_uint8_images():
    for make in (ood.uniform_noise, ood.constant_images):
        a, b = make(5, seed=1), make(5, seed=1)
        assert a.dtype == np.uint8 and a.shape == (5, 28, 28, 1)
        np.testing.assert_array_equal(a, b)
    c = ood.constant_images(5, seed=1)
    assert np.all(c == c[:, :1, :1, :])
    x = ood.uniform_noise(3, seed=2)
    np.testing.assert_array_equal(ood.vertical_flip(x)[:, 0], x[:, -1])


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_user_sets_load_and_fail_clearly(tmp_path):
    good = ood.uniform_noise(4, seed=0)[..., 0]
    np.save(tmp_path / "good.npy", good)
    assert ood.load_image_set(tmp_path / "good.npy").shape == (4, 28, 28, 1)
    (tmp_path / "idx").mkdir()
    _write_idx(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz", good)
    np.testing.assert_array_equal(ood.load_image_set(tmp_path / "idx")[..., 0], good)
    np.save(tmp_path / "float.npy", good.astype(np.float32))
    with pytest.raises(DataError, match="uint8"):
        ood.load_image_set(tmp_path / "float.npy")
    np.save(tmp_path / "shape.npy", np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(DataError, match="shape"):
        ood.load_image_set(tmp_path / "shape.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="exactly one IDX"):
        ood.load_image_set(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        ood.load_image_set(tmp_path / "missing.npy")


# ----------------------------------------------------------------------------- the experiment


def _fake_data(root, n_train, n_test):
    """Blurry blobs as Fashion-MNIST, thin crosses as MNIST (IDX files of the given sizes)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    for name, prefixes in (
        ("fashion-mnist", (("train", n_train), ("t10k", n_test))),
        ("mnist", (("t10k", n_test),)),
    ):
        (root / name).mkdir(parents=True)
        for prefix, n in prefixes:
            cy, cx = rng.uniform(8, 20, size=(2, n, 1, 1))
            if name == "mnist":
                imgs = 255.0 * ((np.abs(yy - cy) < 1.5) | (np.abs(xx - cx) < 1.5))
            else:
                imgs = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
            _write_idx(root / name / f"{prefix}-images-idx3-ubyte.gz", imgs.astype(np.uint8))
            _write_idx(
                root / name / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8)
            )


def test_ood_smoke(tmp_path, monkeypatch):
    def no_tfds(*args, **kwargs):
        raise RuntimeError("TFDS disabled in this test")

    monkeypatch.setattr(images_data, "_from_tfds", no_tfds)
    for name, idx_name in (("fashion_mnist", "fashion-mnist"), ("mnist", "mnist")):
        monkeypatch.setitem(images_data.DATASETS, name, (name, idx_name, {"train": 256, "test": 64}))
    _fake_data(tmp_path / "data", 256, 64)
    np.save(tmp_path / "mine.npy", ood.uniform_noise(20, seed=9))
    cfg = resolve(
        PRESETS["smoke"],
        [
            f"out={tmp_path / 'ood'}",
            f"setup.runs={tmp_path / 'images'}",
            f"setup.data_dir={tmp_path / 'data'}",
            f"user_sets.mine={tmp_path / 'mine.npy'}",
        ],
    )
    rows = ood_exp.run(cfg)
    saved = json.loads((tmp_path / "ood" / "results.json").read_text())
    assert saved and [list(r) for r in saved] == [list(ood_exp.KEYS)] * len(saved)
    sets = {"mnist", "noise", "constant", "vflip", "mine"}
    assert {r["ood_set"] for r in saved} == sets
    scores = {r["score"] for r in saved}
    assert scores == {"log_p", "typicality", "typicality_batch8", "complexity", "likelihood_ratio"}
    assert len(saved) == len(scores) * len(sets)
    for r in saved:
        assert 0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["auprc"] <= 1.0 and 0.0 <= r["fpr95"] <= 1.0
        batched = r["score"].startswith("typicality_batch")
        assert r["n_in"] == (48 // 8 if batched else 48)
        assert r["n_out"] == ((20 if r["ood_set"] == "mine" else 48) // (8 if batched else 1))
    # the per-pixel model is fooled by the simpler "MNIST" crosses: their log p is higher
    by = {(r["score"], r["ood_set"]): r["auroc"] for r in saved}
    assert by[("log_p", "noise")] > 0.9
    assert (tmp_path / "ood" / "hist_pixel_cat.png").exists()
    assert list((tmp_path / "ood" / "runs" / "fashion_mnist_perturbed").glob("pixel_cat-*/checkpoints"))
    md = (tmp_path / "ood" / "results.md").read_text()
    assert "**" in md  # the best per-image score is bold; batch typicality (6 batches a side) never is
    assert not any("**" in line for line in md.splitlines() if "typicality_batch" in line)
    # a second run: the cached scores give the same rows
    again = ood_exp.run(cfg)
    assert [r["auroc"] for r in again] == [r["auroc"] for r in rows]
