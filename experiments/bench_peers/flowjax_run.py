"""One flowjax run of the flow benchmark (runs in the peer venv: imports only flowjax, its JAX stack and
numpy, never gen_jax).

    .venv-peers/bin/python experiments/bench_peers/flowjax_run.py DATA.npz MODEL SEED [--steps N]

Prints one line `BENCH {json}`. The training step is flowjax's own: `flowjax.train.train_utils.step`
(the `eqx.filter_jit` step `flowjax.train.fit_to_data` runs) with `MaximumLikelihoodLoss`, driven
over the exported batch order the way `fit_to_data`'s loop drives it (batches are slices of one
device array; a key split per step; losses kept on the device, not read back per step).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for experiments.memory
from experiments.memory import peak_rss_mb  # noqa: E402  (standard library only)


def build(model: str, key):
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import StandardNormal
    from flowjax.flows import coupling_flow

    base = StandardNormal((2,))
    if model == "realnvp":  # the default transformer: affine, scale softplus + 0.01
        return coupling_flow(key, base_dist=base, flow_layers=8, nn_width=64, nn_depth=2)
    if model == "nsf":  # knots=7 interior knots: 8 bins on [-4, 4], identity outside
        return coupling_flow(
            key,
            base_dist=base,
            transformer=RationalQuadraticSpline(knots=7, interval=4),
            flow_layers=4,
            nn_width=64,
            nn_depth=2,
        )
    raise ValueError(f"unknown model {model!r}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("model")
    p.add_argument("seed", type=int)
    p.add_argument("--steps", type=int, default=None, help="default: all rows of the batch order")
    a = p.parse_args(argv)

    import equinox as eqx
    import flowjax
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import optax
    import paramax
    from flowjax.train.losses import MaximumLikelihoodLoss
    from flowjax.train.train_utils import step

    with np.load(a.data) as f:
        train, test, order = f["train"], f["test"], f["order"]
    steps = a.steps or order.shape[0]
    key, model_key = jr.split(jr.key(a.seed))
    flow = build(a.model, model_key)

    t0 = time.perf_counter()
    loss_fn = MaximumLikelihoodLoss()
    optimizer = optax.adam(1e-3)
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
    opt_state = optimizer.init(params)
    batches = jnp.asarray(train[order[:steps]])  # (steps, 512, 2) on the device, as get_batches makes
    losses = []
    first = t_first = None
    for i, batch in enumerate(batches):
        key, subkey = jr.split(key)
        params, opt_state, loss_i = step(
            params, static, batch, optimizer=optimizer, opt_state=opt_state, loss_fn=loss_fn, key=subkey
        )
        losses.append(loss_i)
        if i == 0:
            jax.block_until_ready((params, loss_i))
            t_first = time.perf_counter()
            first = t_first - t0
    jax.block_until_ready((params, losses[-1]))
    t_end = time.perf_counter()

    flow = paramax.unwrap(eqx.combine(params, static))
    nll = float(-eqx.filter_jit(lambda d, x: d.log_prob(x).mean())(flow, jnp.asarray(test)))
    dev = jax.devices()[0]
    row = dict(
        library="flowjax",
        model=a.model,
        steps=steps,
        steps_per_sec=(steps - 1) / (t_end - t_first) if steps > 1 else None,
        first_step_seconds=first,
        total_seconds=t_end - t0,
        test_nll=nll,
        final_loss=float(losses[-1]),
        peak_rss_mb=peak_rss_mb(),
        params=int(n_params),
        version=f"flowjax {flowjax.__version__}, jax {jax.__version__}",
        device=f"{dev.platform}:{dev.device_kind}",
    )
    print("BENCH " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
