"""AIS recovers known normalizers, its standard error shrinks like 1/sqrt(N), reverse AIS from exact
samples sandwiches the truth, and enumeration equals brute-force summation."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.likelihood.ais import ais, log_mean_exp_se, reverse_ais
from gen_jax.likelihood.enumerate import all_binary_states, enumerate_log_z, sample_enumerated, state_index
from gen_jax.sampling.anneal import bernoulli_base, gaussian_base, schedule

MEAN = jnp.array([1.0, -2.0])
COV = jnp.array([[2.0, 0.8], [0.8, 0.5]])
LOG_C = 3.0  # f = exp(LOG_C) N(x; MEAN, COV) * normalizer of N: log Z = LOG_C + log sqrt(det(2 pi COV))
TRUE_GAUSS = LOG_C + 0.5 * math.log(float(jnp.linalg.det(2 * math.pi * COV)))
BASE = gaussian_base(jnp.zeros(2), 3.0)


def log_gauss(x):
    d = x - MEAN
    return LOG_C - 0.5 * d @ jnp.linalg.solve(COV, d)


def log_mixture(x):
    """0.3 N((2, 0), 0.3^2 I) + 0.7 N((-2, 0), 0.5^2 I) without their 1/(2 pi s^2) factors."""
    a = -0.5 * jnp.sum((x - jnp.array([2.0, 0.0])) ** 2) / 0.3**2 + math.log(0.3)
    b = -0.5 * jnp.sum((x + jnp.array([2.0, 0.0])) ** 2) / 0.5**2 + math.log(0.7)
    return jnp.logaddexp(a, b)


TRUE_MIX = math.log(0.3 * 2 * math.pi * 0.3**2 + 0.7 * 2 * math.pi * 0.5**2)


def test_schedule_is_monotone_from_zero_to_one():
    for kind in ("sigmoid", "linear", "power"):
        b = schedule(50, kind)
        assert b.shape == (51,) and b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    with pytest.raises(ValueError, match="schedule"):
        schedule(10, "cosine")


def test_ais_recovers_gaussian_log_z_from_both_directions():
    fwd = ais(log_gauss, BASE, jax.random.key(0), num_chains=1000, num_temps=100, transition="mala")
    exact = MEAN[None] + jax.random.normal(jax.random.key(3), (1000, 2)) @ jnp.linalg.cholesky(COV).T
    # the same path and step sizes backwards (no second pilot run)
    rev = reverse_ais(
        log_gauss, BASE, exact, jax.random.key(5), num_temps=100, transition="mala", step_sizes=fwd.step_sizes
    )
    for res in (fwd, rev):
        assert abs(res.log_z - TRUE_GAUSS) < max(4 * res.log_z_se, 0.02), (res.summary(), TRUE_GAUSS)
        assert abs(res.log_z - TRUE_GAUSS) < 0.06 and res.ess > 300
    assert 0.4 < fwd.acceptance.mean() < 0.9 and fwd.positions.shape == (1000, 2)
    assert rev.direction == "reverse"


def test_ais_recovers_mixture_log_z_and_its_se_shrinks_with_more_chains():
    """One run of 1600 HMC chains: the estimate from all of them has about 1/4 the standard error
    of the estimate from the first 100 (1 / sqrt(N)), and covers the known log Z."""
    res = ais(log_mixture, BASE, jax.random.key(1), num_chains=1600, num_temps=100, transition="hmc")
    assert abs(res.log_z - TRUE_MIX) < max(4 * res.log_z_se, 0.02), (res.summary(), TRUE_MIX)
    assert abs(res.log_z - TRUE_MIX) < 0.05
    few = [log_mean_exp_se(res.log_weights[i : i + 100])[1] for i in range(0, 1600, 100)]
    assert res.log_z_se < 0.4 * float(np.median(few)), (res.log_z_se, few)


def _random_binary_energy(d):
    k1, k2 = jax.random.split(jax.random.key(7))
    w = jax.random.normal(k1, (d, d)) * 0.5
    w = (w + w.T) / 2
    b = jax.random.normal(k2, (d,))
    return lambda x: 0.5 * x @ w @ x + b @ x


def test_enumeration_equals_brute_force_sum():
    d = 6
    log_f = _random_binary_energy(d)
    brute = math.log(
        sum(math.exp(float(log_f(jnp.array(s, jnp.float32)))) for s in itertools.product([0, 1], repeat=d))
    )
    assert enumerate_log_z(jax.vmap(log_f), d) == pytest.approx(brute, abs=1e-5)
    states = all_binary_states(d)
    assert states.shape == (2**d, d) and np.array_equal(state_index(states), np.arange(2**d))
    with pytest.raises(ValueError, match="AIS"):
        all_binary_states(40)


def test_gibbs_ais_matches_enumeration_and_sandwiches_it():
    """Forward and reverse (from exact samples) AIS agree with enumeration, and their single-chain
    bounds sandwich it: mean log weight <= log Z <= -mean reverse log weight, by the KL of the path,
    many standard errors wide with 2 temperatures and tightening with 50. (The logmeanexp estimates
    of 2000 chains have a Jensen gap of O(1/N), below their noise: they need not bracket one run.)"""
    d = 8
    log_f = _random_binary_energy(d)
    truth = enumerate_log_z(jax.vmap(log_f), d)
    base = bernoulli_base(jnp.full((d,), 0.5))
    exact = sample_enumerated(jax.vmap(log_f), d, jax.random.key(9), 2000)
    gaps = {}
    for k in (2, 50):
        fwd = ais(log_f, base, jax.random.key(8), num_chains=2000, num_temps=k, transition="gibbs")
        rev = reverse_ais(log_f, base, exact, jax.random.key(10), num_temps=k, transition="gibbs")
        for res in (fwd, rev):
            assert abs(res.log_z - truth) < max(4 * res.log_z_se, 0.02), (res.summary(), truth)
        lo, hi = fwd.log_z_bound, rev.log_z_bound
        assert lo <= fwd.log_z and rev.log_z <= hi  # Jensen, in every run
        margin = 4 if k == 2 else -4  # strictly inside at 2 temperatures; within noise at 50
        assert lo + margin * fwd.log_z_bound_se < truth < hi - margin * rev.log_z_bound_se, (k, lo, truth, hi)
        gaps[k] = hi - lo
    assert gaps[50] < 0.5 * gaps[2], gaps


def test_whitened_ais_finds_log_z_when_scales_differ_a_hundredfold():
    """`normalize.ais_log_z` runs AIS in coordinates that whiten the reference, then adds sum log s:
    on a Gaussian energy whose axes differ 100x in scale it recovers log Z, where one isotropic
    MALA step size for both axes would have to suit the narrow one."""
    from gen_jax.core import Kind, Model
    from gen_jax.likelihood.ais import AISConfig
    from gen_jax.likelihood.normalize import NormalizeConfig, ais_log_z

    scale = np.array([0.05, 5.0, 1.0], np.float32)
    mean = np.array([3.0, -1.0, 0.5], np.float32)
    log_f = lambda x: -0.5 * jnp.sum(((x - mean[None]) / scale[None]) ** 2, axis=-1)  # noqa: E731
    model = Model("quad", (3,), Kind.UNNORMALIZED, None, None, lambda p, x, k=None: log_f(x), None)
    truth = float(np.sum(np.log(np.sqrt(2 * np.pi) * scale)))
    reference = mean + scale * np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
    cfg = NormalizeConfig(ais=AISConfig(num_chains=500, num_temps=60, num_pilot=64))
    res = ais_log_z(model, None, reference, jax.random.key(0), cfg)
    assert abs(res.log_z - truth) < max(4 * res.log_z_se, 0.02), (res.log_z, res.log_z_se, truth)
    assert res.positions.shape == (500, 3)  # back in x: the chains sit on the target
    np.testing.assert_allclose(np.std(np.asarray(res.positions), axis=0), scale, rtol=0.15)


def test_noise_path_ais_recovers_the_log_z_of_a_smoothed_gaussian_and_matches_geometric():
    """A noise-conditional family with known normalizers, f(x, s) = exp(-|x - m|^2 / 2 (c^2 + s^2))
    in 6 dimensions: AIS along the noise path (base -> s_max -> s_min) finds log Z(s_min), and the
    geometric path to the same target agrees; the path's ends are the base and the target."""
    from gen_jax.sampling.anneal import noise_path

    d, c, s_min, s_max = 6, 0.7, 0.05, 3.0
    m = jnp.linspace(-1.0, 1.0, d)

    def log_f(x, s):
        return -0.5 * jnp.sum((x - m) ** 2) / (c**2 + s**2)

    true = 0.5 * d * math.log(2 * math.pi * (c**2 + s_min**2))
    base = gaussian_base(jnp.zeros(d), math.sqrt(1.0 + s_max**2))
    path = noise_path(log_f, base, s_max, s_min, num_temps=200)
    x = jnp.ones(d)
    np.testing.assert_allclose(path.log_density(x, path.thetas[0]), base.log_prob(x), rtol=1e-6)
    np.testing.assert_allclose(path.log_density(x, path.thetas[-1]), log_f(x, s_min), rtol=1e-5)
    res = ais(
        lambda x: log_f(x, s_min), base, jax.random.key(0), num_chains=500, transition="mala", path=path
    )
    assert res.num_temps == 200 and abs(res.log_z - true) < max(4 * res.log_z_se, 0.05), (res.summary(), true)
    geo = ais(lambda x: log_f(x, s_min), base, jax.random.key(1), num_chains=500, num_temps=200)
    assert abs(geo.log_z - true) < max(4 * geo.log_z_se, 0.05), (geo.summary(), true)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        noise_path(log_f, base, 1.0, 2.0, 10)


def test_annealing_in_segments_equals_one_scan_bit_for_bit():
    """AIS runs its temperatures in jitted segments (so progress can advance between them): the
    weights, chains and acceptances are exactly those of one scan over all temperatures."""
    from gen_jax.sampling.anneal import anneal, anneal_in_segments, as_transition, geometric_path

    path = geometric_path(log_mixture, BASE, schedule(37))
    x0 = BASE.sample(jax.random.key(0), 16)
    steps = jnp.full((37,), 0.3)
    one = jax.jit(lambda x0: anneal(path, x0, jax.random.key(1), steps, as_transition("mala")))(x0)
    seg = anneal_in_segments(path, x0, jax.random.key(1), steps, as_transition("mala"), segments=5)
    for a, b in zip(one, seg, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_one_pilot_on_a_short_ladder_serves_runs_of_any_length():
    """`AISConfig.pilot_temps`: the pilot tunes on a short ladder of the same path and each run
    interpolates its step sizes (log-linear in t / K): the run uses exactly those, still finds a
    known log Z (scales 100x apart), and a ladder of runs given one pilot's step sizes reproduces
    the runs that tune their own."""
    from gen_jax.core import Kind, Model
    from gen_jax.likelihood.ais import AISConfig, interpolate_step_sizes
    from gen_jax.likelihood.normalize import NormalizeConfig, ais_log_z, pilot_step_sizes

    steps = np.array([0.5, 0.2, 0.1, 0.05], np.float32)
    np.testing.assert_allclose(interpolate_step_sizes(steps, 3), steps, rtol=1e-6)
    fine = interpolate_step_sizes(steps, 6)
    np.testing.assert_allclose(fine[::2], steps, rtol=1e-6)
    np.testing.assert_allclose(fine[1], math.sqrt(0.5 * 0.2), rtol=1e-5)  # geometric midpoint

    scale = np.array([0.05, 5.0, 1.0], np.float32)
    log_f = lambda x: -0.5 * jnp.sum((x / scale[None]) ** 2, axis=-1)  # noqa: E731
    model = Model("quad", (3,), Kind.UNNORMALIZED, None, None, lambda p, x, k=None: log_f(x), None)
    truth = float(np.sum(np.log(np.sqrt(2 * np.pi) * scale)))
    reference = scale * np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)
    cfg = NormalizeConfig(ais=AISConfig(num_chains=400, num_temps=80, num_pilot=32, pilot_temps=20))
    key = jax.random.key(0)
    pilot = pilot_step_sizes(model, None, reference, key, cfg)
    assert pilot.shape == (21,) and np.all(pilot > 0)
    res = ais_log_z(model, None, reference, key, cfg)
    np.testing.assert_allclose(res.step_sizes, interpolate_step_sizes(pilot, 80), rtol=1e-6)
    assert abs(res.log_z - truth) < max(4 * res.log_z_se, 0.02), (res.log_z, res.log_z_se, truth)
    for k in (20, 40):  # a rung given the pilot's steps == a rung that runs the same pilot itself
        given = ais_log_z(model, None, reference, key, cfg, num_temps=k, step_sizes=pilot)
        own = ais_log_z(model, None, reference, key, cfg, num_temps=k)
        if k == 20:  # pilot_temps == K: the run tunes at every temperature, the pilot's own ladder
            np.testing.assert_allclose(own.step_sizes, pilot, rtol=1e-6)
        np.testing.assert_allclose(given.log_weights, own.log_weights, rtol=1e-5)
    assert pilot_step_sizes(model, None, reference, key, NormalizeConfig()) is None
    with pytest.raises(ValueError, match="pilot_temps"):
        AISConfig(pilot_temps=-1)
