"""Annealing between densities of ONE example: the machinery of AIS and of sequential Monte Carlo.

A path f_theta_0 .. f_theta_K of unnormalized densities runs from a normalized `Base` (theta_0) to a
target (theta_K). `anneal` carries chains along it, adding log f_t(x) - log f_(t-1)(x) to each
chain's log weight and then moving it with a Markov transition leaving f_t invariant
(`gen_jax.sampling.kernels`). `geometric_path` is base^(1 - b) f^b over inverse temperatures b;
`noise_path` bridges to a noise-conditional density at its largest noise level and lowers the
level. `adapt_step_sizes` tunes a step size per temperature on pilot chains; `smc_sample` draws
approximate samples by annealing, resampling by the weights, and rejuvenating. The estimators of
log Z built on it are in `gen_jax.likelihood.ais`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.sampling.kernels import Transition, get_transition

Array = jax.Array
LogDensity = Callable[[Array], Array]  # one example -> scalar


@dataclasses.dataclass(frozen=True)
class Base:
    """A normalized reference distribution of one example: exact `log_prob` and `sample`."""

    log_prob: LogDensity
    sample: Callable[[Array, int], Array]  # (key, n) -> (n, *event_shape)
    name: str = "base"


def gaussian_base(mean, scale) -> Base:
    """N(mean, diag(scale^2)); mean and scale broadcast to the event shape."""
    mean = jnp.asarray(mean, jnp.float32)
    scale = jnp.broadcast_to(jnp.asarray(scale, jnp.float32), mean.shape)
    log_norm = -jnp.sum(jnp.log(scale)) - 0.5 * mean.size * math.log(2 * math.pi)

    def log_prob(x):
        return log_norm - 0.5 * jnp.sum(((x - mean) / scale) ** 2)

    def sample(key, n):
        return mean[None] + scale[None] * jax.random.normal(key, (n, *mean.shape))

    return Base(log_prob, sample, "gaussian")


def bernoulli_base(probs) -> Base:
    """Independent Bernoulli(probs) over binary vectors {0, 1}^shape."""
    p = jnp.clip(jnp.asarray(probs, jnp.float32), 1e-4, 1 - 1e-4)
    log_p, log_q = jnp.log(p), jnp.log1p(-p)

    def log_prob(x):
        return jnp.sum(x * log_p + (1 - x) * log_q)

    def sample(key, n):
        return jax.random.bernoulli(key, jnp.broadcast_to(p, (n, *p.shape))).astype(jnp.float32)

    return Base(log_prob, sample, "bernoulli")


def schedule(num_temps: int, kind: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """K + 1 inverse temperatures from 0 to 1.

    "sigmoid" (Grosse et al. 2015): dense at both ends; "linear"; "power": (t / K)^4, dense near 0.
    """
    if num_temps < 1:
        raise ValueError(f"num_temps must be >= 1, got {num_temps}")
    t = np.linspace(0.0, 1.0, num_temps + 1)
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
        b = (s - s[0]) / (s[-1] - s[0])
    elif kind == "linear":
        b = t
    elif kind == "power":
        b = t**4
    else:
        raise ValueError(f"unknown schedule {kind!r}; choose 'sigmoid', 'linear' or 'power'")
    b[0], b[-1] = 0.0, 1.0
    return b.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AnnealingPath:
    """Unnormalized log-densities log f_theta(x) of ONE example, for K + 1 path parameters.

    `log_density(x, theta)`; `thetas`: (K + 1, P) with thetas[0] giving the normalized `base`
    exactly and thetas[-1] the target. AIS starts its chains at base samples."""

    log_density: Callable[[Array, Array], Array]
    thetas: Array
    base: Base

    @property
    def num_temps(self) -> int:
        return int(self.thetas.shape[0]) - 1

    def reversed(self) -> AnnealingPath:
        return dataclasses.replace(self, thetas=jnp.asarray(self.thetas)[::-1])


def geometric_path(log_target: LogDensity, base: Base, betas) -> AnnealingPath:
    """f_b = base^(1 - b) f^b for the inverse temperatures `betas` (b_0 = 0 .. b_K = 1)."""

    def log_density(x, theta):
        b = theta[0]
        return (1.0 - b) * base.log_prob(x) + b * log_target(x)

    return AnnealingPath(log_density, jnp.asarray(betas, jnp.float32)[:, None], base)


def tempered_path(base: Base, log_correction: LogDensity, betas) -> AnnealingPath:
    """f_b = base x exp(b c) for a target base x exp(c): the geometric path of `geometric_path`
    written so that the base's log-density is computed once per point."""

    def log_density(x, theta):
        return base.log_prob(x) + theta[0] * log_correction(x)

    return AnnealingPath(log_density, jnp.asarray(betas, jnp.float32)[:, None], base)


def noise_path(
    log_prob_at: Callable[[Array, Array], Array],
    base: Base,
    sigma_max: float,
    sigma_min: float,
    num_temps: int,
    bridge_fraction: float = 0.1,
    schedule_kind: str = "sigmoid",
) -> AnnealingPath:
    """base -> f(., sigma_max) geometrically over `bridge_fraction` of the K temperatures, then
    f(., sigma) with sigma falling geometrically from sigma_max to sigma_min over the rest.

    `log_prob_at(x, sigma)`: the model's unnormalized log-density of one example at noise level
    sigma (`Model.parts["log_prob_at"]`); the target is log_prob_at(., sigma_min)."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"noise_path needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    k_bridge = max(1, int(round(bridge_fraction * num_temps)))
    k_noise = max(1, num_temps - k_bridge)
    betas = schedule(k_bridge, schedule_kind)
    log_sigmas = np.linspace(math.log(sigma_max), math.log(sigma_min), k_noise + 1)[1:]
    thetas = np.concatenate(
        [
            np.stack([betas, np.full_like(betas, math.log(sigma_max))], 1),
            np.stack([np.ones_like(log_sigmas), log_sigmas], 1),
        ]
    ).astype(np.float32)

    def log_density(x, theta):
        b, log_sigma = theta[0], theta[1]
        return (1.0 - b) * base.log_prob(x) + b * log_prob_at(x, jnp.exp(log_sigma))

    return AnnealingPath(log_density, jnp.asarray(thetas), base)


def _move(transition: Transition, path: AnnealingPath, theta, x, key, step_size, steps: int):
    """One chain at path parameter `theta`: `steps` transitions leaving f_theta invariant, from
    the value and gradient of log f_theta at x. Returns (x, acceptance)."""
    log_f = lambda y: path.log_density(y, theta)
    if transition.needs_grad:
        value, grad = jax.value_and_grad(log_f)(x)
    else:
        value, grad = log_f(x), None
    return transition.run(key, x, value, grad, log_f, step_size, steps)


def _annealing_step(path: AnnealingPath, transition: Transition, steps_per_temp: int):
    """The scan body of `anneal`: one temperature for every chain."""

    def one(x, k, theta_prev, theta, step):
        increment = path.log_density(x, theta) - path.log_density(x, theta_prev)
        x, acc = _move(transition, path, theta, x, k, step, steps_per_temp)
        return x, increment, acc

    move = jax.vmap(one, in_axes=(0, 0, None, None, None))

    def body(carry, inp):
        x, log_w = carry
        theta_prev, theta, step, k = inp
        x_new, increment, acc = move(x, jax.random.split(k, x.shape[0]), theta_prev, theta, step)
        return (x_new, log_w + increment), jnp.mean(acc)

    return body


def _annealing_inputs(path: AnnealingPath, key: Array, step_sizes: Array):
    thetas = jnp.asarray(path.thetas, jnp.float32)
    keys = jax.random.split(key, thetas.shape[0] - 1)
    return (thetas[:-1], thetas[1:], jnp.asarray(step_sizes, jnp.float32), keys)


def anneal(
    path: AnnealingPath,
    x0: Array,
    key: Array,
    step_sizes: Array,
    transition: Transition,
    steps_per_temp: int = 1,
) -> tuple[Array, Array, Array]:
    """Carry chains x0 (N, *event) along `path` (either direction, see `AnnealingPath.reversed`).

    At each t = 1..K: log w += log f_t(x) - log f_(t-1)(x), then transitions leaving f_t invariant
    with step_sizes[t - 1]. Traceable (runs inside jit). Returns (log w (N,), x (N, ...), acc (K,)).
    """
    body = _annealing_step(path, transition, steps_per_temp)
    init = (x0, jnp.zeros(x0.shape[0], jnp.float32))
    (x, log_w), acc = jax.lax.scan(body, init, _annealing_inputs(path, key, step_sizes))
    return log_w, x, acc


def anneal_in_segments(
    path: AnnealingPath,
    x0: Array,
    key: Array,
    step_sizes: Array,
    transition: Transition,
    steps_per_temp: int = 1,
    segments: int = 10,
    progress=None,
) -> tuple[Array, Array, Array]:
    """`anneal`, bit for bit, run as `segments` jitted scans over consecutive blocks of temperatures
    so that `progress` (a `gen_jax.core.progress.Progress`, or None) advances between them."""
    body = _annealing_step(path, transition, steps_per_temp)
    inputs = _annealing_inputs(path, key, step_sizes)
    total = inputs[0].shape[0]
    size = max(1, -(-total // max(1, segments)))
    run = jax.jit(lambda carry, inp: jax.lax.scan(body, carry, inp))
    carry, accs = (x0, jnp.zeros(x0.shape[0], jnp.float32)), []
    for start in range(0, total, size):
        carry, acc = run(carry, jax.tree_util.tree_map(lambda a: a[start : start + size], inputs))
        accs.append(acc)
        if progress is not None:  # wait for the segment: dispatch is asynchronous, progress is not
            jax.block_until_ready(carry)
            progress.update(min(size, total - start))
    (x, log_w), acc = carry, jnp.concatenate(accs)
    return log_w, x, acc


def adapt_step_sizes(
    path: AnnealingPath,
    key: Array,
    transition: Transition,
    num_pilot: int = 128,
    rounds: int = 2,
    warmup_rounds: int = 30,
    gain: float = 1.0,
) -> Array:
    """A step size for every path parameter (theta_0 .. theta_K), from a pilot run.

    Pilot chains follow the path; at each temperature `rounds` transitions are made and after
    each one log(step) += gain (mean acceptance - target). The first temperature gets
    `warmup_rounds` to find the scale from `transition.init_step_size`. Traceable.
    """
    thetas = jnp.asarray(path.thetas, jnp.float32)
    if transition.target_accept is None:
        return jnp.ones(thetas.shape[0], jnp.float32)
    target = transition.target_accept
    move = jax.vmap(
        lambda x, k, theta, step: _move(transition, path, theta, x, k, step, 1), in_axes=(0, 0, None, None)
    )

    def body(carry, inp):
        x, log_step = carry
        t, theta, key = inp

        def one(i, carry):  # one transition of every pilot chain, then a step-size update
            x, log_step = carry
            k = jax.random.fold_in(key, i)
            x, acc = move(x, jax.random.split(k, x.shape[0]), theta, jnp.exp(log_step))
            return x, log_step + gain * (jnp.mean(acc) - target)

        n = jnp.where(t == 0, warmup_rounds, rounds)  # one traced loop for both (less to compile)
        x, log_step = jax.lax.fori_loop(0, n, one, (x, log_step))
        return (x, log_step), jnp.exp(log_step)

    k0, k1 = jax.random.split(key)
    init = (path.base.sample(k0, num_pilot), jnp.log(jnp.float32(transition.init_step_size)))
    inputs = (jnp.arange(thetas.shape[0]), thetas, jax.random.split(k1, thetas.shape[0]))
    return jax.lax.scan(body, init, inputs)[1]


def as_transition(transition: Transition | str) -> Transition:
    """A Transition, given as one or by name."""
    return get_transition(transition) if isinstance(transition, str) else transition


def smc_sample(
    log_target: LogDensity,
    base: Base,
    key: Array,
    n: int,
    num_temps: int = 200,
    transition: Transition | str = "mala",
    rejuvenation_steps: int = 10,
    num_pilot: int = 64,
) -> Array:
    """n approximate samples of exp(log_target): AIS from the base, multinomial resampling by the
    importance weights, then `rejuvenation_steps` transitions at b = 1. Traceable (jit it)."""
    transition = as_transition(transition)
    path = geometric_path(log_target, base, schedule(num_temps))
    k_adapt, k_init, k_run, k_pick, k_rejuv = jax.random.split(key, 5)
    steps = adapt_step_sizes(path, k_adapt, transition, num_pilot)
    log_w, x, _ = anneal(path, base.sample(k_init, n), k_run, steps[1:], transition)
    x = x[jax.random.categorical(k_pick, log_w, shape=(n,))]
    if rejuvenation_steps:
        end = path.thetas[-1]
        move = lambda x, k: _move(transition, path, end, x, k, steps[-1], rejuvenation_steps)[0]
        x = jax.vmap(move)(x, jax.random.split(k_rejuv, n))
    return x
