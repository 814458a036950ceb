"""Models of short binary vectors x in {0, 1}^d (the tiny discrete world: 3x3 patches, d = 9).

With 2^d states everything is exact, so these models calibrate the continuous estimators:

- `frequency_table`: one probability per state, the empirical frequencies (+ alpha smoothing),
  set at init from the example batch (the naive approach: 2^d parameters, cannot scale).
- `bernoulli`: independent coordinates, marginals set at init (closed-form MLE).
- `autoregressive_bernoulli`: the chain rule, p(x) = prod_i p(x_i | x_<i), Bernoulli conditionals
  from a MADE network; exact log-likelihood in one pass, sampling in d passes.
- `binary_ebm`: p~(x) = exp(-E(x)) with an MLP energy; `objective="exact_ml"` trains by exact
  maximum likelihood (log Z by enumerating all 2^d states in every step), `"pseudo_likelihood"` by
  sum_i log p(x_i | x_-i), which needs no log Z. Its `log_prob` is UNNORMALIZED; samples are exact
  (categorical over the enumerated states).

All declare the `BinarySupport` capability: log Z of an unnormalized one is found by enumeration.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model, check_batch
from gen_jax.core.capabilities import BinarySupport, PartitionFunction
from gen_jax.likelihood.enumerate import all_binary_states
from gen_jax.models.common import nll_loss
from gen_jax.nn.made import MADE
from gen_jax.nn.mlp import MLP
from gen_jax.nn.mlp import activation as activation_fn

MAX_TABLE_BITS = 16


def _check_binary(x, d: int, what: str = "data"):
    check_batch(x, (d,), what)
    x = np.asarray(x)
    if not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{what}: binary models take vectors of 0s and 1s; binarize the data first")
    return x


def _index(x: jax.Array) -> jax.Array:
    """State index of binary rows (most significant bit first), traceable."""
    d = x.shape[-1]
    powers = jnp.asarray(1 << np.arange(d - 1, -1, -1), jnp.int32)
    return jnp.round(x).astype(jnp.int32) @ powers


def _bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """sum_i log Bernoulli(x_i; sigmoid(logits_i)) over the last axis (logits broadcast to x)."""
    logits = jnp.broadcast_to(logits, x.shape)
    return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), axis=-1)


def _info(architecture: str, **kw) -> dict:
    return dict(family="discrete", architecture=architecture, **kw)


def frequency_table(num_bits: int, alpha: float = 0.5, name: str = "freq_table") -> Model:
    """Empirical state frequencies with add-alpha smoothing, from the batch given to `init`."""
    if num_bits > MAX_TABLE_BITS:
        raise ValueError(f"a table of 2^{num_bits} states is too large; use at most {MAX_TABLE_BITS} bits")
    states = jnp.asarray(all_binary_states(num_bits))

    def init(key, x):
        x = _check_binary(x, num_bits, "example batch")
        counts = np.bincount(np.asarray(_index(jnp.asarray(x))), minlength=2**num_bits)
        return {"logits": jnp.log(jnp.asarray(counts, jnp.float32) + alpha)}

    def log_prob(params, x, key=None):
        return jax.nn.log_softmax(params["logits"])[_index(x)]

    def sample(params, key, n):
        return states[jax.random.categorical(key, params["logits"], shape=(n,))]

    return Model(
        name,
        (num_bits,),
        Kind.EXACT,
        init,
        nll_loss(log_prob),
        log_prob,
        sample,
        info=_info(f"table of 2^{num_bits} frequencies, +{alpha} smoothing", objective="counts"),
        capabilities=(BinarySupport(),),
    )


def bernoulli(num_bits: int, name: str = "bernoulli") -> Model:
    """Independent Bernoulli coordinates, initialised at the (smoothed) marginal frequencies."""

    def init(key, x):
        x = _check_binary(x, num_bits, "example batch")
        p = (x.sum(0) + 0.5) / (x.shape[0] + 1.0)
        return {"logits": jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32)}

    def log_prob(params, x, key=None):
        return _bernoulli_log_prob(params["logits"], x)

    def sample(params, key, n):
        probs = jnp.broadcast_to(jax.nn.sigmoid(params["logits"]), (n, num_bits))
        return jax.random.bernoulli(key, probs).astype(jnp.float32)

    return Model(
        name,
        (num_bits,),
        Kind.EXACT,
        init,
        nll_loss(log_prob),
        log_prob,
        sample,
        info=_info(f"{num_bits} independent Bernoullis", objective="counts"),
        capabilities=(BinarySupport(),),
    )


def autoregressive_bernoulli(
    num_bits: int, hidden: Sequence[int] = (64, 64), activation: str = "relu", name: str = "ar_bernoulli"
) -> Model:
    """p(x) = prod_i Bernoulli(x_i; sigmoid(l_i(x_<i))), logits from one MADE pass."""
    net = MADE(tuple(range(num_bits)), tuple(hidden), 1, activation_fn(activation), zero_init_last=True)

    def logits(params, x):
        return net.apply({"params": params}, 2.0 * x - 1.0)[..., 0]

    def init(key, x):
        return net.init(key, jnp.zeros((1, num_bits)))["params"]

    def log_prob(params, x, key=None):
        return _bernoulli_log_prob(logits(params, x), x)

    def sample(params, key, n):
        def step(i, x):
            bit = jax.random.bernoulli(jax.random.fold_in(key, i), jax.nn.sigmoid(logits(params, x)[:, i]))
            return x.at[:, i].set(bit.astype(x.dtype))

        return jax.lax.fori_loop(0, num_bits, step, jnp.zeros((n, num_bits), jnp.float32))

    return Model(
        name,
        (num_bits,),
        Kind.EXACT,
        init,
        nll_loss(log_prob),
        log_prob,
        sample,
        info=_info(f"MADE {list(hidden)} {activation}, Bernoulli conditionals", objective="max_likelihood"),
        capabilities=(BinarySupport(),),
    )


def binary_ebm(
    num_bits: int,
    objective: str = "exact_ml",
    hidden: Sequence[int] = (64, 64),
    activation: str = "silu",
    name: str | None = None,
) -> Model:
    """p~(x) = exp(-E(x)), E an MLP of 2x - 1; trained by exact ML or pseudo-likelihood."""
    if objective not in ("exact_ml", "pseudo_likelihood"):
        raise ValueError(f"unknown objective {objective!r}; choose 'exact_ml' or 'pseudo_likelihood'")
    net = MLP(tuple(hidden), 1, activation_fn(activation))
    states = jnp.asarray(all_binary_states(num_bits))
    flips = jnp.eye(num_bits, dtype=jnp.float32)

    def neg_energy(params, x):  # log p~ of a batch (n, d) -> (n,)
        return -net.apply({"params": params}, 2.0 * x - 1.0)[..., 0]

    def init(key, x):
        return net.init(key, jnp.zeros((1, num_bits)))["params"]

    def log_prob(params, x, key=None):
        return neg_energy(params, x)

    def loss(params, batch, key):
        lp = neg_energy(params, batch)
        if objective == "exact_ml":
            log_z = jax.scipy.special.logsumexp(neg_energy(params, states))
            nll = jnp.mean(log_z - lp)
            return nll, {"nll": nll}
        # pseudo-likelihood: log p(x_i | x_-i) = lp(x) - logaddexp(lp(x), lp(x with bit i flipped))
        flipped = jnp.abs(batch[:, None, :] - flips[None])  # (n, d, d)
        lp_flip = neg_energy(params, flipped.reshape(-1, num_bits)).reshape(batch.shape[0], num_bits)
        npl = -jnp.mean(jnp.sum(lp[:, None] - jnp.logaddexp(lp[:, None], lp_flip), axis=1))
        return npl, {"neg_pseudo_loglik": npl}

    def sample(params, key, n):
        return states[jax.random.categorical(key, neg_energy(params, states), shape=(n,))]

    short = {"exact_ml": "ebm_exact_ml", "pseudo_likelihood": "ebm_pseudo_lik"}[objective]
    return Model(
        name or short,
        (num_bits,),
        Kind.UNNORMALIZED,
        init,
        loss,
        log_prob,
        sample,
        info=_info(f"energy MLP {list(hidden)} {activation}", objective=objective),
        capabilities=(BinarySupport(),),
        internals={"energy": lambda params, x: -neg_energy(params, x[None])[0]},
    )


def ebm_exact_ml(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_exact_ml": binary EBM by exact maximum likelihood (enumeration)."""
    return binary_ebm(num_bits, **{"objective": "exact_ml", **kwargs})


def ebm_pseudo_lik(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_pseudo_lik": binary EBM by pseudo-likelihood."""
    return binary_ebm(num_bits, **{"objective": "pseudo_likelihood", **kwargs})


ebm_exact_ml.forwards_to = binary_ebm
ebm_pseudo_lik.forwards_to = binary_ebm
ebm_exact_ml.fixed_options = {"objective": "exact_ml"}
ebm_pseudo_lik.fixed_options = {"objective": "pseudo_likelihood"}


def bernoulli_mixture(num_bits: int, num_components: int = 50, name: str = "bernoulli_mixture") -> Model:
    """p(x) = sum_k pi_k prod_i Bernoulli(x_i; sigmoid(l_ki)): exact, trained by maximum likelihood.

    Each component starts between one training example and the marginal frequencies."""

    def init(key, x):
        x = _check_binary(x, num_bits, "example batch")
        pick = np.asarray(
            jax.random.choice(key, x.shape[0], (num_components,), replace=x.shape[0] < num_components)
        )
        p = 0.5 * x[pick] + 0.5 * (x.sum(0) + 0.5) / (x.shape[0] + 1.0)
        return {
            "logits": jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32),
            "mix": jnp.zeros(num_components),
        }

    def log_prob(params, x, key=None):
        logits = params["logits"]
        per = x @ jax.nn.log_sigmoid(logits).T + (1.0 - x) @ jax.nn.log_sigmoid(-logits).T  # (n, K)
        return jax.scipy.special.logsumexp(per + jax.nn.log_softmax(params["mix"])[None], axis=-1)

    def sample(params, key, n):
        k_c, k_x = jax.random.split(key)
        c = jax.random.categorical(k_c, params["mix"], shape=(n,))
        return jax.random.bernoulli(k_x, jax.nn.sigmoid(params["logits"][c])).astype(jnp.float32)

    return Model(
        name,
        (num_bits,),
        Kind.EXACT,
        init,
        nll_loss(log_prob),
        log_prob,
        sample,
        info=_info(f"mixture of {num_components} x {num_bits} Bernoullis", objective="max_likelihood"),
        capabilities=(BinarySupport(),),
    )


def linear_log_z(params) -> jax.Array:
    """log Z of the linear energy: b + sum_i log(1 + e^{w_i}) (the sum over x factorizes)."""
    return params["b"] + jnp.sum(jax.nn.softplus(params["w"]))


def linear_energy(num_bits: int, name: str = "linear_energy") -> Model:
    """The linear scoring function log p~(x) = w.x + b (E(x) = -w.x - b): UNNORMALIZED as written.

    Its log Z is closed form (`linear_log_z`), and log p~ - log Z is the independent Bernoulli model
    with logits w; it trains on that normalized likelihood, initialised at its maximum (the marginal
    logits, b = 0)."""

    def init(key, x):
        x = _check_binary(x, num_bits, "example batch")
        p = (x.sum(0) + 0.5) / (x.shape[0] + 1.0)
        return {"w": jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32), "b": jnp.zeros(())}

    def log_prob(params, x, key=None):
        return x @ params["w"] + params["b"]

    def loss(params, batch, key):
        nll = jnp.mean(linear_log_z(params) - log_prob(params, batch))
        return nll, {"nll": nll}

    def sample(params, key, n):
        probs = jnp.broadcast_to(jax.nn.sigmoid(params["w"]), (n, num_bits))
        return jax.random.bernoulli(key, probs).astype(jnp.float32)

    return Model(
        name,
        (num_bits,),
        Kind.UNNORMALIZED,
        init,
        loss,
        log_prob,
        sample,
        info=_info(f"linear score w.x + b, {num_bits + 1} parameters", objective="closed-form log Z"),
        capabilities=(
            BinarySupport(),
            PartitionFunction(lambda p: float(linear_log_z(p)), exact_method="closed form"),
        ),
    )
