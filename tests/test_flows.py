"""Every flow: inverse(forward(z)) == z, and log-dets equal log|det J| from autodiff Jacobians.

The coupling flows' conditioners have a custom VJP (`gen_jax.nn.mlp.linear_fm`), so the Jacobians
are reverse-mode (jax.jacrev); every other part is checked the same way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_models import raw_model

from gen_jax.models import Kind

FLOWS = ["realnvp", "nsf", "maf"]


def _random_params(model, key, dim, dtype=jnp.float32):
    """Init params, then perturbed: the zero-initialised last layers would make every flow the identity."""
    params = model.init(key, jnp.zeros((4, dim)))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [
        (p + 0.15 * jax.random.normal(k, p.shape)).astype(dtype) for p, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree_util.tree_unflatten(tree, leaves)


def _logabsdet(f, z):
    return jnp.linalg.slogdet(jax.jacrev(f)(z))[1]


def _check_bijector(model, dim, dtype, atol):
    params = _random_params(model, jax.random.key(dim), dim, dtype)
    z = 1.5 * jax.random.normal(jax.random.key(1), (16, dim), dtype)

    @jax.jit
    def everything(params, z):
        bij = model.internals["bijector"](params)  # acts on one example; vmapped over the batch
        x, ldj = jax.vmap(bij.forward_and_log_det)(z)
        z_back, ildj = jax.vmap(bij.inverse_and_log_det)(x)
        ldj_ad = jax.vmap(lambda v: _logabsdet(bij.forward, v))(z)
        ildj_ad = jax.vmap(lambda v: _logabsdet(bij.inverse, v))(x)
        return x, ldj, z_back, ildj, ldj_ad, ildj_ad

    x, ldj, z_back, ildj, ldj_ad, ildj_ad = everything(params, z)
    assert x.dtype == dtype and ldj.shape == (16,)
    np.testing.assert_allclose(z_back, z, atol=atol)
    assert float(jnp.max(jnp.abs(x - z))) > 1e-2, "the perturbed flow should not be the identity"
    np.testing.assert_allclose(ldj, ldj_ad, atol=atol, rtol=atol)
    np.testing.assert_allclose(ildj, ildj_ad, atol=atol, rtol=atol)
    np.testing.assert_allclose(ildj, -ldj, atol=atol, rtol=atol)


@pytest.mark.parametrize("name", FLOWS)
@pytest.mark.parametrize("dim", [2, 5])
def test_bijector_inverse_and_logdet_float64(name, dim):
    with jax.enable_x64(True):
        _check_bijector(raw_model(name, (dim,), num_layers=3, hidden=(16, 16)), dim, jnp.float64, 1e-6)


@pytest.mark.parametrize("name", FLOWS)
def test_bijector_inverse_and_logdet_float32(name):
    _check_bijector(raw_model(name, (2,), num_layers=3, hidden=(16, 16)), 2, jnp.float32, 5e-2)


@pytest.mark.parametrize("name", FLOWS)
def test_log_prob_is_change_of_variables(name):
    dim = 3
    model = raw_model(name, (dim,), num_layers=2, hidden=(16,))
    params = _random_params(model, jax.random.key(3), dim)
    x = jax.random.normal(jax.random.key(4), (8, dim))

    @jax.jit
    def both(params, x):
        inv = model.internals["bijector"](params).inverse
        z = jax.vmap(inv)(x)
        by_hand = jax.scipy.stats.norm.logpdf(z).sum(-1) + jax.vmap(lambda v: _logabsdet(inv, v))(x)
        return model.log_prob(params, x, None), by_hand

    np.testing.assert_allclose(*both(params, x), atol=2e-4, rtol=1e-4)
    assert model.kind == Kind.EXACT


@pytest.mark.parametrize("name", FLOWS)
def test_flow_starts_at_identity_and_samples(name):
    model = raw_model(name, (2,))
    params = model.init(jax.random.key(0), jnp.zeros((4, 2)))
    x = jax.random.normal(jax.random.key(1), (10, 2))
    lp = jax.jit(model.log_prob)(params, x, None)
    np.testing.assert_allclose(lp, jax.scipy.stats.norm.logpdf(x).sum(-1), atol=1e-5)
    s = jax.jit(model.sample, static_argnums=2)(params, jax.random.key(2), 7)
    assert s.shape == (7, 2) and bool(jnp.all(jnp.isfinite(s)))


def test_wrong_shapes_get_clear_errors():
    with pytest.raises(ValueError, match="vectors"):
        raw_model("nsf", (28, 28))
    with pytest.raises(ValueError, match="unknown model"):
        raw_model("nope", (2,))


@pytest.mark.parametrize("name", FLOWS)
def test_one_dimensional_data(name):
    """1-D data: a coupling flow's layers are elementwise maps with learned parameters; every flow is
    still exactly normalized (its density integrates to 1 on a fine grid)."""
    model = raw_model(name, 1, num_layers=2, hidden=(8,))
    params = _random_params(model, jax.random.key(3), 2)
    grid = jnp.linspace(-12.0, 12.0, 20001)[:, None]
    mass = float(jnp.sum(jnp.exp(model.log_prob(params, grid))) * (grid[1, 0] - grid[0, 0]))
    assert mass == pytest.approx(1.0, abs=2e-3)
    assert model.sample(params, jax.random.key(1), 5).shape == (5, 1)


@pytest.mark.parametrize("name", FLOWS)
def test_scanned_layers_equal_unrolled_layers(name):
    scanned = raw_model(name, (3,), num_layers=3, hidden=(8,))
    unrolled = raw_model(name, (3,), num_layers=3, hidden=(8,), scan_layers=False)
    params = _random_params(scanned, jax.random.key(7), 3)
    as_list = {
        **params,
        "layers": [jax.tree_util.tree_map(lambda a, i=i: a[i], params["layers"]) for i in range(3)],
    }
    x = jax.random.normal(jax.random.key(8), (6, 3))
    np.testing.assert_allclose(
        jax.jit(scanned.log_prob)(params, x, None),
        jax.jit(unrolled.log_prob)(as_list, x, None),
        rtol=1e-5,
        atol=1e-5,
    )


def test_spline_equals_distrax_spline():
    """gen_jax's fast spline is distrax's RationalQuadraticSpline(boundary_slopes='identity')."""
    import distrax

    from gen_jax.models.bijectors import RationalQuadraticSpline

    k, bound = 8, 4.0
    with jax.enable_x64(True):  # float64: the inverse is ill-conditioned where the spline is flat
        raw = 1.5 * jax.random.normal(jax.random.key(0), (64, 3 * k - 1), jnp.float64)
        x = jnp.concatenate([jnp.linspace(-5.0, 5.0, 48), jnp.array([-4.0, 4.0, 0.0, 3.999] * 4)])
        pad = jnp.zeros((64, 1))
        ref_params = jnp.concatenate([raw[:, : 2 * k], pad, raw[:, 2 * k :], pad], -1)  # 3K + 1
        ref = distrax.RationalQuadraticSpline(ref_params, -bound, bound, boundary_slopes="identity")
        ours = RationalQuadraticSpline(raw, bound)
        y_ref, ld_ref = ref.forward_and_log_det(x)
        y, ld = ours.forward_and_log_det(x)
        x_back, ild = ours.inverse_and_log_det(y_ref)
        assert y.dtype == jnp.float64
        np.testing.assert_allclose(y, y_ref, atol=1e-10)
        np.testing.assert_allclose(ld, ld_ref, atol=1e-10)
        np.testing.assert_allclose(x_back, x, atol=1e-8)
        np.testing.assert_allclose(ild, -ld_ref, atol=1e-8)
        assert float(jnp.max(jnp.abs(y - x))) > 0.1  # a real, non-identity spline


def test_spline_parameters_on_any_axis_and_its_gradient():
    """param_axis=0 (the coupling flows' layout) is the same spline as the last axis, and the
    gradient through the bin picking (`_pick`'s own VJP) equals central finite differences."""
    from gen_jax.models.bijectors import RationalQuadraticSpline

    k, bound = 8, 4.0
    with jax.enable_x64(True):
        raw = 1.5 * jax.random.normal(jax.random.key(5), (16, 3 * k - 1), jnp.float64)
        x = jnp.linspace(-4.5, 4.5, 16)

        def total(raw, x, axis):
            p = raw if axis == -1 else raw.T
            y, ld = RationalQuadraticSpline(p, bound, param_axis=axis).forward_and_log_det(x)
            xb, ild = RationalQuadraticSpline(p, bound, param_axis=axis).inverse_and_log_det(y)
            return jnp.sum(jnp.sin(y) + ld**2 + 0.3 * xb + ild)

        np.testing.assert_allclose(total(raw, x, 0), total(raw, x, -1), rtol=1e-12)
        grad = jax.grad(total)(raw, x, 0)
        direction = jax.random.normal(jax.random.key(6), raw.shape, jnp.float64)
        eps = 1e-6
        numeric = (total(raw + eps * direction, x, 0) - total(raw - eps * direction, x, 0)) / (2 * eps)
        np.testing.assert_allclose(jnp.sum(grad * direction), numeric, rtol=1e-6)
        assert float(jnp.max(jnp.abs(grad))) > 1e-3


def test_flows_train_on_the_whole_batch_not_per_example():
    """Coupling flows call the distribution on the batch (their conditioners see it feature-major):
    log_prob agrees with the per-example vmap, and the weight gradient has no per-example axis."""
    model = raw_model("nsf", (2,), num_layers=2, hidden=(8,))
    params = _random_params(model, jax.random.key(9), 2)
    x = jax.random.normal(jax.random.key(10), (32, 2))
    per_example = jax.vmap(model.internals["distribution"](params).log_prob)(x)
    np.testing.assert_allclose(model.log_prob(params, x, None), per_example, rtol=1e-5, atol=1e-5)
    hlo = jax.jit(jax.grad(lambda p: model.log_prob(p, x, None).sum())).lower(params).as_text()
    assert "32x1x8xf32" not in hlo and "32x8x23xf32" not in hlo  # no (batch, in, out) outer products


@pytest.mark.parametrize("dim", [3, 6, 10])
def test_coupling_permutations_put_every_pair_of_coordinates_on_opposite_sides(dim):
    """A coupling layer conditions the second half on the first. With a reversal between layers the
    two halves stay the same sets, so two coordinates of one half never condition each other
    directly (in 10-D: x2 never on x1); the seeded permutations split every pair across the halves
    (one side conditioning the other) within the flow's 8 layers."""
    from gen_jax.models.flows import mixing_permutations

    perms = mixing_permutations(dim, 8)
    order = np.arange(dim)
    split = dim // 2
    apart = np.zeros((dim, dim), bool)
    for perm in perms:  # the layer acts on `order`, then the permutation reorders it
        first = np.isin(np.arange(dim), order[:split])
        apart |= first[:, None] != first[None, :]
        order = order[perm]
    assert apart[~np.eye(dim, dtype=bool)].all()
    assert mixing_permutations(2, 8) is None  # 2-D keeps the reversal (the toy results are unchanged)


@pytest.mark.parametrize("dim", [3, 5, 10])
def test_interleaved_permutations_alternate_odd_and_even_coordinates_from_the_data_side(dim):
    """`permutation="interleaved"`: walking from the data (the arrangement after the last permutation
    is x's own order) back through the layers, the layer the data meet first keeps the odd positions
    and transforms the even ones, the next keeps the even ones, in turn."""
    from gen_jax.models.flows import interleaved_permutations

    perms, split = interleaved_permutations(dim, 6), dim // 2
    arrangement = np.arange(dim)  # what the data side sees
    kept = []
    for perm in perms[::-1]:  # before the permutation p, the arrangement was arrangement[argsort(p)]
        arrangement = arrangement[np.argsort(perm)]
        kept.append(sorted(arrangement[:split].tolist()))
    odd, even = list(range(1, dim, 2)), list(range(0, dim, 2))[:split]
    assert kept == [odd, even, odd, even, odd, even]
    assert interleaved_permutations(2, 6) is None


def test_nsf_fits_its_spline_box_to_heavy_tails():
    """Standardized data with a heavy tail (the shifted banana x2 = 12 + 2 x1^2 + noise reaches beyond
    8 standard deviations) would leave the spline's identity tails outside [-4, 4] to model them: the
    box is fitted at init to cover every init example, frozen, and 2-D data within 4 keep B = 4."""
    from gen_jax.models import make_model

    rng = np.random.default_rng(0)
    x1 = rng.normal(size=5000)
    banana = np.stack([x1, 12 + 2 * x1**2 + 0.5 * rng.normal(size=x1.shape)], 1).astype(np.float32)
    model = make_model("nsf", 2, num_layers=2, hidden=(8,))
    params = model.init(jax.random.key(0), banana[:1024])
    z = (banana[:1024] - banana[:1024].mean(0)) / banana[:1024].std(0)
    box = float(params["model"]["spline_box"])
    assert box >= np.abs(z).max() > 4.0
    moons_like = rng.normal(size=(1024, 2)).clip(-3, 3).astype(np.float32)
    assert float(make_model("nsf", 2).init(jax.random.key(0), moons_like)["model"]["spline_box"]) == 4.0
    assert np.isfinite(np.asarray(model.log_prob(params, jnp.asarray(banana), None))).all()
