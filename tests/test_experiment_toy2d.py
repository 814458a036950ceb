"""`make demo`'s experiment end to end on a tiny config: files, keys, numbers, reuse keyed by config."""

import json
import math

import numpy as np
import pytest

from experiments import toy2d
from experiments.configs.toy2d import PRESETS
from gen_jax.evaluation.config import resolve


def _smoke(tmp_path, *overrides):
    return resolve(PRESETS["smoke"], [f"out={tmp_path / 'toy'}", "parzen_samples=0", *overrides])


def test_toy2d_smoke_and_reuse_by_config(tmp_path):
    cfg = _smoke(tmp_path, "datasets=[moons]", "models=[nsf,gaussian]")
    rows = toy2d.run(cfg)
    out = tmp_path / "toy"
    saved = json.loads((out / "results.json").read_text())
    assert len(saved) == 2 and all(list(r) == list(toy2d.KEYS) for r in saved)
    for r in saved:
        assert r["likelihood_kind"] == "exact" and r["reused"] is False
        assert math.isclose(r["gap"], r["test_nll"] - r["true_entropy"], abs_tol=1e-9)
        assert abs(r["true_entropy"] - 2.394) < 0.01
        assert 0.8 < r["grid_mass"] < 1.05 and r["params"] > 0
    assert (out / "moons.png").stat().st_size > 10_000
    assert "| moons | nsf | exact |" in (out / "results.md").read_text()
    # the same config: reused, the same numbers, nothing trained
    again = toy2d.run(cfg)
    assert [r["test_nll"] for r in again] == [r["test_nll"] for r in rows] and all(r["reused"] for r in again)
    # a changed config (the NSF's bins, its learning rate) is a new run with its own saved config
    changed = toy2d.run(
        _smoke(tmp_path, "datasets=[moons]", "models=[nsf]", "model_options.nsf.num_bins=5", "train.lr=3e-3")
    )
    assert not changed[0]["reused"] and changed[0]["test_nll"] != rows[0]["test_nll"]
    dirs = sorted((out / "runs" / "moons").glob("nsf-*"))
    assert len(dirs) == 2
    configs = [json.loads((d / "config.json").read_text()) for d in dirs]
    assert sorted(c["options"]["num_bins"] for c in configs) == [5, 8]
    assert sorted(c["train"]["lr"] for c in configs) == [1e-3, 3e-3]


def test_toy2d_user_files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(600, 3)).astype(np.float32))
    np.savetxt(tmp_path / "test.csv", rng.normal(size=(200, 3)), delimiter=",")
    cfg = _smoke(
        tmp_path,
        f"files.train={tmp_path / 'train.npy'}",
        f"files.test={tmp_path / 'test.csv'}",
        "models=[maf]",
    )
    (row,) = toy2d.run(cfg)
    assert row["dataset"] == "train" and row["true_entropy"] is None and row["gap"] is None
    assert row["grid_mass"] is None and np.isfinite(row["test_nll"]) and row["n_eval"] == 200
    assert row["test_outside_fraction"] == 0.0


def test_toy2d_validation_file_early_stopping_and_the_far_test_warning(tmp_path, capsys):
    """A validation file is what early stopping selects on (never the test file); early stopping
    without one is a one-line config error; test data far outside the training range are reported
    in the output and in results.md."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(600, 2)).astype(np.float32))
    np.save(tmp_path / "val.npy", rng.normal(size=(200, 2)).astype(np.float32))
    far = rng.normal(size=(200, 2)).astype(np.float32)
    far[:20] += 50.0  # 10% of the test points 50 standard deviations away
    np.save(tmp_path / "test.npy", far)
    files = [
        f"files.train={tmp_path / 'train.npy'}",
        f"files.test={tmp_path / 'test.npy'}",
        "models=[gaussian]",
    ]
    with pytest.raises(Exception, match="validation"):
        toy2d.run(_smoke(tmp_path, *files, "train.patience=2", "train.eval_every=5"))
    cfg = _smoke(
        tmp_path, *files, f"files.validation={tmp_path / 'val.npy'}", "train.patience=2", "train.eval_every=5"
    )
    (row,) = toy2d.run(cfg)
    assert row["test_outside_fraction"] == pytest.approx(0.1)
    assert "warning: train: 10.0% of the test points" in capsys.readouterr().out
    assert "Warnings:" in (tmp_path / "toy" / "results.md").read_text()
    (run_dir,) = (tmp_path / "toy" / "runs" / "train").glob("gaussian-*")
    assert (run_dir / "best_params.msgpack").exists()  # early stopping kept the best parameters
