"""The variance-preserving diffusion process (Kingma et al. 2021, VDM; Song et al. 2021): the layer
below the diffusion model, its likelihoods and its samplers (score_sde's `sde_lib` role).

gamma(t) = -log SNR(t) increases on t in [0, 1]; alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 =
sigmoid(gamma_t), z_t = alpha_t x + sigma_t eps. As an SDE,

    dz = -1/2 beta(t) z dt + sqrt(beta(t)) dW,     beta(t) = gamma'(t) sigma_t^2,

whose probability-flow ODE is dz/dt = -1/2 gamma'(t) (sigma_t^2 z - sigma_t eps_hat(z, t)), with
eps_hat the noise-prediction network (score = -eps_hat / sigma). `VPProcess` carries the schedule and
the network; the loss, the bound, the ODE likelihood and the samplers all take it.

Schedules (all given by gamma at t = 0 and t = 1): "linear" (VDM's fixed schedule), "cosine"
(alpha = cos(pi t / 2) truncated to [gamma_min, gamma_max]) and "learned" (VDM's monotone network
for the shape, with learned endpoints).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any

# ----------------------------------------------------------------------------- schedules


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


@dataclasses.dataclass(frozen=True)
class LinearLogSNR:
    """gamma(t) = gamma_min + (gamma_max - gamma_min) t."""

    gamma_min: float
    gamma_max: float

    def init(self, key: Array) -> dict:
        return {}

    def __call__(self, params: dict, t: Array) -> Array:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t


@dataclasses.dataclass(frozen=True)
class CosineLogSNR:
    """gamma(t) = 2 log tan(a t + b), so alpha_t = cos(a t + b): the cosine schedule, truncated to
    [gamma_min, gamma_max]."""

    gamma_min: float
    gamma_max: float

    def init(self, key: Array) -> dict:
        return {}

    def __call__(self, params: dict, t: Array) -> Array:
        b = math.atan(math.exp(0.5 * self.gamma_min))
        a = math.atan(math.exp(0.5 * self.gamma_max)) - b
        return 2.0 * jnp.log(jnp.tan(a * t + b))


class _DenseMonotone(nn.Module):
    """Dense layer with non-negative weights (|kernel|): increasing in every input."""

    features: int
    kernel_init: Callable = nn.initializers.normal(1.0)
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = jnp.abs(self.param("kernel", self.kernel_init, (x.shape[-1], self.features)))
        y = x @ kernel
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


class _MonotoneNet(nn.Module):
    """VDM's NoiseSchedule_NNet: a linear term plus a monotone sigmoid network of t (scalar -> scalar)."""

    features: int = 256

    @nn.compact
    def __call__(self, t: Array) -> Array:
        t = jnp.reshape(t, (1,))
        h = _DenseMonotone(1, kernel_init=nn.initializers.ones)(t)
        u = _DenseMonotone(self.features)(2.0 * (t - 0.5))
        u = 2.0 * (jax.nn.sigmoid(u) - 0.5)
        h = h + _DenseMonotone(1, use_bias=False)(u) / self.features
        return h[0]


@dataclasses.dataclass(frozen=True)
class LearnedLogSNR:
    """gamma(t) = gamma_0 + (gamma_1 - gamma_0) s(t), s the normalized monotone network (s(0)=0, s(1)=1);
    gamma_0 and gamma_1 > gamma_0 are learned, starting at gamma_min and gamma_max."""

    gamma_min: float
    gamma_max: float
    features: int = 256

    def init(self, key: Array) -> dict:
        return {
            "shape": _MonotoneNet(self.features).init(key, jnp.zeros(()))["params"],
            "gamma0": jnp.asarray(self.gamma_min, jnp.float32),
            "log_range": jnp.asarray(_inverse_softplus(self.gamma_max - self.gamma_min), jnp.float32),
        }

    def endpoints(self, params: dict) -> tuple[Array, Array]:
        return params["gamma0"], params["gamma0"] + jax.nn.softplus(params["log_range"])

    def shape(self, params: dict, t: Array) -> Array:
        h = lambda t: _MonotoneNet(self.features).apply({"params": params["shape"]}, t)
        h0, h1 = h(jnp.zeros(())), h(jnp.ones(()))
        return (h(t) - h0) / (h1 - h0)

    def __call__(self, params: dict, t: Array) -> Array:
        g0, g1 = self.endpoints(params)
        return g0 + (g1 - g0) * self.shape(params, t)


SCHEDULES = {"linear": LinearLogSNR, "cosine": CosineLogSNR, "learned": LearnedLogSNR}


# ----------------------------------------------------------------------------- the process


@dataclasses.dataclass(frozen=True)
class VPProcess:
    """A variance-preserving diffusion: `gamma(params, t)` and the noise predictor `eps_g(params, z, gamma)`.

    Every method acts on ONE example z (of the event shape) at a scalar time t.
    """

    gamma: Callable[[Params, Array], Array]
    eps_g: Callable[[Params, Array, Array], Array]

    def gamma_and_rate(self, params, t) -> tuple[Array, Array]:
        """(gamma(t), gamma'(t))."""
        t = jnp.asarray(t, jnp.float32)
        return jax.jvp(lambda t: self.gamma(params, t), (t,), (jnp.ones_like(t),))

    def alpha_sigma(self, params, t) -> tuple[Array, Array]:
        g = self.gamma(params, jnp.asarray(t, jnp.float32))
        return jnp.sqrt(jax.nn.sigmoid(-g)), jnp.sqrt(jax.nn.sigmoid(g))

    def eps(self, params, z: Array, t: Array) -> Array:
        return self.eps_g(params, z, self.gamma(params, jnp.asarray(t, jnp.float32)))

    def marginal(self, params, x: Array, t: Array, eps: Array) -> Array:
        """z_t = alpha_t x + sigma_t eps."""
        alpha, sigma = self.alpha_sigma(params, t)
        return alpha * x + sigma * eps

    def score(self, params, z: Array, t: Array) -> Array:
        """grad log p_t(z) = -eps_hat / sigma_t."""
        return -self.eps(params, z, t) / self.alpha_sigma(params, t)[1]

    def sde(self, params, z: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE dz = f z dt + g dW: (drift f z, diffusion coefficient g)."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * var * z, jnp.sqrt(rate * var)

    def reverse_drift(self, params, z: Array, t: Array) -> Array:
        """Drift of the reverse-time SDE, f z - g^2 score, in forward time."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * var * z + rate * jnp.sqrt(var) * self.eps_g(params, z, g)

    def ode_drift(self, params, z: Array, t: Array) -> Array:
        """Probability-flow ODE: dz/dt = f z - 1/2 g^2 score = -1/2 gamma' (sigma^2 z - sigma eps_hat)."""
        g, rate = self.gamma_and_rate(params, t)
        var = jax.nn.sigmoid(g)
        return -0.5 * rate * (var * z - jnp.sqrt(var) * self.eps_g(params, z, g))
