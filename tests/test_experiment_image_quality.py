"""`make images`' GAN row and sample-quality table (Parzen bits/dim, FID-like feature distance) end to
end on a tiny config, and the Frechet distance against its closed form."""

import json

import numpy as np
import pytest
from test_experiment_images import smoke_config

from experiments import images as images_exp
from gen_jax.evaluation import quality
from gen_jax.evaluation.config import resolve


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    m = rng.normal(size=6)
    ca = np.cov(fa, rowvar=False)
    assert abs(quality.frechet_distance(fa, fa)) < 1e-8
    # fb = 2 fa + m: Cb = 4 Ca, so tr(Ca + Cb - 2 (Ca Cb)^(1/2)) = tr(Ca), plus |m + mean shift|^2
    shift = m + fa.mean(0)
    want = float(shift @ shift + np.trace(ca))
    assert quality.frechet_distance(fa, 2 * fa + m) == pytest.approx(want, rel=1e-8)
    with pytest.raises(ValueError, match="feature arrays"):
        quality.frechet_distance(fa, fa[:, :3])


@pytest.mark.slow
def test_images_gan_and_quality_smoke(tmp_path, monkeypatch):
    base = smoke_config(tmp_path, monkeypatch, "pixel_cat")
    cfg = resolve(
        base,
        [
            "setup.models=[pixel_cat,gan]",
            "setup.train_overrides.gan.steps=0",
            "setup.n_train=96",
            "quality.num_samples=48",
            "quality.n_val=24",
            "quality.n_test=32",
            "quality.classifier_hidden=[16,8]",
            "quality.classifier_steps=30",
            "quality.classifier_batch=16",
        ],
    )
    images_exp.run(cfg)
    out = tmp_path / "out"
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert results["gan"]["likelihood_kind"] == "none" and results["gan"]["test_bpd"] is None
    rows = json.loads((out / "quality.json").read_text())
    assert [r["model"] for r in rows] == ["pixel_cat", "gan", quality.TRAINING_SET]
    by = {r["model"]: r for r in rows}
    assert by["gan"]["true_bpd"] is None and by["gan"]["true_nll_kind"] == "none"
    assert by["pixel_cat"]["true_bpd"] == pytest.approx(results["pixel_cat"]["test_bpd"])
    assert by[quality.TRAINING_SET]["true_bpd"] == "inf"
    for axis in ("parzen_bpd", "feature_distance"):  # real images beat an untrained GAN's on both axes
        assert by[quality.TRAINING_SET][axis] < by["gan"][axis]
    assert "NOT the Inception FID" in (out / "quality.md").read_text()


def test_an_undetermined_log_z_is_no_truth():
    """A view whose log Z is undetermined gives its bracket, not its point estimate; another trusted
    view of the same model (a flow base's bound) is used instead when there is one."""
    from gen_jax.evaluation.quality import true_bpd

    ebm = dict(model="e", likelihood_kind="estimate", test_bpd=3.68, test_bpd_se=0.01, trust="undetermined")
    ebm["test_bpd_bracket"] = [3.595, 3.779]
    assert true_bpd([ebm], "e") == (None, None, "undetermined, bracket [3.595, 3.779]")
    base = dict(model="e/base", likelihood_kind="lower_bound", test_bpd=3.706, test_bpd_se=0.009, trust=None)
    assert true_bpd([ebm, base], "e") == (3.706, 0.009, "lower_bound")
    assert true_bpd([dict(ebm, trust=None)], "e") == (3.68, 0.01, "estimate")
