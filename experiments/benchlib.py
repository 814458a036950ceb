"""Shared pieces of the benchmarks (not an experiment): the flow benchmark's fixed work and one run of it.

`experiments.bench_flows`, `experiments.bench_peers` and `experiments.bench_scale` all run it.
"""

from __future__ import annotations

# the same math as the peer libraries run: no input standardization (they have none)
BENCH = {
    "realnvp": dict(num_layers=8, hidden=(64, 64), standardize="none"),
    "nsf": dict(num_layers=4, hidden=(64, 64), num_bins=8, tail_bound=4.0, standardize="none"),
}
DATASETS = ("moons", "checkerboard")
KEYS = (
    "model",
    "dataset",
    "steps_per_sec",
    "first_step_seconds",
    "total_seconds",
    "test_nll",
    "gap",
    "peak_rss_mb",
    "device",
)


def run_once(
    model_name: str,
    dataset: str,
    steps: int,
    seed: int,
    steps_per_dispatch: int,
    compute_dtype: str = "float32",
    batch_order=None,
    data=None,
) -> dict:
    """One benchmark run in this process.

    `batch_order`: an int array (steps, 512) of training-set indices, one row per step, to train on
    exactly those batches (laid out in order, `sequential_batches`; the side-by-side benchmark
    `experiments.bench_peers` hands every library the same one). None (the default, `make
    bench-flows`): batches drawn on the device as in every other run.
    `data`: the arrays to use (an object with `train`, `test`, `true_entropy`, e.g. the side-by-side
    benchmark's export, which every library reads); None draws them (`load_vector_data`)."""
    import jax

    from experiments.memory import peak_rss_mb
    from gen_jax.evaluation import evaluate_nll
    from gen_jax.models import make_model, num_params
    from gen_jax.training import TrainConfig, sequential_batches, train

    if data is None:
        from gen_jax.evaluation.vector import load_vector_data  # imported only here: peak memory is measured

        data = load_vector_data(dataset, 50_000, 10_000, seed=0)  # the same arrays in every run
    model = make_model(model_name, (2,), **BENCH[model_name], compute_dtype=compute_dtype)
    cfg = TrainConfig(
        steps=steps,
        batch_size=512,
        lr=1e-3,
        schedule="constant",
        warmup_steps=0,
        clip_norm=None,
        steps_per_dispatch=steps_per_dispatch,
        checkpoint_every=None,
        seed=seed,
        progress=False,
    )
    batch_fn, train_data = None, data.train
    if batch_order is not None:
        if batch_order.shape[0] < steps or batch_order.shape[1] != cfg.batch_size:
            raise ValueError(f"batch_order {batch_order.shape} does not cover {steps} steps of 512")
        # every batch laid out in order on the device, as flowjax's `fit_to_data` lays them out
        train_data = data.train[batch_order[:steps]].reshape(-1, data.train.shape[1])
        batch_fn = sequential_batches(cfg.batch_size)
    res = train(model, train_data, cfg, batch_fn=batch_fn)
    nll, _, _ = evaluate_nll(model, res.params, data.test, jax.random.key(0))
    k = min(steps_per_dispatch, steps)
    dev = jax.devices()[0]
    return dict(
        model=model_name,
        dataset=dataset,
        steps_per_sec=res.steps_per_sec,
        first_step_seconds=res.first_dispatch_seconds - (k - 1) / res.steps_per_sec,
        total_seconds=res.train_seconds,
        test_nll=nll,
        gap=nll - data.true_entropy,
        peak_rss_mb=peak_rss_mb(),
        device=f"{dev.platform}:{dev.device_kind}",
        params=num_params(res.params),
    )
