"""Annealed importance sampling (Neal 2001): log Z of an unnormalized density in any dimension.

The geometric path f_b(x) = base(x)^(1 - b) f(x)^b runs from a normalized base (b = 0) to the
target f = exp(-E) (b = 1) through K temperatures 0 = b_0 < ... < b_K = 1. Each of N chains starts
at a base sample and, at each temperature, adds (b_t - b_{t-1}) (log f - log base)(x) to its log
weight and then takes a Markov step that leaves f_{b_t} invariant (MALA or HMC from blackjax, or
Gibbs sweeps for binary vectors). mean(exp(log w)) is an unbiased estimate of Z, so

    log Z ~ logmeanexp(log w),  se by the delta method,  ESS = (sum w)^2 / sum w^2,

and by Jensen its expectation sits below log Z (a stochastic lower bound, tight when the ESS is
near N). Run backwards from exact target samples (`reverse_ais`), the same path gives a stochastic
upper bound: the two sandwich the true log Z (bidirectional Monte Carlo, Grosse et al. 2015).

The sandwich holds in expectation. With many chains the Jensen gap of logmeanexp shrinks like
1 / N, far below the estimate's noise, so one run's forward estimate can sit above the truth.
Each result therefore also carries the single-chain bound `log_z_bound`: the mean log weight,
E[log w] = log Z - KL(forward path || backward path) <= log Z (forward) and, from exact samples,
-E[log w] = log Z + KL(...) >= log Z (reverse): a gap of the size of the path's KL that the mean of
N chains resolves with standard error sd(log w) / sqrt(N).

Step sizes are tuned per temperature by a pilot run on a few chains (aiming at the transition's
target acceptance rate) and then held fixed, so the main run's transitions depend only on the
temperature, as AIS requires.

The path need not be geometric: any sequence of unnormalized densities f_theta_0 .. f_theta_K from
the normalized base to the target gives the same unbiased estimate of Z (a `Path`). For a model
with a noise-conditional energy (trained by denoising over a ladder of noise levels), `noise_path`
bridges from the base to the target smoothed at the largest noise level and then lowers the noise
level to the smallest, the energy's own path: every intermediate density is one the model was
trained on (the data smoothed by N(0, sigma^2)), where the geometric path's intermediates
base^(1-b) f^b are mixtures no network has seen.
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


@dataclasses.dataclass
class AISResult:
    """log_z: the estimate (forward: a stochastic lower bound; reverse: an upper bound).

    log_z_se: delta-method standard error; ess: effective sample size of the importance weights;
    log_weights: (N,); positions: final chain states; acceptance: mean acceptance per temperature;
    step_sizes: per temperature (b_0 .. b_K); direction: "forward" or "reverse".
    """

    log_z: float
    log_z_se: float
    ess: float
    num_chains: int
    num_temps: int
    log_weights: np.ndarray
    positions: Array
    acceptance: np.ndarray
    step_sizes: np.ndarray
    direction: str = "forward"

    @property
    def log_z_bound(self) -> float:
        """The single-chain stochastic bound: mean log weight (forward: below log Z in expectation),
        or minus it (reverse: above)."""
        m = float(np.mean(np.asarray(self.log_weights, np.float64)))
        return m if self.direction == "forward" else -m

    @property
    def log_z_bound_se(self) -> float:
        lw = np.asarray(self.log_weights, np.float64)
        return float(lw.std(ddof=1) / math.sqrt(lw.size)) if lw.size > 1 else math.inf

    def summary(self) -> dict:
        return dict(
            log_z=self.log_z,
            log_z_se=self.log_z_se,
            log_z_bound=self.log_z_bound,
            log_z_bound_se=self.log_z_bound_se,
            ess=self.ess,
            num_chains=self.num_chains,
            num_temps=self.num_temps,
            direction=self.direction,
            mean_acceptance=float(np.mean(self.acceptance)),
        )


@dataclasses.dataclass(frozen=True)
class Path:
    """Unnormalized log-densities log f_theta(x) of ONE example, for K + 1 path parameters.

    `log_density(x, theta)`; `thetas`: (K + 1, P) with thetas[0] giving the normalized `base`
    exactly and thetas[-1] the target. AIS starts its chains at base samples."""

    log_density: Callable[[Array, Array], Array]
    thetas: Array
    base: Base

    @property
    def num_temps(self) -> int:
        return int(self.thetas.shape[0]) - 1

    def reversed(self) -> Path:
        return dataclasses.replace(self, thetas=jnp.asarray(self.thetas)[::-1])


def geometric_path(log_target: LogDensity, base: Base, betas) -> Path:
    """f_b = base^(1 - b) f^b for the inverse temperatures `betas` (b_0 = 0 .. b_K = 1)."""

    def log_density(x, theta):
        b = theta[0]
        return (1.0 - b) * base.log_prob(x) + b * log_target(x)

    return Path(log_density, jnp.asarray(betas, jnp.float32)[:, None], base)


def noise_path(
    log_prob_at: Callable[[Array, Array], Array],
    base: Base,
    sigma_max: float,
    sigma_min: float,
    num_temps: int,
    bridge_fraction: float = 0.1,
    schedule_kind: str = "sigmoid",
) -> Path:
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

    return Path(log_density, jnp.asarray(thetas), base)


def _move(transition: Transition, path: Path, theta, x, key, step_size, steps: int):
    """One chain at path parameter `theta`: `steps` transitions leaving f_theta invariant, from
    the value and gradient of log f_theta at x. Returns (x, acceptance)."""
    log_f = lambda y: path.log_density(y, theta)
    if transition.needs_grad:
        value, grad = jax.value_and_grad(log_f)(x)
    else:
        value, grad = log_f(x), None
    return transition.run(key, x, value, grad, log_f, step_size, steps)


def anneal(
    path: Path,
    x0: Array,
    key: Array,
    step_sizes: Array,
    transition: Transition,
    steps_per_temp: int = 1,
) -> tuple[Array, Array, Array]:
    """Carry chains x0 (N, *event) along `path` (either direction, see `Path.reversed`).

    At each t = 1..K: log w += log f_t(x) - log f_(t-1)(x), then transitions leaving f_t invariant
    with step_sizes[t - 1]. Traceable (runs inside jit). Returns (log w (N,), x (N, ...), acc (K,)).
    """
    thetas = jnp.asarray(path.thetas, jnp.float32)

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

    keys = jax.random.split(key, thetas.shape[0] - 1)
    inputs = (thetas[:-1], thetas[1:], jnp.asarray(step_sizes, jnp.float32), keys)
    (x, log_w), acc = jax.lax.scan(body, (x0, jnp.zeros(x0.shape[0], jnp.float32)), inputs)
    return log_w, x, acc


def adapt_step_sizes(
    path: Path,
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


def log_mean_exp_se(log_w) -> tuple[float, float, float]:
    """(log mean exp(log_w), its delta-method standard error, ESS), in float64 on the host."""
    lw = np.asarray(log_w, np.float64)
    if not np.all(np.isfinite(lw)):
        raise FloatingPointError(
            f"{int(np.sum(~np.isfinite(lw)))} of {lw.size} AIS log weights are not finite: the target "
            "log-density is -inf/NaN where the chains go; check the energy or shrink the step sizes"
        )
    m = lw.max()
    w = np.exp(lw - m)
    n = w.size
    mean = w.mean()
    se = float(w.std(ddof=1) / (math.sqrt(n) * mean)) if n > 1 else math.inf
    return float(m + math.log(mean)), se, float(w.sum() ** 2 / np.sum(w**2))


def _as_transition(transition: Transition | str) -> Transition:
    return get_transition(transition) if isinstance(transition, str) else transition


@dataclasses.dataclass(frozen=True)
class AISConfig:
    num_chains: int = 1000
    num_temps: int = 500
    transition: str = "mala"  # "mala", "hmc" or "gibbs"
    steps_per_temp: int = 1
    schedule: str = "sigmoid"
    num_pilot: int = 128
    seed: int = 0
    # "geometric", "noise" (the model's noise path, when it declares one) or "auto": the noise path
    # for a noise-conditional energy, unless it has its own Gaussian to whiten with (then geometric:
    # tempering in only the network's correction), see `gen_jax.likelihood.normalize`
    path: str = "auto"
    bridge_fraction: float = 0.1  # noise path: share of the temperatures from the base to sigma_max

    def __post_init__(self):
        if self.path not in ("auto", "geometric", "noise"):
            raise ValueError(f"AISConfig.path must be 'auto', 'geometric' or 'noise', got {self.path!r}")


def ais(
    log_target: LogDensity,
    base: Base,
    key: Array,
    num_chains: int = 1000,
    num_temps: int = 500,
    transition: Transition | str = "mala",
    steps_per_temp: int = 1,
    schedule_kind: str = "sigmoid",
    num_pilot: int = 128,
    step_sizes: Array | None = None,
    path: Path | None = None,
) -> AISResult:
    """Forward AIS estimate of log Z = log int exp(log_target(x)) dx (see the module docstring).

    log_target: log f of ONE example. base: a normalized `Base` whose support covers f's.
    step_sizes: per temperature b_0..b_K; adapted by a pilot run when None.
    path: the densities to anneal through (default: the geometric path of `num_temps` from `base`
    to `log_target`); its last density must be the target.
    """
    transition = _as_transition(transition)
    path = path or geometric_path(log_target, base, schedule(num_temps, schedule_kind))
    k_adapt, k_init, k_run = jax.random.split(key, 3)

    @jax.jit
    def run(k_adapt, k_init, k_run):
        steps = step_sizes
        if steps is None:
            steps = adapt_step_sizes(path, k_adapt, transition, num_pilot)
        x0 = path.base.sample(k_init, num_chains)
        log_w, x, acc = anneal(path, x0, k_run, steps[1:], transition, steps_per_temp)
        return log_w, x, acc, steps

    log_w, x, acc, steps = run(k_adapt, k_init, k_run)
    log_z, se, ess = log_mean_exp_se(log_w)
    return AISResult(
        log_z, se, ess, num_chains, path.num_temps, np.asarray(log_w), x, np.asarray(acc), np.asarray(steps)
    )


def reverse_ais(
    log_target: LogDensity,
    base: Base,
    target_samples: Array,
    key: Array,
    num_temps: int = 500,
    transition: Transition | str = "mala",
    steps_per_temp: int = 1,
    schedule_kind: str = "sigmoid",
    num_pilot: int = 128,
    step_sizes: Array | None = None,
    path: Path | None = None,
) -> AISResult:
    """Reverse AIS from EXACT samples of the normalized target: a stochastic upper bound on log Z.

    The chains run the path backwards (target -> base); their weights estimate Z_base / Z = 1 / Z,
    so -logmeanexp(log w) overestimates log Z in expectation. With `ais`, the true value is
    sandwiched. Approximate target samples void the guarantee.
    """
    transition = _as_transition(transition)
    path = path or geometric_path(log_target, base, schedule(num_temps, schedule_kind))
    k_adapt, k_run = jax.random.split(key)
    x0 = jnp.asarray(target_samples, jnp.float32)

    @jax.jit
    def run(k_adapt, k_run, x0):
        steps = step_sizes
        if steps is None:
            steps = adapt_step_sizes(path, k_adapt, transition, num_pilot)
        log_w, x, acc = anneal(path.reversed(), x0, k_run, steps[::-1][1:], transition, steps_per_temp)
        return log_w, x, acc, steps

    log_w, x, acc, steps = run(k_adapt, k_run, x0)
    neg_log_z, se, ess = log_mean_exp_se(log_w)
    return AISResult(
        -neg_log_z,
        se,
        ess,
        x0.shape[0],
        path.num_temps,
        np.asarray(log_w),
        x,
        np.asarray(acc),
        np.asarray(steps),
        "reverse",
    )


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
    transition = _as_transition(transition)
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
