"""Importance-sampling estimates of log p(x), in memory-bounded chunks with a running logsumexp.

For ONE example, with proposal q and samples z_1..z_k ~ q,

    log p_hat_k(x) = log (1/k) sum_j w_j,    log w_j = log p(x, z_j) - log q(z_j),

so p_hat_k is unbiased for p(x) and, by Jensen, E[log p_hat_k] <= log p(x), increasing in k
(Burda et al. 2016, IWAE). With q = q(z | x) this is the IWAE estimate; with q = p(z) it is the
naive estimate that averages p(x | z) over the prior.

`log_weights(keys)` returns the log weight of each sample, sample j drawn from `fold_in(key, j)`:
the estimate depends only on (key, k), not on the chunk size, so a chunked run equals an
unchunked one up to float rounding. Only `chunk_size` samples are ever alive at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen_jax.likelihood.ais import log_mean_exp_se

Array = jax.Array


def sample_keys(key: Array, start: Array | int, n: int) -> Array:
    """Keys of samples start, ..., start + n - 1: fold_in(key, j)."""
    return jax.vmap(lambda j: jax.random.fold_in(key, j))(start + jnp.arange(n))


def log_mean_exp_chunked(
    log_weights: Callable[[Array], Array], key: Array, num_samples: int, chunk_size: int
) -> Array:
    """log (1/k) sum_{j<k} exp(log_weights(fold_in(key, j))), `chunk_size` samples at a time.

    `log_weights`: keys (c,) -> log weights (..., c), the samples on the last axis (leading axes: one
    estimate each, e.g. images that share the draws). A last partial chunk is masked, so any
    `num_samples` works with any `chunk_size`.
    """
    if num_samples < 1 or chunk_size < 1:
        raise ValueError(f"need num_samples >= 1 and chunk_size >= 1, got {num_samples}, {chunk_size}")
    chunk_size = min(chunk_size, num_samples)
    num_chunks = -(-num_samples // chunk_size)

    def chunk(i):
        start = i * chunk_size
        lw = log_weights(sample_keys(key, start, chunk_size))
        return jax.nn.logsumexp(jnp.where(start + jnp.arange(chunk_size) < num_samples, lw, -jnp.inf), -1)

    init = jnp.full(jax.eval_shape(chunk, 0).shape, -jnp.inf, jnp.float32)  # no second trace of a chunk
    body = lambda acc, i: (jnp.logaddexp(acc, chunk(i)), None)
    total, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return total - math.log(num_samples)


def all_log_weights(
    log_weights: Callable[[Array], Array], key: Array, num_samples: int, chunk_size: int
) -> Array:
    """The k log weights themselves, (..., num_samples), computed `chunk_size` at a time (for studies
    of the estimator against k; `log_mean_exp_chunked` of the same key averages exactly these)."""
    chunk_size = min(chunk_size, num_samples)
    num_chunks = -(-num_samples // chunk_size)
    lw = jax.lax.map(
        lambda i: log_weights(sample_keys(key, i * chunk_size, chunk_size)), jnp.arange(num_chunks)
    )  # (chunks, ..., c)
    lw = jnp.moveaxis(lw, 0, -2)
    return lw.reshape(*lw.shape[:-2], -1)[..., :num_samples]


def log_mean_exp_prefixes(log_w: Array, ks) -> Array:
    """log (1/k) sum_{j<k} exp(log_w[..., j]) for each k in `ks` (the estimates from the first k
    samples), stacked on a new last axis."""
    cum = jax.lax.cumlogsumexp(log_w, axis=log_w.ndim - 1)
    idx = jnp.asarray(ks) - 1
    log_k = jnp.log(jnp.asarray(ks, jnp.float32)).reshape((1,) * (log_w.ndim - 1) + (-1,))
    return jnp.take(cum, idx, axis=-1) - log_k


def binary_log_mass(
    log_f: Callable[[Array], Array],
    logits: Array,
    key: Array,
    num_samples: int,
    uniform_share: float = 0.5,
    chunk: int = 10_000,
) -> dict:
    """log sum_x exp(log_f(x)) over {0,1}^D by importance sampling from a defensive mixture
    q = (1 - a) Bernoulli(sigmoid(logits)) + a Uniform({0,1}^D), a = `uniform_share` (Hesterberg 1995):
    the Bernoulli part covers where the data are, the uniform part the rest of the 2^D states, so no
    weight exceeds f(x) 2^D / a. `uniform_share=0` is plain importance sampling from the Bernoulli
    model (misses mass far from the data). log_f: (n, D) -> (n,). Returns {"log_z", "se", "ess",
    "num_samples"}; se by the delta method."""
    logits = jnp.asarray(logits, jnp.float32)
    d = logits.shape[0]
    log_a, log_b = math.log(uniform_share) if uniform_share > 0 else -math.inf, math.log1p(-uniform_share)

    @jax.jit
    def log_weights(k):
        k_pick, k_b, k_u = jax.random.split(k, 3)
        bern = jax.random.bernoulli(k_b, jnp.broadcast_to(jax.nn.sigmoid(logits), (chunk, d)))
        unif = jax.random.bernoulli(k_u, 0.5, (chunk, d))
        x = jnp.where(jax.random.uniform(k_pick, (chunk, 1)) < uniform_share, unif, bern).astype(jnp.float32)
        log_bern = x @ jax.nn.log_sigmoid(logits) + (1.0 - x) @ jax.nn.log_sigmoid(-logits)
        log_q = jnp.logaddexp(log_b + log_bern, log_a - d * math.log(2.0))
        return log_f(x) - log_q

    lw = [log_weights(jax.random.fold_in(key, i)) for i in range(-(-num_samples // chunk))]
    log_z, se, ess = log_mean_exp_se(jnp.concatenate(lw)[:num_samples])
    return {"log_z": log_z, "se": se, "ess": ess, "num_samples": int(num_samples)}
