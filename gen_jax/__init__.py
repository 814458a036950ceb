"""gen_jax: how do we get p(x) out of a generative model, and how far can we trust it?"""

__version__ = "0.1.0"
