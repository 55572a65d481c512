"""A resumed run's times go on from its checkpoint's: its metrics.jsonl ``wall_time`` never
steps back, and its summary counts the time before the stop too."""

from __future__ import annotations

import json

from helpers.train_app import TINY, app, cfg_of


def test_a_resumed_runs_wall_time_goes_on_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    app.train(cfg_of(*TINY), out_dir=run)  # 3 epochs: records at epochs 0-3
    before = (run / "metrics.jsonl").read_text().splitlines()
    first = json.loads((run / "summary.json").read_text())["wall_time"]
    longer = [o for o in TINY if not o.startswith("epochs=")]
    app.train(cfg_of(*longer, "epochs=6", "resume=true"), out_dir=run)

    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines[: len(before)] == before  # the records before the stop are kept as written
    walls = [json.loads(line)["wall_time"] for line in lines]
    assert [json.loads(line)["epoch"] for line in lines] == list(range(7))
    assert all(a < b for a, b in zip(walls, walls[1:])), walls
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wall_time"] >= walls[-1] > walls[3] and summary["wall_time"] > first
