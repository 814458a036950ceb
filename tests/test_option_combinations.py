"""Every documented combination of the options that interact builds, gives a finite log_prob and loss,
and (energy models) runs AIS to a finite log Z, on a tiny instance.

The energy model's options interact through the space the energy lives in (vectors; dequantized
8-bit pixels; their logits), the quadratic term (isotropic in standardized units, or the data's
Gaussian), the bounded correction and the output: `logit_alpha` with the isotropic quadratic once
dequantized and took the logit twice inside AIS (NaN), which the product below would have caught.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import EBM_TINY, IMAGE, VECTOR, data, raw_model

from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig, normalize

SPACES = {  # name -> (event shape, data kind, options)
    "vector": (VECTOR, "real", dict(data="continuous")),
    "8bit": ((4, 4, 1), "8bit", dict(data="8bit", conv_features=(4,))),
    "8bit_logit": ((4, 4, 1), "8bit", dict(data="8bit", conv_features=(4,), logit_alpha=0.05)),
}
HEADS = [  # (output, quadratic, correction_bound): the bound applies to the energy output only
    ("energy", "isotropic", None),
    ("energy", "gaussian", None),
    ("energy", "gaussian", 2.0),
    ("energy", "isotropic", 2.0),
    ("sigmoid", "isotropic", None),
    ("sigmoid", "gaussian", None),
]
EBM_PRODUCT = [(s, o, *h) for s, o, h in itertools.product(SPACES, ("dsm", "dsm_ladder"), HEADS)]
TINY_AIS = NormalizeConfig(ais=AISConfig(num_chains=8, num_temps=8, num_pilot=2))


def _ebm(space, objective, output, quadratic, bound, **extra):
    shape, kind, options = SPACES[space]
    opts = dict(EBM_TINY, objective=objective, output=output, quadratic=quadratic, **options, **extra)
    if objective == "dsm_ladder":
        opts.update(
            num_sigmas=3, sigma=0.1 if kind == "real" else 1.0, sigma_max=2.0 if kind == "real" else 20.0
        )
    if bound is not None:
        opts["correction_bound"] = bound
    model = raw_model("ebm", shape, **opts)
    x = jnp.asarray(data(kind, shape, n=64))
    params = model.init(jax.random.key(0), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), params)
    return model, params, x


@pytest.mark.parametrize("space,objective,output,quadratic,bound", EBM_PRODUCT)
def test_every_energy_model_combination_gives_finite_log_prob_and_ais(
    space, objective, output, quadratic, bound
):
    model, params, x = _ebm(space, objective, output, quadratic, bound)
    lp = jax.jit(model.log_prob)(params, x[:8], jax.random.key(1))
    assert lp.shape == (8,) and np.all(np.isfinite(np.asarray(lp))), lp
    loss, _ = jax.jit(model.loss)(params, x, jax.random.key(2))
    assert np.isfinite(float(loss))
    normalized, est = normalize(model, params, x, jax.random.key(3), None, TINY_AIS)
    assert math.isfinite(est["log_z_ais"]), est
    assert np.all(np.isfinite(np.asarray(normalized.log_prob(params, x[:8], jax.random.key(4)))))


@pytest.mark.parametrize("objective", ["ssm", "naive_mle"])
@pytest.mark.parametrize("space", list(SPACES))
def test_other_energy_objectives_train_on_every_space(objective, space):
    model, params, x = _ebm(space, objective, "energy", "isotropic", None)
    loss, _ = jax.jit(model.loss)(params, x, jax.random.key(2))
    assert np.isfinite(float(loss))


def test_energy_options_that_need_the_ladder_say_so():
    for extra in (dict(sampler="annealed_langevin"), dict(time_score_weight=0.1)):
        with pytest.raises(ValueError, match="dsm_ladder"):
            _ebm("vector", "dsm", "energy", "isotropic", None, **extra)
    with pytest.raises(ValueError, match="correction_bound"):
        _ebm("vector", "dsm", "sigmoid", "isotropic", 2.0)


DIFFUSION_TINY = dict(
    width=8, num_blocks=1, embed_dim=8, elbo_samples=2, sample_steps=3, ode_rtol=1e-2, ode_atol=1e-2
)
DIFFUSION_PRODUCT = [  # every schedule and loss once, each data kind with the fixed and the learned schedule
    *itertools.product(("linear",), ("elbo", "simple"), ("real", "8bit")),
    ("cosine", "elbo", "real"),
    ("learned", "elbo", "real"),
    ("learned", "elbo", "8bit"),
]


@pytest.mark.parametrize("schedule,loss,kind", DIFFUSION_PRODUCT)
def test_every_diffusion_combination_gives_a_finite_bound_loss_and_ode(schedule, loss, kind):
    opts = dict(DIFFUSION_TINY, schedule=schedule, loss=loss, data="continuous" if kind == "real" else "8bit")
    model = raw_model("diffusion", VECTOR, **opts)
    x = jnp.asarray(data(kind, VECTOR, n=16), jnp.float32)
    params = model.init(jax.random.key(0), x)

    @jax.jit
    def run(params, key):
        k = jax.random.split(key, 3)
        return (
            model.loss(params, x, k[0])[0],
            model.log_prob(params, x, k[1]),
            model.estimators["ode"].log_prob(params, x, k[2]),
        )

    values = [np.asarray(v) for v in run(params, jax.random.key(1))]
    assert all(np.all(np.isfinite(v)) for v in values), values
    if kind == "8bit":  # a bound and an estimate of a probability mass
        assert np.all(values[1] < 0) and np.all(values[2] < 0)
    with pytest.raises(ValueError, match="learned schedule"):
        raw_model("diffusion", VECTOR, **dict(opts, schedule="learned", loss="simple"))


@pytest.mark.parametrize(
    "model_name,options",
    [
        ("pixelcnn", dict(output="logistic_mixture")),
        ("pixelcnn", dict(output="categorical")),
        ("vae", dict(likelihood="logistic_mixture")),
        ("glow", dict(learn_prior=False, unroll_steps=False)),
    ],
)
def test_image_model_options_give_finite_log_prob_and_loss(model_name, options):
    from tiny_models import CASES

    shape, base, _ = CASES[model_name]
    model = raw_model(model_name, shape, **{**base, **options})
    x = jnp.asarray(data("8bit", IMAGE, n=8))
    params = model.init(jax.random.key(0), x)
    lp = jax.jit(model.log_prob)(params, x, jax.random.key(1))
    loss, _ = jax.jit(model.loss)(params, x, jax.random.key(2))
    assert np.all(np.isfinite(np.asarray(lp))) and np.all(np.asarray(lp) < 0) and np.isfinite(float(loss))


@pytest.mark.parametrize(
    "penalty,updates", list(itertools.product(("r1", "wgan-gp", "none"), ("simultaneous", "alternating")))
)
def test_every_gan_combination_trains(penalty, updates):
    model = raw_model("gan", VECTOR, hidden=(8,), penalty=penalty, updates=updates)
    x = jnp.asarray(data("real", VECTOR, n=16))
    params = model.init(jax.random.key(0), x)
    loss, metrics = jax.jit(model.loss)(params, x, jax.random.key(1))
    assert np.isfinite(float(loss)) and all(np.isfinite(float(v)) for v in jax.tree_util.tree_leaves(metrics))
