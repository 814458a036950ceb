"""Units and grid integration against closed forms."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.likelihood import bits_per_dim_to_nats, grid_mass, log_integrate_2d, nats_to_bits_per_dim


def test_bits_per_dim():
    # a uniform distribution over 256 values per dimension costs exactly 8 bits per dimension
    d = 784
    assert nats_to_bits_per_dim(d * math.log(256), d) == pytest.approx(8.0)
    assert bits_per_dim_to_nats(nats_to_bits_per_dim(1234.5, d), d) == pytest.approx(1234.5)
    with pytest.raises(ValueError):
        nats_to_bits_per_dim(1.0, 0)


def _gauss_logpdf(sigma, mean=(0.0, 0.0)):
    m = jnp.asarray(mean)

    def f(x):
        return -0.5 * jnp.sum((x - m[None]) ** 2, -1) / sigma**2 - math.log(2 * math.pi * sigma**2)

    return f


def test_log_integral_is_gaussian_log_z():
    sigma = 0.7
    unnormalized = lambda x: -0.5 * jnp.sum(x**2, -1) / sigma**2
    log_z = log_integrate_2d(unnormalized, (-6, 6, -6, 6), n=300)
    assert log_z == pytest.approx(math.log(2 * math.pi * sigma**2), abs=1e-5)


def test_grid_mass_inside_and_outside():
    # N(0, I) on [-2, 2]^2: inside mass erf(2/sqrt2)^2
    inside_true = math.erf(2 / math.sqrt(2)) ** 2
    inside, outside = grid_mass(_gauss_logpdf(1.0), (-2, 2, -2, 2), n=200)
    assert inside == pytest.approx(inside_true, abs=1e-4)
    assert outside == pytest.approx(1 - inside_true, abs=2e-3)
    # an unnormalized "density" shows up as mass far from 1
    twice = lambda x: _gauss_logpdf(0.5)(x) + math.log(2.0)
    inside, outside = grid_mass(twice, (-4, 4, -4, 4), n=200)
    assert inside == pytest.approx(2.0, abs=1e-3)
    inside, outside = grid_mass(_gauss_logpdf(1.0), (-2, 2, -2, 2), n=100, outside_n=0)
    assert outside is None and np.isfinite(inside)
