"""Strict numerics for the whole suite: implicit rank promotion is an error.

The suite compiles hundreds of small XLA programs and runs most of them a few times, so on CPU it
is bound by compile time: XLA's LLVM backend at optimization level 0 compiles them ~40% faster
(the whole suite: 9:00 -> 6:05 on 2 cores) and computes the same numbers (these are code-generation
optimizations, not numerics). Set before jax initializes its backend; an XLA_FLAGS given by the
user is kept and extended.
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
