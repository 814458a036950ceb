"""The GAN: no density (log_prob raises), samples, gradient penalties, the two-player update in
the one training loop (simultaneous and alternating), and training that moves samples onto
the modes of 8gaussians."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import raw_model

from gen_jax.data.toy2d import MODE_CENTERS, get_toy
from gen_jax.models import Kind
from gen_jax.models.gan import gradient_penalty
from gen_jax.training import TrainConfig, init_state, make_optimizer, make_train_step, restore_params, train

CFG = TrainConfig(
    steps=400, batch_size=256, lr=2e-3, b1=0.5, warmup_steps=20, steps_per_dispatch=100, progress=False
)


def _mean_distance_to_modes(samples) -> float:
    centers = MODE_CENTERS["8gaussians"]
    d = np.linalg.norm(np.asarray(samples)[:, None, :] - centers[None], axis=-1)
    return float(d.min(1).mean())


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_log_prob_raises_and_sample_works(key):
    model = raw_model("gan", (2,), hidden=(16,))
    assert model.kind == Kind.NONE
    params = jax.jit(model.init)(key, jnp.zeros((8, 2)))
    with pytest.raises(NotImplementedError, match=r"(?s)no log_prob.*pushforward.*classifier.*Parzen"):
        model.log_prob(params, jnp.zeros((4, 2)), key)
    x = jax.jit(model.sample, static_argnums=2)(params, key, 5)
    assert x.shape == (5, 2) and np.all(np.isfinite(np.asarray(x)))


def test_image_pair_shapes(key):
    """The DCGAN-style pair, traced (not compiled: XLA's CPU convolutions compile slowly)."""
    model = raw_model("gan", (28, 28, 1), channels=4, latent_dim=8)
    images = jax.ShapeDtypeStruct((5, 28, 28, 1), jnp.float32)
    params = jax.eval_shape(model.init, key, images)
    assert params["generator"]["Dense_0"]["kernel"].shape == (8, 7 * 7 * 8)
    samples = jax.eval_shape(lambda p: model.sample(p, key, 3), params)
    assert samples.shape == (3, 28, 28, 1) and samples.dtype == jnp.uint8  # 8-bit, like the data
    logits = jax.eval_shape(model.internals["discriminate"], params["discriminator"], images)
    assert logits.shape == (5,)
    for batch in (images, jax.ShapeDtypeStruct((5, 28, 28, 1), jnp.uint8)):  # raw 8-bit data is dequantized
        loss, metrics = jax.eval_shape(model.loss, params, batch, key)
        assert (
            loss.shape == () and loss.dtype == jnp.float32 and set(metrics) >= {"d_loss", "g_loss", "penalty"}
        )
    with pytest.raises(ValueError, match=r"28, 28, 1"):
        raw_model("gan", (32, 32, 3))


@pytest.mark.parametrize("shape", [(64, 2), (8, 28, 28, 1)])
def test_gradient_penalty_on_linear_discriminators(key, shape):
    real = jax.random.normal(jax.random.fold_in(key, 1), shape)
    fake = jax.random.normal(jax.random.fold_in(key, 2), shape) + 3.0
    w = jax.random.normal(jax.random.fold_in(key, 3), shape[1:])
    w_unit = w / jnp.linalg.norm(w)

    def linear(w):
        return lambda x: jnp.sum((x * w[None]).reshape(x.shape[0], -1), axis=1) + 0.7

    @jax.jit
    def penalties(real, fake, w_unit):
        return jnp.stack(
            [
                gradient_penalty(linear(w_unit), real, fake, key, "wgan-gp"),
                gradient_penalty(linear(2.0 * w_unit), real, fake, key, "wgan-gp"),
                gradient_penalty(lambda x: jnp.full(x.shape[:1], 0.3), real, fake, key, "r1"),
                gradient_penalty(linear(3.0 * w_unit), real, fake, key, "r1"),
                gradient_penalty(linear(w_unit), real, fake, key, "none"),
            ]
        )

    unit, slope2, flat_r1, slope3_r1, none = np.asarray(penalties(real, fake, w_unit))
    # WGAN-GP is zero exactly where |grad D| = 1, and (|w| - 1)^2 for a linear D of slope |w|
    assert unit < 1e-8 and slope2 == pytest.approx(1.0, 1e-5)
    # R1 is zero for a flat D and |w|^2 / 2 for a linear one
    assert flat_r1 == 0.0 and slope3_r1 == pytest.approx(4.5, 1e-5)
    assert none == 0.0


def test_one_loss_gives_each_player_its_own_gradient(key):
    """grad wrt D of the joint loss = grad of D's loss; grad wrt G = grad of G's non-saturating loss."""
    model = raw_model("gan", (2,), hidden=(16,), penalty="wgan-gp", penalty_weight=0.5)
    gen, disc = model.internals["generate"], model.internals["discriminate"]
    batch = get_toy("8gaussians").sample(jax.random.fold_in(key, 1), 32)
    params = jax.jit(model.init)(key, batch)

    kz, kp = jax.random.split(key)
    z = jax.random.normal(kz, (32, 2))

    def d_loss(pd):
        fake = gen(params["generator"], z)
        d = lambda x: disc(pd, x)
        return (
            jnp.mean(jax.nn.softplus(-d(batch)))
            + jnp.mean(jax.nn.softplus(d(fake)))
            + 0.5 * gradient_penalty(d, batch, fake, kp, "wgan-gp")
        )

    def g_loss(pg):
        return jnp.mean(jax.nn.softplus(-disc(params["discriminator"], gen(pg, z))))

    @jax.jit  # one compilation for the three gradients
    def all_grads(params):
        joint = jax.grad(lambda p: model.loss(p, batch, key)[0])(params)
        return joint, jax.grad(d_loss)(params["discriminator"]), jax.grad(g_loss)(params["generator"])

    grads, want_d, want_g = all_grads(params)
    for got, want in [(grads["discriminator"], want_d), (grads["generator"], want_g)]:
        for a, b in zip(_leaves(got), _leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_update_schedule_changes_only_the_active_group(key):
    """Alternating updates (Model.update_groups): D, D, G, D, D, G. Without the hook (simultaneous,
    every other model) the optimizer is the plain one, which tests/test_training.py covers."""
    assert raw_model("gan", (2,)).update_groups is None
    model = raw_model("gan", (2,), hidden=(16,), updates="alternating", d_steps=2)
    cfg = dataclasses.replace(CFG, warmup_steps=0, schedule="constant", steps=6)
    optimizer = make_optimizer(cfg, model.update_groups)
    batch = get_toy("8gaussians").sample(key, 64)
    state = init_state(model, key, batch, optimizer, ema=False)
    step = jax.jit(make_train_step(model, optimizer, None))
    changed = []
    for i in range(6):
        new, _ = step(state, batch, jax.random.fold_in(key, i))
        changed.append(
            tuple(
                any(
                    not np.array_equal(a, b)
                    for a, b in zip(_leaves(state.params[p]), _leaves(new.params[p]), strict=True)
                )
                for p in ("discriminator", "generator")
            )
        )
        state = new
    assert changed == [(True, False), (True, False), (False, True)] * 2


def test_training_moves_samples_to_the_modes(tmp_path):
    toy = get_toy("8gaussians")
    data = np.asarray(toy.sample(jax.random.key(0), 20_000))
    model = raw_model("gan", (2,), hidden=(64, 64), updates="alternating")
    params0 = model.init(jax.random.key(1), jnp.asarray(data[:256]))
    before = _mean_distance_to_modes(model.sample(params0, jax.random.key(2), 4000))
    result = train(
        model, data, dataclasses.replace(CFG, checkpoint_every=None), tmp_path / "gan", eval_data=data
    )
    after = _mean_distance_to_modes(model.sample(result.params, jax.random.key(2), 4000))
    assert after < 0.7 * before, (before, after)
    assert not any("eval_nll" in row for row in result.history)  # no density to evaluate
    # the alternating optimizer state checkpoints and restores like any other
    restored = restore_params(model, tmp_path / "gan", jnp.asarray(data[:256]))
    for a, b in zip(_leaves(result.params), _leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)
