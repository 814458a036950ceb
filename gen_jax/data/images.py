"""Fashion-MNIST and MNIST as uint8 arrays (n, 28, 28, 1), from TFDS or a local directory.

    data = load_images("fashion_mnist", "train")      # data.images, data.labels, data.source

Sources, in order:
1. TensorFlow Datasets (`tfds.data_source`, no TensorFlow needed) when the dataset is already
   prepared in its data directory (`tfds_data_dir`, default ~/tensorflow_datasets), or can be
   downloaded (`download=True`);
2. the original IDX `.gz` files in a local directory: the `data_dir` argument, else
   $GEN_JAX_DATA_DIR, else the Debian package location /usr/share/datasets (from
   `apt-get install dataset-fashion-mnist`). Files are checked by size and shape.
When neither is there, the error says everywhere it looked and the ways to get the data.
The source used is logged and returned.

The whole split lives in device memory (47 MB for the 60,000 training images); the training
loop draws batches on the device, so the accelerator never waits on the host. Models get
raw uint8 images and do their own preprocessing inside the loss (dequantization, dynamic
binarization: see `gen_jax.data.transforms`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from gen_jax.data.arrays import DataError
from gen_jax.data.idx import ENV_VAR, IDXError, load_idx_split

log = logging.getLogger("gen_jax.data")

DATASETS = {  # canonical name -> (TFDS name, IDX folder name, expected split sizes)
    "fashion_mnist": ("fashion_mnist", "fashion-mnist", {"train": 60_000, "test": 10_000}),
    "mnist": ("mnist", "mnist", {"train": 60_000, "test": 10_000}),
}
SYSTEM_DIRS = (Path("/usr/share/datasets"),)  # Debian's dataset-* packages
IMAGE_SHAPE = (28, 28, 1)


@dataclasses.dataclass(frozen=True)
class ImageData:
    """One split of an image dataset: uint8 images (n, 28, 28, 1), integer labels, where they came from."""

    name: str
    split: str
    images: np.ndarray  # uint8 (n, 28, 28, 1)
    labels: np.ndarray  # int (n,)
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def shuffled(self, seed: int) -> ImageData:
        """The same examples in a deterministic random order."""
        perm = np.random.default_rng(seed).permutation(len(self.images))
        return dataclasses.replace(self, images=self.images[perm], labels=self.labels[perm])

    def take(self, n: int | None) -> ImageData:
        """The first n examples (all if n is None)."""
        if n is None or n >= len(self.images):
            return self
        return dataclasses.replace(self, images=self.images[:n], labels=self.labels[:n])


def canonical_name(name: str) -> str:
    """The dataset's key in DATASETS ("fashion-mnist" -> "fashion_mnist"); an unknown name is an error."""
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def load_images(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    use_tfds: bool = True,
    tfds_data_dir: str | Path | None = None,
    download: bool = False,
) -> ImageData:
    """One split ("train" or "test") of `name` ("fashion_mnist" or "mnist")."""
    name = canonical_name(name)
    tfds_name, idx_name, sizes = DATASETS[name]
    if split not in sizes:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    tried = []
    if use_tfds:
        try:
            images, labels = _from_tfds(tfds_name, split, tfds_data_dir, download)
            source = f"tfds:{tfds_name}/{split}" + (f" ({tfds_data_dir})" if tfds_data_dir else "")
            return _finish(name, split, images, labels, source)
        except Exception as e:  # not prepared, no network, tfds missing: fall back to local files
            tried.append(
                f"TFDS {tfds_name} (data_dir={tfds_data_dir or '~/tensorflow_datasets'}, "
                f"download={download}): {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            )
    dirs = [Path(data_dir)] if data_dir else []
    if not data_dir:
        from gen_jax.data.idx import data_dir as env_dir

        if env_dir() is not None:
            dirs.append(env_dir())
        dirs.extend(d for d in SYSTEM_DIRS if d.is_dir())
    for d in dirs:
        try:
            images, labels = load_idx_split(idx_name, split, d)
        except IDXError as e:
            tried.append(f"IDX files in {d}: {str(e).splitlines()[0][:300]}")
            continue
        if len(images) != sizes[split]:
            raise DataError(
                f"{d}: {name} {split} has {len(images)} images, expected {sizes[split]}; the files are "
                "incomplete or belong to another dataset"
            )
        return _finish(name, split, images[..., None], labels, f"idx:{d}")
    if not dirs:
        tried.append(f"no local directory: data_dir not given, ${ENV_VAR} not set, no {SYSTEM_DIRS[0]}")
    raise DataError(
        f"{name} {split} split not found. Looked in:\n  - " + "\n  - ".join(tried) + "\n"
        f"Get it either way:\n"
        f"  1. TFDS: on a machine with internet, `tfds build {tfds_name}` (or pass download=True), "
        f"then point tfds_data_dir at that folder;\n"
        f"  2. the original IDX files: put the four *-ubyte.gz files in <dir>/{idx_name}/ and set "
        f"{ENV_VAR}=<dir> (or pass data_dir=<dir>)"
        + (" or `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else "")
        + "."
    )


def _from_tfds(tfds_name: str, split: str, tfds_data_dir, download: bool):
    import tensorflow_datasets as tfds

    source = tfds.data_source(tfds_name, split=split, data_dir=tfds_data_dir, download=download)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
    labels = np.asarray([int(ex["label"]) for ex in examples])
    return images, labels


def _finish(name, split, images, labels, source) -> ImageData:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{source}: images are {images.dtype} {images.shape}, expected uint8 (n, 28, 28, 1)")
    if labels.shape != (len(images),):
        raise DataError(f"{source}: {labels.shape} labels for {len(images)} images")
    log.info("loaded %s %s: %d images from %s", name, split, len(images), source)
    return ImageData(name, split, images, labels.astype(np.int32), source)


def check_uint8_images(x, what: str = "images") -> np.ndarray:
    """A user's images as uint8 (n, 28, 28, 1): accepts (n, 28, 28) too; clear errors otherwise."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise DataError(
            f"{what}: expected uint8 pixel values 0..255, got dtype {x.dtype}; convert with "
            "np.clip(x, 0, 255).astype(np.uint8) if they are integers in that range"
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{what}: expected shape (n, 28, 28) or (n, 28, 28, 1), got {x.shape}")
    return x
