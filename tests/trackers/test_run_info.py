"""What a tracker calls a run (``run_info``): read from the run's Hydra texts with libyaml, each
text parsed once, and only when a tracker asks."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import OmegaConf

from backprop_lab.trackers._base import Tracker, run_info
from backprop_lab.trackers._registry import make_tracker

ROOT = Path(__file__).resolve().parents[2] / "src" / "backprop_lab"

TRICKY = ["yes", "null", "1e-3", "0x10", "~", "a: b", "- x", "line\nbreak", "ünï", "'q'", '"d"', "", " pad "]


def _hydra_text(cwd: Path, sweep: str, task: list[str]) -> str:
    return OmegaConf.to_yaml(
        {
            "hydra": {
                "mode": "MULTIRUN",
                "runtime": {"cwd": str(cwd)},
                "sweep": {"dir": sweep},
                "overrides": {"task": task},
            }
        }
    )


def test_libyaml_reads_the_hydra_texts_as_pyyaml_does():
    """The C loader gives the data PyYAML's own loader gives, for a config with Hydra's node
    (help templates, logging configs) and values YAML could read otherwise."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["data=moons"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.tricky = TRICKY
        cfg.nested = {"deep": {s or "empty": s for s in TRICKY}}
    for text in (OmegaConf.to_yaml(cfg), OmegaConf.to_yaml({"hydra": cfg.hydra})):
        assert yaml.load(text, Loader=loader) == yaml.safe_load(text)


def test_a_sweeps_jobs_are_named_by_what_tells_them_apart(tmp_path):
    """Each job's name leaves out the overrides every job of its sweep shares; a new sweep into
    the same directory (another multirun.yaml) names its jobs by its own; a resumed job keeps
    the name its first start recorded."""
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    shared = ["data=moons", "epochs=3"]
    (sweep / "multirun.yaml").write_text(OmegaConf.to_yaml({"hydra": {"overrides": {"task": shared}}}))
    names = [
        run_info(sweep / str(i), {"hydra.yaml": _hydra_text(tmp_path, "sweep", [*shared, f"seed={i}"])}).name
        for i in range(3)
    ]
    assert names == ["seed=0", "seed=1", "seed=2"]
    (sweep / "multirun.yaml").write_text(OmegaConf.to_yaml({"hydra": {"overrides": {"task": ["seed=1"]}}}))
    again = run_info(sweep / "1", {"hydra.yaml": _hydra_text(tmp_path, "sweep", [*shared, "seed=1"])})
    assert again.name == "data=moons,epochs=3"
    assert again.group == "sweep" and again.launch_dir == tmp_path and again.sweep_dir == sweep
    (sweep / "0" / ".hydra" / "hydra.yaml").write_text(_hydra_text(tmp_path, "sweep", ["seed=9"]))
    resumed = run_info(sweep / "0", {"hydra.yaml": _hydra_text(tmp_path, "sweep", [*shared, "seed=0"])})
    assert resumed.name == "seed=9"


def test_a_tracker_reads_its_runs_name_when_asked(tmp_path, monkeypatch):
    """A tracker made without a name finds it in the run's files when first asked, as
    :func:`run_info` does; ``logger=none`` makes no tracker that asks."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    tracker = Tracker(run)
    text = OmegaConf.to_yaml({"hydra": {"mode": "RUN", "overrides": {"task": ["seed=3", "epochs=2"]}}})
    (run / ".hydra" / "hydra.yaml").write_text(text)  # written after the tracker was made
    assert tracker.run_info == run_info(run) and tracker.run_info.name == "epochs=2,seed=3"
    none = make_tracker({"logger": {}}, run, {"hydra.yaml": text})
    assert none.trackers == {} and none.run_info == run_info(run)
