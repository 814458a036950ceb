"""`make demo`'s experiment end to end on a tiny config: files, keys, numbers, resume."""

import dataclasses
import json
import math

import numpy as np

from experiments import toy2d
from experiments.configs.toy2d import get_config


def test_toy2d_smoke(tmp_path):
    cfg = dataclasses.replace(
        get_config("smoke"),
        datasets=("moons",),
        models=("nsf", "gaussian"),
        out=str(tmp_path / "toy"),
        parzen_samples=0,  # the Parzen report has its own test (test_experiment_parzen)
    )
    rows = toy2d.run(cfg)
    out = tmp_path / "toy"
    saved = json.loads((out / "results.json").read_text())
    assert len(saved) == 2 and all(list(r) == list(toy2d.KEYS) for r in saved)
    for r in saved:
        assert r["likelihood_kind"] == "exact"
        assert math.isclose(r["gap"], r["test_nll"] - r["true_entropy"], abs_tol=1e-9)
        assert abs(r["true_entropy"] - 2.394) < 0.01
        assert 0.8 < r["grid_mass"] < 1.05 and r["steps"] == cfg.train.steps and r["params"] > 0
    assert (out / "moons.png").stat().st_size > 10_000
    assert "| moons | nsf | exact |" in (out / "results.md").read_text()
    # resume reuses finished runs instead of retraining them
    again = toy2d.run(cfg, resume=True)
    assert [r["test_nll"] for r in again] == [r["test_nll"] for r in rows]


def test_toy2d_user_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(600, 3)).astype(np.float32)
    np.save(tmp_path / "mine.npy", x)
    cfg = dataclasses.replace(
        get_config("smoke"), datasets=(str(tmp_path / "mine.npy"),), models=("maf",), out=str(tmp_path / "o")
    )
    (row,) = toy2d.run(cfg)
    assert row["dataset"] == "mine" and row["true_entropy"] is None and row["gap"] is None
    assert row["grid_mass"] is None and np.isfinite(row["test_nll"])
