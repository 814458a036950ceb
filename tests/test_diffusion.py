"""Diffusion: the bound, the probability-flow ODE and the samplers against closed forms.

For Gaussian data x ~ N(mu, S) the marginals of the VP process are Gaussian,
z_t ~ N(alpha_t mu, alpha_t^2 S + sigma_t^2 I), so the exact noise predictor is
eps*(z, t) = sigma_t V_t^{-1} (z - alpha_t mu): plugged into the process, every likelihood and
sampler has a known answer.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import raw_model

from gen_jax.core.units import nats_to_bits_per_dim
from gen_jax.evaluation import evaluate_nll
from gen_jax.likelihood import diffusion_bound as bound
from gen_jax.likelihood.ode import (
    ODEConfig,
    exact_divergence,
    hutchinson_divergence,
    ode_log_prob,
    sample_probe,
)
from gen_jax.models import Kind
from gen_jax.nn.unet import UNet
from gen_jax.process import CosineLogSNR, LearnedLogSNR, LinearLogSNR, VPProcess
from gen_jax.sampling.diffusion import ode_sample, sde_sample
from gen_jax.training import TrainConfig

MU = jnp.array([0.5, -1.0])
COV = jnp.array([[0.6, 0.35], [0.35, 1.2]])
GAMMA_MIN, GAMMA_MAX = -9.0, 7.0
LINEAR = LinearLogSNR(GAMMA_MIN, GAMMA_MAX)


def _marginal(t, schedule=LINEAR, mu=MU, cov=COV):
    g = schedule({}, t)
    a2, s2 = jax.nn.sigmoid(-g), jax.nn.sigmoid(g)
    return jnp.sqrt(a2) * mu, a2 * cov + s2 * jnp.eye(mu.shape[0])


def _gaussian_process(schedule=LINEAR, mu=MU, cov=COV) -> VPProcess:
    def eps_g(params, z, g):
        a2, s2 = jax.nn.sigmoid(-g), jax.nn.sigmoid(g)
        v = a2 * cov + s2 * jnp.eye(mu.shape[0])
        return jnp.sqrt(s2) * jnp.linalg.solve(v, z - jnp.sqrt(a2) * mu)

    return VPProcess(schedule, eps_g)


def _mvn_log_prob(mean, cov):
    one = lambda z: jax.scipy.stats.multivariate_normal.logpdf(z, mean, cov)
    return lambda z: one(z) if z.ndim == 1 else jax.vmap(one)(z)


@pytest.mark.parametrize("schedule", [LINEAR, CosineLogSNR(GAMMA_MIN, GAMMA_MAX)])
def test_ode_with_exact_score_gives_analytic_log_density(schedule):
    process = _gaussian_process(schedule)
    mean0, cov0 = _marginal(0.0, schedule)
    mean1, cov1 = _marginal(1.0, schedule)
    z0 = mean0[None] + jax.random.normal(jax.random.key(0), (64, 2)) @ jnp.linalg.cholesky(2.0 * cov0).T
    drift = lambda z, t: process.ode_drift(None, z, t)
    cfg = ODEConfig(rtol=1e-6, atol=1e-6)
    lp, nfe = jax.jit(lambda z: ode_log_prob(drift, _mvn_log_prob(mean1, cov1), z, None, cfg))(z0)
    np.testing.assert_allclose(lp, _mvn_log_prob(mean0, cov0)(z0), atol=1e-3)
    assert np.all(np.asarray(nfe) > 10)


def test_ode_with_hutchinson_divergence_is_unbiased():
    process = _gaussian_process()
    mean0, cov0 = _marginal(0.0)
    mean1, cov1 = _marginal(1.0)
    z0 = jnp.repeat(jnp.array([[0.9, -0.2], [-0.5, -2.5]]), 256, axis=0)  # 2 points, 256 probes each
    drift = lambda z, t: process.ode_drift(None, z, t)
    for probe in ("rademacher", "gaussian"):
        cfg = ODEConfig(rtol=1e-5, atol=1e-5, divergence="hutchinson", probe=probe)
        f = jax.jit(lambda z, k: ode_log_prob(drift, _mvn_log_prob(mean1, cov1), z, k, cfg)[0])
        lp = np.asarray(f(z0, jax.random.key(9))).reshape(2, 256)
        se = lp.std(axis=1) / 16
        err = lp.mean(axis=1) - np.asarray(_mvn_log_prob(mean0, cov0)(z0[::256]))
        assert np.all(np.abs(err) < 3.5 * se + 1e-3), (probe, err, se)
        assert np.all(lp.std(axis=1) > 1e-3)  # the probes do vary the estimate


def test_divergences():
    w = jax.random.normal(jax.random.key(1), (5, 5))
    f = lambda z: jnp.tanh(w @ z) + 0.3 * z**2
    z = jax.random.normal(jax.random.key(2), (5,))
    y, div = jax.jit(lambda z: exact_divergence(f, z))(z)
    np.testing.assert_allclose(y, f(z), rtol=1e-6)
    np.testing.assert_allclose(div, jnp.trace(jax.jacfwd(f)(z)), rtol=1e-5)
    n = 20_000
    for kind in ("rademacher", "gaussian"):

        @jax.jit
        def estimates(key):
            probes = jax.vmap(lambda k: sample_probe(k, (5,), kind))(jax.random.split(key, n))
            return jax.vmap(lambda v: hutchinson_divergence(f, z, v)[1])(probes)

        est = np.asarray(estimates(jax.random.key(3)))
        se = est.std() / math.sqrt(n)
        assert abs(est.mean() - float(div)) < 3.5 * se, (kind, est.mean(), float(div), se)
        assert est.std() > 0.05  # it is an estimate, not the trace itself


def test_bound_with_exact_score_is_tight_and_below_the_truth():
    """With the exact noise predictor the forward and reverse path measures agree, so the bound equals
    log p(x) up to the endpoints (prior mismatch, Gaussian decoder): a test of all three terms."""
    process = _gaussian_process()
    x = MU[None] + jax.random.normal(jax.random.key(4), (2000, 2)) @ jnp.linalg.cholesky(COV).T
    keys = jax.random.split(jax.random.key(5), x.shape[0])
    elbo = jax.jit(jax.vmap(lambda x, k: bound.elbo_terms(process, None, x, k, 64)["elbo"]))(x, keys)
    gap = np.asarray(_mvn_log_prob(MU, COV)(x) - elbo)
    se = gap.std() / math.sqrt(len(gap))
    assert -3 * se < gap.mean() < 0.01 + 3 * se, (gap.mean(), se)
    assert se < 0.015


def _kl_normal(m1, v1, m2, v2):
    return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def _analytic_discretized_bound(schedule, var, values):
    """The 8-bit bound of the exact-score model of N(0, var) (encoded scale), per value, in closed form.

    With the exact score the reverse path given z_1 is the data's own, so the diffusion term equals
    KL(q(z_0|x) || p(z_0)) - KL(q(z_1|x) || p(z_1)) for the true marginals p(z_t) = N(0, a_t var + s_t);
    the bound is E log P(x | z_0) (Gauss-Hermite in eps_0) - KL(q(z_1|x) || N(0, 1)) minus that."""
    a0, a1 = (float(jax.nn.sigmoid(-schedule({}, jnp.asarray(t)))) for t in (0.0, 1.0))
    s0, s1 = 1 - a0, 1 - a1
    process = _gaussian_process(schedule, jnp.zeros(1), jnp.array([[var]]))
    c = np.asarray(bound.encode_8bit(values))
    nodes, w = np.polynomial.hermite_e.hermegauss(80)
    z0 = math.sqrt(a0) * c[:, None] + math.sqrt(s0) * nodes[None]
    logp = np.asarray(bound.discretized_log_probs(process, None, jnp.asarray(z0, jnp.float32)))
    idx = np.arange(len(values))
    recon = logp[idx, :, values.astype(int)] @ (w / w.sum())
    m0, m1 = math.sqrt(a0) * c, math.sqrt(a1) * c
    return (
        recon
        - _kl_normal(m1, s1, 0.0, 1.0)
        - _kl_normal(m0, s0, 0.0, a0 * var + s0)
        + _kl_normal(m1, s1, 0.0, a1 * var + s1)
    )


def test_discretized_bound_matches_its_analytic_mass():
    """8-bit bound of the exact-score model of a Gaussian: per value and summed over all 256 values
    (the total probability mass the bound accounts for), the Monte Carlo bound equals the closed form
    above, and the mass is below 1. A wrong offset in any of the three terms moves every value."""
    schedule = LinearLogSNR(-13.3, 5.0)
    var = 0.09
    process = _gaussian_process(schedule, jnp.zeros(1), jnp.array([[var]]))
    values = jnp.arange(256, dtype=jnp.float32)[:, None]
    keys = jax.random.split(jax.random.key(6), 256 * 64).reshape(256, 64)
    terms = jax.vmap(
        jax.vmap(lambda x, k: bound.elbo_terms(process, None, x, k, 32, "discretized")["elbo"], (None, 0))
    )
    draws = np.asarray(jax.jit(terms)(values, keys), np.float64)
    elbo, se = draws.mean(axis=1), draws.std(axis=1) / math.sqrt(draws.shape[1])
    exact = _analytic_discretized_bound(schedule, var, np.arange(256.0))
    assert abs(np.mean(elbo - exact)) < 4 * np.sqrt(np.mean(se**2) / 256), np.mean(elbo - exact)
    assert np.max(np.abs(elbo - exact) / se) < 5
    mass, exact_mass = float(np.sum(np.exp(elbo))), float(np.sum(np.exp(exact)))
    assert exact_mass < 1.0 and abs(mass - exact_mass) < 0.01 * exact_mass, (mass, exact_mass)
    bpd = nats_to_bits_per_dim(-elbo, 1)
    np.testing.assert_allclose(bpd, -elbo / math.log(2), rtol=1e-6)


def _moments_close(samples, mean, cov, tol):
    samples = np.asarray(samples)
    np.testing.assert_allclose(samples.mean(0), mean, atol=tol)
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=1.5 * tol)


def test_samplers_produce_the_data_moments():
    """From z_1 drawn from the exact p_1, every sampler with the exact score must land on N(mu, S); the
    SDE samplers' discretization error is O(1/steps) (the ancestral step under-disperses by about 2%
    at 400 steps here), inside the tolerance of 3.5 standard errors of 4000 samples."""
    process = _gaussian_process()
    mean0, cov0 = _marginal(0.0)
    mean1, cov1 = _marginal(1.0)
    n = 4000
    z1 = mean1[None] + jax.random.normal(jax.random.key(7), (n, 2)) @ jnp.linalg.cholesky(cov1).T
    key = jax.random.key(8)
    anc = jax.jit(lambda z1: sde_sample(process, None, key, n, (2,), 500, "ancestral", z1))(z1)
    em = jax.jit(lambda z1: sde_sample(process, None, key, n, (2,), 500, "euler_maruyama", z1))(z1)
    cfg = ODEConfig(rtol=1e-4, atol=1e-4)
    ode, nfe = jax.jit(lambda z1: ode_sample(process, None, key, n, (2,), cfg, z1))(z1)
    for s in (anc, em, ode):
        _moments_close(s, mean0, cov0, 0.06)
    assert float(nfe.mean()) > 10
    # the ODE is a deterministic, nearly affine map here: z1's own sample mean lands on the data's
    shift = np.asarray(ode).mean(0) - np.asarray(mean0)
    expected = np.asarray(
        jnp.linalg.cholesky(cov0) @ jnp.linalg.solve(jnp.linalg.cholesky(cov1), z1.mean(0) - mean1)
    )
    np.testing.assert_allclose(shift, expected, atol=5e-3)


def test_schedules_are_increasing_between_their_endpoints():
    t = jnp.linspace(0.0, 1.0, 101)
    for sched in (LinearLogSNR(-10.0, 6.0), CosineLogSNR(-10.0, 6.0), LearnedLogSNR(-10.0, 6.0, 32)):
        params = sched.init(jax.random.key(0))
        g, rate = jax.jit(jax.vmap(jax.value_and_grad(lambda t: sched(params, t))))(t)
        np.testing.assert_allclose([g[0], g[-1]], [-10.0, 6.0], atol=1e-4)
        assert np.all(np.asarray(rate) > 0), type(sched).__name__
    # the cosine schedule is alpha_t = cos(a t + b)
    cos = CosineLogSNR(-10.0, 6.0)
    b = math.atan(math.exp(-5.0))
    a = math.atan(math.exp(3.0)) - b
    np.testing.assert_allclose(jax.nn.sigmoid(-cos({}, t)), jnp.cos(a * t + b) ** 2, atol=1e-5)


def test_losses_simple_elbo_and_learned_schedule():
    """The simple loss is the epsilon MSE; the likelihood-weighted loss is the bound; the learned
    schedule's variance objective adds a zero-valued term that leaves the network's and the
    endpoints' gradients those of the bound and moves the schedule's shape (one compile)."""
    x = jnp.asarray(_moons(64, jax.random.key(20)))
    kw = dict(width=16, num_blocks=1, embed_dim=8)
    simple = raw_model("diffusion", (2,), loss="simple", **kw)
    elbo = raw_model("diffusion", (2,), loss="elbo", **kw)
    learned = {
        obj: raw_model("diffusion", (2,), schedule="learned", schedule_objective=obj, **kw)
        for obj in ("variance", "elbo")
    }
    params = simple.init(jax.random.key(22), x)
    lparams = learned["elbo"].init(jax.random.key(23), x)

    @jax.jit
    def everything(params, lparams, key):
        grads = {o: jax.value_and_grad(m.loss, has_aux=True)(lparams, x, key) for o, m in learned.items()}
        return simple.loss(params, x, key), elbo.loss(params, x, key), grads

    (loss, metrics), (loss_e, metrics_e), out = everything(params, lparams, jax.random.key(21))
    np.testing.assert_allclose(loss, metrics["mse_per_dim"], rtol=1e-6)
    np.testing.assert_allclose(loss_e, metrics_e["elbo_nll"], rtol=1e-6)
    np.testing.assert_allclose(metrics_e["mse_per_dim"], metrics["mse_per_dim"], rtol=1e-6)
    grads = {}
    for objective, ((value, m), g) in out.items():
        np.testing.assert_allclose(value, m["elbo_nll"], rtol=1e-5)  # the surrogate adds zero
        grads[objective] = g
    for path in (("net",), ("schedule", "gamma0"), ("schedule", "log_range")):
        a, b = grads["variance"], grads["elbo"]
        for k in path:
            a, b = a[k], b[k]
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)
    shape_diff = jax.tree_util.tree_map(
        lambda u, v: float(jnp.max(jnp.abs(u - v))),
        grads["variance"]["schedule"]["shape"],
        grads["elbo"]["schedule"]["shape"],
    )
    assert max(jax.tree_util.tree_leaves(shape_diff)) > 1e-6  # the variance objective moves the shape


def _moons(n, key):
    from gen_jax.data.toy2d import get_toy

    return np.asarray(get_toy("moons").sample(key, n))


def test_trained_model_bound_is_below_its_ode_likelihood(tmp_path):
    """Trained through the experiments' fit_and_evaluate (as `make toy` runs it): one row per likelihood
    view (the bound, kind lower_bound; the ODE, kind exact, on its own coarser grid, with a grid mass),
    and the bound sits below the ODE log-likelihood on the same points.

    The schedule starts at gamma_min = -4 (data-end noise 0.135 against the moons' own 0.2), where
    the Gaussian decoder costs the bound about 0.15 nats and the ODE, whose density is the data
    smoothed by that noise, about 0.03: a gap far outside the Monte Carlo error. (With the default
    gamma_min = -10 both sit within a few hundredths of a nat of each other; see results/diffusion.)
    """
    from gen_jax.data.toy2d import get_toy
    from gen_jax.evaluation.fit import VectorEval, fit_and_evaluate
    from gen_jax.evaluation.runs import RunSpec, train_or_reuse
    from gen_jax.evaluation.vector import VectorData

    options = dict(gamma_min=-4.0, width=64, num_blocks=2, elbo_samples=64, sample_steps=50, ode_grid_n=12)
    model = raw_model("diffusion", (2,), **options)
    assert model.kind == Kind.LOWER_BOUND and model.estimators["ode"].kind == Kind.EXACT
    train_x, test_x = _moons(20_000, jax.random.key(10)), _moons(1000, jax.random.key(11))
    data = VectorData(
        "moons", np.asarray(train_x), np.asarray(test_x), box=get_toy("moons").box, digest="test"
    )
    cfg = TrainConfig(
        steps=800, batch_size=256, lr=3e-3, steps_per_dispatch=200, checkpoint_every=None, progress=False
    )
    spec = RunSpec("diffusion", (2,), options, cfg, {"dataset": "moons"})
    rows = fit_and_evaluate(spec, data, tmp_path, VectorEval(grid_n=24, n_samples=500))
    assert [(r["model"], r["likelihood_kind"]) for r in rows] == [
        ("diffusion", "lower_bound"),
        ("diffusion/ode", "exact"),
    ]
    bound_row, ode_row = rows
    assert bound_row["log_density"].shape == (24, 24) and ode_row["log_density"].shape == (12, 12)
    for r in rows:
        assert r["grid_mass"] is not None and r["samples"].shape == (500, 2)
        assert np.all(np.isfinite(r["samples"]))
    assert ode_row["test_nll"] < 2.394 + 0.25  # moons' true entropy is 2.394 nats
    # the same points, paired: the bound's NLL is above the ODE's, far outside the Monte Carlo error
    run = train_or_reuse(spec, tmp_path, data.train)  # the finished run, restored
    assert run.reused
    params = run.params
    key = jax.random.key(12)
    views = dict(run.model.views())
    _, _, elbo_per = evaluate_nll(views["diffusion"], params, data.test, key)
    _, _, ode_per = evaluate_nll(views["diffusion/ode"], params, data.test, key)
    np.testing.assert_allclose(ode_per.mean(), ode_row["test_nll"], atol=1e-4)  # exact: no key dependence
    d = elbo_per - ode_per
    assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (elbo_per.mean(), ode_per.mean())
    lines = (run.workdir / "metrics.jsonl").read_text().splitlines()
    losses = [row["loss"] for row in map(json.loads, lines) if "loss" in row]
    assert losses[-1] < losses[0] - 0.5


def test_unet_shapes():
    """The 28x28 U-Net the image experiments use, by shape only (jax.eval_shape: nothing compiled)."""
    net = UNet(out_channels=1)
    x, c = jnp.zeros((2, 28, 28, 1)), jnp.array([0.1, 0.9])
    params = jax.eval_shape(net.init, jax.random.key(0), x, c)
    assert jax.eval_shape(net.apply, params, x, c).shape == (2, 28, 28, 1)
    n = sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
    assert 100_000 < n < 2_000_000, n
    with pytest.raises(ValueError, match="divisible"):
        jax.eval_shape(net.apply, params, jnp.zeros((2, 30, 30, 1)), c)


def test_8bit_models_bound_dequantized_ode_and_decoder():
    """8-bit data: the bound is on a probability mass (< 0 nats), bits/dim come from units, the ODE
    view is a dequantized estimate, and the decoder samples integers 0..255. Run on 4-pixel vectors
    (one compile for all of it); the U-Net image model is checked by kinds and one shape trace
    (jax.eval_shape: compiling a U-Net takes tens of seconds on a CPU)."""
    x = jax.random.randint(jax.random.key(0), (3, 4), 0, 256).astype(jnp.float32)
    vec = raw_model("diffusion", (4,), data="8bit", width=16, num_blocks=1, elbo_samples=4)
    assert vec.estimators["ode"].kind == Kind.ESTIMATE  # exact divergence, but a dequantization bound
    params = vec.init(jax.random.key(1), x)
    params["net"] = jax.tree_util.tree_map(lambda p: p + 0.1, params["net"])  # not the zero predictor

    @jax.jit
    def everything(params, x, key):
        k = jax.random.split(key, 4)
        z0 = jax.random.normal(k[0], (5, 4))
        return (
            vec.loss(params, x, k[1]),
            vec.log_prob(params, x, k[2]),
            vec.internals["decode_sample"](params, z0, k[3]),
            vec.estimators["ode"].log_prob(params, x, k[3]),
        )

    (loss, metrics), lp, s, ode = everything(params, x, jax.random.key(2))
    assert np.isfinite(loss) and np.isclose(metrics["elbo_bpd"], nats_to_bits_per_dim(metrics["elbo_nll"], 4))
    assert lp.shape == (3,) and np.all(lp < 0)
    assert s.shape == (5, 4) and s.dtype == jnp.uint8  # 8-bit data: 8-bit samples
    assert ode.shape == (3,) and np.all(np.isfinite(ode)) and np.all(ode < 0)

    image = raw_model(
        "diffusion", (4, 4, 1), data="8bit", unet_channels=(8,), unet_attention=False, elbo_samples=2
    )
    assert image.kind == Kind.LOWER_BOUND
    assert image.estimators["ode"].kind == Kind.ESTIMATE  # Hutchinson above 16 dimensions
    xi = jnp.zeros((3, 4, 4, 1))
    shapes = jax.eval_shape(image.init, jax.random.key(1), xi)
    loss, metrics = jax.eval_shape(image.loss, shapes, xi, jax.random.key(2))
    assert loss.shape == () and "elbo_bpd" in metrics


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="schedule"):
        raw_model("diffusion", (2,), schedule="quadratic")
    with pytest.raises(ValueError, match="learned schedule"):
        raw_model("diffusion", (2,), schedule="learned", loss="simple")
    with pytest.raises(ValueError, match="vectors"):
        raw_model("diffusion", (4, 4))
