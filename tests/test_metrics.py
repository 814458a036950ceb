"""MMD: zero for the same distribution, clearly positive for different ones."""

import numpy as np

from gen_jax.metrics import mmd


def test_mmd_separates_distributions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3000, 2)), rng.normal(size=(3000, 2))
    shifted = rng.normal(size=(3000, 2)) + np.array([[0.3, 0.0]])
    same, diff = mmd(a, b, chunk=1000), mmd(a, shifted, chunk=1000)
    assert abs(same) < 2e-3
    assert diff > 10 * max(abs(same), 1e-4)
    # the chunking does not change the value
    assert abs(mmd(a, shifted, chunk=700) - diff) < 1e-5
