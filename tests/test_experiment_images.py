"""`make images` end to end on a tiny config with a few synthetic images: kinds, rows, the saved run."""

import dataclasses
import gzip
import json

import numpy as np
import pytest

from experiments import images as images_exp
from experiments.configs.images import PRESETS
from gen_jax.data import images as images_data
from gen_jax.evaluation.config import resolve


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fake_fashion_mnist(root, n_train=60_000, n_test=10_000, seed=0):
    """Synthetic IDX files with the real sizes (blurry blobs, so models have something to learn)."""
    rng = np.random.default_rng(seed)
    d = root / "fashion-mnist"
    d.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        yy, xx = np.mgrid[:28, :28]
        cy, cx = rng.uniform(8, 20, size=(2, n, 1, 1))
        imgs = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
        _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", imgs.astype(np.uint8))
        _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    return root


# each model's rows (its views and the config's estimator views) and the kind of each
EXPECTED = {
    "pixel_cat": {"pixel_cat": "exact"},
    "pixelcnn": {"pixelcnn": "exact"},
    "glow": {"glow": "lower_bound", "glow/iw2": "estimate"},
    "vae": {"vae": "lower_bound", "vae/iwae": "estimate", "vae/prior": "estimate"},
    "gan": {"gan": "none"},
    "diffusion": {
        "diffusion": "lower_bound",
        "diffusion/ode": "estimate",
        "diffusion/ode_tol0.1_iw2": "estimate",
    },
    "ebm_dsm_ladder": {"ebm_dsm_ladder": "estimate"},
    "ebm_flow": {"ebm_flow": "estimate", "ebm_flow/base": "lower_bound"},
    "ebm_cd": {"ebm_cd": "estimate"},
}


def smoke_config(tmp_path, monkeypatch, model):
    monkeypatch.setattr("tensorflow_datasets.data_source", _no_tfds)
    sizes = {"train": 256, "test": 64}  # a small stand-in for the 60,000 / 10,000 checked sizes
    monkeypatch.setitem(images_data.DATASETS, "fashion_mnist", ("fashion_mnist", "fashion-mnist", sizes))
    data_dir = fake_fashion_mnist(tmp_path / "data", n_train=sizes["train"], n_test=sizes["test"])
    return resolve(
        PRESETS["smoke"],
        [
            f"setup.models=[{model}]",
            f"out={tmp_path / 'out'}",
            f"setup.runs={tmp_path / 'out'}",
            f"setup.data_dir={data_dir}",
        ],
    )


@pytest.mark.parametrize("model", list(EXPECTED))
def test_images_smoke(model, tmp_path, monkeypatch):
    """One model at a time through `make images` (so the suite's workers share them out)."""
    cfg = smoke_config(tmp_path, monkeypatch, model)
    rows = images_exp.run(cfg)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [list(r) for r in saved] == [list(images_exp.KEYS)] * len(saved)
    assert {r["model"]: r["likelihood_kind"] for r in saved} == EXPECTED[model]
    for r in saved:
        if r["likelihood_kind"] != "none":
            assert np.isfinite(r["test_bpd"]) and r["test_bpd_se"] >= 0 and r["n_eval"] >= 1
    assert (tmp_path / "out" / f"samples_{model}.png").exists()
    if model == "ebm_dsm_ladder":  # AIS and importance sampling, each with its ESS, and the trust verdict
        r = saved[0]
        assert r["log_z_ais_ess"] > 0 and r["log_z_is_ess"] > 0
        # the bracket is the unnormalized NLL shifted by the config's bound B either way (in bits/dim)
        b = cfg.setup.model_options["ebm_dsm_ladder"]["correction_bound"]
        assert np.allclose(np.diff(r["test_bpd_bracket"]), 2 * b / (784 * np.log(2)), rtol=1e-4)
        assert "importance sampling" in (tmp_path / "out" / "results.md").read_text().lower()
    if model == "ebm_flow":  # log Z from the Glow base: IS, AIS, the learned claim, the certain bracket
        r = saved[0]
        assert r["log_z_is_ess"] > 0 and r["log_z_ais_ess"] > 0 and -50 < r["log_z_is"] < 50
        assert r["test_bpd_bracket"][0] < r["test_bpd_bracket"][1]
        assert "its flow" in (tmp_path / "out" / "results.md").read_text()
    if model == "pixel_cat":  # make eval CKPT=...: the saved checkpoint alone gives the same numbers
        (run_dir,) = (tmp_path / "out" / "runs" / "fashion_mnist").glob("pixel_cat-*")
        cfg2 = resolve(PRESETS["smoke"], [f"setup.data_dir={cfg.setup.data_dir}", "eval.seed=0"])
        again = images_exp.eval_saved(cfg2, str(run_dir))
        assert abs(again[0]["test_bpd"] - rows[0]["test_bpd"]) < 1e-6
        # a reused run (0 training steps: no steps/s) scored under a new evaluation config
        other = images_exp.run(dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, seed=1)))
        assert other[0]["images_per_sec"] is None and np.isfinite(other[0]["test_bpd"])


def _no_tfds(*args, **kwargs):
    raise RuntimeError("TFDS disabled in this test")


def test_ode_ladder_smoke(tmp_path, monkeypatch):
    """`make ode-ladder` on the smoke preset: every rung on the same images, paired changes with their
    standard errors, the probe study, and a default chosen by the rule (or 'not converged')."""
    from experiments import ode_ladder
    from experiments.configs.ode_ladder import PRESETS as LADDER

    cfg = smoke_config(tmp_path, monkeypatch, "diffusion")
    lcfg = resolve(
        LADDER["smoke"],
        [
            f"out={tmp_path / 'ladder'}",
            f"setup.runs={tmp_path / 'out'}",
            f"setup.data_dir={cfg.setup.data_dir}",
            "setup.models=[diffusion]",
        ],
    )
    result = ode_ladder.run(lcfg)
    rows = result["rows"]
    assert [r["tol"] for r in rows] == list(lcfg.tolerances)
    assert all(r["n_images"] == lcfg.n_images and np.isfinite(r["bpd"]) for r in rows)
    assert "change_to_next_se" in rows[0] and "change_to_next" not in rows[-1]
    chosen, converged = ode_ladder.choose_default(rows)
    assert result["default_tol"] == chosen["tol"] and result["converged"] == converged
    assert result["probes"]["probes"] == lcfg.probes
    assert "images preset solves at" in (tmp_path / "ladder" / "results.md").read_text()


def test_ode_ladder_default_rule():
    """The loosest rung whose paired change to the next is below that change's own standard error."""
    from experiments.ode_ladder import choose_default

    rows = [
        {"tol": 1e-3, "change_to_next": 0.05, "change_to_next_se": 0.01},
        {"tol": 1e-4, "change_to_next": 0.004, "change_to_next_se": 0.01},
        {"tol": 1e-5},
    ]
    assert choose_default(rows) == (rows[1], True)
    rows[1]["change_to_next"] = 0.02
    assert choose_default(rows) == (rows[2], False)
