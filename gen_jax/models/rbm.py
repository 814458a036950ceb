"""The restricted Boltzmann machine on binary vectors, and its log Z three ways.

    E(v, h) = -b.v - c.h - v W h,   v in {0,1}^D, h in {0,1}^H,
    log p~(v) = b.v + sum_j softplus(c_j + (v W)_j)            (h summed out: the free energy)

`log_prob` is that UNNORMALIZED log p~(v) (Kind.UNNORMALIZED). Training is contrastive divergence
(Hinton 2002): the gradient of mean log p~(data) - mean log p~(chains) with the chains held fixed,
the chains k block-Gibbs steps from the batch (CD-k) or from where the last step left them
(persistent CD, Tieleman 2008: the chains are the model's `aux_state`). log Z:

- `exact_log_z`: the visible units sum out in closed form given h, so with few hidden units
  (H <= 20) log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)] over all 2^H hidden states.
- `ais_log_z`: annealed importance sampling from a base-rate Bernoulli model (Salakhutdinov & Murray
  2008): p_beta(v) prop. to exp((1 - beta) a.v + beta b.v) prod_j (1 + exp(beta (c_j + (v W)_j))),
  a = the data's marginal logits; the chains move by block Gibbs at each beta. A stochastic lower
  bound on log Z (in expectation).
- `reverse_ais_log_z`: the same path run backwards from samples of the RBM: a stochastic upper bound
  when the samples are exact (`exact_samples` draws them when H is small; long Gibbs chains are only
  approximate, which voids the guarantee).

Near beta = 1 a trained RBM mixes slowly under block Gibbs: its hidden states are nearly determined
by v and v by h, so chains stay in the hidden configurations they held at beta ~ 0.9 while the mass
spreads to others. On the `make binary` check RBM (784 x 20, persistent CD-1) the whole deficit of
block-Gibbs AIS arises between beta = 0.95 and 1 (measured against the enumerated log Z_beta), and
more temperatures or sweeps barely move it. So the last part of the path (beta >= `collapsed_from`)
anneals the hidden units alone with the visible units summed out,

    f_beta(h) = exp(beta c.h) prod_i (1 + exp((1 - beta) a_i + beta (b_i + (W h)_i))),

by single-site Gibbs on h (collapsed Gibbs: each flip sees every v at once). The switch is exact:
h ~ p_beta(h | v) at the switching temperature turns weighted v into weighted (v, h), and h's
marginal is the path's next state (the same joint density, v summed out). A collapsed sweep costs
H block sweeps, so the segment is short by default (the last tenth of the temperatures).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.core import Kind, Model
from gen_jax.core.capabilities import BinarySupport, PartitionFunction
from gen_jax.core.model import AuxState
from gen_jax.likelihood.ais import AISResult, log_mean_exp_se
from gen_jax.likelihood.enumerate import all_binary_states

Array = jax.Array
MAX_ENUMERATED_HIDDEN = 20  # 2^20 hidden states: the enumeration's limit (likelihood.enumerate)


def free_log_prob(params, v: Array) -> Array:
    """log p~(v) = b.v + sum_j softplus(c_j + (v W)_j), per row of v (N, D)."""
    return v @ params["b"] + jnp.sum(jax.nn.softplus(v @ params["W"] + params["c"][None]), axis=-1)


def gibbs_step(params, v: Array, key: Array, beta=1.0, base_logits=None) -> Array:
    """One block-Gibbs sweep h ~ p(h | v), v ~ p(v | h) of p_beta (beta = 1: the RBM itself)."""
    k_h, k_v = jax.random.split(key)
    h = _hidden_given_visible(params, v, k_h, beta)
    return _visible_given_hidden(params, base_logits, h, k_v, beta)


def _hidden_given_visible(params, v, key, beta):
    return jax.random.bernoulli(key, jax.nn.sigmoid(beta * (v @ params["W"] + params["c"][None]))).astype(
        v.dtype
    )


def _visible_given_hidden(params, base_logits, h, key, beta):
    """v ~ p_beta(v | h); base_logits None: no base term (the RBM itself at beta)."""
    logits = beta * (h @ params["W"].T + params["b"][None])
    if base_logits is not None:
        logits = logits + (1.0 - beta) * base_logits[None]
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(h.dtype)


def gibbs_chain(params, v: Array, key: Array, num_steps: int) -> Array:
    """`num_steps` block-Gibbs sweeps from v."""
    return jax.lax.fori_loop(0, num_steps, lambda i, s: gibbs_step(params, s, jax.random.fold_in(key, i)), v)


def _hidden_log_weights(params, h: Array) -> Array:
    """log sum_v exp(-E(v, h)) = c.h + sum_i softplus(b_i + (W h)_i), per row of h (M, H)."""
    return h @ params["c"] + jnp.sum(jax.nn.softplus(h @ params["W"].T + params["b"][None]), axis=-1)


def _check_enumerable(params) -> int:
    num_hidden = int(params["c"].shape[0])
    if num_hidden > MAX_ENUMERATED_HIDDEN:
        raise ValueError(
            f"exact log Z enumerates 2^{num_hidden} hidden states; use at most {MAX_ENUMERATED_HIDDEN} "
            "hidden units, or estimate log Z with ais_log_z"
        )
    return num_hidden


def _hidden_chunks(num_hidden: int, chunk: int) -> Array:
    states = all_binary_states(num_hidden).astype(np.float32)
    chunk = min(chunk, len(states))
    return jnp.asarray(states.reshape(-1, chunk, num_hidden))


def hidden_marginal_logits(params, chunk: int = 1 << 14) -> Array:
    """log p~(h) of every hidden state (2^H,), in state-index order (most significant bit first)."""
    states = _hidden_chunks(_check_enumerable(params), chunk)
    return jax.lax.map(lambda h: _hidden_log_weights(params, h), states).reshape(-1)


def exact_log_z(params, chunk: int = 1 << 14) -> float:
    """log Z by enumerating the 2^H hidden states (visible units summed out in closed form)."""
    return float(
        jax.scipy.special.logsumexp(jax.jit(hidden_marginal_logits, static_argnums=1)(params, chunk))
    )


def exact_samples(params, key: Array, n: int) -> Array:
    """n exact samples of v: h from its enumerated marginal, then v ~ p(v | h)."""
    num_hidden = _check_enumerable(params)
    k_h, k_v = jax.random.split(key)
    # inverse CDF over the 2^H states (a categorical draw would materialize n x 2^H Gumbel noises)
    cdf = jnp.cumsum(jax.nn.softmax(hidden_marginal_logits(params)))
    index = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(k_h, (n,)) * cdf[-1]), cdf.shape[0] - 1)
    bits = (index[:, None] >> jnp.arange(num_hidden - 1, -1, -1)[None]) & 1
    h = bits.astype(jnp.float32)
    return jax.random.bernoulli(k_v, jax.nn.sigmoid(h @ params["W"].T + params["b"][None])).astype(
        jnp.float32
    )


def _path_log_density(params, base_logits, v, beta):
    """log f_beta(v) = (1 - beta) a.v + beta b.v + sum_j softplus(beta (c_j + (v W)_j))."""
    pre = v @ params["W"] + params["c"][None]
    return (
        (1.0 - beta) * (v @ base_logits) + beta * (v @ params["b"]) + jnp.sum(jax.nn.softplus(beta * pre), -1)
    )


def _base_log_z(params, base_logits) -> Array:
    # at beta = 0 the hidden units are uniform: Z_0 = prod_i (1 + e^{a_i}) * 2^H
    return jnp.sum(jax.nn.softplus(base_logits)) + params["c"].shape[0] * jnp.log(2.0)


def _anneal(params, base_logits, v0, key, betas):
    """Chains v0 along betas[0] -> betas[-1] (either direction): (log w (N,), final v)."""

    def body(carry, inp):
        v, log_w = carry
        b_prev, b, k = inp
        log_w = (
            log_w
            + _path_log_density(params, base_logits, v, b)
            - _path_log_density(params, base_logits, v, b_prev)
        )
        return (gibbs_step(params, v, k, b, base_logits), log_w), None

    keys = jax.random.split(key, betas.shape[0] - 1)
    (v, log_w), _ = jax.lax.scan(body, (v0, jnp.zeros(v0.shape[0])), (betas[:-1], betas[1:], keys))
    return log_w, v


def hidden_path_log_density(params, base_logits, h, wh, beta):
    """log f_beta(h) = beta c.h + sum_i softplus((1 - beta) a_i + beta (b_i + (W h)_i)); wh = h W^T."""
    pre = (1.0 - beta) * base_logits[None] + beta * (params["b"][None] + wh)
    return beta * (h @ params["c"]) + jnp.sum(jax.nn.softplus(pre), -1)


def collapsed_sweep(params, base_logits, h, wh, key, beta):
    """One systematic-scan sweep of single-site Gibbs on h under f_beta(h) (v summed out); wh = h W^T
    is carried and updated with each flip (O(D) per site)."""
    w = params["W"]
    u = jax.random.uniform(key, (w.shape[1], h.shape[0]))

    def site(j, carry):
        h, wh = carry
        hj = h[:, j]
        off = (1.0 - beta) * base_logits[None] + beta * (params["b"][None] + wh - w[:, j][None] * hj[:, None])
        log_odds = beta * params["c"][j] + jnp.sum(
            jax.nn.softplus(off + beta * w[:, j][None]) - jax.nn.softplus(off), -1
        )
        new = (u[j] < jax.nn.sigmoid(log_odds)).astype(h.dtype)
        return h.at[:, j].set(new), wh + w[:, j][None] * (new - hj)[:, None]

    return jax.lax.fori_loop(0, w.shape[1], site, (h, wh))


def _anneal_hidden(params, base_logits, h0, key, betas):
    """`_anneal` on the hidden units with v summed out (collapsed single-site Gibbs)."""

    def body(carry, inp):
        h, wh, log_w = carry
        b_prev, b, k = inp
        log_w = (
            log_w
            + hidden_path_log_density(params, base_logits, h, wh, b)
            - hidden_path_log_density(params, base_logits, h, wh, b_prev)
        )
        h, wh = collapsed_sweep(params, base_logits, h, wh, k, b)
        return (h, wh, log_w), None

    keys = jax.random.split(key, betas.shape[0] - 1)
    init = (h0, h0 @ params["W"].T, jnp.zeros(h0.shape[0]))
    (h, _, log_w), _ = jax.lax.scan(body, init, (betas[:-1], betas[1:], keys))
    return log_w, h


def _split(num_temps: int, collapsed_from: float) -> int:
    """Index of the first collapsed temperature on the linear ladder (num_temps: none collapsed)."""
    if not 0.0 <= collapsed_from <= 1.0:
        raise ValueError(f"collapsed_from must be in [0, 1], got {collapsed_from}")
    return int(round(collapsed_from * num_temps))


def _forward(params, base_logits, v0, key, betas, split):
    """Block Gibbs on v for betas[:split + 1], then collapsed Gibbs on h for betas[split:]."""
    k_v, k_h, k_c, k_out = jax.random.split(key, 4)
    log_w, v = _anneal(params, base_logits, v0, k_v, betas[: split + 1])
    if split < betas.shape[0] - 1:
        h = _hidden_given_visible(params, v, k_h, betas[split])
        log_w_h, h = _anneal_hidden(params, base_logits, h, k_c, betas[split:])
        log_w, v = log_w + log_w_h, _visible_given_hidden(params, base_logits, h, k_out, betas[-1])
    return log_w, v


def _backward(params, base_logits, v0, key, betas, split):
    """`_forward` run from beta = 1 down (betas ascending): collapsed on h first, then block on v."""
    k_v, k_h, k_c, k_out = jax.random.split(key, 4)
    log_w = jnp.zeros(v0.shape[0])
    v = v0
    if split < betas.shape[0] - 1:
        h = _hidden_given_visible(params, v0, k_h, betas[-1])
        log_w, h = _anneal_hidden(params, base_logits, h, k_c, betas[split:][::-1])
        v = _visible_given_hidden(params, base_logits, h, k_out, betas[split])
    log_w_v, v = _anneal(params, base_logits, v, k_v, betas[: split + 1][::-1])
    return log_w + log_w_v, v


_FORWARD = jax.jit(_forward, static_argnums=5)  # compiled once per shape, not per call
_BACKWARD = jax.jit(_backward, static_argnums=5)


def _result(log_z0, log_w, v, num_temps, direction="forward") -> AISResult:
    """The AIS result with log Z_0 folded into the weights (forward: w estimates Z; reverse: 1 / Z)."""
    log_w = np.asarray(log_w, np.float64) + (float(log_z0) if direction == "forward" else -float(log_z0))
    est, se, ess = log_mean_exp_se(log_w)
    est = est if direction == "forward" else -est
    return AISResult(est, se, ess, len(log_w), num_temps, log_w, v, np.ones(num_temps), np.ones(1), direction)


def ais_log_z(
    params,
    base_logits,
    key: Array,
    num_chains: int = 100,
    num_temps: int = 10_000,
    collapsed_from: float = 0.9,
) -> AISResult:
    """Forward AIS from the base-rate model: log Z in expectation from below (see the module doc);
    temperatures >= `collapsed_from` anneal h with v summed out (1.0: block Gibbs throughout).
    `log_z_bound` of the result is log Z_0 + mean log w, a lower bound in expectation too."""
    betas = jnp.linspace(0.0, 1.0, num_temps + 1)
    base_logits = jnp.asarray(base_logits, jnp.float32)
    k0, k1 = jax.random.split(key)
    probs = jnp.broadcast_to(jax.nn.sigmoid(base_logits), (num_chains, base_logits.shape[0]))
    v0 = jax.random.bernoulli(k0, probs).astype(jnp.float32)
    split = _split(num_temps, collapsed_from)
    log_w, v = _FORWARD(params, base_logits, v0, k1, betas, split)
    return _result(_base_log_z(params, base_logits), log_w, v, num_temps)


def reverse_ais_log_z(
    params, base_logits, samples: Array, key: Array, num_temps: int = 10_000, collapsed_from: float = 0.9
) -> AISResult:
    """Reverse AIS from samples of the RBM (exact ones: an upper bound on log Z in expectation)."""
    betas = jnp.linspace(0.0, 1.0, num_temps + 1)
    base_logits = jnp.asarray(base_logits, jnp.float32)
    split = _split(num_temps, collapsed_from)
    v0 = jnp.asarray(samples, jnp.float32)
    log_w, v = _BACKWARD(params, base_logits, v0, key, betas, split)
    return _result(_base_log_z(params, base_logits), log_w, v, num_temps, "reverse")


def partition_function(sample_steps: int = 1000, collapsed_from: float = 0.9) -> PartitionFunction:
    """The RBM's log Z: enumeration over hidden states when H <= MAX_ENUMERATED_HIDDEN, AIS from the
    base-rate model of the reference data (collapsed on h for beta >= `collapsed_from`), and reverse AIS
    from exact samples when H is small (else from `sample_steps` Gibbs sweeps started at reference
    examples: approximate, no guarantee)."""

    def exact(params):
        return exact_log_z(params) if params["c"].shape[0] <= MAX_ENUMERATED_HIDDEN else None

    def forward(params, reference, key, num_chains, num_temps):
        return ais_log_z(params, base_rate_logits(reference), key, num_chains, num_temps, collapsed_from)

    def reverse(params, reference, key, num_chains, num_temps):
        k_start, k_run = jax.random.split(key)
        if params["c"].shape[0] <= MAX_ENUMERATED_HIDDEN:
            start, how = exact_samples(params, k_start, num_chains), "exact samples"
        else:
            x0 = jnp.asarray(np.asarray(reference)[:num_chains], jnp.float32)
            start = gibbs_chain(params, x0, k_start, sample_steps)
            how = f"{sample_steps} Gibbs sweeps from training examples (approximate)"
        base = base_rate_logits(reference)
        return reverse_ais_log_z(params, base, start, k_run, num_temps, collapsed_from), how

    moves = (
        "block Gibbs"
        if collapsed_from >= 1.0
        else f"block Gibbs, then from beta = {collapsed_from:g} collapsed Gibbs on h (v summed out)"
    )
    return PartitionFunction(
        exact, forward, reverse, exact_method="enumeration of the hidden states", ais_method=moves
    )


def base_rate_logits(x, smoothing: float = 1.0) -> np.ndarray:
    """Logits of the data's marginal frequencies (add-`smoothing`): AIS's base-rate model."""
    x = np.asarray(x, np.float64)
    p = (x.sum(0) + smoothing) / (len(x) + 2 * smoothing)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def rbm(
    num_bits: int,
    num_hidden: int = 500,
    cd_steps: int = 1,
    persistent: bool = True,
    num_chains: int = 100,
    sample_steps: int = 1000,
    init_scale: float = 0.01,
    ais_collapsed_from: float = 0.9,
    name: str = "rbm",
) -> Model:
    """An RBM with `num_hidden` hidden units trained by CD-k or persistent CD (see the module doc).

    persistent: `num_chains` chains (started at the first training examples) carry over between steps.
    sample_steps: block-Gibbs sweeps from the base-rate model for `sample`.
    ais_collapsed_from: AIS anneals h alone (v summed out) from this temperature on (module doc); a
    collapsed sweep costs `num_hidden` block sweeps, so large RBMs may start it later (1.0: never).
    """
    if num_hidden < 1 or cd_steps < 1:
        raise ValueError(f"an RBM needs num_hidden >= 1 and cd_steps >= 1, got {num_hidden}, {cd_steps}")
    if not 0.0 <= ais_collapsed_from <= 1.0:
        raise ValueError(
            f"ais_collapsed_from is a temperature in [0, 1] (1: block Gibbs only), got {ais_collapsed_from}"
        )

    def init(key, x):
        x = np.asarray(x, np.float32)
        w = init_scale * jax.random.normal(key, (num_bits, num_hidden))
        return {"W": w, "b": jnp.asarray(base_rate_logits(x)), "c": jnp.zeros(num_hidden)}

    def log_prob(params, x, key=None):
        return free_log_prob(params, x)

    def loss(params, batch, key, chains=None):
        start = batch if chains is None else chains
        negative = jax.lax.stop_gradient(gibbs_chain(jax.lax.stop_gradient(params), start, key, cd_steps))
        gap = jnp.mean(free_log_prob(params, negative)) - jnp.mean(free_log_prob(params, batch))
        # how far the chains' pixel means are from the batch's (the chains may be fewer than the batch)
        drift = jnp.mean(jnp.abs(jnp.mean(negative, 0) - jnp.mean(batch, 0)))
        metrics = {"free_energy_gap": gap, "pixel_mean_gap": drift}
        return (gap, metrics) if chains is None else (gap, (metrics, negative))

    def sample(params, key, n):
        k0, k1 = jax.random.split(key)
        p0 = jnp.broadcast_to(jax.nn.sigmoid(params["b"]), (n, num_bits))
        v0 = jax.random.bernoulli(k0, p0).astype(jnp.float32)
        return gibbs_chain(params, v0, k1, sample_steps)

    aux = AuxState(lambda key, params, x: jnp.asarray(x[:num_chains], jnp.float32)) if persistent else None
    rule = f"{'persistent ' if persistent else ''}CD-{cd_steps}"
    return Model(
        name,
        (num_bits,),
        Kind.UNNORMALIZED,
        init,
        loss,
        log_prob,
        sample,
        info=dict(family="rbm", architecture=f"RBM {num_bits} x {num_hidden}", objective=rule),
        capabilities=(BinarySupport(), partition_function(sample_steps, ais_collapsed_from)),
        aux_state=aux,
    )
