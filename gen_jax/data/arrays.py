"""A user's own vector data from a `.npy` or `.csv` file, checked before any model sees it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_jax.core.errors import DataError

__all__ = ["DataError", "check_array", "load_array"]


def load_array(path: str | Path) -> np.ndarray:
    """Load examples as a float32 array of shape (n_examples, n_dims).

    `.npy`: a 2-D numeric array (a 1-D array is read as n examples of dimension 1).
    `.csv`: comma-separated numbers, one example per row; one header row is skipped.
    Raises `DataError` naming the problem for a missing or empty file, wrong shape,
    non-numeric values, or NaN/inf entries.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist; give the path of a .npy or .csv file")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty; it must hold at least 2 examples")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(
                f"{path} is not a plain numeric .npy array ({e}); save it with np.save(arr)"
            ) from None
    elif suffix == ".csv":
        x = _read_csv(path)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .npy or .csv")
    return check_array(x, str(path))


def _read_csv(path: Path) -> np.ndarray:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise DataError(f"data file {path} has no rows; it must hold at least 2 examples")
    try:
        [float(v) for v in lines[0].split(",")]
        start = 0
    except ValueError:
        start = 1  # a header row
    rows = []
    for i, line in enumerate(lines[start:], start=start + 1):
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise DataError(f"{path}, line {i}: non-numeric value in {line[:80]!r}") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise DataError(
            f"{path}: rows have different numbers of columns ({sorted(widths)}); every row is one example"
        )
    if not rows:
        raise DataError(f"data file {path} has a header but no rows")
    return np.asarray(rows)


def check_array(x, what: str = "data") -> np.ndarray:
    """Validate examples (n, d) -> float32 array; see `load_array` for what is rejected."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataError(
            f"{what}: expected a 2-D array (n_examples, n_dims), got shape {x.shape}; "
            f"flatten each example, e.g. x.reshape(len(x), -1)"
        )
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise DataError(f"{what}: need at least 2 examples of dimension >= 1, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(
            f"{what}: {int(bad.sum())} NaN/inf entries in {len(rows)} rows (first at row {int(rows[0])}); "
            "drop or impute those rows"
        )
    return x.astype(np.float32)
