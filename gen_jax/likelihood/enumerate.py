"""Exact log Z by enumeration, for binary vectors of a few bits (2^d states, d <= 20).

    log Z = logsumexp over all x in {0, 1}^d of log f(x)

The tiny discrete world (3x3 binary patches, 512 states) uses it as ground truth for AIS.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MAX_BITS = 20


def all_binary_states(num_bits: int) -> np.ndarray:
    """(2^d, d) float32 array of every binary vector; row i is i in binary, most significant bit first."""
    if not 1 <= num_bits <= MAX_BITS:
        raise ValueError(
            f"enumeration needs 1 <= num_bits <= {MAX_BITS} (2^d states), got {num_bits}; "
            "use AIS (gen_jax.likelihood.ais) for larger state spaces"
        )
    idx = np.arange(2**num_bits)[:, None]
    return ((idx >> np.arange(num_bits - 1, -1, -1)[None, :]) & 1).astype(np.float32)


def state_index(x) -> np.ndarray:
    """Index in `all_binary_states` of each binary row of x (n, d)."""
    x = np.asarray(x).astype(np.int64)
    return x @ (1 << np.arange(x.shape[1] - 1, -1, -1))


def enumerate_log_values(log_f: Callable[[jax.Array], jax.Array], num_bits: int) -> jax.Array:
    """log f at every state (2^d,), from a batched log f: (n, d) -> (n,)."""
    return log_f(jnp.asarray(all_binary_states(num_bits)))


def enumerate_log_z(log_f: Callable[[jax.Array], jax.Array], num_bits: int) -> float:
    """Exact log Z of exp(log_f) over {0, 1}^d; `log_f` takes a batch (n, d) -> (n,)."""
    values = np.asarray(enumerate_log_values(log_f, num_bits), np.float64)
    m = values.max()
    return float(m + np.log(np.sum(np.exp(values - m))))


def sample_enumerated(
    log_f: Callable[[jax.Array], jax.Array], num_bits: int, key: jax.Array, n: int
) -> jax.Array:
    """n exact samples of exp(log_f) / Z over {0, 1}^d (categorical over every state)."""
    states = jnp.asarray(all_binary_states(num_bits))
    return states[jax.random.categorical(key, log_f(states), shape=(n,))]
