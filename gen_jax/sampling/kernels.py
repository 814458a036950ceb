"""Markov transitions on a log-density of ONE example, shared by the samplers and by AIS.

A `Transition` moves one chain `num_steps` times under an (unnormalized) log-density
`log_f(x) -> scalar`, starting from a position whose `log_f` value and gradient are already
known (AIS computes them anyway for its weights, so no evaluation is wasted):

    x, acceptance = transition.run(key, x, value, grad, log_f, step_size, num_steps)

- `mala_transition`: Metropolis-adjusted Langevin, blackjax's kernel (`blackjax.mala`).
- `hmc_transition`: Hamiltonian Monte Carlo, blackjax's kernel (`blackjax.hmc`), identity mass matrix.
- `gibbs_transition`: systematic-scan Gibbs sweeps over the coordinates of a binary vector
  (exact conditionals from two evaluations of `log_f`; no step size, acceptance 1).

Each leaves exp(log_f) invariant, which is what AIS and the invariance tests rely on.
`step_size` is the Langevin time step tau of x' = x + tau grad + sqrt(2 tau) noise (MALA) or the
leapfrog step (HMC).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import blackjax
import jax
import jax.numpy as jnp
from blackjax.mcmc.hmc import HMCState
from blackjax.mcmc.mala import MALAState

Array = jax.Array
LogDensity = Callable[[Array], Array]


@dataclasses.dataclass(frozen=True)
class Transition:
    """A Markov kernel leaving exp(log_f) invariant (see the module docstring).

    name: label for reports.
    needs_grad: whether `run` uses the gradient of log_f at the start position.
    target_accept: acceptance rate that step-size adaptation aims for; None when the
      transition has no step size (Gibbs).
    init_step_size: where step-size adaptation starts.
    run: (key, x, value, grad, log_f, step_size, num_steps) -> (x, mean acceptance rate).
    """

    name: str
    needs_grad: bool
    target_accept: float | None
    init_step_size: float
    run: Callable[..., tuple[Array, Array]]


def _scan_kernel(kernel, state, key, num_steps: int):
    def body(state, k):
        state, info = kernel(k, state)
        return state, info.acceptance_rate

    state, acc = jax.lax.scan(body, state, jax.random.split(key, num_steps))
    return state.position, jnp.mean(acc)


def mala_transition(target_accept: float = 0.65, init_step_size: float = 0.05) -> Transition:
    """Metropolis-adjusted Langevin (blackjax.mala's kernel)."""
    kernel = blackjax.mala.build_kernel()

    def run(key, x, value, grad, log_f, step_size, num_steps):
        state = MALAState(x, value, grad)
        return _scan_kernel(lambda k, s: kernel(k, s, log_f, step_size), state, key, num_steps)

    return Transition("mala", True, target_accept, init_step_size, run)


def hmc_transition(
    num_integration_steps: int = 5, target_accept: float = 0.8, init_step_size: float = 0.1
) -> Transition:
    """Hamiltonian Monte Carlo with an identity mass matrix (blackjax.hmc's kernel)."""
    kernel = blackjax.hmc.build_kernel()

    def run(key, x, value, grad, log_f, step_size, num_steps):
        state = HMCState(x, value, grad)
        inv_mass = jnp.ones(x.size, x.dtype)
        step = lambda k, s: kernel(k, s, log_f, step_size, inv_mass, num_integration_steps)
        return _scan_kernel(step, state, key, num_steps)

    return Transition(f"hmc{num_integration_steps}", True, target_accept, init_step_size, run)


def gibbs_transition() -> Transition:
    """Systematic-scan Gibbs sweeps for x in {0, 1}^shape: each coordinate in turn is redrawn
    from its exact conditional, p(x_i = 1 | rest) = sigmoid(log_f(x_i=1) - log_f(x_i=0))."""

    def run(key, x, value, grad, log_f, step_size, num_steps):
        def site(i, carry):
            flat, key = carry
            one = log_f(flat.at[i].set(1.0).reshape(x.shape))
            zero = log_f(flat.at[i].set(0.0).reshape(x.shape))
            u = jax.random.uniform(jax.random.fold_in(key, i))
            return flat.at[i].set((u < jax.nn.sigmoid(one - zero)).astype(flat.dtype)), key

        def sweep(flat, key):
            return jax.lax.fori_loop(0, flat.size, site, (flat, key))[0], None

        flat, _ = jax.lax.scan(sweep, x.reshape(-1), jax.random.split(key, num_steps))
        return flat.reshape(x.shape), jnp.ones((), jnp.float32)

    return Transition("gibbs", False, None, 1.0, run)


TRANSITIONS: dict[str, Callable[..., Transition]] = {
    "mala": mala_transition,
    "hmc": hmc_transition,
    "gibbs": gibbs_transition,
}


def get_transition(name: str, **kwargs) -> Transition:
    """The transition by name (one of TRANSITIONS) with its options."""
    try:
        return TRANSITIONS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown transition {name!r}; choose one of {', '.join(TRANSITIONS)}") from None
