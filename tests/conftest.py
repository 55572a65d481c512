"""Test-wide JAX settings: float64 available, and silent broadcasting is an error.

Also the ``slurm_cluster`` fixture: a one-node SLURM cluster on this machine
(scripts/slurm-local) for the tests marked ``@pytest.mark.slurm``. The suite
runs on pytest-xdist workers (pyproject's ``-n auto``); the SLURM tests all go
to one worker, one after another, since they share the cluster's one node.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The suite compiles thousands of small programs, and XLA's CPU backend spends most
# of each compile optimizing code that then runs for microseconds: at optimization
# level 0 the suite takes about half the time. Tests compare numbers (within the
# tolerances they state, or bit for bit between runs under the same options), never
# codegen; workers and the subprocesses tests start inherit the setting. A level
# given in XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# One persistent compilation cache for the whole session (the configs' default
# jax_cache_dir reads BACKPROP_LAB_CACHE): the apps the tests start as processes
# build the same small programs over and over, and a warm cache saves each about
# a second of compiling. Every xdist worker (and every process they start) shares
# the directory, named by the session's run id; the controller removes it at the
# end. A cache never changes a result: it holds the executables XLA would build.
# Tests of several processes writing at once (jax.distributed) keep
# jax_cache_dir=null.
_SESSION_CACHE = None
if "BACKPROP_LAB_CACHE" not in os.environ:
    _run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    _SESSION_CACHE = Path(tempfile.gettempdir()) / f"backprop-lab-tests-{_run_id}" / "jax_cache"
    os.environ["BACKPROP_LAB_CACHE"] = str(_SESSION_CACHE)

import jax  # noqa: E402  (after XLA_FLAGS: XLA reads them when its backend starts)
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

SLURM_LOCAL = Path(__file__).resolve().parents[1] / "scripts" / "slurm-local"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SLURM tests form one xdist group (``--dist loadgroup``), run first: one worker
    spends their waits on the cluster while the others run the rest. The other slow
    tests (subprocesses, training) come next, so the quick ones fill the workers' ends
    instead of one long test running alone at the end.

    Under ``loadgroup`` every test is a unit of its own, sent to whichever worker is
    free, and a module-scoped fixture is built once per worker that runs a test using
    it. Tests that share an expensive one (a trained run) therefore name an
    ``xdist_group`` of their own (``pytestmark``): one worker builds it once."""
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group("slurm"))
    items.sort(
        key=lambda item: (item.get_closest_marker("slurm") is None, item.get_closest_marker("slow") is None)
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Start the local SLURM cluster once per session; return its node name.

    ``scripts/slurm-local start`` installs the Debian packages when missing and
    does nothing when the cluster is already up. Without root or apt-get it
    fails with one line saying why, and the tests using this fixture are
    skipped with that line (failed instead when BACKPROP_LAB_REQUIRE_SLURM=1).
    The cluster is left running afterwards, for other sessions and reruns:
    ``scripts/slurm-local stop`` stops it.
    """
    try:
        proc = subprocess.run([str(SLURM_LOCAL), "start"], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        reason = "scripts/slurm-local start did not finish within 900 s"
    else:
        if proc.returncode == 0:
            return subprocess.run(
                ["hostname", "-s"], capture_output=True, text=True, check=True
            ).stdout.strip()
        lines = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
        reason = lines.splitlines()[-1]
    if os.environ.get("BACKPROP_LAB_REQUIRE_SLURM") == "1":
        pytest.fail(f"no SLURM cluster: {reason}")
    pytest.skip(f"no SLURM cluster: {reason}")


@pytest.fixture(scope="session")
def straight_slow(tmp_path_factory) -> Path:
    """The run of ``helpers.train_app.SLOW`` from start to end by the command line: what a run of
    it stopped (a signal, kill -9) and resumed by the command line ends as, bit for bit. The
    tests using it name ``xdist_group("straight_slow")``, so one worker runs it once."""
    from helpers.train_app import SLOW, run_cli

    run = tmp_path_factory.mktemp("straight_slow") / "run"
    result = run_cli(run, *SLOW)
    assert result.returncode == 0, result.stderr[-2000:]
    return run


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller (or a run without workers) removes the session's compilation cache."""
    if _SESSION_CACHE is not None and not hasattr(session.config, "workerinput"):
        shutil.rmtree(_SESSION_CACHE.parent, ignore_errors=True)
