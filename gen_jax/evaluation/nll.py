"""Mean negative log-likelihood over a data set, in memory-bounded chunks, with its standard error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Model, check_batch
from gen_jax.core.progress import Progress


def evaluate_nll(model: Model, params, x, key, batch_size: int = 2048, context=None):
    """Mean negative log_prob over `x` (nats) and its standard error, in memory-bounded chunks.

    Chunk i gets the key fold_in(key, i). Returns (mean, standard_error, per_example_nll as numpy).
    `context`: the contexts of a conditional model, one row per example.
    """
    check_batch(x, model.event_shape)
    n = x.shape[0]
    batch_size = min(batch_size, n)
    pad = (-n) % batch_size  # pad the last chunk so every chunk has one static shape

    def padded(a):
        a = jnp.asarray(a)
        return jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a

    xp = padded(x)
    cp = padded(context) if context is not None else None
    if cp is None:
        lp = jax.jit(model.log_prob)
        call = lambda s, k: lp(params, xp[s : s + batch_size], k)
    else:
        lp = jax.jit(lambda p, x, k, c: model.log_prob(p, x, k, context=c))
        call = lambda s, k: lp(params, xp[s : s + batch_size], k, cp[s : s + batch_size])
    starts = range(0, n + pad, batch_size)
    progress = Progress(len(starts), f"{model.name}: log p", unit="batch", quiet_s=10.0)
    out = []
    for i, s in enumerate(starts):
        out.append(np.asarray(-call(s, jax.random.fold_in(key, i))))
        progress.update(1)
    progress.close()
    nll = np.concatenate(out)[:n]
    if not np.all(np.isfinite(nll)):
        bad = int(np.sum(~np.isfinite(nll)))
        raise FloatingPointError(f"{model.name}: {bad} of {n} test points have a non-finite log_prob")
    return float(nll.mean()), float(nll.std(ddof=1) / np.sqrt(n)), nll
