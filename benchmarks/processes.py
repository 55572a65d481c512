"""Benchmarks of whole commands and plain scripts: T7, T9, T10 and T11.

Each command is timed from outside, as a user meets it: ``subprocess.run``
between two ``time.perf_counter()`` reads, start-up, imports, compiling and
exit included. Commands that are compared run in turn (A B A B ..., reversed
every other round, after untimed warm-up rounds) and the ratio is of the
medians. They run in the user's environment: ``XLA_FLAGS`` as it was before
``scripts/bench`` called ``configure_cpu()`` (the apps call it themselves; T7's
plain script does not, and a second run shows what calling it changes).

T9 and T10 also run their command once more under a probe (:data:`PROBE`)
that says where its time goes; T11 also lists the heavy packages each command imported
(``python -X importtime``).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .timing import Row, _summary, median, row, time_interleaved

#: The repository: experiments/, conf/ and this package (scripts/bench runs from there).
ROOT = Path(__file__).resolve().parents[1]
#: Where ``scripts/bench`` keeps the XLA_FLAGS it found, before configure_cpu() added to them.
USER_XLA_FLAGS = "BACKPROP_LAB_BENCH_USER_XLA_FLAGS"
#: Packages that must not load for ``--help`` or ``--cfg`` (T11). ``jaxlib`` alone
#: (its version, which configure_cpu() reads) is not counted; its modules are.
HEAVY = ("jax", "numpy", "matplotlib", "scipy", "sklearn", "equinox", "optax", "pandas")

_TAG = "BENCH_SCRIPT_RESULT "


def _root() -> Path:
    return ROOT if (ROOT / "experiments" / "train.py").is_file() else Path.cwd()


def user_env(**extra: str) -> dict[str, str]:
    """This environment with XLA_FLAGS as the user had it, plus ``extra``."""
    env = dict(os.environ)
    if USER_XLA_FLAGS in env:
        before = env.pop(USER_XLA_FLAGS)
        if before:
            env["XLA_FLAGS"] = before
        else:
            env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def run_command(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess:
    """Run a command to its end, output captured; raise with its last lines if it fails."""
    proc = subprocess.run(
        list(argv), env=env, cwd=cwd or _root(), capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-1500:]
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{tail}")
    return proc


def _app(name: str) -> list[str]:
    return [sys.executable, str(_root() / "experiments" / f"{name}.py")]


def _script_result(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    for line in proc.stdout.splitlines():
        if line.startswith(_TAG):
            return json.loads(line[len(_TAG) :])
    raise RuntimeError(f"no result line in the script's output:\n{proc.stdout[-1500:]}")


def import_seconds(stderr: str) -> dict[str, float]:
    """Seconds of importing per top-level package, from ``python -X importtime``'s output.

    Each module's own ("self") time goes to its package (``jax._src.api`` to
    ``jax``), so the figures add up to the whole import time; largest first.
    """
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, _, name = line[len("import time:") :].split("|")
        if own.strip().isdigit():
            package = name.strip().split(".")[0]
            out[package] = out.get(package, 0.0) + int(own) / 1e6
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def heavy_imports(stderr: str) -> list[str]:
    """The :data:`HEAVY` packages (and jaxlib beyond its version) in an ``-X importtime`` output."""
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    found = {n.split(".")[0] for n in names if n.split(".")[0] in HEAVY}
    if any(n.startswith("jaxlib.") and n != "jaxlib.version" for n in names):
        found.add("jaxlib")
    return sorted(found)


# --------------------------------------------------------------------------- T7

#: T7's plain script: what a user writes with the public API, beside Nielsen's
#: network.py loop (update_mini_batch, per-example backprop) in NumPy. Arguments:
#: configure (0/1), n_train, repeats, warmup. Prints one result line.
T7_SCRIPT = r'''
import json
import os
import sys
import time

import numpy as np

configure, n_train, repeats, warmup = (int(a) for a in sys.argv[1:5])
if configure:
    import backprop_lab as bl

    bl.configure_cpu()

import jax
import jax.numpy as jnp

import backprop_lab as bl

SIZES, BATCH, LR = [64, 30, 10], 10, 3.0


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class Network:
    """Nielsen's network.py: column vectors, one example at a time, quadratic cost."""

    def __init__(self, weights, biases):
        self.num_layers = len(weights) + 1
        self.weights = [np.array(w) for w in weights]
        self.biases = [np.array(b).reshape(-1, 1) for b in biases]

    def update_mini_batch(self, mini_batch, eta):
        nabla_b = [np.zeros(b.shape, b.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, w.dtype) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape, b.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, w.dtype) for w in self.weights]
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, self.num_layers):
            sp = sigmoid_prime(zs[-l])
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w


data = bl.load_dataset("digits", dtype=np.float32)
n = min(n_train, data.n_train) // BATCH * BATCH  # whole batches only
x, y = data.x_train[:n], data.y_train[:n]
model = bl.MLP(SIZES, "sigmoid", "sigmoid", key=jax.random.PRNGKey(0), dtype=jnp.float32)
net = Network([np.asarray(w) for w in model.weights], [np.asarray(b) for b in model.biases])
training_data = [(x[i].reshape(-1, 1), y[i].reshape(-1, 1)) for i in range(n)]


def epoch_bl():
    global model
    for k in range(0, n, BATCH):
        grads = bl.manual_grad(model, x[k:k + BATCH], y[k:k + BATCH], "half_sse")
        model = bl.sgd_step(model, grads, LR)
    jax.block_until_ready(model)


def epoch_numpy():
    for k in range(0, n, BATCH):
        net.update_mini_batch(training_data[k:k + BATCH], LR)


fns = {"backprop_lab": epoch_bl, "numpy": epoch_numpy}
times = {name: [] for name in fns}
for r in range(warmup + repeats):
    for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
        t0 = time.perf_counter()
        fns[name]()
        if r >= warmup:
            times[name].append(time.perf_counter() - t0)
diff = max(float(np.abs(np.asarray(w) - v).max()) for w, v in zip(model.weights, net.weights))
print("BENCH_SCRIPT_RESULT " + json.dumps({
    "times": times, "steps_per_epoch": n // BATCH, "max_weight_difference": diff,
    "dtype": str(net.weights[0].dtype), "xla_flags": os.environ.get("XLA_FLAGS", "")}))
'''


def bench_python_loop(
    n_train: int = 1347, repeats: int = 9, warmup: int = 1, configured: bool = True
) -> list[Row]:
    """T7: a Python loop of ``bl.manual_grad`` + ``bl.sgd_step`` against Nielsen's NumPy loop.

    [64, 30, 10] sigmoid, half-SSE (Nielsen's quadratic cost), learning rate
    3, minibatches of 10 digits rows, float32 on both sides, the same start
    and batch order; one timed repeat is an epoch of each, interleaved. The
    script (:data:`T7_SCRIPT`) runs as a plain file in the user's
    environment; with ``configured`` a second run calls
    ``bl.configure_cpu()`` first, reported in ``details``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-t7-") as tmp:
        script = Path(tmp) / "t7_loop.py"
        script.write_text(T7_SCRIPT)
        results = {}
        for configure in (False, True) if configured else (False,):
            proc = run_command(
                [sys.executable, str(script), str(int(configure)), str(n_train), str(repeats), str(warmup)],
                env=user_env(),
                cwd=Path(tmp),
            )
            results[configure] = _script_result(proc)

    def per_step(res, name):
        return [t / res["steps_per_epoch"] for t in res["times"][name]]

    plain = results[False]
    t_bl, t_np = median(per_step(plain, "backprop_lab")), median(per_step(plain, "numpy"))
    ratio = t_np / t_bl
    details: dict[str, Any] = {
        "steps_per_epoch": plain["steps_per_epoch"],
        "dtype": plain["dtype"],
        "backprop_lab": _summary(per_step(plain, "backprop_lab")),
        "numpy": _summary(per_step(plain, "numpy")),
        "max_weight_difference": plain["max_weight_difference"],
        "xla_flags": plain["xla_flags"],
    }
    if True in results:
        conf = results[True]
        details["configured"] = {
            "ratio": median(per_step(conf, "numpy")) / median(per_step(conf, "backprop_lab")),
            "backprop_lab": _summary(per_step(conf, "backprop_lab")),
            "numpy": _summary(per_step(conf, "numpy")),
            "xla_flags": conf["xla_flags"],
        }
    return [
        row(
            "T7",
            "[64, 30, 10] sigmoid, batch 10, f32: Python loop of manual_grad + sgd_step "
            "vs Nielsen's NumPy loop (NumPy / loop)",
            f"{t_bl * 1e6:.0f} µs vs {t_np * 1e6:.0f} µs per step",
            ratio,
            "≥ 2",
            ratio >= 2,
            **details,
        )
    ]


# --------------------------------------------------------------------------- T9

#: T9's probe: ``python PROBE OUT.json SCRIPT ARGS...`` imports what the job
#: will import (timing each group), wraps the engine's stages in timers, adds
#: up JAX's compile events (tracing, lowering, compiling, reading the compile
#: cache: in all and per innermost stage), then runs SCRIPT as ``__main__``;
#: OUT.json gets seconds per stage and a timeline (seconds since the probe
#: started). The
#: wrapped names are the engine's as of this writing; a name that is gone is
#: listed under "missing" and the rest still count. They are private functions
#: (backprop_lab.runs._engine, .plots._worker, ...) on purpose: the public API
#: has no name for a stage inside a Hydra job, and the probe says which stage
#: the time of a whole command goes to. The timed command itself is public.
PROBE = r"""
import atexit
import functools
import importlib
import json
import runpy
import sys
import time

T0 = time.perf_counter()
out_path, script, *args = sys.argv[1:]
report = {"imports": {}, "calls": {}, "events": {}, "events_by_stage": {}, "missing": [],
          "marks": {}}
active = []  # the stages now running, innermost last


def now():
    return time.perf_counter() - T0


def load(label, modules):
    t = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    report["imports"][label] = time.perf_counter() - t


load("hydra, omegaconf (the app's module level)", ["hydra", "omegaconf"])
load("jax", ["jax", "jax.numpy"])
load("the engine beyond jax (backprop_lab, equinox, optax)",
     ["backprop_lab.runs._engine", "backprop_lab.runs._experiment", "backprop_lab.apps._hydra"])
load("the vmap launcher", ["hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher"])
# matplotlib is not imported here: the job's plots are drawn by its painter's worker processes

# label -> where the function is (module:attribute, or module:Class.method); the first
# of several places that exists is used (the engine's files move as it is split).
STAGES = {
    "Hydra composing a config in full": ["hydra._internal.config_loader_impl:ConfigLoaderImpl.load_configuration"],
    "a sweep job's config (composed or derived)": [
        "hydra_plugins.backprop_lab_vmap_launcher.vmap_launcher:SweepConfigs.__call__"],
    "hydra run_job (job set-up + task)": ["hydra.core.utils:run_job"],
    "build_experiment (checks, data, model)": ["backprop_lab.runs._experiment:build_experiment"],
    "load_dataset": ["backprop_lab.data._registry:load_dataset"],
    "run_experiments (the engine)": ["backprop_lab.runs._engine:run_experiments"],
    "training (step-0 record, training chunks, checkpoints)": ["backprop_lab.runs._engine:train_group"],  # the name the engine calls
    "checkpoint saves": ["backprop_lab.runs._lane:save", "backprop_lab.runs._engine:_save"],
    "finishing a lane (summary, agreement checks, plots)": ["backprop_lab.runs._finish:finish", "backprop_lab.runs._lane:finish",
                                                            "backprop_lab.runs._engine:_finish"],
    "grad_agreement (manual vs autodiff)": ["backprop_lab.checks._agreement:lane_agreements",
                                            "backprop_lab.checks._agreement:grad_agreement"],
    "handing plots to the workers (or drawing them here)": ["backprop_lab.plots._worker:Painter.draw"],
    "loss_curve plot": ["backprop_lab.plots._run:loss_curve"],
    "grad_norms plot": ["backprop_lab.plots._run:grad_norms"],
    "starting the plot workers": ["backprop_lab.plots._worker:Painter.__init__"],
    "waiting for the plot workers": ["backprop_lab.plots._worker:Painter.close"],
    "the sweep's summary (summary.csv, .md, .png)": ["backprop_lab.apps._summarize:summarize"],
}


def timed(label, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = time.perf_counter()
        active.append(label)
        try:
            return fn(*a, **k)
        finally:
            active.pop()
            c = report["calls"].setdefault(label, {"seconds": 0.0, "count": 0, "first_start": None})
            c["seconds"] += time.perf_counter() - t
            c["count"] += 1
            if c["first_start"] is None:
                c["first_start"] = t - T0
            c["last_end"] = now()
    return wrapper


def find(places):
    for where in places:
        module_name, path = where.split(":")
        try:
            owner = importlib.import_module(module_name)
            *parents, attr = path.split(".")
            for p in parents:
                owner = getattr(owner, p)
            return owner, attr, getattr(owner, attr)
        except (ImportError, AttributeError):
            continue
    return None


for label, places in STAGES.items():
    found = find(places)
    if found is None:
        report["missing"].append(" or ".join(places))
        continue
    owner, attr, fn = found
    wrapped = timed(label, fn)
    setattr(owner, attr, wrapped)
    for mod in list(sys.modules.values()):  # and wherever it was imported by name
        if getattr(mod, "__name__", "").startswith(("backprop_lab", "hydra")):
            for key, value in list(vars(mod).items()):
                if value is fn:
                    setattr(mod, key, wrapped)

from jax import monitoring  # noqa: E402


def on_event(event, duration, **_):
    report["events"][event] = report["events"].get(event, 0.0) + duration
    stage = report["events_by_stage"].setdefault(active[-1] if active else "(no stage)", {})
    stage[event] = stage.get(event, 0.0) + duration


monitoring.register_event_duration_secs_listener(on_event)


def write():
    report["marks"]["exit"] = now()
    with open(out_path, "w") as f:
        json.dump(report, f)


atexit.register(write)
sys.argv = [script, *args]
report["marks"]["script_start"] = now()
try:
    runpy.run_path(script, run_name="__main__")
finally:
    report["marks"]["script_end"] = now()
"""


def probe_job(argv: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``python SCRIPT ARGS`` under :data:`PROBE` and ``-X importtime``; its report."""
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        probe, out = Path(tmp) / "probe.py", Path(tmp) / "probe.json"
        probe.write_text(PROBE)
        proc = run_command([sys.executable, "-X", "importtime", str(probe), str(out), *argv], env=env)
        report = json.loads(out.read_text())
    report["import_seconds_by_package"] = {
        k: round(v, 4) for k, v in list(import_seconds(proc.stderr).items())[:15]
    }
    return report


_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache read",
}


def describe_probe(report: dict[str, Any]) -> list[str]:
    """:func:`probe_job`'s report as lines: imports, then each stage in the order it started."""

    def jax_part(events: dict[str, float]) -> str:
        parts = [f"{short} {events[e]:.2f}" for e, short in _EVENTS.items() if events.get(e)]
        return f" (JAX {', '.join(parts)})" if parts else ""

    lines = [
        "imports (before the script): " + ", ".join(f"{k} {v:.2f} s" for k, v in report["imports"].items())
    ]
    marks, calls = report["marks"], report["calls"]
    if calls:
        first = min(c["first_start"] for c in calls.values())
        lines.append(
            f"from the script's start to the first stage (app module, configure_cpu, "
            f"Hydra composing the config): {first - marks['script_start']:.2f} s"
        )
    for label, c in sorted(calls.items(), key=lambda kv: kv[1]["first_start"]):
        times = f" ×{c['count']}" if c["count"] > 1 else ""
        lines.append(
            f"  {label}: {c['seconds']:.2f} s{times}, from {c['first_start']:.2f} s to "
            f"{c['last_end']:.2f} s{jax_part(report['events_by_stage'].get(label, {}))}"
        )
    if calls:
        last = max(c["last_end"] for c in calls.values())
        lines.append(
            f"after the last stage until exit (Hydra's end, callbacks): {marks['exit'] - last:.2f} s"
        )
    lines.append("JAX in all:" + jax_part(report["events"]).strip(" ()").replace("JAX", ""))
    if report["missing"]:
        lines.append("not found (renamed?): " + ", ".join(report["missing"]))
    return lines


def bench_main_job(
    overrides: Sequence[str] = (), repeats: int = 5, warmup: int = 1, probe: bool = True
) -> list[Row]:
    """T9: ``python experiments/train.py`` (the main job), whole command, compile cache warm.

    Goal: at most 2 × (``python -c "import jax"`` + the run's own training
    ``wall_time`` from summary.json). Each run has a fresh
    ``hydra.run.dir``; the compile cache is the benchmark's own
    (``BACKPROP_LAB_CACHE``), warmed by the untimed first run. ``details``
    has ``python -c pass``, and with ``probe`` one more run's stage times
    (see :data:`PROBE`).
    """
    with tempfile.TemporaryDirectory(prefix="bench-t9-") as tmp:
        env = user_env(BACKPROP_LAB_CACHE=str(Path(tmp) / "jax_cache"))
        runs: list[Path] = []

        def job():
            runs.append(Path(tmp) / f"run{len(runs)}")
            run_command([*_app("train"), f"hydra.run.dir={runs[-1]}", *overrides], env=env)

        fns: dict[str, Callable[[], Any]] = {
            "job": job,
            "import_jax": lambda: run_command([sys.executable, "-c", "import jax"], env=env),
            "python": lambda: run_command([sys.executable, "-c", "pass"], env=env),
        }
        times = time_interleaved(fns, repeats, warmup=warmup)
        summaries = [json.loads((d / "summary.json").read_text()) for d in runs[warmup:]]
        walls = [s["wall_time"] for s in summaries]
        first_chunks = [s.get("first_chunk_seconds") or 0.0 for s in summaries]
        where = (
            probe_job(
                [
                    str(_root() / "experiments" / "train.py"),
                    f"hydra.run.dir={Path(tmp) / 'probe'}",
                    *overrides,
                ],
                env,
            )
            if probe
            else None
        )
    t_job, t_jax, t_wall = median(times["job"]), median(times["import_jax"]), median(walls)
    ratio = t_job / (t_jax + t_wall)
    what = "python experiments/train.py" + "".join(f" {o}" for o in overrides)
    return [
        row(
            "T9",
            f"{what} (fresh run dir, warm cache): whole command / (import jax + training wall_time)",
            f"{t_job:.2f} s vs {t_jax:.2f} s + {t_wall:.2f} s",
            ratio,
            "≤ 2",
            ratio <= 2,
            job=_summary(times["job"]),
            import_jax=_summary(times["import_jax"]),
            python_startup=_summary(times["python"]),
            wall_time=_summary(walls),
            first_chunk_seconds=_summary(first_chunks),
            overrides=list(overrides),
            where_the_time_goes=where,
        )
    ]


# --------------------------------------------------------------------------- T10


def sweep_overrides(lrs: Sequence[float], seeds: int, epochs: int) -> list[str]:
    """T10's sweep: moons, [2, 16, 2], SGD, ``lrs`` × ``seeds`` jobs."""
    return [
        "-m",
        "data=moons",
        "model.sizes=[2,16,2]",
        "optimizer=sgd",
        "optimizer.lr=" + ",".join(f"{lr:.3g}" for lr in lrs),
        "seed=" + ",".join(str(s) for s in range(seeds)),
        f"epochs={epochs}",
    ]


def _final_losses(sweep_dir: Path) -> dict[str, float | None]:
    out = {}
    for summary in sweep_dir.glob("*/summary.json"):
        out[summary.parent.name] = json.loads(summary.read_text()).get("final_train_loss")
    return out


def bench_hydra_sweep(
    lr_count: int = 16,
    seeds: int = 4,
    epochs: int = 20,
    repeats: int = 3,
    lr_range: tuple[float, float] = (0.01, 3.0),
    warm: bool = True,
    probe: bool = False,
) -> list[Row]:
    """T10: the lr × seed sweep through Hydra, ``hydra/launcher=vmap`` against the basic launcher.

    Whole commands, each into a fresh ``hydra.sweep.dir``, with the
    benchmark's own compile cache warmed first (``warm``: one single job, then
    one untimed vmap sweep); the basic launcher's sweep runs once (it is the
    slow side), the vmap sweep ``repeats`` times. Every job's final train
    loss under both launchers is compared. With ``probe``, one more vmap sweep
    runs under :data:`PROBE` (the plot workers' own time shows as the wait for them).
    """
    lrs = np.geomspace(*lr_range, lr_count)
    sweep = sweep_overrides(lrs.tolist(), seeds, epochs)
    jobs = lr_count * seeds
    with tempfile.TemporaryDirectory(prefix="bench-t10-") as tmp:
        env = user_env(BACKPROP_LAB_CACHE=str(Path(tmp) / "jax_cache"))
        dirs: list[Path] = []

        def launch(launcher: str) -> None:
            dirs.append(Path(tmp) / f"{launcher}{len(dirs)}")
            run_command(
                [*_app("train"), *sweep, f"hydra/launcher={launcher}", f"hydra.sweep.dir={dirs[-1]}"], env=env
            )

        if warm:
            one = [o for o in sweep[1:] if not o.startswith(("optimizer.lr=", "seed="))]
            run_command([*_app("train"), *one, f"hydra.run.dir={Path(tmp) / 'single'}"], env=env)
        vmap = time_interleaved({"vmap": lambda: launch("vmap")}, repeats, warmup=int(warm))["vmap"]
        basic = time_interleaved({"basic": lambda: launch("basic")}, 1, warmup=0)["basic"]
        vmap_losses, basic_losses = _final_losses(dirs[-2]), _final_losses(dirs[-1])
        where = (
            probe_job(
                [
                    str(_root() / "experiments" / "train.py"),
                    *sweep,
                    "hydra/launcher=vmap",
                    f"hydra.sweep.dir={Path(tmp) / 'probe'}",
                ],
                env,
            )
            if probe
            else None
        )
    worst, missing = 0.0, jobs - len(basic_losses)
    for job, loss in basic_losses.items():
        other = vmap_losses.get(job)
        if loss is None or other is None:
            missing += loss is not other
            continue
        worst = max(worst, abs(loss - other) / max(abs(loss), 1e-30))
    ratio = median(basic) / median(vmap)
    return [
        row(
            "T10",
            f"Hydra sweep of {jobs} jobs ({lr_count} lr × {seeds} seeds, moons "
            f"[2, 16, 2] sgd, {epochs} epochs): basic launcher / hydra/launcher=vmap",
            f"{median(basic):.1f} s vs {median(vmap):.1f} s; final losses: worst rel. diff {worst:.1e}",
            ratio,
            "≥ 10",
            ratio >= 10,
            jobs=jobs,
            basic=_summary(basic),
            vmap=_summary(vmap),
            worst_relative_difference=worst,
            jobs_without_loss=missing,
            learning_rates=[float(f"{lr:.3g}") for lr in lrs],
            command=sweep,
            where_the_time_goes=where,
        )
    ]


# --------------------------------------------------------------------------- T11

MINIMAL_APP = """import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> None:
    pass


if __name__ == "__main__":
    main()
"""


def bench_help(
    apps: Sequence[str] = ("train", "compare", "explain"),
    flags: Sequence[Sequence[str]] = (("--help",), ("--cfg", "job")),
    repeats: int = 9,
    warmup: int = 1,
) -> list[Row]:
    """T11: ``--help`` and ``--cfg job`` of every app against a minimal Hydra app's ``--help``.

    The minimal app (one YAML file, an empty main) is written into a temporary
    directory and run with the same interpreter. All commands take turns, after ``warmup``
    untimed rounds (the tiny mode has none: it checks the harness, not the figures). The
    goal: the slowest app command ≤ 1.5 × the minimal ``--help``, and none of
    them imports a :data:`HEAVY` package (checked with ``-X importtime``).
    """
    with tempfile.TemporaryDirectory(prefix="bench-t11-") as tmp:
        (Path(tmp) / "config.yaml").write_text("x: 1\n")
        (Path(tmp) / "app.py").write_text(MINIMAL_APP)
        env = user_env()
        cmds = {"minimal --help": [sys.executable, str(Path(tmp) / "app.py"), "--help"]}
        for app in apps:
            for flag in flags:
                cmds[f"{app} {' '.join(flag)}"] = [*_app(app), *flag]
        times = time_interleaved(
            {k: functools.partial(run_command, c, env=env) for k, c in cmds.items()}, repeats, warmup=warmup
        )
        heavy = {
            k: heavy_imports(run_command([c[0], "-X", "importtime", *c[1:]], env=env).stderr)
            for k, c in cmds.items()
        }
    base = median(times["minimal --help"])
    worst = max((k for k in cmds if k != "minimal --help"), key=lambda k: median(times[k]))
    ratio = median(times[worst]) / base
    loaded = sorted({p for k, found in heavy.items() if k != "minimal --help" for p in found})
    return [
        row(
            "T11",
            f"--help and --cfg job of {', '.join(apps)}: slowest / minimal Hydra app's --help",
            f"{worst} {median(times[worst]):.2f} s vs {base:.2f} s; heavy imports: "
            f"{', '.join(loaded) or 'none'}",
            ratio,
            "≤ 1.5, no heavy imports",
            ratio <= 1.5 and not loaded,
            slowest=worst,
            heavy_imports=heavy,
            **{k: _summary(t) for k, t in times.items()},
        )
    ]


#: name → (function, keyword arguments per mode), as targets.BENCHMARKS.
BENCHMARKS: dict[str, tuple[Callable[..., list[Row]], dict[str, dict[str, Any]]]] = {
    "t7": (
        bench_python_loop,
        {
            "full": dict(repeats=15),
            "quick": dict(repeats=5),
            "tiny": dict(n_train=40, repeats=1, warmup=0, configured=False),
        },
    ),
    "t9": (
        bench_main_job,
        {
            "full": dict(repeats=7),
            "quick": dict(repeats=3),
            "tiny": dict(
                overrides=("experiment=xor", "epochs=2", "log_every=1"), repeats=1, warmup=0, probe=True
            ),
        },
    ),
    "t10": (
        bench_hydra_sweep,
        {
            "full": dict(repeats=3, probe=True),
            "quick": dict(lr_count=4, seeds=2, repeats=1),
            "tiny": dict(lr_count=1, seeds=1, epochs=1, repeats=1, warm=False),
        },
    ),
    "t11": (
        bench_help,
        {
            "full": dict(repeats=9),
            "quick": dict(repeats=3),
            "tiny": dict(apps=("train",), flags=(("--help",),), repeats=1, warmup=0),
        },
    ),
}
