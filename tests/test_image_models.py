"""Image models: Glow's bijectors and change of variables, PixelCNN causality and sampling,
the discretized logistic mixture, and the VAE's importance-sampling estimators."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from gen_jax.core.capabilities import LatentVariable
from gen_jax.data.transforms import LOG_256, LogitTransform, dequantize
from gen_jax.likelihood import discretized
from gen_jax.likelihood.importance import log_mean_exp_prefixes
from gen_jax.models import Kind, make_model
from gen_jax.models.autoregressive import to_unit_range
from gen_jax.models.bijectors import (
    ActNorm,
    Invertible1x1Conv,
    MultiScale,
    ScanChain,
    Squeeze,
    actnorm_init,
    lu_init,
)
from gen_jax.models.vae import linear_gaussian
from gen_jax.nn.resnet import ResNetConditioner


def _jiggle(params, key, scale=0.1):
    """Every parameter moved by N(0, scale^2): breaks the identity / zero initializations."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)]
    )


def _images(key, shape, n=2):
    return jax.random.normal(key, (n, *shape))


# ----------------------------------------------------------------------------- flow bijectors


def _conv(c, seed):
    lu = lu_init(seed, c)
    rng = np.random.default_rng(seed + 1)
    return Invertible1x1Conv(
        jnp.asarray(lu["lower"] + 0.3 * rng.standard_normal((c, c)), jnp.float32),
        jnp.asarray(lu["upper"] + 0.3 * rng.standard_normal((c, c)), jnp.float32),
        jnp.asarray(lu["log_s"] + 0.2 * rng.standard_normal(c), jnp.float32),
        jnp.asarray(lu["perm"]),
        jnp.asarray(lu["sign"]),
    )


def _actnorm(c, seed):
    rng = np.random.default_rng(seed)
    return ActNorm(
        jnp.asarray(rng.standard_normal(c), jnp.float32), jnp.asarray(0.3 * rng.standard_normal(c))
    )


def _coupling(c, seed):
    net = ResNetConditioner(8, 2 * (c - c // 2))
    p = _jiggle(net.init(jax.random.key(seed), jnp.zeros((1, 2, 2, c // 2)))["params"], jax.random.key(seed))

    def conditioner(x1):
        return net.apply({"params": p}, x1).reshape(x1.shape[:-1] + (c - c // 2, 2))

    def affine(q):
        return distrax.ScalarAffine(shift=q[..., 0], log_scale=jnp.tanh(q[..., 1]))

    return distrax.SplitCoupling(c // 2, 3, conditioner, affine)


def _scan_chain(c, seed):
    k = 3
    lus = [lu_init(seed + i, c) for i in range(k)]
    stacked = {n: jnp.asarray(np.stack([d[n] for d in lus])) for n in lus[0]}
    stacked["bias"] = jax.random.normal(jax.random.key(seed), (k, c))
    stacked["log_scale"] = 0.2 * jax.random.normal(jax.random.key(seed + 1), (k, c))

    def make(p):
        conv = Invertible1x1Conv(p["lower"], p["upper"], p["log_s"], p["perm"], p["sign"])
        return distrax.Chain([conv, ActNorm(p["bias"], p["log_scale"])])

    return ScanChain(make, stacked, event_ndims=3)


def _multiscale(c, seed):
    # 4x4xc -> squeeze -> 2x2x4c with an actnorm; half factored out, the rest through a second scale
    inner = MultiScale(distrax.Chain([_actnorm(8 * c, seed + 1), Squeeze(2)]), (1, 1, 8 * c), None)
    outer = distrax.Chain([_conv(4 * c, seed), Squeeze(2)])
    return MultiScale(outer, (2, 2, 4 * c), inner)


BIJECTORS = {  # name -> (constructor(channels, seed), input image shape)
    "squeeze": (lambda c, s: Squeeze(2), (4, 4, 2)),
    "actnorm": (_actnorm, (4, 4, 3)),
    "conv1x1_lu": (_conv, (3, 3, 4)),
    "affine_coupling_resnet": (_coupling, (2, 2, 4)),
    "scan_chain": (_scan_chain, (3, 3, 4)),
    "multiscale": (_multiscale, (4, 4, 2)),
}


@pytest.mark.parametrize("name", list(BIJECTORS))
def test_image_bijector_inverse_and_logdet_vs_autodiff(name):
    make, shape = BIJECTORS[name]
    bij = make(shape[-1], 3)
    x = _images(jax.random.key(1), shape)

    @jax.jit
    def run(x):
        y, ld = bij.forward_and_log_det(x)
        x_back, ild = bij.inverse_and_log_det(y)
        flat = lambda v: bij.forward(v.reshape(shape)).reshape(-1)  # noqa: E731
        return ld, x_back, ild, jax.vmap(jax.jacfwd(flat))(x.reshape(x.shape[0], -1))

    ld, x_back, ild, jac = run(x)
    assert ld.shape == (2,) and jac.shape == (2, math.prod(shape), math.prod(shape))
    np.testing.assert_allclose(x_back, x, atol=2e-4)
    np.testing.assert_allclose(ild, -ld, rtol=1e-5, atol=1e-4)
    # log|det J| of each example, by autodiff
    np.testing.assert_allclose(ld, np.linalg.slogdet(np.asarray(jac, np.float64))[1], atol=2e-3)


def test_actnorm_init_normalizes_and_1x1_weight_is_plu():
    x = 3.0 + 2.0 * _images(jax.random.key(0), (4, 4, 3), n=16)
    an = actnorm_init(x)
    y = ActNorm(an["bias"], an["log_scale"]).forward(x)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-4)
    conv = _conv(4, 0)
    w = np.asarray(conv.weight(), np.float64)
    np.testing.assert_allclose(np.log(abs(np.linalg.det(w))), float(jnp.sum(conv.log_s)), atol=1e-4)


def test_bijectors_reject_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 2"):
        Squeeze(2).forward(jnp.zeros((1, 5, 4, 1)))
    with pytest.raises(ValueError, match="fewer levels"):
        make_model("glow", (28, 28, 1), num_levels=3)


# ----------------------------------------------------------------------------- the Glow model


def _glow_by_hand(model, params, x, key):
    """log P(x) bound: logit, then per scale squeeze, K steps, prior, split, summed by hand."""
    arch = model.internals["arch"]
    num_levels = arch.num_levels
    y = dequantize(x, key)
    v, ld = LogitTransform(arch.logit.bijector.alpha).forward_and_log_det(y)
    total, zs = jnp.sum(ld, axis=(1, 2, 3)), []
    for level, (_, _, c) in enumerate(arch.shapes):
        lp = params["levels"][level]
        v = Squeeze(2).forward(v)
        for k in range(lp["steps"]["actnorm"]["bias"].shape[0]):
            p_k = jax.tree_util.tree_map(lambda a, k=k: a[k], lp["steps"])
            p_k.update({n: jnp.asarray(a[k]) for n, a in arch.constants(level).items()})
            v, ld = arch.step(level, p_k).forward_and_log_det(v)
            total = total + ld
        v, ld = arch.prior(level, lp).forward_and_log_det(v)
        total = total + ld
        if level < num_levels - 1:
            zs.append(v[..., c // 2 :].reshape(v.shape[0], -1))
            v = v[..., : c // 2]
        else:
            zs.append(v.reshape(v.shape[0], -1))
    z = jnp.concatenate(zs, axis=-1)
    assert z.shape == (x.shape[0], model.num_dims)
    return jnp.sum(norm.logpdf(z), axis=-1) + total - model.num_dims * LOG_256


@pytest.fixture(scope="module")
def small_glow():
    model = make_model("glow", (8, 8, 1), num_levels=2, steps_per_level=1, channels=4)
    x = jax.random.randint(jax.random.key(0), (3, 8, 8, 1), 0, 256).astype(jnp.uint8)
    init = jax.jit(model.init)(jax.random.key(1), x)
    return model, jax.jit(_jiggle, static_argnums=2)(init, jax.random.key(2), 0.05), x, init


def test_glow_log_prob_is_the_change_of_variables_sum(small_glow):
    model, params, x, _ = small_glow
    key = jax.random.key(3)

    @jax.jit
    def run(params):
        # and against autodiff: log q(y) = log N(f(y)) + log|det df/dy| of the whole encoder
        f = model.internals["arch"].encoder(params)
        y = dequantize(x, key)[0]
        jac = jax.jacfwd(lambda v: f.forward(v.reshape(8, 8, 1)))(y.reshape(-1))
        log_n = jnp.sum(norm.logpdf(f.forward(y)))
        return model.log_prob(params, x, key), _glow_by_hand(model, params, x, key), log_n, jac

    lp, by_hand, log_n, jac = run(params)
    assert model.kind == Kind.LOWER_BOUND and lp.shape == (3,)
    np.testing.assert_allclose(lp, by_hand, rtol=1e-5, atol=1e-2)
    log_q = log_n + np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(lp[0], log_q - 64 * LOG_256, rtol=1e-4)


def test_glow_starts_normalized_and_samples_8bit(small_glow):
    model, _, x, params = small_glow
    # data-dependent init: the top latent of the init batch is standardized per channel
    z = jax.jit(
        lambda p: jax.vmap(model.internals["arch"].encoder(p).forward)(dequantize(x, jax.random.key(1)))
    )(params)
    assert abs(float(jnp.mean(z))) < 0.2 and 0.7 < float(jnp.std(z)) < 1.3
    s = jax.jit(model.sample, static_argnums=2)(params, jax.random.key(4), 5)
    assert s.shape == (5, 8, 8, 1) and s.dtype == jnp.uint8


# ----------------------------------------------------------------------------- PixelCNN


@pytest.fixture(scope="module")
def small_pixelcnn():
    model = make_model(
        "pixelcnn", (6, 6, 1), channels=4, num_layers=3, first_kernel=3, head_hidden=8, output="categorical"
    )
    x = jax.random.randint(jax.random.key(0), (2, 6, 6, 1), 0, 256).astype(jnp.uint8)
    params = jax.jit(lambda k, x: _jiggle(model.init(k, x), jax.random.key(2), 0.5))(jax.random.key(1), x)
    return model, params, x


def test_pixelcnn_is_causal_without_blind_spot(small_pixelcnn):
    model, params, _ = small_pixelcnn
    net = model.internals["network"]
    x0 = jax.random.uniform(jax.random.key(5), (36,), minval=-1, maxval=1)
    jac = np.asarray(
        jax.jit(jax.jacfwd(lambda v: net.apply(params, v.reshape(1, 6, 6, 1)).sum(-1).reshape(-1)))(x0)
    )
    assert np.all(np.triu(jac) == 0.0)  # output pixel i never sees input pixel j >= i (raster order)
    for r in range(1, 6):
        for c in range(6):
            i = 6 * r + c
            seen = [6 * (r - 1) + cc for cc in range(max(0, c - 1), min(6, c + 2))] + ([i - 1] if c else [])
            assert np.all(jac[i, seen] != 0.0), (r, c)  # incl. up-right: no blind spot


def test_pixelcnn_fast_sampling_equals_full_network(small_pixelcnn):
    model, params, _ = small_pixelcnn
    net = model.internals["network"]

    def draw(key, out):  # deterministic, and sensitive to the whole context
        return jnp.round(255 * jax.nn.sigmoid(4 * (out[..., 0] - out[..., 1]))).astype(jnp.uint8)

    fast = jax.jit(model.internals["sample_with"], static_argnums=(2, 3))(params, jax.random.key(0), 3, draw)
    apply = jax.jit(lambda canvas: net.apply(params, to_unit_range(canvas)))
    canvas = np.zeros((3, 6, 6, 1), np.uint8)
    for r in range(6):
        for c in range(6):
            canvas[:, r, c, 0] = np.asarray(draw(None, apply(jnp.asarray(canvas))[:, r, c]))
    np.testing.assert_array_equal(np.asarray(fast), canvas)
    assert len(np.unique(canvas)) > 3


def test_pixelcnn_log_prob_normalized_per_pixel(small_pixelcnn):
    model, params, _ = small_pixelcnn
    # pixel 0 has no parents: its 256 probabilities, over images varying only there, sum to one
    x = jnp.zeros((256, 6, 6, 1), jnp.uint8).at[:, 0, 0, 0].set(jnp.arange(256, dtype=jnp.uint8))

    @jax.jit
    def run(params):
        out = model.internals["network"].apply(params, to_unit_range(x))
        return model.internals["pixel_log_prob"](out[:, 0, 0], x[:, 0, 0, 0]), model.log_prob(
            params, x[:2], None
        )

    lp, full = run(params)
    np.testing.assert_allclose(jax.nn.logsumexp(lp), 0.0, atol=1e-4)
    assert full.shape == (2,) and bool(jnp.all(full < 0))


def test_discretized_logistic_mixture_by_hand():
    params = jax.random.normal(jax.random.key(0), (7, 9))  # 7 pixels, 3 components
    x = jnp.arange(256)
    lp = jax.jit(jax.vmap(lambda p: discretized.mixture_log_prob(jnp.broadcast_to(p, (256, 9)), x)))(params)
    np.testing.assert_allclose(jax.nn.logsumexp(lp, axis=-1), 0.0, atol=1e-4)
    p = np.asarray(params[0], np.float64)
    w, m, s = np.exp(p[:3]) / np.exp(p[:3]).sum(), p[3:6], np.exp(np.maximum(p[6:], -7.0))
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    c = 2 * 100 / 255 - 1
    hand = np.sum(w * (sig((c + 1 / 255 - m) / s) - sig((c - 1 / 255 - m) / s)))
    np.testing.assert_allclose(lp[0, 100], np.log(hand), rtol=1e-4)


# ----------------------------------------------------------------------------- VAE estimators


@pytest.fixture(scope="module")
def lin_gauss():
    rng = np.random.default_rng(0)
    d, k = 6, 2
    weight = rng.standard_normal((d, k))
    model = linear_gaussian(
        weight,
        rng.standard_normal(d),
        0.5,
        0.3 * weight.T,  # a deliberately poor encoder, so the bound has slack
        np.zeros(k),
        np.full(k, -0.5),
        num_samples=1000,
        chunk_size=64,
    )
    params = model.init(None, None)
    x = model.sample(params, jax.random.key(0), 200)
    return model, params, x


def test_iwae_increases_with_k_and_stays_below_exact_log_p(lin_gauss):
    model, params, x = lin_gauss
    exact = model.internals["exact_log_prob"](params, x)
    lw = model.get(LatentVariable).log_weights(params, x, jax.random.key(1), 1000)  # (200, 1000)
    ks = [1, 10, 100, 1000]
    gaps = np.asarray(log_mean_exp_prefixes(lw, ks) - exact[:, None])  # (200, 4)
    mean, se = gaps.mean(0), gaps.std(0, ddof=1) / np.sqrt(len(gaps))
    assert np.all(np.diff(mean) > 0), mean  # tighter with more samples, on average
    assert mean[0] < -0.1  # k = 1 (the ELBO's estimator) has clear slack with this encoder
    assert mean[-1] < 3 * se[-1] and mean[-1] > -0.05, (mean, se)  # below log p, and close at k = 1000
    # the estimator the experiments run (chunked, running logsumexp) is the same number
    iwae = model.estimators["iwae"].log_prob(params, x, jax.random.key(1))
    np.testing.assert_allclose(iwae - exact, gaps[:, -1], atol=1e-4)
    elbo = model.log_prob(params, x, jax.random.key(2))
    assert float(jnp.mean(elbo - exact)) < mean[1]


def test_chunking_does_not_change_the_estimate(lin_gauss):
    model, params, x = lin_gauss
    a = model.internals["estimate"]("prior", 100)(params, x[:20], jax.random.key(3))
    b = (
        linear_gaussian(**_lg_args(model), num_samples=100, chunk_size=7)
        .estimators["prior"]
        .log_prob(params, x[:20], jax.random.key(3))
    )
    np.testing.assert_allclose(a, b, rtol=1e-5)
    exact = model.internals["exact_log_prob"](params, x[:20])
    assert float(jnp.mean(a - exact)) < 0  # the prior estimator is below log p on average too


def _lg_args(model):
    p = model.internals["params"]
    return dict(
        weight=p["weight"],
        bias=p["bias"],
        noise_scale=0.5,
        encoder_weight=p["enc_weight"],
        encoder_bias=p["enc_bias"],
        encoder_log_scale=p["enc_log_scale"],
    )


@pytest.mark.parametrize("name", ["vae", "vae_bin"])
def test_conv_vae_bound_and_estimators_on_images(name):
    model = make_model(
        name,
        (4, 4, 1),
        latent_dim=2,
        encoder_channels=(4,),
        decoder_channels=(4,),
        dense_width=8,
        num_samples=40,
        chunk_size=20,
    )
    x = jax.random.randint(jax.random.key(0), (4, 4, 4, 1), 0, 256).astype(jnp.uint8)
    key = jax.random.key(3)

    @jax.jit
    def run(x):
        params = _jiggle(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)
        iwae = model.estimators["iwae"].log_prob(params, x, key)
        return model.log_prob(params, x, key), iwae, model.loss(params, x, key), model.sample(params, key, 3)

    elbo, iwae, (loss, metrics), s = run(x)
    assert model.kind == Kind.LOWER_BOUND and elbo.shape == iwae.shape == (4,)
    assert float(jnp.mean(iwae)) > float(jnp.mean(elbo))
    np.testing.assert_allclose(loss, metrics["reconstruction"] + metrics["kl"], rtol=1e-5)
    assert s.shape == (3, 4, 4, 1) and s.dtype == jnp.uint8


def test_prior_estimator_decodes_each_draw_once_for_the_whole_batch():
    """The prior's draws do not depend on x: one decoder pass per draw serves every image of the call
    (the IWAE's cost grows with the batch, the prior's hardly), and each image's estimate is the log-mean
    of p(x | z_j) over those shared draws."""
    model = make_model(
        "vae", (8, 8, 1), latent_dim=2, encoder_channels=(8,), decoder_channels=(16,), dense_width=32
    )
    x = jax.random.randint(jax.random.key(0), (16, 8, 8, 1), 0, 256).astype(jnp.uint8)
    params = _jiggle(model.init(jax.random.key(1), x), jax.random.key(2), 0.05)
    key, k = jax.random.key(3), 50

    def flops(proposal, n):
        fn = lambda p, xb: model.internals["estimate"](proposal, k)(p, xb, key)
        return jax.jit(fn).lower(params, x[:n]).cost_analysis()["flops"]

    assert flops("posterior", 16) > 8 * flops("posterior", 1)
    assert flops("prior", 16) < 3 * flops("prior", 1)
    est = model.internals["estimate"]("prior", k)(params, x, key)
    lw = model.get(LatentVariable).log_weights(params, x, key, k, "prior")  # (16, k)
    np.testing.assert_allclose(est, jax.nn.logsumexp(lw, -1) - math.log(k), rtol=1e-5)
    z = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 1), j), (2,)))(
        jnp.arange(k)
    )
    direct = jax.vmap(lambda xi: model.internals["decoder_log_prob"](params, z, xi))(x)
    np.testing.assert_allclose(lw, direct, rtol=1e-5)


def test_estimator_study_curves_and_figure(lin_gauss, tmp_path):
    from gen_jax.evaluation.latent import estimator_curves, figure, summarize

    model, params, x = lin_gauss
    curves = estimator_curves(model, params, x[:8], (1, 10, 100), repeats=3, chunk=50)
    assert curves["posterior"].shape == curves["prior"].shape == (3, 8, 3)
    rows = summarize(curves, (1, 10, 100), num_dims=784)
    iwae = [r for r in rows if r["estimator"].startswith("IWAE")]
    assert [r["k"] for r in iwae] == [1, 10, 100] and len(rows) == 7
    assert iwae[0]["bpd"] > iwae[1]["bpd"] > iwae[2]["bpd"]  # tighter (fewer bits) with more samples
    assert iwae[0]["spread_bpd"] > iwae[2]["spread_bpd"]
    figure(tmp_path / "est.png", rows, "test")
    assert (tmp_path / "est.png").stat().st_size > 0
