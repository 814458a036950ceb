"""A model works at any scale and offset of its input: one registry-driven test over every continuous
vector model. Trained the same way on x and on a x + b, the test NLLs differ by D log|a| (within their
standard errors plus 0.02 nats): each model's standardization is fitted to the data and its
log-determinant counted. Energy models are normalized by the grid over a box that follows the data;
the GAN, which has no density, must give the same samples up to the same affine map."""

import math

import jax
import numpy as np
import pytest

from gen_jax.core import Kind
from gen_jax.data.toy2d import get_toy
from gen_jax.evaluation.rows import evaluate_view
from gen_jax.evaluation.vector import data_box
from gen_jax.likelihood.ais import AISConfig
from gen_jax.likelihood.normalize import NormalizeConfig
from gen_jax.models import MODELS, make_model
from gen_jax.models.registry import model_options
from gen_jax.training import TrainConfig, train

VECTOR_MODELS = sorted(n for n in MODELS if "standardize" in model_options(n))
SCALES = [(1e-3, 1.0), (1e3, -1e3)]  # within float32's resolution: the spread stays well above ulp(b)
TINY = {
    "realnvp": dict(num_layers=2, hidden=(16,)),
    "nsf": dict(num_layers=2, hidden=(16,)),
    "maf": dict(num_layers=2, hidden=(16,)),
    "gmm": dict(num_components=4, em_iters=20),
    "diffusion": dict(width=16, num_blocks=1, elbo_samples=16, sample_steps=4),
    "gan": dict(hidden=(16,)),
    "ebm_nsf": dict(hidden=(16,), base_options=dict(num_layers=2, hidden=(16,))),
}
EBM_TINY = {"hidden": (16,), "sample_temps": 4}  # the pure energy models
CFG = TrainConfig(
    steps=100,
    batch_size=128,
    lr=3e-3,
    warmup_steps=10,
    steps_per_dispatch=50,
    checkpoint_every=None,
    progress=False,
)
NORM = NormalizeConfig(use="grid", grid_n=200, ais=AISConfig(num_chains=16, num_temps=4, num_pilot=4))


@pytest.fixture(scope="module")
def moons():
    toy = get_toy("moons")
    return np.asarray(toy.sample(jax.random.key(0), 2000)), np.asarray(toy.sample(jax.random.key(1), 400))


def _fit(name, train_x, test_x):
    opts = TINY.get(name, EBM_TINY if name.startswith("ebm") else {})
    model = make_model(name, 2, **opts)
    params = train(model, train_x, CFG).params
    if model.kind == Kind.NONE:  # the GAN: no density, its samples are compared
        return None, np.asarray(model.sample(params, jax.random.key(5), 50))
    _, per, _ = evaluate_view(
        name,
        model,
        params,
        test_x,
        jax.random.key(9),
        reference=train_x,
        box=data_box(np.concatenate([train_x, test_x]), pad=0.5),
        normalize_cfg=NORM,
    )
    return per, None


@pytest.mark.parametrize("name", VECTOR_MODELS)
def test_nll_moves_by_the_log_determinant_of_the_rescaling(name, moons):
    """The two rescalings against each other (a spread of 1e6 in scale, offsets 1 and -1e3): two fits
    per model rather than three, the same invariance."""
    train_x, test_x = moons
    (a1, b1), (a2, b2) = SCALES
    per1, samples1 = _fit(name, (a1 * train_x + b1).astype(np.float32), (a1 * test_x + b1).astype(np.float32))
    per2, samples2 = _fit(name, (a2 * train_x + b2).astype(np.float32), (a2 * test_x + b2).astype(np.float32))
    if per1 is None:  # the GAN: the same samples, mapped the same way
        np.testing.assert_allclose((samples2 - b2) / a2, (samples1 - b1) / a1, atol=0.05)
        return
    shift = 2 * math.log(abs(a2 / a1))  # D log|a|: NLL(a x + b) = NLL(x) + D log|a|
    d = per2 - per1 - shift
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    assert abs(float(np.mean(d))) <= 2 * se + 0.02, (name, float(np.mean(d)), se)
