"""IDX files (the MNIST / Fashion-MNIST format), read without any framework.

    images, labels = load_idx_split("fashion-mnist", "train")        # uint8 (60000, 28, 28), (60000,)

An IDX file is: two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in C order. Files may be gzipped (`.gz`, detected by the gzip
magic bytes). Every header is checked against the payload size and the expected shape.

Where the files are looked for (never a hard-coded path): the `data_dir` argument, else the
environment variable GEN_JAX_DATA_DIR (the Makefile sets it to ../shared/data when that
exists). Inside it, `<name>/<file>` or `<file>`, gzipped or not.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from gen_jax.data.arrays import DataError

ENV_VAR = "GEN_JAX_DATA_DIR"
_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_FILES = {
    "fashion-mnist": {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    },
    "mnist": {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    },
}
SOURCES = {
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz), "
    "or `apt-get install dataset-fashion-mnist` on Debian",
    "mnist": "the original MNIST release (train-images-idx3-ubyte.gz etc.)",
}


class IDXError(DataError):
    """An IDX file that is missing, truncated or not what it claims to be."""


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (gzipped or not), in native byte order."""
    path = Path(path)
    if not path.is_file():
        raise IDXError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise IDXError(f"{path}: corrupt gzip stream ({e}); download the file again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise IDXError(
            f"{path} is not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected 0000 + a type "
            f"code in {sorted(hex(t) for t in _TYPES)} + the number of dimensions)"
        )
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: header claims {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(
            f"{path}: header says shape {shape} of {dtype} ({expected} bytes with the header) but the file "
            f"holds {len(raw)} bytes; it is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The data directory: `explicit` if given, else $GEN_JAX_DATA_DIR, else None."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else None


def find_idx_file(name: str, filename: str, directory: str | Path | None = None) -> Path:
    """Path of `filename` (with or without .gz) of dataset `name`; a clear error if absent."""
    root = data_dir(directory)
    if root is None:
        raise IDXError(
            f"no data directory for {name}: pass data_dir or set {ENV_VAR} to a folder holding "
            f"{name}/{filename}.gz. Get the files from {SOURCES.get(name, 'the dataset release')}."
        )
    candidates = [
        root / name / f"{filename}.gz",
        root / name / filename,
        root / f"{filename}.gz",
        root / filename,
    ]
    for c in candidates:
        if c.is_file():
            return c
    where = "data_dir argument" if directory else f"${ENV_VAR}"
    raise IDXError(
        f"{name} file {filename}(.gz) not found; looked in {', '.join(str(c) for c in candidates)} "
        f"(from the {where} = {root}). Get the files from {SOURCES.get(name, 'the dataset release')} "
        f"into {root / name}/."
    )


def load_idx_split(
    name: str, split: str, directory: str | Path | None = None, image_shape: tuple[int, int] = (28, 28)
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, H, W), labels (n,)) of one split ("train" or "test") of `name`."""
    if name not in IDX_FILES:
        raise ValueError(f"unknown IDX dataset {name!r}; known: {', '.join(IDX_FILES)}")
    if split not in IDX_FILES[name]:
        raise ValueError(f"unknown split {split!r} of {name}; choose {' or '.join(IDX_FILES[name])}")
    image_file, label_file = IDX_FILES[name][split]
    images = read_idx(find_idx_file(name, image_file, directory))
    labels = read_idx(find_idx_file(name, label_file, directory))
    if images.ndim != 3 or images.shape[1:] != tuple(image_shape):
        raise IDXError(
            f"{name} {split} images have shape {images.shape}, expected (n, {image_shape[0]}, "
            f"{image_shape[1]})"
        )
    if labels.shape != (images.shape[0],):
        raise IDXError(f"{name} {split}: {labels.shape} labels for {images.shape[0]} images")
    return images, labels
