"""Binary images: 8-bit images turned into {0, 1} pixels by a fixed, stated rule.

    x = binarize(images, "stochastic", seed=0)      # (n, 784) float32 in {0, 1}
    img = as_form(x, "image01")                     # the form a model takes: vectors or images

"stochastic": pixel = 1 with probability value / 255, drawn ONCE with `seed` (the binarized-MNIST
recipe of Salakhutdinov & Murray 2008); every later use sees the same bits. "threshold": value >=
`threshold`. The binarization is part of a run's key, so changing it trains new models.
"""

from __future__ import annotations

import numpy as np

from gen_jax.core import ConfigError

BINARIZATIONS = ("stochastic", "threshold")
FORMS = ("vector", "image01", "image255")  # (n, D); (n, 28, 28, 1) in {0, 1}; the same in {0, 255}


def binarize(images: np.ndarray, rule: str = "stochastic", seed: int = 0, threshold: int = 128) -> np.ndarray:
    """uint8 images (n, ...) -> float32 {0, 1} vectors (n, D) by `rule` (see the module docstring)."""
    flat = np.asarray(images).reshape(len(images), -1)
    if rule == "stochastic":
        return (np.random.default_rng(seed).random(flat.shape) < flat / 255.0).astype(np.float32)
    if rule == "threshold":
        return (flat >= threshold).astype(np.float32)
    raise ConfigError(f"unknown binarization {rule!r}; choose one of {', '.join(BINARIZATIONS)}")


def as_form(x: np.ndarray, form: str, shape: tuple[int, ...] = (28, 28, 1)) -> np.ndarray:
    """Binary vectors (n, D) in the form a model takes (`FORMS`)."""
    if form == "vector":
        return x
    if form not in FORMS:
        raise ConfigError(f"unknown input form {form!r}; choose one of {', '.join(FORMS)}")
    img = np.asarray(x).reshape(len(x), *shape).astype(np.uint8)
    return img if form == "image01" else img * np.uint8(255)


def to_unit_images(x, form: str, shape: tuple[int, ...] = (28, 28, 1)) -> np.ndarray:
    """Examples of any form -> float images in [0, 1] (for sample grids)."""
    img = np.asarray(x, np.float32).reshape(-1, *shape)
    return img / 255.0 if form == "image255" else img


def load_binarized(
    dataset: str,
    split: str,
    data_dir=None,
    rule: str = "stochastic",
    seed: int = 0,
    threshold: int = 128,
    n: int | None = None,
    shuffle_seed: int | None = None,
) -> tuple[np.ndarray, str]:
    """(binary vectors (n, 784), where the images came from): one split of an image dataset (the
    first n, after shuffling with `shuffle_seed` if given), binarized by `rule` with `seed`."""
    from gen_jax.data.images import load_images

    images = load_images(dataset, split, data_dir=data_dir)
    if shuffle_seed is not None:
        images = images.shuffled(shuffle_seed)
    images = images.take(n)
    return binarize(images.images, rule, seed, threshold), images.source


def load_binary_splits(
    dataset: str, ood_dataset: str, data_dir, rule: str, threshold: int, seed: int, n_train, n_test
) -> dict:
    """{"train", "test", "ood"}: the training split (shuffled with `seed`, first n_train), the test
    split and the out-of-distribution set's test split (first n_test each), each binarized by `rule`
    with its own fixed seed (seed, seed + 1, seed + 2)."""
    args = dict(data_dir=data_dir, rule=rule, threshold=threshold)
    train, source = load_binarized(dataset, "train", seed=seed, n=n_train, shuffle_seed=seed, **args)
    test, _ = load_binarized(dataset, "test", seed=seed + 1, n=n_test, **args)
    ood, _ = load_binarized(ood_dataset, "test", seed=seed + 2, n=n_test, **args)
    print(f"data: {len(train)} train, {len(test)} test from {source}; {len(ood)} {ood_dataset}", flush=True)
    return {"train": train, "test": test, "ood": ood}
