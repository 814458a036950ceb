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

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model, check_batch
from gen_jax.core.capabilities import BinarySupport, LearnedLogZ, PartitionFunction
from gen_jax.core.model import AuxState
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


BINARY_OBJECTIVES = ("exact_ml", "pseudo_likelihood", "nce", "cd")


def _gibbs_sweep(neg_energy, params, x, key):
    """One systematic sweep of single-site Gibbs updates over every bit of a batch x (n, d)."""

    def one(i, x):
        on, off = x.at[:, i].set(1.0), x.at[:, i].set(0.0)
        p_on = jax.nn.sigmoid(neg_energy(params, on) - neg_energy(params, off))
        bit = jax.random.bernoulli(jax.random.fold_in(key, i), p_on).astype(x.dtype)
        return x.at[:, i].set(bit)

    return jax.lax.fori_loop(0, x.shape[1], one, x)


def _binary_ebm_loss(objective: str, neg_energy, states, flips, cd_sweeps: int, nce_ratio: int):
    """The training objective of `binary_ebm` (see its docstring)."""

    def loss(params, batch, key, *chains):
        lp = neg_energy(params, batch)
        if objective == "exact_ml":
            nll = jnp.mean(jax.scipy.special.logsumexp(neg_energy(params, states)) - lp)
            return nll, {"nll": nll}
        if objective == "nce":  # noise: the data's independent Bernoulli model, nce_ratio per data point
            logits = jax.lax.stop_gradient(params["nce_noise"])
            shape = (batch.shape[0] * nce_ratio, batch.shape[1])
            noise = jax.random.bernoulli(key, jax.nn.sigmoid(jnp.broadcast_to(logits, shape))).astype(
                batch.dtype
            )
            log_noise = lambda x: _bernoulli_log_prob(logits, x) + math.log(nce_ratio)
            g = lambda x: neg_energy(params, x) - params["log_z"] - log_noise(x)
            value = jnp.mean(jax.nn.softplus(-g(batch))) + nce_ratio * jnp.mean(jax.nn.softplus(g(noise)))
            return value, {"nce": value}
        if objective == "cd":  # persistent chains (without them: CD-k from the batch), Gibbs sweeps
            frozen = jax.lax.stop_gradient(params)
            sweep = lambda i, x: _gibbs_sweep(neg_energy, frozen, x, jax.random.fold_in(key, i))
            new = jax.lax.stop_gradient(
                jax.lax.fori_loop(0, cd_sweeps, sweep, chains[0] if chains else batch)
            )
            value = jnp.mean(neg_energy(params, new)) - jnp.mean(lp)
            return (value, ({"cd": value}, new)) if chains else (value, {"cd": value})
        # pseudo-likelihood: log p(x_i | x_-i) = lp(x) - logaddexp(lp(x), lp(x with bit i flipped))
        flipped = jnp.abs(batch[:, None, :] - flips[None])  # (n, d, d)
        lp_flip = neg_energy(params, flipped.reshape(-1, batch.shape[1])).reshape(batch.shape)
        npl = -jnp.mean(jnp.sum(lp[:, None] - jnp.logaddexp(lp[:, None], lp_flip), axis=1))
        return npl, {"neg_pseudo_loglik": npl}

    return loss


def binary_ebm(
    num_bits: int,
    objective: str = "exact_ml",
    hidden: Sequence[int] = (64, 64),
    activation: str = "silu",
    cd_chains: int = 256,
    cd_sweeps: int = 1,
    nce_ratio: int = 8,
    name: str | None = None,
) -> Model:
    """p~(x) = exp(-E(x)), E an MLP of 2x - 1. Objectives: "exact_ml" (log Z enumerated each step),
    "pseudo_likelihood", "nce" (log Z learned against `nce_ratio` samples per data point of the data's
    independent-Bernoulli model) and
    "cd" (`cd_chains` persistent chains, `cd_sweeps` single-site Gibbs sweeps per step)."""
    if objective not in BINARY_OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {BINARY_OBJECTIVES}")
    net = MLP(tuple(hidden), 1, activation_fn(activation))
    states = jnp.asarray(all_binary_states(num_bits))
    flips = jnp.eye(num_bits, dtype=jnp.float32)

    def neg_energy(params, x):  # log p~ of a batch (n, d) -> (n,)
        return -net.apply({"params": params["net"]}, 2.0 * x - 1.0)[..., 0]

    def init(key, x):
        params = {"net": net.init(key, jnp.zeros((1, num_bits)))["params"]}
        if objective == "nce":
            p = (np.asarray(x).sum(0) + 1.0) / (len(x) + 2.0)
            params.update(nce_noise=jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32), log_z=jnp.zeros(()))
        return params

    def sample(params, key, n):
        return states[jax.random.categorical(key, neg_energy(params, states), shape=(n,))]

    def chains(key, params, x):
        p = jnp.broadcast_to(jnp.mean(jnp.asarray(x, jnp.float32), 0), (cd_chains, num_bits))
        return jax.random.bernoulli(key, p).astype(jnp.float32)

    short = {"exact_ml": "ebm_exact_ml", "pseudo_likelihood": "ebm_pseudo_lik"}.get(
        objective, f"ebm_bin_{objective}"
    )
    caps = (BinarySupport(),) + ((LearnedLogZ(lambda params: params["log_z"]),) if objective == "nce" else ())
    return Model(
        name or short,
        (num_bits,),
        Kind.UNNORMALIZED,
        init,
        _binary_ebm_loss(objective, neg_energy, states, flips, cd_sweeps, nce_ratio),
        lambda params, x, key=None: neg_energy(params, x),
        sample,
        info=_info(f"energy MLP {list(hidden)} {activation}", objective=objective),
        capabilities=caps,
        aux_state=AuxState(chains) if objective == "cd" else None,
        internals={"energy": lambda params, x: -neg_energy(params, x[None])[0]},
    )


def ebm_exact_ml(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_exact_ml": binary EBM by exact maximum likelihood (enumeration)."""
    return binary_ebm(num_bits, **{"objective": "exact_ml", **kwargs})


def ebm_pseudo_lik(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_pseudo_lik": binary EBM by pseudo-likelihood."""
    return binary_ebm(num_bits, **{"objective": "pseudo_likelihood", **kwargs})


def ebm_bin_nce(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_bin_nce": binary EBM by noise-contrastive estimation (log Z learned)."""
    return binary_ebm(num_bits, **{"objective": "nce", **kwargs})


def ebm_bin_cd(num_bits: int, **kwargs) -> Model:
    """Registry entry "ebm_bin_cd": binary EBM by contrastive divergence (persistent Gibbs chains)."""
    return binary_ebm(num_bits, **{"objective": "cd", **kwargs})


for _entry, _objective in (
    (ebm_exact_ml, "exact_ml"),
    (ebm_pseudo_lik, "pseudo_likelihood"),
    (ebm_bin_nce, "nce"),
    (ebm_bin_cd, "cd"),
):
    _entry.forwards_to = binary_ebm
    _entry.fixed_options = {"objective": _objective}


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
        info=_info(
            f"linear score w.x + b, {num_bits + 1} parameters", objective="maximum likelihood (closed form)"
        ),
        capabilities=(
            BinarySupport(),
            PartitionFunction(lambda p: float(linear_log_z(p)), exact_method="closed form"),
        ),
    )
