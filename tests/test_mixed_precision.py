"""Mixed precision: bfloat16 conditioners, float32 parameters, log-dets and log p; same NLL as float32."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from gen_jax.evaluation import evaluate_nll
from gen_jax.evaluation.vector import load_vector_data
from gen_jax.models import make_model
from gen_jax.training import TrainConfig, train


@pytest.mark.parametrize("name", ["nsf", "maf"])
def test_bf16_computes_in_bf16_but_returns_float32(name):
    model = make_model(name, (2,), num_layers=2, hidden=(16,), compute_dtype="bfloat16")
    x = jax.random.normal(jax.random.key(0), (8, 2))
    params = model.init(jax.random.key(1), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    jaxpr = str(jax.make_jaxpr(lambda p: model.log_prob(p, x, jax.random.key(2)))(params))
    assert "bf16" in jaxpr  # the conditioner's matmuls run in bfloat16
    logp = model.log_prob(params, x, jax.random.key(2))
    assert logp.dtype == jnp.float32
    loss_grad = jax.grad(lambda p: model.loss(p, x, jax.random.key(3))[0])(params)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(loss_grad))


def test_bf16_training_matches_float32_nll_on_moons():
    data = load_vector_data("moons", 20_000, 5000, seed=0)
    cfg = TrainConfig(
        steps=400, batch_size=256, lr=2e-3, warmup_steps=50, steps_per_dispatch=200, progress=False
    )
    nll = {}
    for dtype in ("float32", "bfloat16"):
        model = make_model("nsf", (2,), num_layers=2, hidden=(32, 32), compute_dtype=dtype)
        res = train(model, data.train, dataclasses.replace(cfg, checkpoint_every=None))
        nll[dtype] = evaluate_nll(model, res.params, data.test, jax.random.key(0))[0]
    assert nll["float32"] < data.true_entropy + 0.15, nll  # both actually learned moons
    assert abs(nll["bfloat16"] - nll["float32"]) <= 0.02, nll


IMAGE_DTYPE_MODELS = ["pixelcnn", "vae", "glow", "diffusion", "gan", "ebm_dsm_ladder", "ebm_flow"]
IMAGE_OPTIONS = {  # the families whose tiny registry case is a vector model, at image size
    "diffusion": dict(data="8bit", unet_channels=(4,), unet_attention=False, elbo_samples=1),
    "gan": dict(channels=4, latent_dim=4),
    "ebm_dsm_ladder": dict(
        conv_features=(4,), num_sigmas=3, sample_steps_per_level=1, sampler="annealed_langevin"
    ),
}


@pytest.mark.parametrize("name", IMAGE_DTYPE_MODELS)
def test_every_image_family_has_a_bf16_network_with_float32_likelihood(name):
    """compute_dtype="bfloat16" for every image family: the network runs in bfloat16 (bf16 in the
    jaxpr), parameters, log p (or the GAN's losses) and gradients stay float32, and at the same
    parameters log p is within 1% of the float32 model's (a precision change, not a different model)."""
    from gen_jax.models.registry import model_options
    from tests.tiny_models import CASES, IMAGE

    assert "compute_dtype" in model_options(name)
    shape, options = (28, 28, 1) if name == "gan" else IMAGE, IMAGE_OPTIONS.get(name, CASES[name][1])
    x = (jax.random.uniform(jax.random.key(0), (4, *shape)) * 255).astype(jnp.uint8)
    f32 = make_model(name, shape, **options)
    bf16 = make_model(name, shape, **options, compute_dtype="bfloat16")
    params = f32.init(jax.random.key(1), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    loss = lambda p: bf16.loss(p, x, jax.random.key(3))[0]
    assert "bf16" in str(jax.make_jaxpr(loss)(params))
    grads = jax.eval_shape(jax.grad(loss), params)  # traced, not compiled: the dtypes of the gradients
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))
    if bf16.kind != "none":  # 8-bit image models draw their dequantization from the same key
        a, b = (m.log_prob(params, x, jax.random.key(2)) for m in (f32, bf16))
        assert b.dtype == jnp.float32
        assert float(jnp.max(jnp.abs(a - b) / jnp.abs(a))) < 0.01, (a, b)
