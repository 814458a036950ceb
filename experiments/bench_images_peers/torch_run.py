"""One PyTorch run of the image benchmark (runs in the peers' venv: imports only torch, numpy and this
package's numpy-only pieces, never gen_jax or jax).

    .venv-peers/bin/python experiments/bench_images_peers/torch_run.py DATA.npz RUN --mode eager|compile
    .venv-peers/bin/python experiments/bench_images_peers/torch_run.py --check CHECK.npz

Prints one line `BENCH {json}`. The model (`torch_models`) is loaded with gen_jax's exported initial
parameters, trained on the exported batches in order by a plain loop (zero_grad, loss, backward,
`clip_grad_norm_(1.0)`, `Adam(fused=True)`, `LambdaLR` with optax's warm-up + cosine schedule), then
evaluated on the test batch under `torch.no_grad()`. `--mode compile` wraps the loss and the
log-likelihood in `torch.compile`; unless TORCHINDUCTOR_CACHE_DIR is set, each process compiles into a
fresh cache directory (a cold compile, as gen_jax's JAX compiles in every fresh process).
`--check`: log-probabilities and losses of the exported check batch under the exported draws (the
test's forward-pass comparison with gen_jax).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for experiments.*
from experiments.bench_images_peers import (  # noqa: E402  (numpy and the standard library only)
    EVAL_BATCH,
    STEPS_PER_DISPATCH,
    TRAIN,
    load_export,
    lr_factor,
    nats_to_bpd,
)
from experiments.memory import peak_rss_mb  # noqa: E402


def make_model(meta: dict, params: dict, consts: dict, channels_last: bool = True):
    import torch

    from experiments.bench_images_peers.torch_models import build

    model = build(meta["model"], **meta["kwargs"])
    model.load_flat(params, consts)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(model, steps: int):
    import torch

    try:
        opt = torch.optim.Adam(model.parameters(), lr=TRAIN["lr"], fused=True)
    except (RuntimeError, TypeError, ValueError):  # a build without the fused CPU kernel
        opt = torch.optim.Adam(model.parameters(), lr=TRAIN["lr"], foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, steps, TRAIN["warmup_steps"], TRAIN["end_lr_fraction"])
    )
    return opt, sched


def run(
    data_path: str,
    run_index: int,
    mode: str,
    eval_reps: int,
    threads: int | None,
    steps_per_dispatch: int = STEPS_PER_DISPATCH,
    channels_last: bool = True,
) -> dict:
    import torch

    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(run_index)
    ex = load_export(data_path)
    meta = ex["meta"]
    batches = torch.from_numpy(np.ascontiguousarray(ex["batches"]))  # (steps, B, 28, 28, 1) uint8
    test = torch.from_numpy(np.ascontiguousarray(ex["test"][:EVAL_BATCH]))
    steps, batch = batches.shape[:2]
    k = min(steps_per_dispatch, steps)
    model = make_model(meta, ex["params"], ex["consts"], channels_last)
    n_params = model.num_params()
    init_state = {n: v.detach().clone() for n, v in model.state_dict().items()}

    t0 = time.perf_counter()
    loss_fn, log_prob = model.loss, model.log_prob
    if mode == "compile":
        loss_fn, log_prob = torch.compile(model.loss), torch.compile(model.log_prob)
    elif mode != "eager":
        raise ValueError(f"unknown mode {mode!r}; choose eager or compile")
    opt, sched = make_optimizer(model, steps)
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    t_first = t_steady = None
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(batches[i])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, TRAIN["clip_norm"], foreach=True)
        opt.step()
        sched.step()
        losses.append(loss.detach())
        if i == 0:
            t_first = time.perf_counter()
        if i == k - 1:
            t_steady = time.perf_counter()
    t_end = time.perf_counter()
    losses = torch.stack(losses)
    if not bool(torch.isfinite(losses).all()):
        raise FloatingPointError(f"non-finite loss at step {int((~torch.isfinite(losses)).nonzero()[0])}")
    sps = (steps - k) / (t_end - t_steady) if steps > k else None

    # evaluation: the first call (compilation in compile mode) on the initial parameters, then trained
    trained = {n: v.detach().clone() for n, v in model.state_dict().items()}
    with torch.no_grad():
        model.load_state_dict(init_state)
        t = time.perf_counter()
        init_nll = float(-log_prob(test).mean())
        eval_first = time.perf_counter() - t
        model.load_state_dict(trained)
        final_nll = float(-log_prob(test).mean())
        t = time.perf_counter()
        for _ in range(eval_reps):
            log_prob(test)
        eval_seconds = time.perf_counter() - t
    return dict(
        family=meta["family"],
        library=f"torch_{mode}" + ("" if channels_last else "_nchw"),
        batch=int(batch),
        steps=int(steps),
        train_steps_per_sec=sps,
        train_images_per_sec=sps * batch if sps else None,
        eval_images_per_sec=eval_reps * len(test) / eval_seconds,
        first_step_seconds=t_first - t0,
        train_seconds=t_end - t0,
        eval_first_call_seconds=eval_first,
        peak_rss_mb=peak_rss_mb(),
        params=int(n_params),
        init_test_bpd=nats_to_bpd(init_nll),
        final_test_bpd=nats_to_bpd(final_nll),
        final_train_bpd=nats_to_bpd(float(losses[-k:].mean())),
        eval_batch=int(len(test)),
        version=f"torch {torch.__version__}",
        torch_threads=torch.get_num_threads(),
        channels_last=channels_last,
        mode=mode,
    )


def check(path: str) -> dict:
    """A check file's model: parameter count, log-probabilities and loss under the file's fixed draws."""
    import torch

    torch.set_num_threads(os.cpu_count())
    ex = load_export(path)
    meta = ex["meta"]
    model = make_model(meta, ex["params"], ex["consts"])
    if "x" not in ex:  # a parameter check only
        return dict(family=meta["family"], params=int(model.num_params()))
    x = torch.from_numpy(np.ascontiguousarray(ex["x"]))
    noise = {k[len("noise_") :]: ex[k] for k in ex if k.startswith("noise_")}
    loss_noise = {k[len("loss_noise_") :]: ex[k] for k in ex if k.startswith("loss_noise_")}
    with torch.no_grad():
        lp = model.log_prob(x, noise).numpy().tolist()
        loss = float(model.loss(x, loss_noise))
    return dict(family=meta["family"], params=int(model.num_params()), log_prob=lp, loss=loss)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="?")
    p.add_argument("run", type=int, nargs="?", default=0)
    p.add_argument("--mode", default="eager", choices=("eager", "compile"))
    p.add_argument("--eval-reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: os.cpu_count())")
    p.add_argument("--steps-per-dispatch", type=int, default=STEPS_PER_DISPATCH, help="warm-up steps")
    p.add_argument("--contiguous", action="store_true", help="NCHW-contiguous instead of channels_last")
    p.add_argument("--check", metavar="CHECK.npz", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.check:
        print("BENCH " + json.dumps([check(f) for f in a.check]), flush=True)
        return
    if a.data is None:
        p.error("DATA.npz is required")
    cache = None
    if a.mode == "compile" and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        cache = tempfile.mkdtemp(prefix="bench-images-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        row = run(a.data, a.run, a.mode, a.eval_reps, a.threads, a.steps_per_dispatch, not a.contiguous)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    print("BENCH " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
