"""gen_jax's side of the image benchmark: the export every library reads, and one gen_jax run.

    python -m experiments.bench_images_peers.gen_jax_run DATA.npz RUN    # prints one line BENCH {json}

Only the public surface is used: `gen_jax.models.make_model` and `num_params`, the `Model`'s init /
log_prob and `info` (the architecture's fixed arrays, `info["constants"]`, e.g. Glow's permutations),
`gen_jax.training.train`, `TrainConfig` and `sequential_batches`, `gen_jax.data.images.load_images`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from experiments.bench_images_peers import (
    EVAL_BATCH,
    FAMILIES,
    IMAGE_SHAPE,
    STEPS_PER_DISPATCH,
    TRAIN,
    load_export,
    nats_to_bpd,
    save_export,
)


def path_name(path) -> str:
    """A jax tree path as "a/b/0/c" (dict keys, sequence indices, attribute names)."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def flatten(tree) -> dict[str, np.ndarray]:
    import jax

    return {path_name(p): np.asarray(leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def unflatten(model, flat: dict, example) -> object:
    """gen_jax parameters of `model` from their flat export: the tree structure from `model.init`
    traced abstractly (nothing computed), the leaves from `flat`."""
    import jax
    import jax.numpy as jnp

    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(example))
    paths, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    leaves = []
    for p, s in paths:
        name = path_name(p)
        if name not in flat:
            raise KeyError(
                f"the export has no parameter {name!r}: re-export (the model's parameters changed)"
            )
        v = np.asarray(flat[name])
        if v.shape != tuple(s.shape):
            raise ValueError(f"exported {name} has shape {v.shape}, the model wants {tuple(s.shape)}")
        leaves.append(jnp.asarray(v, s.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def build_model(family: str, kwargs: dict | None = None):
    from gen_jax.models import make_model

    spec = FAMILIES[family]
    return make_model(spec["model"], IMAGE_SHAPE, **(kwargs if kwargs is not None else spec["kwargs"]))


def architecture_constants(model) -> dict[str, np.ndarray]:
    """The model's fixed arrays that are not parameters (Glow's 1x1-convolution permutations and
    signs), by path, so that the PyTorch twin computes the same function: `model.info["constants"]`,
    which a model without any leaves out."""
    return {path: np.asarray(v) for path, v in model.info.get("constants", {}).items()}


def image_pool(data: str, n_train: int, n_test: int, data_dir: str | None, seed: int = 0):
    """(train images, test images, source): Fashion-MNIST (a seeded shuffle of the training split, the
    first test images) or uniform random uint8 images of the same shape."""
    if data == "random":
        rng = np.random.default_rng(seed)
        draw = lambda n: rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
        return draw(n_train), draw(n_test), "random uint8 images"
    from gen_jax.data.images import load_images

    train = load_images(data, "train", data_dir=data_dir)
    test = load_images(data, "test", data_dir=data_dir)
    perm = np.random.default_rng(seed).permutation(len(train.images))
    reps = -(-n_train // len(perm))
    idx = np.concatenate([perm] * reps)[:n_train]
    return np.asarray(train.images)[idx], np.asarray(test.images)[:n_test], f"{data} ({train.source})"


def export(
    path: str | Path,
    family: str,
    steps: int,
    train_images: np.ndarray,
    test_images: np.ndarray,
    source: str,
    seed: int = 0,
    kwargs: dict | None = None,
    batch: int | None = None,
) -> Path:
    """Write family's .npz: `batches` (steps, batch, 28, 28, 1) uint8, in training order; `test`;
    gen_jax's initial parameters (model.init on the first training images, as `train` would init) and
    the architecture constants; meta (model, kwargs, batch, steps, params, versions)."""
    import jax

    import gen_jax
    from gen_jax.models import num_params

    spec = FAMILIES[family]
    kwargs = spec["kwargs"] if kwargs is None else kwargs
    batch = batch or spec["batch"]
    need = steps * batch
    if len(train_images) < need:
        raise ValueError(
            f"{family}: {steps} steps of {batch} need {need} training images, got {len(train_images)}"
        )
    batches = np.ascontiguousarray(train_images[:need]).reshape(steps, batch, *IMAGE_SHAPE)
    model = build_model(family, kwargs)
    init_examples = train_images[: max(batch, min(len(train_images), 1024))]
    params = model.init(jax.random.key(seed), jax.numpy.asarray(init_examples))
    consts = architecture_constants(model)
    meta = dict(
        family=family,
        model=spec["model"],
        kwargs=kwargs,
        batch=batch,
        steps=steps,
        data=source,
        params=num_params(params),
        gen_jax_version=getattr(gen_jax, "__version__", None),
        jax_version=jax.__version__,
    )
    return save_export(
        path, dict(batches=batches, test=np.ascontiguousarray(test_images)), flatten(params), consts, meta
    )


def run(data_path: str, run_index: int, eval_reps: int, steps_per_dispatch: int = STEPS_PER_DISPATCH) -> dict:
    """One gen_jax measurement in this process (see the package docstring)."""
    import jax
    import jax.numpy as jnp

    from experiments.memory import peak_rss_mb
    from gen_jax.models import num_params
    from gen_jax.training import TrainConfig, sequential_batches, train

    ex = load_export(data_path)
    meta = ex["meta"]
    batches, test = ex["batches"], ex["test"]
    steps, batch = batches.shape[:2]
    k = min(steps_per_dispatch, steps)
    if steps < 2 * k:
        raise ValueError(
            f"{steps} steps leave no steady state after the first dispatch of {k}: use >= {2 * k}"
        )
    model = build_model(meta["family"], meta["kwargs"])
    params0 = unflatten(model, ex["params"], batches[0])
    n_params = num_params(params0)
    fixed = dataclasses.replace(model, init=lambda key, x: jax.tree_util.tree_map(jnp.copy, params0))
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=TRAIN["lr"],
        schedule="cosine",
        warmup_steps=TRAIN["warmup_steps"],
        end_lr_fraction=TRAIN["end_lr_fraction"],
        clip_norm=TRAIN["clip_norm"],
        steps_per_dispatch=k,
        checkpoint_every=None,
        progress=False,
        seed=run_index,
        init_examples=batch,
    )
    train_data = jnp.asarray(batches.reshape(-1, *IMAGE_SHAPE))
    t0 = time.perf_counter()
    res = train(fixed, train_data, cfg, batch_fn=sequential_batches(batch))
    wall = time.perf_counter() - t0
    setup = max(wall - res.train_seconds, 0.0)  # train()'s set-up before its first dispatch
    sps = res.steps_per_sec
    first_step = setup + res.first_dispatch_seconds - (k - 1) / sps if sps and math.isfinite(sps) else None
    losses = [row["loss"] for row in res.history if "loss" in row]

    # evaluation: the first call (compilation) on the initial parameters, then the trained ones
    lp = jax.jit(model.log_prob)
    test_x = jnp.asarray(test[:EVAL_BATCH])
    key = jax.random.key(10_000 + run_index)
    t = time.perf_counter()
    init_nll = float(-jnp.mean(jax.block_until_ready(lp(params0, test_x, key))))
    eval_first = time.perf_counter() - t
    params = res.params
    final_nll = float(-jnp.mean(jax.block_until_ready(lp(params, test_x, jax.random.fold_in(key, 1)))))
    t = time.perf_counter()
    for r in range(eval_reps):
        jax.block_until_ready(lp(params, test_x, jax.random.fold_in(key, 2 + r)))
    eval_seconds = time.perf_counter() - t
    version = f"gen_jax {meta.get('gen_jax_version')}, jax {jax.__version__}"
    return dict(
        family=meta["family"],
        library="gen_jax",
        batch=int(batch),
        steps=int(steps),
        train_steps_per_sec=sps,
        train_images_per_sec=sps * batch if sps else None,
        eval_images_per_sec=eval_reps * len(test_x) / eval_seconds,
        first_step_seconds=first_step,
        first_dispatch_seconds=res.first_dispatch_seconds,
        setup_seconds=setup,
        train_seconds=wall,
        eval_first_call_seconds=eval_first,
        peak_rss_mb=peak_rss_mb(),
        params=n_params,
        init_test_bpd=nats_to_bpd(init_nll),
        final_test_bpd=nats_to_bpd(final_nll),
        final_train_bpd=nats_to_bpd(float(losses[-1])) if losses else None,
        eval_batch=int(len(test_x)),
        version=version,
        device=f"{jax.devices()[0].platform}",
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("run", type=int)
    p.add_argument("--eval-reps", type=int, default=5)
    p.add_argument("--steps-per-dispatch", type=int, default=STEPS_PER_DISPATCH)
    a = p.parse_args(argv)
    row = run(a.data, a.run, a.eval_reps, a.steps_per_dispatch)
    print("BENCH " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
