"""`make toy`'s GAN column and Parzen comparison end to end on a tiny config."""

import json

from experiments import toy2d
from experiments.configs.toy2d import PRESETS
from gen_jax.evaluation import parzen
from gen_jax.evaluation.config import resolve


def test_toy2d_gan_and_parzen_table(tmp_path):
    cfg = resolve(
        PRESETS["smoke"],
        [
            "datasets=[8gaussians]",
            "models=[gan,gaussian]",
            "model_options.gan.hidden=[16]",
            f"out={tmp_path / 'toy'}",
        ],
    )
    toy2d.run(cfg)
    out = tmp_path / "toy"
    results = json.loads((out / "results.json").read_text())
    assert all(list(r) == list(toy2d.KEYS) for r in results)  # results.json keeps its keys
    gan = next(r for r in results if r["model"] == "gan")
    assert gan["likelihood_kind"] == "none" and gan["test_nll"] is None and gan["grid_mass"] is None

    rows = json.loads((out / "parzen.json").read_text())
    assert [r["model"] for r in rows] == ["gan", "gaussian", parzen.TRAINING_SET]
    assert all(list(r) == list(parzen.KEYS) for r in rows)
    by = {r["model"]: r for r in rows}
    assert by["gan"]["true_nll"] is None and by["gan"]["rank_true"] is None and by["gan"]["rank_parzen"]
    assert by[parzen.TRAINING_SET]["true_nll"] == "inf"
    assert by[parzen.TRAINING_SET]["true_nll_kind"] == "singular"
    assert by["gaussian"]["true_nll_kind"] == "exact" and by["gaussian"]["rank_true"] == 1
    # the memorised training set beats the fitted Gaussian under Parzen, and is infinitely worse in truth
    assert by[parzen.TRAINING_SET]["parzen_nll"] < by["gaussian"]["parzen_nll"]
    assert by["gaussian"]["reversed_against"] == [parzen.TRAINING_SET]
    for r in rows:
        assert r["bandwidth"] > 0 and r["num_samples"] == 1000 and 0 <= r["mode_min"] <= r["mode_max"] <= 1
    md = (out / "parzen.md").read_text()
    assert "+inf (no density)" in md and "none (no density)" in md and "Reversed pairs" in md
    assert (out / "8gaussians.png").stat().st_size > 10_000


def test_a_bound_orders_nothing():
    """Only exact NLLs (and +inf) count as the truth a reversal is judged against."""
    import numpy as np

    a = dict(true_nll_kind="lower_bound", true_nll=1.0, true_nll_se=0.01)
    b = dict(true_nll_kind="exact", true_nll=2.0, true_nll_se=0.01)
    nll_a, nll_b = np.full(100, 3.0) + np.arange(100) * 1e-3, np.full(100, 1.0) + np.arange(100) * 1e-3
    assert not parzen.is_reversed(a, b, nll_a, nll_b)
    assert parzen.is_reversed({**a, "true_nll_kind": "exact"}, b, nll_a, nll_b)
