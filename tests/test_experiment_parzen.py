"""`make toy`'s GAN column and Parzen comparison end to end on a tiny config."""

import dataclasses
import json

from experiments import parzen_report, toy2d
from experiments.configs.toy2d import get_config


def test_toy2d_gan_and_parzen_table(tmp_path):
    cfg = dataclasses.replace(
        get_config("smoke"),
        datasets=("8gaussians",),
        models=("gan", "gaussian"),
        model_kwargs={"gan": {"hidden": (16,)}},
        out=str(tmp_path / "toy"),
    )
    toy2d.run(cfg)
    out = tmp_path / "toy"
    results = json.loads((out / "results.json").read_text())
    assert all(list(r) == list(toy2d.KEYS) for r in results)  # results.json keeps its keys
    gan = next(r for r in results if r["model"] == "gan")
    assert gan["likelihood_kind"] == "none" and gan["test_nll"] is None and gan["grid_mass"] is None

    rows = json.loads((out / "parzen.json").read_text())
    assert [r["model"] for r in rows] == ["gan", "gaussian", parzen_report.TRAINING_SET]
    assert all(list(r) == list(parzen_report.KEYS) for r in rows)
    by = {r["model"]: r for r in rows}
    assert by["gan"]["true_nll"] is None and by["gan"]["rank_true"] is None and by["gan"]["rank_parzen"]
    assert by[parzen_report.TRAINING_SET]["true_nll"] == "inf"
    assert by[parzen_report.TRAINING_SET]["true_nll_kind"] == "singular"
    assert by["gaussian"]["true_nll_kind"] == "exact" and by["gaussian"]["rank_true"] == 1
    # the memorised training set beats the fitted Gaussian under Parzen, and is infinitely worse in truth
    assert by[parzen_report.TRAINING_SET]["parzen_nll"] < by["gaussian"]["parzen_nll"]
    assert by["gaussian"]["reversed_against"] == [parzen_report.TRAINING_SET]
    for r in rows:
        assert r["bandwidth"] > 0 and r["num_samples"] == 1000 and 0 <= r["mode_min"] <= r["mode_max"] <= 1
    md = (out / "parzen.md").read_text()
    assert "+inf (no density)" in md and "none (no density)" in md and "Reversed pairs" in md
    assert (out / "8gaussians.png").stat().st_size > 10_000
