"""`make images` end to end on a tiny config with a few real or synthetic images."""

import dataclasses
import gzip
import json

import numpy as np
import pytest

from experiments import images as images_exp
from experiments.configs.images import get_config
from gen_jax.data import images as images_data


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


SMOKE_MODELS = get_config("smoke").models


@pytest.mark.parametrize("model", SMOKE_MODELS)
def test_images_smoke(model, tmp_path, monkeypatch):
    """One model at a time through `make images` (so the suite's workers share them out)."""
    monkeypatch.setattr("tensorflow_datasets.data_source", _no_tfds)
    sizes = {"train": 256, "test": 64}  # a small stand-in for the 60,000 / 10,000 checked sizes
    monkeypatch.setitem(images_data.DATASETS, "fashion_mnist", ("fashion_mnist", "fashion-mnist", sizes))
    data_dir = fake_fashion_mnist(tmp_path / "data", n_train=sizes["train"], n_test=sizes["test"])
    cfg = dataclasses.replace(
        get_config("smoke"), models=(model,), out=str(tmp_path / "out"), data_dir=str(data_dir)
    )
    rows = images_exp.run(cfg)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [list(r) for r in saved] == [list(images_exp.KEYS)] * len(saved)
    assert [r["model"].split("/")[0] for r in saved] == [model] * len(saved)
    for r in saved:
        assert r["likelihood_kind"] in {"exact", "lower_bound", "estimate", "none"}
        if r["likelihood_kind"] != "none":  # untrained: finite and positive (a loose bound can top 8)
            assert 0.0 < r["test_bpd"] < 20.0 and r["test_bpd_se"] >= 0
    assert (tmp_path / "out" / f"samples_{model}.png").exists()
    if model == "ebm_dsm_ladder":  # the energy model is normalized by AIS, and says how far to trust it
        assert (
            saved[0]["likelihood_kind"] == "estimate"
            and "log Z by AIS" in (tmp_path / "out" / "results.md").read_text()
        )
    if model == "pixel_cat":  # make eval CKPT=...: the saved checkpoint alone gives the same numbers
        again = images_exp.eval_checkpoint(tmp_path / "out" / "runs" / model, cfg)
        assert abs(again[0]["test_bpd"] - rows[0]["test_bpd"]) < 1e-6


def _no_tfds(*args, **kwargs):
    raise RuntimeError("TFDS disabled in this test")
