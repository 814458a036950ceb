"""A user's own data: loads .npy/.csv of any dimension; bad files get errors that say what to fix."""

import numpy as np
import pytest

from gen_jax.data.arrays import DataError, load_array


def test_loads_npy_and_csv_any_dimension(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 5))
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_allclose(load_array(tmp_path / "x.npy"), x.astype(np.float32))
    (tmp_path / "x.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in x[:, :3]))
    np.testing.assert_allclose(load_array(tmp_path / "x.csv"), x[:, :3].astype(np.float32), rtol=1e-6)
    np.save(tmp_path / "one.npy", x[:, 0])
    assert load_array(tmp_path / "one.npy").shape == (50, 1)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: np.save(p, np.zeros((4, 3, 2))), r"expected a 2-D array .* got shape \(4, 3, 2\)"),
        (
            lambda p: np.save(p, np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, np.inf]])),
            "2 NaN/inf entries in 2 rows",
        ),
        (lambda p: np.save(p, np.zeros((1, 2))), "at least 2 examples"),
        (lambda p: np.save(p, np.array(["a", "b"])), "expected numbers"),
    ],
)
def test_bad_npy(tmp_path, write, message):
    path = tmp_path / "bad.npy"
    write(path)
    with pytest.raises(DataError, match=message):
        load_array(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2\n3,4,5\n", "different numbers of columns"),
        ("1,2\n3,x\n", "line 2: non-numeric"),
        ("x,y\n", "header but no rows"),
        ("1,2\nnan,4\n", "NaN/inf"),
    ],
)
def test_bad_csv(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_array(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("1,2\n")
    with pytest.raises(DataError, match="use .npy or .csv"):
        load_array(path)
