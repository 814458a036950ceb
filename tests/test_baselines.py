"""Baselines: the Gaussian starts at its closed-form MLE; both are normalized and trainable."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from tiny_models import raw_model

from gen_jax.data.toy2d import get_toy
from gen_jax.evaluation import evaluate_nll
from gen_jax.likelihood import grid_mass
from gen_jax.training import TrainConfig, train


def test_gaussian_init_is_mle():
    x = jax.random.normal(jax.random.key(0), (5000, 3)) @ jnp.array(
        [[1.0, 0.5, 0], [0, 1.0, 0.2], [0, 0, 0.3]]
    )
    model = raw_model("gaussian", (3,))
    params = model.init(jax.random.key(1), x)
    cov = np.cov(np.asarray(x), rowvar=False)
    mle_nll = (
        0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    )  # per-example NLL at the MLE (cov with ddof=1)
    nll, _, _ = evaluate_nll(model, params, x, jax.random.key(2))
    assert abs(nll - mle_nll) < 2e-3


def test_gmm_beats_gaussian_and_is_normalized():
    toy = get_toy("8gaussians")
    x, test = toy.sample(jax.random.key(0), 4000), toy.sample(jax.random.key(1), 2000)
    cfg = TrainConfig(
        steps=400, batch_size=256, lr=3e-2, steps_per_dispatch=100, progress=False, checkpoint_every=None
    )
    res = {}
    for name in ["gaussian", "gmm"]:
        model = raw_model(name, (2,))
        params = train(model, x, dataclasses.replace(cfg)).params
        res[name] = evaluate_nll(model, params, test, jax.random.key(2))[0]
        mass, _ = grid_mass(
            lambda v, m=model, p=params: m.log_prob(p, v, None), (-9, 9, -9, 9), 300, outside_n=0
        )
        assert abs(mass - 1) < 0.01
    h, _ = toy.entropy()
    assert res["gmm"] < res["gaussian"] - 0.5
    assert res["gmm"] - h < 0.1  # 10 components can cover 8 Gaussians
