"""Units of log-likelihood. Every loss and log_prob in gen_jax is in nats per example;
bits per dimension is derived here and nowhere else.

bits/dim = NLL_nats / (D ln 2), D the number of dimensions of one example.
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def nats_to_bits_per_dim(nll_nats, num_dims: int):
    """Per-example NLL in nats -> bits per dimension."""
    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    return nll_nats / (num_dims * LN2)


def bits_per_dim_to_nats(bpd, num_dims: int):
    """Bits per dimension -> per-example NLL in nats."""
    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    return bpd * num_dims * LN2
