"""The image data layer: TFDS (mock), local IDX files, clear errors; the counting baseline."""

import gzip
import math

import jax
import numpy as np
import pytest

from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.data.arrays import DataError
from gen_jax.data.images import check_uint8_images, load_images
from gen_jax.evaluation import evaluate_nll
from gen_jax.models import make_model
from gen_jax.training import TrainConfig, train


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fake_split(root, n, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "fashion-mnist"
    d.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    _write_idx(d / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, size=n, dtype=np.uint8))
    return images


def test_local_idx_files_are_checked_by_size(tmp_path):
    _fake_split(tmp_path, 100)
    with pytest.raises(DataError, match="has 100 images, expected 10000"):
        load_images("fashion_mnist", "test", data_dir=tmp_path, use_tfds=False)


def test_local_idx_files_load(tmp_path, monkeypatch):
    import gen_jax.data.images as images_mod

    monkeypatch.setitem(
        images_mod.DATASETS, "fashion_mnist", ("fashion_mnist", "fashion-mnist", {"test": 50})
    )
    raw = _fake_split(tmp_path, 50)
    data = load_images("fashion-mnist", "test", data_dir=tmp_path, use_tfds=False)
    assert data.images.shape == (50, 28, 28, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], raw)
    assert data.source.startswith("idx:")
    a, b = data.shuffled(3), data.shuffled(3)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, data.images)


def test_tfds_path_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = load_images("mnist", "test")
    assert data.images.shape == (12, 28, 28, 1) and data.source.startswith("tfds:")


def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("GEN_JAX_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"(?s)Looked in:.*IDX files in .*Get it either way"):
        load_images("fashion_mnist", "train", data_dir=tmp_path / "nowhere", tfds_data_dir=tmp_path / "tfds")


def test_user_images_are_checked():
    with pytest.raises(DataError, match="expected uint8"):
        check_uint8_images(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(DataError, match="expected shape"):
        check_uint8_images(np.zeros((2, 32, 32), np.uint8))
    assert check_uint8_images(np.zeros((2, 28, 28), np.uint8)).shape == (2, 28, 28, 1)


def test_pixel_categorical_counts_and_units():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(500, 28, 28, 1)).astype(np.uint8)  # uniform on {0, 1, 2, 3}
    model = make_model("pixel_cat", (28, 28, 1))
    cfg = TrainConfig(steps=0, batch_size=100, init_examples=500, progress=False, checkpoint_every=None)
    params = train(model, x, cfg).params
    nll, _, _ = evaluate_nll(model, params, x, jax.random.key(0))
    # counts + 1 over 256 values, by hand
    flat = x.reshape(500, 784)
    counts = np.stack([np.bincount(flat[:, i], minlength=256) for i in range(784)])  # (784, 256)
    log_theta = np.log((counts + 1) / (500 + 256))
    expected = -np.mean(log_theta[np.arange(784)[None], flat].sum(1))
    assert abs(nll - expected) < 1e-4 * abs(expected)
    assert nats_to_bits_per_dim(nll, 784) == pytest.approx(expected / (784 * math.log(2)), rel=1e-4)
    s = model.sample(params, jax.random.key(1), 3)
    assert s.shape == (3, 28, 28, 1) and s.dtype == np.uint8
