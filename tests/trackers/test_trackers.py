"""Trackers: each tool's own reader gives back what the run's own files hold.

A tiny run goes through the training app with each ``logger``; the tracker's
output is then read with the tool's reader (csv, TensorBoard's
EventAccumulator, MlflowClient, W&B's record protobuf) and compared with
losses.csv, metrics.jsonl, summary.json and the config the checkpoint records.
"""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from backprop_lab.apps._summarize import summarize
from backprop_lab.files._checkpoint import read_header
from backprop_lab.runs._experiment import ConfigError, build_experiment
from backprop_lab.trackers._base import folder_name
from backprop_lab.trackers._registry import TRACKERS, TrackerError, check_logger_config
from helpers.train_app import ROOT, TINY, app, cfg_of, run_cli


def _files(run: Path) -> dict:
    """The run's own files: every step's loss, the records, the summary, the config it trained with."""
    with open(run / "losses.csv", newline="") as f:
        losses = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "losses": losses,
        "records": records,
        "summary": json.loads((run / "summary.json").read_text()),
        "config": read_header(run / "checkpoint.eqx")["meta"]["config"],
    }


def _leaves(tree: dict, prefix: str = "") -> dict:
    """A nested dict's values by dotted path (an empty dict is a leaf)."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _text_value(text: str):
    """A hyperparameter read back from text: a string as it is, any other value as its JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _record_values(records: list[dict]) -> dict[tuple[str, int], float]:
    """(metric, step) → value of every number in the records, lists per layer as name/i."""
    out = {}
    for rec in records:
        for key, value in rec.items():
            if key == "step":
                continue
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, v in items:
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[(key if i is None else f"{key}/{i}", rec["step"])] = float(v)
    return out


def _train(tmp_path: Path, logger: str, *overrides: str) -> tuple[Path, dict]:
    run = tmp_path / "run"
    app.train(cfg_of(*TINY, f"logger={logger}", *overrides), out_dir=run)
    return run, _files(run)


# ---------------------------------------------------------------- config checks


def _logger_group(*overrides: str) -> dict:
    return OmegaConf.to_container(cfg_of(*overrides)["logger"])


def test_every_logger_has_a_config_file_its_schema_accepts():
    for name in TRACKERS:
        group = _logger_group(f"logger={name}")
        assert list(check_logger_config(group)) == ([] if name == "none" else [name])
    both = _logger_group("logger=[csv,tensorboard]")
    assert check_logger_config(both) == {"csv": {"dir": "csv"}, "tensorboard": {"dir": "tensorboard"}}


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"wandb": {"mode": "sometimes"}}, "logger.wandb.mode='sometimes' is invalid: expected one of"),
        ({"csv": {"folder": "x"}}, "logger.csv has no key 'folder'"),
        ({"mlflow": {"tracking_uri": 3}}, "logger.mlflow.tracking_uri=3 is invalid"),
        ({"mlflow": {"timeout": 0}}, "logger.mlflow.timeout=0 is invalid: expected a number > 0"),
        ({"csv": {}, "neptune": {}}, "valid choices are: csv, mlflow, none, tensorboard, wandb, or several"),
        ("csv", "logger='csv' is invalid: valid choices are"),
    ],
)
def test_bad_logger_settings_are_config_errors(group, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_logger_config(group)


@pytest.mark.parametrize(
    ("logger", "package"), [("tensorboard", "tensorboardX"), ("mlflow", "mlflow"), ("wandb", "wandb")]
)
def test_a_missing_package_stops_the_run_at_its_config_check(logger, package, monkeypatch, tmp_path):
    # sys.modules[name] = None is how Python itself marks a module as not importable.
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(
        ConfigError, match=rf"needs the {package} package.*pip install 'backprop-lab\[trackers\]'"
    ):
        build_experiment(cfg_of(*TINY, f"logger={logger}"))
    with pytest.raises(ConfigError, match="backprop-lab\\[trackers\\]"):
        app.train(cfg_of(*TINY, f"logger={logger}"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_tracker_that_fails_mid_run_is_left_out_in_one_line(tmp_path, caplog):
    """The csv tracker's folder removed after it started: one error line, and TensorBoard,
    beside it, still gets every call."""
    import shutil

    from backprop_lab.trackers._registry import Trackers

    trackers = Trackers(tmp_path, {name: TRACKERS[name](tmp_path, None) for name in ("csv", "tensorboard")})
    trackers.start({"seed": 0})
    trackers.log_losses(0, [1.0, 0.5])
    shutil.rmtree(tmp_path / "csv")
    trackers.log_losses(2, [0.25])
    trackers.log_losses(3, [0.125])
    trackers.finish({"status": "completed", "steps": 4})
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(lines) == 1 and lines[0].startswith("logger=csv stopped logging this run: ")
    loss = _tensorboard_back(_tensorboard_folder(tmp_path)).Scalars("loss")
    assert [(e.step, e.value) for e in loss] == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]


# ---------------------------------------------------------------- csv


def _csv_back(run: Path, folder: str = "csv") -> dict:
    with open(run / folder / "params.csv", newline="") as f:
        params = {r["key"]: r["value"] for r in csv.DictReader(f)}
    with open(run / folder / "metrics.csv", newline="") as f:
        rows = [(r["name"], int(r["step"]), float(r["value"])) for r in csv.DictReader(f)]
    with open(run / folder / "summary.csv", newline="") as f:
        summary = {r["key"]: r["value"] for r in csv.DictReader(f)}
    return {"params": params, "rows": rows, "summary": summary}


def _check_csv(run: Path, files: dict) -> None:
    back = _csv_back(run)
    config = _leaves(files["config"])
    assert set(back["params"]) == set(config)
    assert all(_text_value(back["params"][k]) == v for k, v in config.items())
    losses = [(step, value) for name, step, value in back["rows"] if name == "loss"]
    assert losses == sorted(files["losses"].items())  # each step once, exactly
    others = {(name, step): value for name, step, value in back["rows"] if name != "loss"}
    assert len(others) == len(back["rows"]) - len(losses)
    assert others == _record_values(files["records"])
    summary = _leaves(files["summary"])
    assert set(back["summary"]) == set(summary)
    assert all(_text_value(back["summary"][k]) == v for k, v in summary.items())


# ---------------------------------------------------------------- tensorboard


def _tensorboard_back(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _hparams(events) -> tuple[dict, int]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    values = {}
    for name, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    return values, end.session_end_info.status


def _tensorboard_folder(run: Path) -> Path:
    (folder,) = (run / "tensorboard").iterdir()  # the run's folder, named by the run
    return folder


def _check_tensorboard(run: Path, files: dict) -> None:
    from tensorboard.plugins.hparams import api_pb2

    events = _tensorboard_back(_tensorboard_folder(run))
    float32 = np.float32
    loss = [(e.step, float32(e.value)) for e in events.Scalars("loss")]
    assert loss == [(s, float32(v)) for s, v in sorted(files["losses"].items())]
    expected = _record_values(files["records"])
    got = {
        (tag, e.step): float32(e.value)
        for tag in events.Tags()["scalars"]
        if tag != "loss"
        for e in events.Scalars(tag)
    }
    assert got == {k: float32(v) for k, v in expected.items()}
    hparams, status = _hparams(events)
    for key, value in _leaves(files["config"]).items():
        want = (
            value
            if isinstance(value, (bool, str))
            else (float(value) if isinstance(value, (int, float)) else json.dumps(value))
        )
        assert hparams[key] == want, key
    assert set(hparams) == set(_leaves(files["config"]))
    assert status == api_pb2.Status.Value("STATUS_SUCCESS")
    text = events.Tensors("summary/text_summary")[-1]
    assert text.step == files["summary"]["steps"]
    assert json.loads(textwrap.dedent(text.tensor_proto.string_val[0].decode())) == files["summary"]


@pytest.mark.slow
def test_several_trackers_at_once_csv_and_tensorboard(tmp_path):
    run, files = _train(tmp_path, "[csv,tensorboard]")
    _check_csv(run, files)
    _check_tensorboard(run, files)
    assert _tensorboard_folder(run).name == "run"  # no overrides without Hydra: the directory's name


# ---------------------------------------------------------------- mlflow


def _mlflow_client(launch_dir: Path):
    """MLflow's client on the default store of runs started from ``launch_dir``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{launch_dir.resolve()}/mlflow.db")


def _mlflow_runs(client, experiment: str) -> list:
    (found,) = [e for e in client.search_experiments() if e.name == experiment]
    return client.search_runs([found.experiment_id])


def _check_mlflow(run: Path, files: dict, tmp_path: Path, experiment: str = "backprop-lab") -> str:
    client = _mlflow_client(tmp_path)
    (found,) = [r for r in _mlflow_runs(client, experiment) if r.info.run_id == _mlflow_state(run)["run_id"]]
    assert found.data.tags["backprop_lab.output_dir"] == str(run.resolve())
    assert found.info.status == "FINISHED" and found.data.tags["status"] == "completed"
    history = client.get_metric_history(found.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == sorted(files["losses"].items())
    expected = _record_values(files["records"])
    for name in {name for name, _ in expected}:
        got = {(name, m.step): m.value for m in client.get_metric_history(found.info.run_id, name)}
        assert got == {k: v for k, v in expected.items() if k[0] == name}
    config = _leaves(files["config"])
    assert set(found.data.params) == set(config)
    assert all(_text_value(found.data.params[k]) == v for k, v in config.items())
    with tempfile.TemporaryDirectory() as into:  # not among the runs: it would be a job of its own
        local = client.download_artifacts(found.info.run_id, "summary.json", into)
        assert json.loads(Path(local).read_text()) == files["summary"]
    return found.info.run_id


def _mlflow_state(run: Path) -> dict:
    return json.loads((run / "mlflow_run.json").read_text())


@pytest.mark.slow
def test_mlflow_tracker_and_a_state_file_that_is_not_the_runs(tmp_path, monkeypatch):
    """One SQLite store in the launch directory; an edited mlflow_run.json is refused in one
    line on resume, and no second MLflow run appears."""
    monkeypatch.chdir(tmp_path)
    run, files = _train(tmp_path, "mlflow")
    run_id = _check_mlflow(run, files, tmp_path)
    assert _mlflow_runs(_mlflow_client(tmp_path), "backprop-lab")[0].info.run_name == "run"
    state = _mlflow_state(run)
    other = _mlflow_client(tmp_path).create_run(
        _mlflow_runs(_mlflow_client(tmp_path), "backprop-lab")[0].info.experiment_id
    )
    edits = {
        "not JSON": "{",
        "another run": json.dumps({**state, "run_id": other.info.run_id}),
        "no such run": json.dumps({**state, "run_id": "0" * 32}),
        "a list": "[]",
    }
    resume = cfg_of(*TINY, "resume=true", "epochs=4", "logger=mlflow")
    for what, text in edits.items():
        (run / "mlflow_run.json").write_text(text)
        with pytest.raises(TrackerError, match=r"^logger=mlflow: .*mlflow_run\.json.*delete it") as info:
            app.train(resume, out_dir=run)
        assert "\n" not in str(info.value), what
    assert {r.info.run_id for r in _mlflow_runs(_mlflow_client(tmp_path), "backprop-lab")} == {
        run_id,
        other.info.run_id,
    }
    assert _files(run)["summary"]["steps"] == files["summary"]["steps"]  # nothing trained meanwhile


# ---------------------------------------------------------------- wandb
#
# wandb (0.31) ships no reader for its .wandb files; the file is the leveldb
# log format wandb's former datastore module documents (a 7-byte header
# ":W&B", 0xBEE1, version 0; 32 KiB blocks of records: crc32, length, type,
# data), each record's data a wandb_internal_pb2.Record, decoded here with
# wandb's own protobuf class.


def _wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:7] == struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
    records, data, i = [], b"", 7
    while i + 7 <= len(raw):
        if 32768 - i % 32768 < 7:  # a block's tail too short for a record header is padding
            i += 32768 - i % 32768
            continue
        checksum, length, kind = struct.unpack("<IHB", raw[i : i + 7])
        chunk = raw[i + 7 : i + 7 + length]
        i += 7 + length
        if kind == 0:
            continue
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum
        data += chunk
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(wandb_internal_pb2.Record.FromString(data))
            data = b""
    return records


def _wandb_back(run_folder: Path) -> dict:
    (path,) = run_folder.glob("run-*.wandb")
    out = {"config": {}, "history": {}, "summary": {}, "exit": None, "id": None}
    for rec in _wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"] = rec.run.run_id
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
            out["history"].setdefault(row.pop("_step"), {}).update(
                {k: v for k, v in row.items() if not k.startswith("_")}
            )
        elif kind == "summary":
            for u in rec.summary.update:
                out["summary"][u.key or "/".join(u.nested_key)] = json.loads(u.value_json)
        elif kind == "exit":
            out["exit"] = rec.exit.exit_code
    return out


def _check_wandb(run: Path, files: dict) -> list[dict]:
    folders = sorted((run / "wandb").glob("offline-run-*"))
    backs = [_wandb_back(f) for f in folders]
    state = json.loads((run / "wandb_run.json").read_text())
    assert {b["id"] for b in backs} == {state["id"]}
    history: dict[int, dict] = {}
    for back in backs:
        for step, row in back["history"].items():
            history.setdefault(step, {}).update(row)
    assert {s: row["loss"] for s, row in history.items() if "loss" in row} == files["losses"]
    got = {(k, s): v for s, row in history.items() for k, v in row.items() if k != "loss"}
    assert got == _record_values(files["records"])
    config = {k: v for k, v in backs[-1]["config"].items() if k != "_wandb"}
    assert config == files["config"]
    summary = backs[-1]["summary"]
    for key in ("status", "steps", "final_train_loss", "test_accuracy", "environment"):
        assert summary[key] == files["summary"][key]
    assert backs[-1]["exit"] == 0
    return backs


@pytest.mark.slow
def test_wandb_tracker_offline_and_its_refusals(tmp_path, monkeypatch):
    """Offline by default; online without a login, or an edited wandb_run.json on resume,
    is one line and no new W&B run."""
    run, files = _train(tmp_path, "wandb")
    backs = _check_wandb(run, files)
    assert len(backs) == 1
    resume = ("resume=true", "epochs=4", "logger=wandb")
    state = json.loads((run / "wandb_run.json").read_text())
    for text in ("{", json.dumps({"id": 7}), json.dumps({"id": "x" + state["id"]})):
        (run / "wandb_run.json").write_text(text)
        with pytest.raises(TrackerError, match=r"^logger=wandb: .*wandb_run\.json.*delete it[^\n]*$"):
            app.train(cfg_of(*TINY, *resume), out_dir=run)
    for key in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no W&B settings
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(TrackerError, match=r"^logger=wandb: .*needs a W&B login.*wandb login"):
        app.train(cfg_of(*TINY, "logger=wandb", "logger.wandb.mode=online"), out_dir=tmp_path / "online")
    assert not (tmp_path / "online" / "metrics.jsonl").exists()
    assert len(list((run / "wandb").glob("*run-*"))) == 1


@pytest.mark.slow
def test_an_unreachable_mlflow_server_is_one_line_within_the_time_limit(tmp_path):
    """MLflow retries a server that refuses connections for minutes; the run stops at
    logger.mlflow.timeout with one line naming the service and exit status 2."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    result = run_cli(
        tmp_path / "run",
        *TINY,
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        "logger.mlflow.timeout=2",
        "jax_cache_dir=null",
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "logger=mlflow" in line]
    assert len(lines) == 1 and f"MLflow tracking server at {uri} did not answer within 2 s" in lines[0]
    assert "Traceback" not in output and "Retrying" not in output
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# ---------------------------------------------------------------- resume


@pytest.mark.slow
@pytest.mark.parametrize("logger", ["csv", "tensorboard", "mlflow", "wandb"])
def test_a_resumed_run_continues_its_tracker_run(logger, tmp_path, monkeypatch):
    """Trained for 2 epochs, then resumed to 3: one tracker run holds every step once."""
    monkeypatch.chdir(tmp_path)  # MLflow's store is in the launch directory
    run = tmp_path / "run"
    short = [o for o in TINY if not o.startswith("epochs=")]
    if logger == "tensorboard":  # both starts within one second: tensorboardX names files by the second
        import types

        from tensorboardX import event_file_writer

        monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: 1796033715.0))
    app.train(cfg_of(*short, "epochs=2", f"logger={logger}"), out_dir=run)
    if logger == "csv":  # rows a run killed after its tracker wrote them, before its checkpoint, leaves
        with open(run / "csv" / "metrics.csv", "a") as f:
            f.write("30,loss,9.0\n31,loss,9.0\n45,train_loss,9.0\n")
    app.train(cfg_of(*short, "epochs=3", "resume=true", f"logger={logger}"), out_dir=run)
    files = _files(run)
    assert files["summary"]["steps"] == max(files["losses"]) + 1 == 45
    if logger == "csv":
        _check_csv(run, files)
    elif logger == "tensorboard":
        assert len(list(_tensorboard_folder(run).glob("events.out.tfevents.*"))) == 2
        _check_tensorboard(run, files)
    elif logger == "mlflow":
        _check_mlflow(run, files, tmp_path)
    else:
        assert len(_check_wandb(run, files)) == 2


# ---------------------------------------------------------------- sweeps


def _tensorboard_runs(logdir: Path) -> dict:
    """TensorBoard's own view of a log directory: run name → its ``loss`` scalars."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    events = EventMultiplexer(size_guidance={"scalars": 0})
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    return {run: [(e.step, e.value) for e in events.Scalars(run, "loss")] for run in events.Runs()}


@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory) -> Path:
    """A vmapped sweep of two jobs with every tracker at once, started from a directory of its
    own (MLflow's store is there); returns that directory."""
    launch = tmp_path_factory.mktemp("tracked_sweep")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "train.py"),
            "-m",
            *TINY,
            "optimizer.lr=0.01,0.1",
            "hydra/launcher=vmap",
            "logger=[mlflow,tensorboard,csv,wandb]",
            "hydra.sweep.dir=multirun/lr",
            "jax_cache_dir=null",
        ],
        capture_output=True,
        text=True,
        cwd=launch,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return launch


@pytest.mark.slow
@pytest.mark.xdist_group("tracked_sweep")
@pytest.mark.parametrize("loggers", ["[mlflow,tensorboard]", "[csv,wandb]"])
def test_each_lane_of_a_vmapped_sweep_has_its_own_tracker_run(loggers, tracked_sweep):
    """A sweep started from a directory: MLflow's runs in one experiment of the store there,
    TensorBoard's readable over the sweep directory, each named by its overrides; the sweep's
    summary counts its jobs only. One sweep with the four trackers serves both cases."""
    tmp_path = tracked_sweep
    sweep = tmp_path / "multirun" / "lr"
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(jobs) == 2
    names = {}
    for job in jobs:
        files = _files(job)
        assert files["summary"]["launcher"] == "vmap" and files["summary"]["lanes"] == 2
        names[job.name] = f"optimizer.lr={files['config']['optimizer']['lr']}"
        if loggers == "[csv,wandb]":
            _check_csv(job, files)
            _check_wandb(job, files)
        else:
            run_id = _check_mlflow(job, files, tmp_path, experiment="multirun/lr")
            assert _mlflow_client(tmp_path).get_run(run_id).info.run_name == names[job.name]
            _check_tensorboard(job, files)
            runs = _tensorboard_runs(sweep)
            folder = f"{job.name}/tensorboard/{folder_name(names[job.name])}"
            assert runs[folder] == [
                (s, pytest.approx(v, rel=1e-6)) for s, v in sorted(files["losses"].items())
            ]
    assert set(names.values()) == {"optimizer.lr=0.01", "optimizer.lr=0.1"}
    if loggers == "[mlflow,tensorboard]":
        assert len(_tensorboard_runs(sweep)) == 2
        assert len(_mlflow_runs(_mlflow_client(tmp_path), "multirun/lr")) == 2
        assert summarize(sweep, plot=False).counts == "2 jobs: 2 completed"
        assert summarize(tmp_path, plot=False).counts == "2 jobs: 2 completed"  # mlruns/ beside it too
