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

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Many tests build the same tiny models afresh (the registry contract, autodiff, capabilities, the
# smoke runs): new Python closures, so jax's in-memory cache misses, but the same XLA programs. A
# persistent cache, keyed by the program and shared by the xdist workers, compiles each once per run
# (and once ever on a machine that keeps results/). An outer JAX_COMPILATION_CACHE_DIR is kept.
if not jax.config.jax_compilation_cache_dir:
    _cache = Path(__file__).resolve().parents[1] / "results" / ".jax_cache_tests"
    _cache.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture
def key():
    return jax.random.key(0)
