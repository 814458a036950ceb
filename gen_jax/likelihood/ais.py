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
temperature, as AIS requires. The pilot may run on a shorter ladder of the same path
(`AISConfig.pilot_temps`): its step sizes, interpolated in the position t / K along the path
(`interpolate_step_sizes`), serve runs of any length, so a ladder of runs (K = 200, 600, 2000)
shares one pilot. Any fixed step sizes leave the estimate unbiased; they only change its variance.

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

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core.progress import Progress
from gen_jax.sampling.anneal import (
    AnnealingPath,
    Base,
    LogDensity,
    adapt_step_sizes,
    anneal_in_segments,
    as_transition,
    geometric_path,
    schedule,
)
from gen_jax.sampling.kernels import Transition

Array = jax.Array


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


@dataclasses.dataclass(frozen=True)
class AISConfig:
    """How AIS runs: chains, temperatures, the moves, the pilot that tunes their step sizes, the path."""

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
    # the pilot tunes step sizes on a ladder of this many temperatures (same schedule, same path) and
    # every run interpolates them to its own (`interpolate_step_sizes`); 0: a pilot at every one of the
    # run's temperatures (two pilot transitions per temperature: twice the main run's cost)
    pilot_temps: int = 0
    # a model on a normalized base (a flow): "data": chains in the data's (continuous) space; "latent":
    # in the flow's latent space, where the base is exactly N(0, I) and the chains only feel the
    # correction (NeuTra-style; `gen_jax.likelihood.normalize.target`)
    flow_coordinates: str = "data"

    def __post_init__(self):
        if self.path not in ("auto", "geometric", "noise"):
            raise ValueError(f"AISConfig.path must be 'auto', 'geometric' or 'noise', got {self.path!r}")
        if self.flow_coordinates not in ("data", "latent"):
            raise ValueError(f"AISConfig.flow_coordinates: 'data' or 'latent', got {self.flow_coordinates!r}")
        if self.pilot_temps < 0:
            raise ValueError(f"AISConfig.pilot_temps: >= 0 (0: every temperature), got {self.pilot_temps}")


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
    path: AnnealingPath | None = None,
    show_progress: bool = True,
) -> AISResult:
    """Forward AIS estimate of log Z = log int exp(log_target(x)) dx (see the module docstring).

    log_target: log f of ONE example. base: a normalized `Base` whose support covers f's.
    step_sizes: per temperature b_0..b_K; adapted by a pilot run when None.
    path: the densities to anneal through (default: the geometric path of `num_temps` from `base`
    to `log_target`); its last density must be the target.
    """
    transition = as_transition(transition)
    path = path or geometric_path(log_target, base, schedule(num_temps, schedule_kind))
    k_adapt, k_init, k_run = _run_keys(key)

    @jax.jit
    def prepare(k_adapt, k_init):  # step sizes (a pilot run unless given) and the starting chains
        return _step_sizes(path, k_adapt, transition, num_pilot, step_sizes), path.base.sample(
            k_init, num_chains
        )

    steps, x0 = prepare(k_adapt, k_init)
    progress = Progress(path.num_temps, "AIS", unit="temperature", enabled=show_progress, quiet_s=10.0)
    log_w, x, acc = anneal_in_segments(
        path, x0, k_run, steps[1:], transition, steps_per_temp, _segments(path.num_temps), progress
    )
    progress.close()
    log_z, se, ess = log_mean_exp_se(log_w)
    return AISResult(
        log_z, se, ess, num_chains, path.num_temps, np.asarray(log_w), x, np.asarray(acc), np.asarray(steps)
    )


def interpolate_step_sizes(step_sizes, num_temps: int) -> np.ndarray:
    """Step sizes for b_0 .. b_K (K = num_temps) from those of another ladder of the same path (K' + 1
    of them): log step size interpolated linearly in the position t / K along the path."""
    steps = np.asarray(step_sizes, np.float64)
    have = np.linspace(0.0, 1.0, steps.shape[0])
    want = np.linspace(0.0, 1.0, num_temps + 1)
    return np.exp(np.interp(want, have, np.log(steps))).astype(np.float32)


def _run_keys(key: Array) -> tuple[Array, Array, Array]:
    """(pilot, starting chains, main run) keys of a forward AIS run from its key."""
    return tuple(jax.random.split(key, 3))


def pilot_key(key: Array) -> Array:
    """The key `ais` tunes its step sizes with: a pilot run outside `ais` on it is the same pilot."""
    return _run_keys(key)[0]


def _step_sizes(path, key, transition, num_pilot, given):
    """The given step sizes, or those a pilot run adapts per temperature (traceable)."""
    if given is not None:
        return jnp.asarray(given, jnp.float32)
    return adapt_step_sizes(path, key, transition, num_pilot)


def _segments(num_temps: int) -> int:
    """How many jitted segments to run the temperatures in (progress between them): one for short
    runs (compiling more programs would cost more than it shows), else the most, up to 10, that
    divide the temperatures evenly (one segment length: one compiled program)."""
    if num_temps < 500:
        return 1
    return max(s for s in range(1, 11) if num_temps % s == 0)


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
    path: AnnealingPath | None = None,
    show_progress: bool = True,
) -> AISResult:
    """Reverse AIS from EXACT samples of the normalized target: a stochastic upper bound on log Z.

    The chains run the path backwards (target -> base); their weights estimate Z_base / Z = 1 / Z,
    so -logmeanexp(log w) overestimates log Z in expectation. With `ais`, the true value is
    sandwiched. Approximate target samples void the guarantee.
    """
    transition = as_transition(transition)
    path = path or geometric_path(log_target, base, schedule(num_temps, schedule_kind))
    k_adapt, k_run = jax.random.split(key)
    x0 = jnp.asarray(target_samples, jnp.float32)
    steps = jax.jit(lambda k: _step_sizes(path, k, transition, num_pilot, step_sizes))(k_adapt)
    progress = Progress(
        path.num_temps, "reverse AIS", unit="temperature", enabled=show_progress, quiet_s=10.0
    )
    log_w, x, acc = anneal_in_segments(
        path.reversed(),
        x0,
        k_run,
        steps[::-1][1:],
        transition,
        steps_per_temp,
        _segments(path.num_temps),
        progress,
    )
    progress.close()
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
