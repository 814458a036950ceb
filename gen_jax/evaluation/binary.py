"""What the 28x28 binary world measures beyond a model's rows: the naive table, and the total mass of
a function that is not a distribution.

    row = naive_table(train, test)              # a probability per image: 2^784 parameters
    mass = sigmoid_mass(model, params, train)   # sum over all 2^784 images of s(x), by importance sampling
"""

from __future__ import annotations

import math

import jax
import numpy as np

from gen_jax.core import Model
from gen_jax.likelihood.importance import binary_log_mass


def naive_table(train: np.ndarray, test: np.ndarray) -> dict:
    """The counted table over {0,1}^D with add-one smoothing: log p(x) = log(count(x) + 1) - log(N +
    2^D). How many test images occur in the training set at all, how many distinct training images
    there are, and the test NLL (nats) with its standard error."""
    d = train.shape[1]
    keys = lambda x: [r.tobytes() for r in np.packbits(x.astype(np.uint8), axis=1)]
    counts: dict[bytes, int] = {}
    for k in keys(train):
        counts[k] = counts.get(k, 0) + 1
    hits = np.array([counts.get(k, 0) for k in keys(test)], np.float64)
    log_norm = d * math.log(2.0) + math.log1p(len(train) / 2.0**d)
    nll = log_norm - np.log(hits + 1.0)
    return dict(
        test_nll=float(nll.mean()),
        test_nll_se=float(nll.std(ddof=1) / math.sqrt(len(nll))),
        test_seen=int((hits > 0).sum()),
        distinct_train=len(counts),
        params=f"2^{d} ~ 1e{int(d * math.log10(2))}",
    )


def sigmoid_mass(model: Model, params, train: np.ndarray, key, num_samples: int) -> dict:
    """The total "probability" sum_x exp(log_prob(x)) of a model over every binary vector, by
    importance sampling from a defensive mixture of the training data's independent-Bernoulli model
    and the uniform distribution, beside plain importance sampling from the Bernoulli model alone
    (which misses the mass far from the data). A distribution gives 0 (log of 1)."""
    p = (train.sum(0) + 1.0) / (len(train) + 2.0)
    logits = np.log(p) - np.log1p(-p)
    log_f = lambda x: model.log_prob(params, x, key)
    mixed = binary_log_mass(log_f, logits, jax.random.fold_in(key, 1), num_samples, uniform_share=0.5)
    plain = binary_log_mass(log_f, logits, jax.random.fold_in(key, 2), num_samples, uniform_share=0.0)
    return dict(
        log_mass=mixed["log_z"],
        log_mass_se=mixed["se"],
        log_mass_ess=mixed["ess"],
        log_mass_bernoulli_only=plain["log_z"],
        log_mass_bernoulli_only_se=plain["se"],
        log_mass_bernoulli_only_ess=plain["ess"],
        num_samples=num_samples,
        log_num_states=train.shape[1] * math.log(2.0),
    )
