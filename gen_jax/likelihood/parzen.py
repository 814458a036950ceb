"""The Parzen-window log-likelihood: a Gaussian kernel density estimate fitted to model samples.

Early GAN papers (Goodfellow et al. 2014, after Breuleux et al. 2011) reported a "log-likelihood"
for models with no density this way: draw N samples s_i from the model, put a Gaussian of width
h on each, choose h on a validation set, and report the mean log of

    p_hat(x) = (1 / N) sum_i N(x; s_i, h^2 I)

on test data. It is an *estimate* (`Kind.ESTIMATE`), of the KDE's cross-entropy and not of
the model's: in D dimensions the kernel's blur dominates long before N is large enough
(Theis et al. 2016, "A note on the evaluation of generative models"). A model that just
replays its training set has no density at all (true NLL +inf), yet Parzen scores it about as
well as perfect samples; and blur can rank a worse model above a better one. gen_jax measures
both (`gen_jax.evaluation.parzen`).

Everything here works on any model that samples (`parzen_from_model`, or `parzen_estimator`
as a `Model` estimator view) or directly on an array of samples (`parzen_estimate`). The
kernel sums are evaluated in memory-bounded chunks (test points in batches, samples streamed
through a running logsumexp), inside one jit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Estimator, Kind, Model, check_batch

KIND = Kind.ESTIMATE
LOG_2PI = math.log(2 * math.pi)
# bandwidth search: a coarse log grid relative to the samples' scale, then a fine one around its best
COARSE = tuple(np.logspace(-3.0, 0.5, 13).tolist())  # ratio 10^(7/24) = 1.96 between neighbours
FINE_STEPS = 9


@dataclasses.dataclass(frozen=True)
class ParzenResult:
    """A Parzen-window estimate on test data, in nats per example.

    nll / nll_se: mean -log p_hat over the test points and its standard error (over test
    points; the estimate's bias from finite N and from the bandwidth is not in it).
    bandwidth: the h chosen on the validation set; num_samples: the N kernel centres.
    bandwidths / validation_nll: every h tried and the validation NLL it gave.
    """

    nll: float
    nll_se: float
    bandwidth: float
    num_samples: int
    bandwidths: tuple[float, ...]
    validation_nll: tuple[float, ...]
    kind: Kind = KIND


def _flat(x) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return x.reshape(x.shape[0], -1)


def _sq_dists(xb: jax.Array, cc: jax.Array) -> jax.Array:
    """(B, S) squared distances; exact differences in low dimension, a matmul in high."""
    if xb.shape[1] <= 16:
        return jnp.sum(jnp.square(xb[:, None, :] - cc[None, :, :]), axis=-1)
    d2 = jnp.sum(xb**2, 1)[:, None] + jnp.sum(cc**2, 1)[None, :] - 2.0 * xb @ cc.T
    return jnp.maximum(d2, 0.0)


@functools.partial(jax.jit, static_argnames=("x_batch", "center_chunk"))
def kde_log_prob(
    x: jax.Array, centers: jax.Array, bandwidths: jax.Array, x_batch: int = 256, center_chunk: int = 2048
) -> jax.Array:
    """log p_hat(x) for each point and each bandwidth: shape (n, K).

    x: (n, ...) points, centers: (N, ...) kernel centres (same event shape), bandwidths: (K,).
    Memory is O(x_batch * center_chunk * K): points go through `lax.map` in batches and the
    centres stream through a running logsumexp in a `lax.scan`.
    """
    x, centers = _flat(x), _flat(centers)
    bandwidths = jnp.atleast_1d(jnp.asarray(bandwidths, jnp.float32))
    n, d = x.shape
    num = centers.shape[0]
    shift = jnp.mean(
        centers, axis=0, keepdims=True
    )  # distances are shift-invariant; centring keeps float32 exact
    x, centers = x - shift, centers - shift
    s = min(center_chunk, num)
    pad_c = (-num) % s
    cs = jnp.concatenate([centers, jnp.zeros((pad_c, d), centers.dtype)]).reshape(-1, s, d)
    valid = (jnp.arange(num + pad_c) < num).reshape(-1, s)
    b = min(x_batch, n)
    pad_x = (-n) % b
    xs = jnp.concatenate([x, jnp.zeros((pad_x, d), x.dtype)]).reshape(-1, b, d)
    inv_two_h2 = 0.5 / jnp.square(bandwidths)

    def one_batch(xb):
        def body(carry, chunk):
            run_max, run_sum = carry  # (B, K) each
            cc, ok = chunk
            logits = -_sq_dists(xb, cc)[:, :, None] * inv_two_h2[None, None, :]  # (B, S, K)
            logits = jnp.where(ok[None, :, None], logits, -jnp.inf)
            new_max = jnp.maximum(run_max, jnp.max(logits, axis=1))
            run_sum = run_sum * jnp.exp(run_max - new_max) + jnp.sum(
                jnp.exp(logits - new_max[:, None, :]), axis=1
            )
            return (new_max, run_sum), None

        init = (jnp.full((b, bandwidths.shape[0]), -jnp.inf), jnp.zeros((b, bandwidths.shape[0])))
        (run_max, run_sum), _ = jax.lax.scan(body, init, (cs, valid))
        return run_max + jnp.log(run_sum)

    lse = jax.lax.map(one_batch, xs).reshape(-1, bandwidths.shape[0])[:n]
    log_norm = -math.log(num) - 0.5 * d * (LOG_2PI + 2.0 * jnp.log(bandwidths))
    return lse + log_norm[None, :]


def _scale(centers: jax.Array) -> jax.Array:
    """Typical per-dimension spread of the samples: the unit of the bandwidth grid."""
    return jnp.sqrt(jnp.mean(jnp.var(_flat(centers), axis=0))) + 1e-12


def _select(centers, validation, coarse_rel):
    """(best h, every h tried, validation NLL of each): coarse log grid, then a fine one."""
    scale = _scale(centers)
    coarse = scale * jnp.asarray(coarse_rel, jnp.float32)
    nll_c = -jnp.mean(kde_log_prob(validation, centers, coarse), axis=0)
    best_c = coarse[jnp.argmin(nll_c)]
    ratio = math.sqrt(coarse_rel[1] / coarse_rel[0]) if len(coarse_rel) > 1 else 2.0
    fine = best_c * jnp.asarray(np.geomspace(1 / ratio, ratio, FINE_STEPS), jnp.float32)
    nll_f = -jnp.mean(kde_log_prob(validation, centers, fine), axis=0)
    grid = jnp.concatenate([coarse, fine])
    nll = jnp.concatenate([nll_c, nll_f])
    return grid[jnp.argmin(nll)], grid, nll


def select_bandwidth(
    centers, validation, bandwidths=None
) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """Bandwidth maximising the validation log-likelihood of the KDE on `centers`.

    `bandwidths`: the grid to try; default a coarse log grid from 1e-3 to 10^0.5 times the
    samples' per-dimension spread, refined around its best. Returns (h, grid, validation NLLs).
    """
    centers, validation = _flat(centers), _flat(validation)
    if bandwidths is None:
        best, grid, nll = jax.jit(_select, static_argnums=2)(centers, validation, COARSE)
    else:
        grid = jnp.asarray(bandwidths, jnp.float32)
        if grid.ndim != 1 or not bool(jnp.all(grid > 0)):
            raise ValueError(f"bandwidths must be a 1-D array of positive widths, got {bandwidths}")
        nll = -jnp.mean(kde_log_prob(validation, centers, grid), axis=0)
        best = grid[jnp.argmin(nll)]
    grid, nll = np.asarray(grid, np.float64), np.asarray(nll, np.float64)
    order = np.argsort(grid)
    if np.argmin(nll[order]) in (0, len(grid) - 1) and len(grid) > 2:
        warnings.warn(
            f"Parzen bandwidth {float(best):.3g} is at the edge of the grid tried "
            f"[{grid.min():.3g}, {grid.max():.3g}]; pass a wider `bandwidths` grid.",
            stacklevel=2,
        )
    return float(best), tuple(grid[order].tolist()), tuple(nll[order].tolist())


def parzen_log_prob(centers, bandwidth: float):
    """x -> log p_hat(x), shape (n,), for the KDE with fixed centres and bandwidth."""
    centers = _flat(centers)
    return lambda x: kde_log_prob(x, centers, jnp.asarray([bandwidth], jnp.float32))[:, 0]


def parzen_estimate(samples, validation, test, bandwidths=None) -> ParzenResult:
    """The Parzen-window estimate of the test NLL from `samples` (N, ...), nats per example.

    The bandwidth maximises the log-likelihood of `validation` (held-out data, disjoint from
    `test` and from the samples); the estimate is reported on `test`.
    """
    samples, validation, test = (np.asarray(a, np.float32) for a in (samples, validation, test))
    shapes = {a.shape[1:] for a in (samples, validation, test)}
    if len(shapes) != 1 or min(len(samples), len(validation), len(test)) < 2:
        raise ValueError(
            "parzen_estimate needs samples, validation and test arrays of >= 2 examples of one event "
            f"shape; got {samples.shape}, {validation.shape}, {test.shape}"
        )
    h, grid, val_nll = select_bandwidth(samples, validation, bandwidths)
    nll = -np.asarray(parzen_log_prob(samples, h)(test), np.float64)
    return ParzenResult(
        nll=float(nll.mean()),
        nll_se=float(nll.std(ddof=1) / math.sqrt(len(nll))),
        bandwidth=h,
        num_samples=len(samples),
        bandwidths=grid,
        validation_nll=val_nll,
    )


def parzen_from_model(
    model: Model, params, key: jax.Array, validation, test, num_samples: int = 10_000, bandwidths=None
) -> ParzenResult:
    """Parzen estimate from `num_samples` draws of any model that samples (any `kind`)."""
    check_batch(validation, model.event_shape, "validation")
    check_batch(test, model.event_shape, "test")
    samples = jax.jit(model.sample, static_argnums=2)(params, key, num_samples)
    return parzen_estimate(samples, validation, test, bandwidths)


def parzen_estimator(model: Model, validation, num_samples: int = 10_000) -> Estimator:
    """The Parzen estimate as a `Model` estimator view (`model.replace(estimators={"parzen": ...})`).

    Its log_prob(params, x, key) draws `num_samples` from the model with `key`, picks the
    bandwidth on `validation` and returns log p_hat(x); all of it jits.
    """
    check_batch(validation, model.event_shape, "validation")
    validation = _flat(validation)

    def log_prob(params, x, key):
        centers = _flat(model.sample(params, key, num_samples))
        h, _, _ = _select(centers, validation, COARSE)
        return kde_log_prob(x, centers, h[None])[:, 0]

    return Estimator(kind=KIND, log_prob=log_prob)
