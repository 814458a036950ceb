"""Tiny instances of every registered model and data for them: the registry-wide tests use these.

A model registered without an entry here fails `test_every_registered_model_has_a_tiny_case`, so a
new family is covered by the contract, autodiff and option tests as soon as it is registered.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models import MODELS

VECTOR = (3,)
BINARY = (4,)
IMAGE = (8, 8, 1)
EBM_TINY = dict(hidden=(8,), sample_temps=4, sample_rejuvenation=1)

# name -> (event shape, options, data kind)
CASES = {
    "realnvp": (VECTOR, dict(num_layers=2, hidden=(8,)), "real"),
    "nsf": (VECTOR, dict(num_layers=2, hidden=(8,), num_bins=4), "real"),
    "maf": (VECTOR, dict(num_layers=2, hidden=(8,)), "real"),
    "gaussian": (VECTOR, {}, "real"),
    "gmm": (VECTOR, dict(num_components=3, em_iters=5), "real"),
    "ebm_nsf": (VECTOR, dict(base_options=dict(num_layers=2, hidden=(8,), num_bins=4), hidden=(8,)), "real"),
    "pixel_cat": (IMAGE, {}, "8bit"),
    "glow": (IMAGE, dict(num_levels=2, steps_per_level=1, channels=4), "8bit"),
    "ebm_flow": (
        IMAGE,
        dict(
            base_options=dict(num_levels=2, steps_per_level=1, channels=4),
            conv_features=(4,),
            sir_candidates=4,
        ),
        "8bit",
    ),
    "pixelcnn": (
        IMAGE,
        dict(channels=4, num_layers=1, first_kernel=3, head_hidden=4, num_mixtures=1),
        "8bit",
    ),
    "vae": (
        IMAGE,
        dict(
            latent_dim=2,
            encoder_channels=(2,),
            decoder_channels=(2,),
            dense_width=4,
            num_mixtures=1,
            num_samples=4,
            chunk_size=2,
        ),
        "8bit",
    ),
    "vae_bin": (
        IMAGE,
        dict(
            latent_dim=2,
            encoder_channels=(2,),
            decoder_channels=(2,),
            dense_width=4,
            num_samples=4,
            chunk_size=2,
        ),
        "8bit",
    ),
    "gan": (VECTOR, dict(hidden=(8,)), "real"),
    "diffusion": (
        VECTOR,
        dict(
            width=8, num_blocks=1, embed_dim=8, elbo_samples=2, sample_steps=3, ode_rtol=1e-2, ode_atol=1e-2
        ),
        "real",
    ),
    "ebm": (VECTOR, EBM_TINY, "real"),
    "ebm_dsm": (VECTOR, EBM_TINY, "real"),
    "ebm_dsm_ladder": (VECTOR, dict(EBM_TINY, num_sigmas=3), "real"),
    "ebm_ssm": (VECTOR, EBM_TINY, "real"),
    "ebm_naive_mle": (VECTOR, EBM_TINY, "real"),
    "ebm_nce": (VECTOR, EBM_TINY, "real"),
    "ebm_cd": (VECTOR, dict(EBM_TINY, cd_chains=16, cd_steps=3), "real"),
    "freq_table": (BINARY, {}, "binary"),
    "bernoulli": (BINARY, {}, "binary"),
    "ar_bernoulli": (BINARY, dict(hidden=(8,)), "binary"),
    "ebm_exact_ml": (BINARY, dict(hidden=(8,)), "binary"),
    "ebm_pseudo_lik": (BINARY, dict(hidden=(8,)), "binary"),
    "ebm_bin_nce": (BINARY, dict(hidden=(8,)), "binary"),
    "ebm_bin_cd": (BINARY, dict(hidden=(8,), cd_chains=16), "binary"),
    "bernoulli_mixture": (BINARY, dict(num_components=3), "binary"),
    "linear_energy": (BINARY, {}, "binary"),
    "rbm": (BINARY, dict(num_hidden=3, num_chains=8, sample_steps=5), "binary"),
}


def data(kind: str, shape, n: int = 64, seed: int = 0):
    """n examples of the data kind: real vectors, 8-bit images (uint8) or binary vectors."""
    rng = np.random.default_rng(seed)
    if kind == "real":
        return (rng.normal(size=(n, *shape)) @ np.diag(np.linspace(0.5, 2.0, shape[-1])) + 1.0).astype(
            np.float32
        )
    if kind == "8bit":
        return rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    return (rng.random((n, *shape)) < 0.3).astype(np.float32)


def build(name: str, **extra):
    """(model, params, data) of a tiny instance, its parameters moved off their initial values."""
    from gen_jax.models import make_model

    shape, options, kind = CASES[name]
    model = make_model(name, shape, **{**options, **extra})
    x = data(kind, shape)
    params = model.init(jax.random.key(0), jnp.asarray(x))

    # in numpy: eager jnp ops compile one small program per new leaf shape (2 s for ebm_flow's 37 leaves)
    def nudge(p):
        if not jnp.issubdtype(p.dtype, jnp.floating):
            return p
        step = 0.05 * np.cos(np.arange(p.size).reshape(p.shape) + 1.0)
        return jnp.asarray(np.asarray(p) + step.astype(p.dtype))

    params = jax.tree_util.tree_map(nudge, params)
    return model, params, x


def registered() -> list[str]:
    """Every registered model name."""
    return sorted(MODELS)


def raw_model(name: str, event_shape, **options):
    """make_model without the standardizing wrapper (for tests of a family's own internals)."""
    from gen_jax.models import make_model
    from gen_jax.models.registry import model_options

    if "standardize" in model_options(name) and "standardize" not in options:
        options["standardize"] = "none"
    return make_model(name, event_shape, **options)
