"""`make images`' GAN row and sample-quality table (Parzen bits/dim, FID-like feature distance) end to
end on a tiny config, and the Frechet distance against its closed form."""

import dataclasses
import json

import numpy as np
import pytest
from test_experiment_images import _no_tfds, fake_fashion_mnist

from experiments import image_quality
from experiments import images as images_exp
from experiments.configs.images import get_config
from gen_jax.data import images as images_data


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    m = rng.normal(size=6)
    ca = np.cov(fa, rowvar=False)
    assert abs(image_quality.frechet_distance(fa, fa)) < 1e-8
    # fb = 2 fa + m: Cb = 4 Ca, so tr(Ca + Cb - 2 (Ca Cb)^(1/2)) = tr(Ca), plus |m + mean shift|^2
    shift = m + fa.mean(0)
    want = float(shift @ shift + np.trace(ca))
    assert image_quality.frechet_distance(fa, 2 * fa + m) == pytest.approx(want, rel=1e-8)
    with pytest.raises(ValueError, match="feature arrays"):
        image_quality.frechet_distance(fa, fa[:, :3])


@pytest.mark.slow
def test_images_gan_and_quality_smoke(tmp_path, monkeypatch):
    monkeypatch.setattr("tensorflow_datasets.data_source", _no_tfds)
    sizes = {"train": 96, "test": 32}
    monkeypatch.setitem(images_data.DATASETS, "fashion_mnist", ("fashion_mnist", "fashion-mnist", sizes))
    data_dir = fake_fashion_mnist(tmp_path / "data", n_train=sizes["train"], n_test=sizes["test"])
    smoke = get_config("smoke")
    cfg = dataclasses.replace(
        smoke,
        models=("pixel_cat", "gan"),
        model_kwargs={"gan": dict(channels=4, latent_dim=8)},
        # steps=0: an untrained generator (compiling the conv pair's gradients takes most of this test's
        # time on CPU; test_gan.py traces its loss and `make images` trains it)
        train_overrides={**smoke.train_overrides, "gan": dict(steps=0)},
        n_train=96,
        quality=image_quality.QualityConfig(
            num_samples=48,
            n_val=24,
            n_test=32,
            classifier_hidden=(16, 8),
            classifier_steps=30,
            classifier_batch=16,
        ),
        out=str(tmp_path / "out"),
        data_dir=str(data_dir),
    )
    images_exp.run(cfg)
    out = tmp_path / "out"
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert results["gan"]["likelihood_kind"] == "none" and results["gan"]["test_bpd"] is None
    assert (out / "samples_gan.png").stat().st_size > 1000

    rows = json.loads((out / "quality.json").read_text())
    assert [r["model"] for r in rows] == ["pixel_cat", "gan", image_quality.TRAINING_SET]
    assert all(list(r) == list(image_quality.KEYS) for r in rows)
    by = {r["model"]: r for r in rows}
    assert by["gan"]["true_bpd"] is None and by["gan"]["true_nll_kind"] == "none"
    assert by["pixel_cat"]["true_bpd"] == pytest.approx(results["pixel_cat"]["test_bpd"])
    assert by[image_quality.TRAINING_SET]["true_bpd"] == "inf"
    for r in rows:
        assert np.isfinite(r["parzen_bpd"]) and r["parzen_bpd"] > 0 and r["bandwidth"] > 0
        assert r["num_samples"] == 48 and np.isfinite(r["feature_distance"]) and r["feature_distance"] > -1e-6
    # real images beat an untrained GAN's on both axes
    for axis in ("parzen_bpd", "feature_distance"):
        assert by[image_quality.TRAINING_SET][axis] < by["gan"][axis]
    md = (out / "quality.md").read_text()
    assert "NOT the Inception FID" in md and "+inf (no density)" in md
