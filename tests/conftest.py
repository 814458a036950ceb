"""Strict numerics for the whole suite: implicit rank promotion is an error."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
