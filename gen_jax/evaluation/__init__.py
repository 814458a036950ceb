"""The evaluation layer: views of a model -> rows (nats, bits/dim, standard errors, log Z) -> tables."""

from gen_jax.evaluation.nll import evaluate_nll

__all__ = ["evaluate_nll"]
