"""`derain-demo --quick`: every stage runs on the built-in data, the report's files exist, its numbers are finite,
everything the HTML references is on disk; a re-run reuses finished stages; a failed stage is reported with its
reason while the stages that do not need it still run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from derain.demo.cli import main
from derain.demo.core import ORDER as STAGES
from derain.demo.report import referenced_files


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["--quick", "--out", str(out)]) == 0
    return out


def _numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, float):
        yield value


def test_every_stage_runs_and_the_report_is_complete(demo):
    for stage in STAGES:
        record = json.loads((demo / "stages" / f"{stage}.json").read_text())
        assert record["status"] == "done", (stage, record.get("error"))
        assert all(math.isfinite(v) for v in _numbers(record)), stage
    page = (demo / "report.html").read_text()
    markdown = (demo / "report.md").read_text()
    assert not re.search(r"\b(nan|inf)\b", markdown, re.IGNORECASE)
    files = referenced_files(page)
    assert any(f.endswith(".webm") for f in files) and any(f.endswith(".mp4") for f in files)
    assert sum(f.endswith(".png") for f in files) >= 5  # heatmaps, grid, fitted rain, memory samples, poster
    assert any(f.endswith("report.jpg") for f in files)  # derain-adapt's held-out frames, before and after
    for name in files:
        path = demo / name
        assert path.is_file() and path.stat().st_size > 0, name
    scores = json.loads((demo / "stages" / "scores.json").read_text())["scores"]
    for network, domains in scores.items():
        for domain, entry in domains.items():
            if entry["gain"] is not None:  # the table says where an output does not beat its input
                mean = entry["gain"]["psnr_y"]["mean"]
                assert (mean > 0) or f"{network} on {domain}" in markdown


def test_a_rerun_reuses_finished_stages_and_a_failed_stage_says_why(demo):
    before = {s: (demo / "stages" / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    weights = Path(json.loads((demo / "stages" / "continual.json").read_text())["best_weights"])
    moved = weights.with_suffix(".away")
    weights.rename(moved)  # the export stage's input disappears
    try:
        assert main(["--quick", "--out", str(demo), "--redo", "export,latency"]) == 0
    finally:
        moved.rename(weights)
    after = {s: (demo / "stages" / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    assert [s for s in STAGES if after[s] != before[s]] == ["export", "latency"]
    export = json.loads((demo / "stages" / "export.json").read_text())
    latency = json.loads((demo / "stages" / "latency.json").read_text())
    assert export["status"] == "failed" and "final.pt" in export["error"]
    assert latency["status"] == "skipped" and "export" in latency["error"]
    markdown = (demo / "report.md").read_text()
    assert "| export | failed |" in markdown and "Did not run:" in markdown
    assert "## Streaming a rainy video" in markdown  # stages that do not need the export still report


def test_a_folder_of_other_files_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["--quick", "--out", str(tmp_path)]) != 0
    assert (tmp_path / "mine.txt").read_text() == "keep me" and not (tmp_path / "stages").exists()
