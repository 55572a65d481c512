"""The in-process benchmarks T1–T6: JAX against JAX or NumPy inside one interpreter.

Each function returns table rows (see :func:`benchmarks.timing.row`)
and calls the library as a user's script does, through ``import backprop_lab
as bl`` and its public names only. The process running them has called
``bl.configure_cpu()`` first (unless ``scripts/bench --no-configure``), as the
README tells a script to. :data:`BENCHMARKS` maps a name to the function and
its settings per mode ("full", "quick", and "tiny" for the tests).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .timing import Row, _ready, _summary, median, row, time_interleaved


def _classifier(sizes, dtype, seed=0, activation="tanh"):
    import jax

    import backprop_lab as bl

    return bl.MLP(list(sizes), activation, "softmax", key=jax.random.PRNGKey(seed), dtype=dtype)


def _random_batch(sizes, batch, dtype, seed=1):
    import jax
    import jax.numpy as jnp

    x = jax.random.normal(jax.random.PRNGKey(seed), (batch, sizes[0]), dtype)
    y = jax.nn.one_hot(jnp.arange(batch) % sizes[-1], sizes[-1], dtype=dtype)
    return x, y


def make_step(grad: str, loss: str, optimizer):
    """A jitted training step ``(model, opt_state, x, y) -> (model, opt_state, L)``.

    Gradient from :data:`GRADS` (``"manual"`` or ``"autodiff"``), then the
    optax update, exactly as one iteration of :func:`train`'s scan.
    """
    import jax
    import optax

    import backprop_lab as bl

    value_and_grad = bl.GRADS[grad]

    @jax.jit
    def step(model, opt_state, x, y):
        value, grads = value_and_grad(model, x, y, loss)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return optax.apply_updates(model, updates), opt_state, value

    return step


def _chain(step, model, opt_state, x, y, n: int) -> Callable[[], Any]:
    """n dependent steps from the same start (each step waits for the last)."""

    def run():
        m, s, v = model, opt_state, None
        for _ in range(n):
            m, s, v = step(m, s, x, y)
        return m, v

    return run


def matmul_flops(sizes, batch: int) -> int:
    """Matrix-product FLOPs of one training step of an MLP (2·m·n·k per product).

    Forward x·Wᵀ per layer, backward δᵀ·a (∂L/∂W) per layer and δ·W (the δ of
    the layer below) for every layer but the first. Element-wise work (O(batch
    × width)) is not counted; it is under 1% for the widths benchmarked.
    """
    pairs = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2 * batch * n_in * n_out for n_in, n_out in pairs)
    back_input = sum(2 * batch * n_in * n_out for n_in, n_out in pairs[1:])
    return 2 * forward + back_input


def _matmul_fns(n: int):
    """(numpy, jax) callables multiplying two n×n float32 matrices."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    mm = jax.jit(jnp.matmul)
    return (lambda: a @ b), (lambda: mm(ja, jb))


# --------------------------------------------------------------------------- T1


def bench_step_ratio(
    sizes=(64, 256, 256, 10),
    batch: int = 128,
    repeats: int = 21,
    scan_steps: int = 50,
    chained: int = 3,
    target: str = "T1",
) -> list[Row]:
    """T1: the hand-written gradient against jax.grad in a training step.

    tanh hidden layers, softmax + cross-entropy, float32, ``optax.sgd``, one
    fixed batch. Two rows, ratio manual / autodiff of the medians:

    - jitted step: one call of a jitted step (gradient, optax update) from the
      same inputs each time, blocked until done;
    - in train's scan: :func:`train` for ``scan_steps`` steps, per step.

    ``details`` also gives the ratio of ``chained`` calls in a row, each fed
    the previous call's outputs (see docs/benchmarks.md for why it differs).
    """
    import jax.numpy as jnp
    import optax

    from backprop_lab import train

    model = _classifier(sizes, jnp.float32)
    x, y = _random_batch(sizes, batch, jnp.float32)
    opt = optax.sgd(0.01)
    state = opt.init(model)
    grads = ("manual", "autodiff")
    steps = {g: make_step(g, "cross_entropy", opt) for g in grads}
    single = time_interleaved({g: functools.partial(steps[g], model, state, x, y) for g in grads}, repeats)
    scan = time_interleaved(
        {
            g: functools.partial(
                train, model, x, y, loss="cross_entropy", optimizer=opt, steps=scan_steps, grad=g
            )
            for g in grads
        },
        max(3, repeats // 3),
    )
    chain = time_interleaved(
        {g: _chain(steps[g], model, state, x, y, chained) for g in grads}, max(3, repeats // 3)
    )
    arch = "-".join(map(str, sizes))
    rows = []
    for how, times, per in (
        ("jitted step", single, 1),
        (f"in train's scan ({scan_steps} steps)", scan, scan_steps),
    ):
        t = {g: median(v) / per for g, v in times.items()}
        ratio = t["manual"] / t["autodiff"]
        rows.append(
            row(
                target,
                f"{how} manual/autodiff, {arch}, batch {batch}",
                f"{t['manual'] * 1e3:.3f} ms vs {t['autodiff'] * 1e3:.3f} ms",
                ratio,
                "≤ 1.05",
                ratio <= 1.05,
                sizes=list(sizes),
                batch=batch,
                steps_per_call=per,
                manual=_summary([v / per for v in times["manual"]]),
                autodiff=_summary([v / per for v in times["autodiff"]]),
                chained_ratio=median(chain["manual"]) / median(chain["autodiff"]),
                chained_calls=chained,
            )
        )
    return rows


# --------------------------------------------------------------------------- T2


def _note003():
    """Note 003's 2-2-2 sigmoid network, one example, half-SSE, learning rate 0.1."""
    w1 = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]])
    w2 = np.array([[0.15, -0.25, 0.35], [-0.45, 0.55, -0.65]])
    weights = [w1[:, 1:], w2[:, 1:]]
    biases = [w1[:, 0], w2[:, 0]]
    x = np.array([[1.0, 0.0]])
    y = np.array([[1.0, 0.0]])
    return weights, biases, x, y, 0.1


def bench_tiny_sgd(steps: int = 10_000, repeats: int = 9, ref_repeats: int = 3) -> list[Row]:
    """T2: note 003's network, ``steps`` SGD steps, train (second call) vs NumPy.

    Both sides in float64, as the notes compute. The first ``train`` call is
    timed on its own and reported as compile time (first − median of later).
    """
    import jax
    import jax.numpy as jnp
    import optax

    from backprop_lab import MLP, reference, train

    weights, biases, x, y, lr = _note003()
    with jax.enable_x64(True):
        model = MLP.from_weights([jnp.asarray(w) for w in weights], [jnp.asarray(b) for b in biases])
        jx, jy = jnp.asarray(x), jnp.asarray(y)

        def run_jax():
            return train(model, jx, jy, loss="half_sse", optimizer=optax.sgd(lr), steps=steps)

        t0 = time.perf_counter()
        _ready(run_jax())
        first = time.perf_counter() - t0
        jax_times = time_interleaved({"jax": run_jax}, repeats, warmup=0)["jax"]
        trained, losses = run_jax()
        jax_final = float(losses[-1])

    def run_ref():
        return reference.train_sgd(weights, biases, x, y, "sigmoid", "sigmoid", "half_sse", lr, steps)

    ref_times = time_interleaved({"numpy": run_ref}, ref_repeats, warmup=0)["numpy"]
    ref_final = float(run_ref()[2][-1])
    t_jax, t_ref = median(jax_times), median(ref_times)
    ratio = t_ref / t_jax
    return [
        row(
            "T2",
            f"note 003 2-2-2 sigmoid, {steps} SGD steps: NumPy / train (2nd call)",
            f"{t_ref * 1e3:.0f} ms vs {t_jax * 1e3:.2f} ms (compile {max(first - t_jax, 0):.2f} s)",
            ratio,
            "≥ 200",
            ratio >= 200,
            steps=steps,
            numpy=_summary(ref_times),
            jax=_summary(jax_times),
            first_call_s=first,
            compile_s=max(first - t_jax, 0.0),
            final_loss_jax=jax_final,
            final_loss_numpy=ref_final,
            dtype="float64",
        )
    ]


# --------------------------------------------------------------------------- T3


def bench_digits(
    sizes=(64, 256, 256, 10),
    batch: int = 128,
    steps: int = 1000,
    repeats: int = 5,
    lr: float = 0.1,
    ref_dtypes=("float32", "float64"),
    n_train: int | None = None,
) -> list[Row]:
    """T3: digits, tanh, softmax + cross-entropy, minibatch SGD: samples per second.

    JAX: :func:`train` (second call, float32). NumPy: :func:`reference.train_sgd`
    with the same settings, in each of ``ref_dtypes``; the goal is against the
    fastest of them. ``n_train`` (tests only) cuts the training set.
    """
    import jax.numpy as jnp
    import optax

    from backprop_lab import load_dataset, reference, train

    data = load_dataset("digits", dtype=np.float32)
    x, y = data.x_train[:n_train], data.y_train[:n_train]
    model = _classifier(sizes, jnp.float32)
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    weights = [np.asarray(w) for w in model.weights]
    biases = [np.asarray(b) for b in model.biases]

    def run_jax():
        return train(
            model, jx, jy, loss="cross_entropy", optimizer=optax.sgd(lr), steps=steps, batch_size=batch
        )

    t0 = time.perf_counter()
    _ready(run_jax())
    first = time.perf_counter() - t0
    fns: dict[str, Callable[[], Any]] = {"jax": run_jax}
    for dt in ref_dtypes:
        fns[f"numpy_{dt}"] = functools.partial(
            reference.train_sgd,
            weights,
            biases,
            x,
            y,
            "tanh",
            "softmax",
            "cross_entropy",
            lr,
            steps,
            batch,
            dtype=np.dtype(dt),
        )
    times = time_interleaved(fns, repeats, warmup=1)
    rate = {k: steps * batch / median(t) for k, t in times.items()}
    best_ref = max((k for k in rate if k != "jax"), key=lambda k: rate[k])
    ratio = rate["jax"] / rate[best_ref]
    refs = ", ".join(f"{k.split('_')[1]} {rate[k]:,.0f}" for k in rate if k != "jax")
    return [
        row(
            "T3",
            f"digits {'-'.join(map(str, sizes))} tanh, batch {batch}: train (2nd call) / fastest NumPy",
            f"{rate['jax']:,.0f} samples/s vs NumPy {refs}",
            ratio,
            "≥ 1",
            ratio >= 1.0,
            steps=steps,
            batch=batch,
            n_train=int(x.shape[0]),
            samples_per_s=rate,
            fastest_reference=best_ref,
            first_call_s=first,
            **{k: _summary(t) for k, t in times.items()},
        )
    ]


# --------------------------------------------------------------------------- T4


def bench_flops(
    sizes=(784, 1024, 1024, 10), batch: int = 512, chain: int = 3, repeats: int = 7, peak_n: int = 2048
) -> list[Row]:
    """T4: achieved matrix FLOP/s of the jitted manual step vs the machine's peak.

    The peak is the best of NumPy's and JAX's ``peak_n``² float32 matmul,
    timed interleaved with the step in the same process.
    """
    import jax.numpy as jnp
    import optax

    model = _classifier(sizes, jnp.float32)
    x, y = _random_batch(sizes, batch, jnp.float32)
    opt = optax.sgd(0.01)
    step = _chain(make_step("manual", "cross_entropy", opt), model, opt.init(model), x, y, chain)
    np_mm, jax_mm = _matmul_fns(peak_n)
    times = time_interleaved({"step": step, "numpy_matmul": np_mm, "jax_matmul": jax_mm}, repeats)
    mm_flops = 2 * peak_n**3
    gflops = {
        "step": matmul_flops(sizes, batch) / (median(times["step"]) / chain) / 1e9,
        "numpy_matmul": mm_flops / median(times["numpy_matmul"]) / 1e9,
        "jax_matmul": mm_flops / median(times["jax_matmul"]) / 1e9,
    }
    peak = max(gflops["numpy_matmul"], gflops["jax_matmul"])
    ratio = gflops["step"] / peak
    return [
        row(
            "T4",
            f"{'-'.join(map(str, sizes))} batch {batch} f32 manual step: GFLOP/s / peak ({peak_n}² matmul)",
            f"{gflops['step']:.1f} vs NumPy {gflops['numpy_matmul']:.1f}, "
            f"JAX {gflops['jax_matmul']:.1f} GFLOP/s",
            ratio,
            "≥ 0.90",
            ratio >= 0.90,
            gflops=gflops,
            step_flops=matmul_flops(sizes, batch),
            chain=chain,
            step=_summary([t / chain for t in times["step"]]),
            numpy_matmul=_summary(times["numpy_matmul"]),
            jax_matmul=_summary(times["jax_matmul"]),
        )
    ]


# --------------------------------------------------------------------------- T5


def bench_sweep(
    lanes: int = 64,
    seeds: int = 4,
    steps: int = 1680,
    batch: int = 32,
    sizes=(64, 128, 10),
    optimizer: str = "adam",
    sequential: int | None = None,
    n_train: int | None = None,
    lr_range: tuple[float, float] = (1e-4, 3e-2),
) -> list[Row]:
    """T5: ``lanes`` runs (learning rates × seeds) as one vmapped ``train_sweep`` vs one by one.

    The default is the project's digits experiment (64-128-10 tanh, Adam,
    minibatches of 32, 40 epochs = 1680 steps); lane i has its own learning
    rate (``lanes`` values spread geometrically over ``lr_range``) and seed i mod ``seeds`` for its
    initial weights and batch order. The sequential side is separate
    :func:`train` calls, each with its own compile (a learning rate baked into
    ``optax.adam`` makes a new program); the sweep's time includes its one
    compile. ``sequential`` < lanes times only that many runs, spread over the
    lanes, and scales up. Every timed lane's final loss (the last step's
    minibatch loss) is compared with its lane of the sweep (relative 1e-6).
    """
    import jax
    import jax.numpy as jnp

    from backprop_lab import OPTIMIZERS, load_dataset, make_optimizer, train, train_sweep

    arch = "-".join(map(str, sizes))
    what = (
        f"{lanes} lanes (lr × {seeds} seeds), digits {arch} {optimizer}, "
        f"batch {batch}, {steps} steps: one by one / train_sweep"
    )
    data = load_dataset("digits", dtype=np.float32)
    x, y = jnp.asarray(data.x_train[:n_train]), jnp.asarray(data.y_train[:n_train])
    lrs = np.geomspace(*lr_range, lanes).astype(np.float32)
    lane_seed = np.arange(lanes) % seeds
    models = [_classifier(sizes, jnp.float32, seed=int(k)) for k in lane_seed]
    keys = jnp.stack([jax.random.PRNGKey(int(k)) for k in lane_seed])

    t0 = time.perf_counter()
    _, histories = train_sweep(
        models,
        x,
        y,
        loss="cross_entropy",
        optimizer=make_optimizer(optimizer, 1e-3),
        learning_rates=lrs,
        steps=steps,
        batch_size=batch,
        keys=keys,
    )
    _ready(histories)
    t_sweep = time.perf_counter() - t0

    count = lanes if sequential is None else min(sequential, lanes)
    picks = np.linspace(0, lanes - 1, count).round().astype(int)
    seq_times, worst, worst_abs, worst_lane = [], 0.0, 0.0, None
    for i in picks:
        t0 = time.perf_counter()
        _, h = train(
            models[i],
            x,
            y,
            loss="cross_entropy",
            optimizer=OPTIMIZERS[optimizer](float(lrs[i])),
            steps=steps,
            batch_size=batch,
            key=keys[i],
        )
        final = float(_ready(h)[-1])
        seq_times.append(time.perf_counter() - t0)
        diff = abs(final - float(histories[i, -1]))
        worst_abs = max(worst_abs, diff)
        if diff / max(abs(final), 1e-30) >= worst:
            worst, worst_lane = diff / max(abs(final), 1e-30), int(i)
    t_seq = sum(seq_times) if count == lanes else median(seq_times) * lanes
    ratio = t_seq / t_sweep
    how = f"all {lanes}" if count == lanes else f"est. from {count}"
    return [
        row(
            "T5",
            what,
            f"{t_seq:.2f} s ({how}) vs {t_sweep:.2f} s, compiles included; "
            f"final losses: worst rel. diff {worst:.1e}, worst abs. diff {worst_abs:.1e}",
            ratio,
            "≥ 20, rel 1e-6",
            ratio >= 20 and worst <= 1e-6,
            lanes=lanes,
            steps=steps,
            sweep_s=t_sweep,
            sequential_s_each=seq_times,
            timed_lanes=picks.tolist(),
            learning_rates=lrs.tolist(),
            worst_relative_difference=worst,
            worst_absolute_difference=worst_abs,
            worst_lane=worst_lane,
            final_loss_sweep=histories[:, -1].tolist(),
        )
    ]


# --------------------------------------------------------------------------- T6


def bench_diagonal(widths=(64, 256, 1024), batch: int = 64, repeats: int = 7) -> list[Row]:
    """T6: the compiled gradient with the materialised diag(f′) against the Hadamard form.

    Network [n, n, n], sigmoid everywhere, half-SSE (so both layers' δ go
    through the variant), float32, one batch of ``batch`` examples. Report only.
    Each timed call follows an untimed call of the same variant: straight
    after a call that allocated the diagonal form's (batch, n, n) tensors, a
    Hadamard call ran 50% slower at n = 1024 (allocator and cache state),
    which would flatter the diagonal form.
    """
    import jax
    import jax.numpy as jnp

    from backprop_lab import MLP, manual_grad

    rows = []
    for n in widths:
        model = MLP([n, n, n], "sigmoid", "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float32)
        x = jax.random.normal(jax.random.PRNGKey(1), (batch, n), jnp.float32)
        y = jax.random.uniform(jax.random.PRNGKey(2), (batch, n), jnp.float32)
        fns = {
            v: (lambda v=v: manual_grad(model, x, y, "half_sse", variant=v)) for v in ("hadamard", "diagonal")
        }
        times = time_interleaved(fns, repeats, settle=1)
        t = {k: median(v) for k, v in times.items()}
        ratio = t["diagonal"] / t["hadamard"]
        d_bytes = batch * n * n * 4
        rows.append(
            row(
                "T6",
                f"gradient diagonal/Hadamard, [{n}, {n}, {n}] sigmoid, batch {batch}",
                f"{t['diagonal'] * 1e3:.3f} ms vs {t['hadamard'] * 1e3:.3f} ms",
                ratio,
                "report",
                None,
                width=n,
                batch=batch,
                d_tensor_mib=d_bytes / 2**20,
                **{k: _summary(v) for k, v in times.items()},
            )
        )
    return rows


# --------------------------------------------------------------------------- suite

#: name → (function, keyword arguments per mode). "tiny" is for the tests.
BENCHMARKS: dict[str, tuple[Callable[..., list[Row]], dict[str, dict[str, Any]]]] = {
    "t1_small": (
        bench_step_ratio,
        {
            "full": dict(sizes=(64, 256, 256, 10), batch=128, repeats=301, scan_steps=200),
            "quick": dict(sizes=(64, 256, 256, 10), batch=128, repeats=61, scan_steps=100),
            "tiny": dict(sizes=(4, 8, 3), batch=4, repeats=2, scan_steps=3, chained=2),
        },
    ),
    "t1_large": (
        bench_step_ratio,
        {
            "full": dict(sizes=(784, 1024, 1024, 10), batch=512, repeats=21, scan_steps=10),
            "quick": dict(sizes=(784, 1024, 1024, 10), batch=512, repeats=7, scan_steps=4),
            "tiny": dict(sizes=(6, 8, 3), batch=8, repeats=2, scan_steps=3, chained=2),
        },
    ),
    "t2": (
        bench_tiny_sgd,
        {
            "full": dict(steps=10_000, repeats=21, ref_repeats=5),
            "quick": dict(steps=10_000, repeats=7, ref_repeats=2),
            "tiny": dict(steps=50, repeats=2, ref_repeats=1),
        },
    ),
    "t3": (
        bench_digits,
        {
            "full": dict(steps=2000, repeats=7),
            "quick": dict(steps=300, repeats=3),
            "tiny": dict(sizes=(64, 8, 10), steps=5, repeats=1, batch=16, n_train=64),
        },
    ),
    "t4": (
        bench_flops,
        {
            "full": dict(chain=3, repeats=11),
            "quick": dict(chain=2, repeats=3),
            "tiny": dict(sizes=(16, 8, 4), batch=8, chain=1, repeats=1, peak_n=32),
        },
    ),
    "t5": (
        bench_sweep,
        {
            "full": dict(lanes=64, steps=1680, sequential=None),
            "quick": dict(lanes=64, steps=168, sequential=3),
            "tiny": dict(lanes=2, seeds=2, steps=4, batch=16, sizes=(64, 4, 10), sequential=1, n_train=64),
        },
    ),
    # The same sweep with plain SGD over 10 epochs: shorter runs, so compiling
    # weighs more in the one-by-one side, and no Adam normalisation to magnify
    # float32 rounding differences between a lane and its own run.
    "t5_sgd": (
        bench_sweep,
        {
            "full": dict(lanes=64, steps=168, optimizer="sgd", lr_range=(1e-3, 1.0), sequential=None),
            "quick": dict(lanes=64, steps=168, optimizer="sgd", lr_range=(1e-3, 1.0), sequential=3),
            "tiny": dict(
                lanes=2,
                seeds=2,
                steps=4,
                batch=16,
                sizes=(64, 4, 10),
                optimizer="sgd",
                sequential=1,
                n_train=64,
            ),
        },
    ),
    "t6": (
        bench_diagonal,
        {
            "full": dict(widths=(64, 256, 1024), batch=64, repeats=9),
            "quick": dict(widths=(64, 256, 1024), batch=64, repeats=3),
            "tiny": dict(widths=(4, 8), batch=2, repeats=1),
        },
    ),
}
