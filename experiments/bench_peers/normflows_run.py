"""One normflows run of the flow benchmark (runs in the peer venv: imports only normflows, PyTorch and
numpy, never gen_jax).

    .venv-peers/bin/python experiments/bench_peers/normflows_run.py DATA.npz MODEL SEED [--steps N]

Prints one line `BENCH {json}`. A plain PyTorch loop: zero_grad, loss = -log_prob(batch).mean(),
backward, step; torch uses os.cpu_count() threads (`--threads` to change it: on a machine busy with
other work, PyTorch's OpenMP threads contend for the cores and can run many times slower).

Layers. RealNVP: normflows' own recipe (its README example), `AffineCouplingBlock` with
`MLP([1, 64, 64, 2], init_zeros=True)` and a `Permute(2, "swap")` after each block. NSF: normflows'
`CoupledRationalQuadraticSpline` would add a residual conditioner and an unconditional spline on the
untransformed half, so the layer is built from its `PiecewiseRationalQuadraticCoupling` primitive
(8 bins, linear tails, bound 4, alternating masks) with a plain `MLP([1, 64, 64, 23], init_zeros=True)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for experiments.memory
from experiments.memory import peak_rss_mb  # noqa: E402  (standard library only)


def build(model: str):
    import normflows as nf
    import torch

    base = nf.distributions.DiagGaussian(2, trainable=False)
    flows = []
    if model == "realnvp":
        for _ in range(8):
            flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, 64, 64, 2], init_zeros=True)))
            flows.append(nf.flows.Permute(2, mode="swap"))
        return nf.NormalizingFlow(base, flows)
    if model != "nsf":
        raise ValueError(f"unknown model {model!r}")
    from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling
    from normflows.utils.masks import create_alternating_binary_mask

    class Conditioner(torch.nn.Module):  # the coupling calls transform_net(x, context)
        def __init__(self, n_in, n_out):
            super().__init__()
            self.mlp = nf.nets.MLP([n_in, 64, 64, n_out], init_zeros=True)

        def forward(self, x, context=None):
            return self.mlp(x)

    class SplineCoupling(nf.flows.Flow):  # as normflows' CoupledRationalQuadraticSpline, plain MLP
        def __init__(self, reverse_mask: bool):
            super().__init__()
            self.prqct = PiecewiseRationalQuadraticCoupling(
                mask=create_alternating_binary_mask(2, even=reverse_mask),
                transform_net_create_fn=Conditioner,
                num_bins=8,
                tails="linear",
                tail_bound=4.0,
                apply_unconditional_transform=False,
            )

        def forward(self, z, context=None):
            z, log_det = self.prqct.inverse(z, context)
            return z, log_det.view(-1)

        def inverse(self, z, context=None):
            z, log_det = self.prqct(z, context)
            return z, log_det.view(-1)

    flows = [SplineCoupling(reverse_mask=i % 2 == 1) for i in range(4)]
    return nf.NormalizingFlow(base, flows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("model")
    p.add_argument("seed", type=int)
    p.add_argument("--steps", type=int, default=None, help="default: all rows of the batch order")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: os.cpu_count())")
    a = p.parse_args(argv)

    import normflows as nf
    import torch

    torch.set_num_threads(a.threads or os.cpu_count())
    torch.manual_seed(a.seed)
    with np.load(a.data) as f:
        train, test, order = f["train"], f["test"], f["order"]
    steps = a.steps or order.shape[0]
    model = build(a.model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    t0 = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = torch.from_numpy(np.ascontiguousarray(train[order[:steps]]))  # (steps, 512, 2) float32
    first = t_first = None
    loss = None
    for i in range(steps):
        optimizer.zero_grad()
        loss = -model.log_prob(batches[i]).mean()
        loss.backward()
        optimizer.step()
        if i == 0:
            t_first = time.perf_counter()
            first = t_first - t0
    t_end = time.perf_counter()

    model.eval()
    with torch.no_grad():
        nll = float(-model.log_prob(torch.from_numpy(test)).mean())
    row = dict(
        library="normflows",
        model=a.model,
        steps=steps,
        steps_per_sec=(steps - 1) / (t_end - t_first) if steps > 1 else None,
        first_step_seconds=first,
        total_seconds=t_end - t0,
        test_nll=nll,
        final_loss=float(loss),
        peak_rss_mb=peak_rss_mb(),
        params=int(n_params),
        version=f"normflows {nf.__version__}, torch {torch.__version__}",
        torch_threads=torch.get_num_threads(),
        device="cpu",
    )
    print("BENCH " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
