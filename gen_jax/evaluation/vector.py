"""Vector data for the experiments: the 2D toys (fresh samples, known density) or a user's own files.

    data = load_vector_data("moons", n_train=50_000, n_test=10_000)              # a toy
    data = load_vector_data("my.npy")                                            # one file: 90/10 split
    data = load_vector_data(DataFiles(train="train.csv", test="test.csv"))       # your own split

Files are `.npy` or `.csv` of any dimension (`gen_jax.data.arrays` checks them). An optional
validation file, and context files for conditional models, may be given. `box` (2-D data) is the
plotting and grid box, fitted to the data when the density is not known. `range_report` says how
far the test data fall outside the training data's range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import DataError
from gen_jax.data.arrays import check_array, load_array
from gen_jax.data.toy2d import TOY_DATASETS, get_toy
from gen_jax.metrics import mmd


@dataclasses.dataclass(frozen=True)
class DataFiles:
    """A user's own data: train (required), test and validation files (.npy / .csv), and context
    files of a conditional model (one row per example of the matching file)."""

    train: str
    test: str | None = None
    validation: str | None = None
    train_context: str | None = None
    test_context: str | None = None
    validation_context: str | None = None


@dataclasses.dataclass
class VectorData:
    """A train/test split of vector data, with the true density when it is known."""

    name: str
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray | None = None
    true_log_prob: Callable | None = None
    true_entropy: float | None = None
    true_entropy_se: float | None = None
    box: tuple[float, float, float, float] | None = None  # plotting / grid box, 2-D data only
    digest: str = ""  # what the data are, for run keys (sizes and seed, or the files' content hash)
    context_train: np.ndarray | None = None
    context_test: np.ndarray | None = None
    context_validation: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Dimension of one example."""
        return self.train.shape[1]

    @property
    def context_dim(self) -> int | None:
        """Dimension of one context vector (None: unconditional data)."""
        return None if self.context_train is None else self.context_train.shape[1]

    def training_data(self):
        """What the training loop draws batches from: x, or {"x", "context"}."""
        return self.train if self.context_train is None else {"x": self.train, "context": self.context_train}

    def eval_data(self):
        """What training monitors (and early stopping selects on): the validation data when given,
        else the test data (monitoring only: `fit_and_evaluate` refuses early stopping without a
        validation set), in the training data's form."""
        x, c = (
            (self.test, self.context_test)
            if self.validation is None
            else (self.validation, self.context_validation)
        )
        return x if c is None else {"x": x, "context": c}


def data_box(x: np.ndarray, pad: float = 0.1) -> tuple[float, float, float, float]:
    """A 2-D box around the data: the 0.1% and 99.9% quantiles widened by `pad` of the range."""
    lo, hi = np.quantile(x, 0.001, axis=0), np.quantile(x, 0.999, axis=0)
    width = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - pad * width, hi + pad * width
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(str(a.shape).encode())
    return h.hexdigest()[:12]


def toy_data(name: str, n_train: int, n_test: int, seed: int = 0) -> VectorData:
    """Fresh samples of a 2D toy, with its true density and entropy."""
    toy = get_toy(name)
    key = jax.random.key(seed)
    train = np.asarray(toy.sample(jax.random.fold_in(key, 0), n_train))
    test = np.asarray(toy.sample(jax.random.fold_in(key, 1), n_test))
    h, se = toy.entropy()
    digest = f"toy:{name}:{n_train}:{n_test}:{seed}"
    return VectorData(name, train, test, None, toy.log_prob, h, se, toy.box, digest)


def _load(path: str | None, what: str, dim: int | None = None) -> np.ndarray | None:
    if path is None:
        return None
    x = load_array(path)
    if dim is not None and x.shape[1] != dim:
        raise DataError(
            f"{path}: {what} has {x.shape[1]} columns, the training data {dim}; every file needs the same"
        )
    return x


def file_data(files: DataFiles, seed: int = 0, name: str | None = None) -> VectorData:
    """A user's own files. Without a test file the training file is split 90/10 (shuffled by `seed`)."""
    train = load_array(files.train)
    test = _load(files.test, "the test file", train.shape[1])
    validation = _load(files.validation, "the validation file", train.shape[1])
    ctx = [_load(getattr(files, f"{s}_context"), f"the {s} context") for s in ("train", "test", "validation")]
    for rows, c, s in ((train, ctx[0], "train"), (test, ctx[1], "test"), (validation, ctx[2], "validation")):
        if c is not None and (rows is None or len(c) != len(rows)):
            raise DataError(
                f"the {s} context file has {len(c)} rows, the {s} data {0 if rows is None else len(rows)}"
            )
    if test is None:
        perm = np.random.default_rng(seed).permutation(len(train))
        n_te = max(1, len(train) // 10)
        test, train = train[perm[:n_te]], train[perm[n_te:]]
        if ctx[0] is not None:
            ctx[1], ctx[0] = ctx[0][perm[:n_te]], ctx[0][perm[n_te:]]
    if ctx[0] is None and any(c is not None for c in ctx[1:]):
        raise DataError(
            "context files were given for test/validation but not for training; give train_context too"
        )
    box = data_box(np.concatenate([train, test])) if train.shape[1] == 2 else None
    data_name = name or Path(files.train).stem
    digest = _digest(train, test, validation, *ctx)
    return VectorData(
        data_name,
        train,
        test,
        validation,
        box=box,
        digest=digest,
        context_train=ctx[0],
        context_test=ctx[1],
        context_validation=ctx[2],
    )


def array_data(name: str, train, test, validation=None, seed: int = 0) -> VectorData:
    """VectorData from arrays (checked like files)."""
    train, test = check_array(train, f"{name} train"), check_array(test, f"{name} test")
    validation = None if validation is None else check_array(validation, f"{name} validation")
    box = data_box(np.concatenate([train, test])) if train.shape[1] == 2 else None
    return VectorData(name, train, test, validation, box=box, digest=_digest(train, test, validation))


def load_vector_data(spec, n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> VectorData:
    """A toy by name (fresh samples), a `.npy`/`.csv` path (90/10 split), or `DataFiles`."""
    if isinstance(spec, DataFiles):
        return file_data(spec, seed)
    if spec in TOY_DATASETS:
        return toy_data(spec, n_train, n_test, seed)
    if not str(spec).endswith((".npy", ".csv")):
        raise DataError(
            f"unknown dataset {spec!r}: give a 2D toy ({', '.join(TOY_DATASETS)}) or a .npy/.csv path"
        )
    return file_data(DataFiles(train=str(spec)), seed)


def range_report(train: np.ndarray, test: np.ndarray, z: float = 6.0) -> dict:
    """How far the test data lie outside the training data: the fraction of test points with some
    coordinate more than `z` training standard deviations from the training mean, and the largest
    such distance. A warning sentence when that fraction is not negligible (> 0.1%)."""
    mean, std = train.mean(0), np.maximum(train.std(0), 1e-12)
    dist = np.max(np.abs((test - mean) / std), axis=1)
    frac = float(np.mean(dist > z))
    out = {"test_outside_fraction": frac, "test_max_z": float(dist.max())}
    if frac > 1e-3:
        out["warning"] = (
            f"{100 * frac:.1f}% of the test points lie more than {z:g} training standard deviations from the "
            f"training mean (up to {dist.max():.0f}): the models extrapolate there and their NLLs say little "
            "about the fit"
        )
    return out


def truth_row(data: VectorData, n: int, seed: int) -> dict:
    """The true density as a row: its test NLL, and the MMD between two independent true samples."""
    lp = np.asarray(data.true_log_prob(jnp.asarray(data.test)), np.float64)
    fresh = np.asarray(get_toy(data.name).sample(jax.random.key(seed + 12345), n))
    nll = float(-lp.mean())
    return dict(
        dataset=data.name,
        model="truth",
        objective=None,
        likelihood_kind="exact",
        test_nll=nll,
        test_nll_se=float(lp.std(ddof=1) / math.sqrt(lp.size)),
        true_entropy=data.true_entropy,
        gap=nll - data.true_entropy,
        sample_mmd=mmd(fresh, data.test[:n]),
        train_seconds=None,
    )
