"""Bad input, table-driven, for every CLI: each case asserts the exit status, that the message names the problem,
that no traceback is printed, and that no input or earlier output changed (checksums of every file before/after)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.data.cli import main as data_main
from derain.data.io import read_picture, write_image
from derain.demo.cli import main as demo_main
from derain.export.cli import main as export_main
from derain.models import build_model, save_checkpoint
from derain.runtime.cli import main as stream_main
from derain.train.adapt import main as adapt_main
from derain.train.cli import main as train_main
from derain.train.evaluate import main as eval_main

MAINS = {"eval": eval_main, "train": train_main, "export": export_main, "stream": stream_main, "data": data_main,
         "demo": demo_main, "adapt": adapt_main}  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def image(path: Path, value: int = 100, size: tuple[int, int] = (24, 32)) -> Path:
    rng = np.random.default_rng(value)
    write_image(path, rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world"))


class Payload:
    """Unpickling this runs a shell command (creates a file): what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def build_world(root: Path) -> Path:
    """Inputs every case may point at: weights, paired and unpaired folders, bad files, an earlier run and output."""
    torch.manual_seed(0)
    save_checkpoint(root / "tiny.pt", build_model("realtime", **TINY_NETWORKS["realtime"]))
    torch.save({"state_dict": build_model("nafnet", **TINY_NETWORKS["nafnet"]).state_dict()}, root / "foreign.pt")
    (root / "garbage.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"format": "derain-checkpoint-v1", "weights": Payload(root / "PWNED")}, root / "malicious.pt")
    for name in ("a", "b"):
        image(root / "paired" / "rain" / f"{name}.png", 1)
        image(root / "paired" / "norain" / f"{name}.png", 2)
    image(root / "orphan" / "rain" / "a.png")
    image(root / "orphan" / "rain" / "lonely.png")
    image(root / "orphan" / "norain" / "a.png")
    image(root / "sizes" / "rain" / "a.png", size=(24, 32))
    image(root / "sizes" / "norain" / "a.png", size=(20, 32))
    image(root / "mixed" / "good.png")
    (root / "mixed" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "mixed" / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(root / "mixed" / "float.tiff"), np.zeros((16, 16, 3), np.float32))
    (root / "empty_folder").mkdir()
    (root / "bad_calib").mkdir()
    (root / "bad_calib" / "frame.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "a_file.txt").write_text("not a folder")
    image(root / "earlier_out" / "keep.png", 9)
    (root / "earlier_run").mkdir()
    (root / "earlier_run" / "last.pt").write_bytes(b"an earlier run's checkpoint")
    (root / "bad_yaml.yaml").write_text("lr: [1, 2\nbatch_size: 4\n")
    image(root / "small_test" / "rain" / "a.png", size=(16, 16))
    image(root / "small_test" / "norain" / "a.png", size=(16, 16))
    image(root / "video_frames" / "f0.png")
    (root / "stats.json").write_text("{}")
    from derain.data.photos import clean_photos, random_background

    rng = np.random.default_rng(0)
    for index in range(3):  # dry frames of a camera: crops of a training photo
        write_image(root / "dry_frames" / f"{index}.png", random_background(clean_photos("train")[0], 128, 160, rng))
    (root / "broken_clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    return root


def yaml(world: Path, text: str, name: str = "run.yaml") -> str:
    path = world / "configs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


@dataclass(frozen=True)
class Case:
    id: str
    cli: str
    args: Callable[[Path], list[str]]
    status: int
    message: str  # a part of stderr that names the problem


W = "{w}"  # placeholder for the world folder in plain argument lists


def plain(*args: str) -> Callable[[Path], list[str]]:
    return lambda world: [a.replace(W, str(world)) for a in args]


TRAIN_OK = "train_data: [{w}/paired]\nout: {w}/runs/new\niterations: 1\n"

CASES = [
    # derain-eval: paths
    Case("eval-missing-data", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/nowhere"), 2,
         "nowhere does not exist"),
    Case("eval-data-is-file", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/a_file.txt"), 2,
         "is a file, a folder is needed"),
    Case("eval-empty-folder", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/empty_folder"), 2,
         "no images in"),
    Case("eval-missing-weights", "eval", plain("--weights", f"{W}/none.pt", "--data", f"{W}/paired"), 2, "none.pt"),
    Case("eval-garbage-weights", "eval", plain("--weights", f"{W}/garbage.pt", "--data", f"{W}/paired"), 2,
         "not a readable torch checkpoint"),
    Case("eval-malicious-weights", "eval", plain("--weights", f"{W}/malicious.pt", "--data", f"{W}/paired"), 2,
         "(posix.system), which a weights-only load refuses"),  # and no PWNED file appears (checksums)
    Case("eval-foreign-weights", "eval", plain("--weights", f"{W}/foreign.pt", "--data", f"{W}/paired"), 2,
         "expected a derain checkpoint"),
    Case("eval-out-is-input", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/mixed", "--out",
         f"{W}/mixed"), 2, "is the input"),  # fmt: skip
    Case("eval-out-inside-input", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--out",
         f"{W}/paired/rain/out"), 2, "lies inside the input"),  # fmt: skip
    Case("eval-out-contains-input", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired/rain",
         "--out", f"{W}/paired"), 2, "contains the input"),  # fmt: skip
    Case("eval-out-not-empty", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--out",
         f"{W}/earlier_out"), 2, "not empty"),  # fmt: skip
    Case("eval-out-is-file", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--out",
         f"{W}/a_file.txt"), 2, "is a file, a folder is needed"),  # fmt: skip
    Case("eval-tile-zero", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--tile", "0"), 2,
         "--tile must be >= 16"),
    Case("eval-context-too-wide", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--tile", "64",
         "--context", "40"), 2, "leaves no room in --tile"),  # fmt: skip
    Case("eval-context-negative", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--context",
         "-1"), 2, "--context must be >= 0"),  # fmt: skip
    Case("eval-bad-device", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/paired", "--device", "tpu"),
         2, "'tpu' is not a device"),
    Case("eval-every-problem-at-once", "eval", plain("--weights", f"{W}/none.pt", "--data", f"{W}/nowhere", "--tile",
         "0"), 2, "3 problems"),  # fmt: skip
    Case("eval-orphan-pair", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/orphan"), 2,
         "lonely.png"),
    Case("eval-bad-images-listed", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/mixed", "--out",
         f"{W}/out_mixed"), 3, "3 image(s) could not be processed"),  # fmt: skip
    Case("eval-bad-images-strict", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/mixed", "--strict"),
         2, "broken.png"),
    Case("eval-pair-sizes-differ", "eval", plain("--weights", f"{W}/tiny.pt", "--data", f"{W}/sizes"), 3,
         "but its clean image"),
    # derain-train: YAML, types, ranges, networks, runs
    Case("train-no-yaml", "train", plain("--yaml", f"{W}/none.yaml"), 2, "config file not found"),
    Case("train-yaml-syntax", "train", plain("--yaml", f"{W}/bad_yaml.yaml"), 2, "not valid YAML at line"),
    Case("train-lr-text", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w) + "lr: fast\n")], 2,
         "lr: expected a number, found 'fast'"),
    Case("train-batch-zero", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "batch_size=0"], 2,
         "batch_size: must be > 0"),
    Case("train-unknown-key", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "iteratons=5"], 2,
         "did you mean 'iterations'"),
    Case("train-unknown-network-argument", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)),
         "model.kwargs={depth: 3}"], 2, "has no argument(s) ['depth']"),  # fmt: skip
    Case("train-network-argument-type", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)),
         "model.kwargs={shrink: lots}"], 2, "argument 'shrink' must be float"),  # fmt: skip
    Case("train-unknown-network", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "model.name=unet9"],
         2, "unknown network 'unet9'"),
    Case("train-missing-data", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)),
         f"train_data=[{w}/nowhere]"], 2, "nowhere does not exist"),  # fmt: skip
    Case("train-out-inside-data", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)),
         f"out={w}/paired/run"], 2, "lies inside the input"),  # fmt: skip
    Case("train-earlier-run", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), f"out={w}/earlier_run"],
         2, "holds an earlier run; give --resume auto"),
    Case("train-resume-and-overwrite", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "--resume",
         "auto", "--overwrite"], 2, "give one of them"),  # fmt: skip
    Case("train-resume-missing", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "--resume",
         f"{w}/none.pt"], 2, "no such checkpoint file"),  # fmt: skip
    Case("train-resume-garbage", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "--resume",
         f"{w}/garbage.pt", f"out={w}/runs/resume_garbage"], 2, "not a readable torch checkpoint"),  # fmt: skip
    Case("train-unknown-trainer", "train", lambda w: ["--yaml", yaml(w, TRAIN_OK.format(w=w)), "--trainer",
         "magic"], 2, "magic"),  # fmt: skip
    # derain-export: everything before any stage
    Case("export-calib-missing", "export", plain("--weights", f"{W}/tiny.pt", "--precision", "int8", "--calib",
         f"{W}/nowhere", "--builder", "onnx-only", "--out", f"{W}/exp"), 2, "nowhere does not exist"),  # fmt: skip
    Case("export-calib-empty", "export", plain("--weights", f"{W}/tiny.pt", "--precision", "int8", "--calib",
         f"{W}/empty_folder", "--builder", "onnx-only", "--out", f"{W}/exp"), 2, "holds no images"),  # fmt: skip
    Case("export-calib-unreadable", "export", plain("--weights", f"{W}/tiny.pt", "--precision", "int8", "--calib",
         f"{W}/bad_calib", "--builder", "onnx-only", "--out", f"{W}/exp"), 2, "none of its 1 image(s) can be read"),
    Case("export-cc-malformed", "export", plain("--weights", f"{W}/tiny.pt", "--cc", "86,,abc", "--out",
         f"{W}/never_exported"), 2, "86,89,120 for one engine each"),  # fmt: skip
    Case("export-bad-shape", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only", "--out",
         f"{W}/exp", "--shape", "abc"), 2, "HEIGHTxWIDTH"),  # fmt: skip
    Case("export-shape-too-small", "export", plain("--weights", f"{W}/tiny.pt", "--shape", "4x4", "--builder",
         "onnx-only", "--out", f"{W}/exp"), 2, "outside"),  # fmt: skip
    Case("export-out-not-empty", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only", "--out",
         f"{W}/earlier_out"), 2, "not empty"),  # fmt: skip
    Case("export-out-contains-weights", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only",
         "--out", f"{W}", "--overwrite"), 2, "contains the input"),  # fmt: skip
    Case("export-test-smaller-than-shape", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only",
         "--shape", "64x64", "--test", f"{W}/small_test", "--out", f"{W}/exp"), 2, "smaller than the graph"),
    Case("export-opt-level", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only", "--opt-level",
         "9", "--out", f"{W}/exp"), 2, "--opt-level must be <= 5"),  # fmt: skip
    Case("export-calib-count-zero", "export", plain("--weights", f"{W}/tiny.pt", "--builder", "onnx-only",
         "--calib-count", "0", "--precision", "int8", "--out", f"{W}/exp"), 2, "--calib-count must be >= 1"),
    Case("export-yaml-unknown-key", "export", lambda w: ["--yaml", yaml(w, "calib_cout: 3\n", "e1.yaml"), "--out",
         f"{w}/exp"], 2, "did you mean 'calib_count'"),  # fmt: skip
    Case("export-yaml-bad-choice", "export", lambda w: ["--yaml", yaml(w, "precision: int4\n", "e2.yaml"), "--out",
         f"{w}/exp"], 2, "precision: 'int4' is not one of fp32, fp16, int8, fp8"),  # fmt: skip
    Case("export-override-type", "export", plain("calib_count=many", "--out", f"{W}/exp"), 2,
         "calib_count: expected a whole number, found 'many'"),
    # derain-stream
    Case("stream-yaml-type", "stream", lambda w: ["--yaml", yaml(w, "deadline_ms: soon\n", "s1.yaml"), "--source",
         f"{w}/video_frames"], 2, "deadline_ms: expected a number, found 'soon'"),  # fmt: skip
    Case("stream-missing-model", "stream", plain("--model", f"{W}/none.onnx", "--source", f"{W}/video_frames"), 2,
         "model not found"),
    Case("stream-frames-zero", "stream", plain("--model", f"{W}/tiny.pt", "--source", f"{W}/video_frames",
         "--frames", "0"), 2, "--frames must be positive"),  # fmt: skip
    Case("stream-sink-into-source", "stream", plain("--model", f"{W}/tiny.pt", "--source", f"{W}/video_frames",
         "--sink", f"{W}/video_frames/out"), 2, "would write into the source"),  # fmt: skip
    Case("stream-stats-exists", "stream", plain("--model", f"{W}/tiny.pt", "--source", f"{W}/video_frames",
         "--stats", f"{W}/stats.json"), 2, "stats.json exists; give --overwrite"),  # fmt: skip
    Case("stream-bad-source", "stream", plain("--model", f"{W}/tiny.pt", "--source", f"{W}/nowhere.mp4",
         "--open-timeout", "2"), 2, "nowhere.mp4"),  # fmt: skip
    # derain-data, derain-demo
    Case("data-unknown-domain", "data", plain("synth", "--domains", "rain9000", "--out", f"{W}/syn"), 2,
         "unknown rain domain 'rain9000'"),
    Case("data-bad-size", "data", plain("synth", "--domains", "rain100L", "--out", f"{W}/syn", "--size", "big"), 2,
         "--size must look like"),
    Case("data-out-not-empty", "data", plain("synth", "--domains", "rain100L", "--out", f"{W}/earlier_out"), 2,
         "not empty"),
    # derain-adapt
    Case("adapt-no-frames", "adapt", plain("--rainy", f"{W}/empty_folder", "--out", f"{W}/adapt"), 2,
         "holds no videos and no images"),
    Case("adapt-missing-footage", "adapt", plain("--rainy", f"{W}/nowhere", "--out", f"{W}/adapt"), 2,
         "nowhere does not exist"),
    Case("adapt-dry-frames-only", "adapt", plain("--rainy", f"{W}/dry_frames", "--out", f"{W}/adapt"), 2,
         "shows no rain the de-rainer sees"),
    Case("adapt-undecodable-clip", "adapt", plain("--rainy", f"{W}/broken_clip.mp4", "--out", f"{W}/adapt"), 2,
         "broken_clip.mp4"),
    Case("adapt-out-inside-input", "adapt", plain("--rainy", f"{W}/dry_frames", "--out", f"{W}/dry_frames/run"), 2,
         "lies inside the input"),
    Case("adapt-out-not-empty", "adapt", plain("--rainy", f"{W}/dry_frames", "--out", f"{W}/earlier_out"), 2,
         "not empty"),
    Case("adapt-small-frames", "adapt", plain("--rainy", f"{W}/video_frames", "--out", f"{W}/adapt"), 2,
         "smaller than the 96-pixel patches"),
    Case("adapt-garbage-weights", "adapt", plain("--weights", f"{W}/garbage.pt", "--rainy", f"{W}/dry_frames",
         "--out", f"{W}/adapt"), 2, "not a readable torch checkpoint"),  # fmt: skip
    Case("adapt-bad-budget", "adapt", plain("--rainy", f"{W}/dry_frames", "--out", f"{W}/adapt", "--minutes", "0"), 2,
         "--minutes must be >= 0.01"),
    Case("demo-unknown-stage", "demo", plain("--redo", "trian", "--out", f"{W}/demo"), 2, "unknown stage(s) ['trian']"),
    Case("demo-out-not-a-demo", "demo", plain("--out", f"{W}/earlier_out"), 2, "are not a demo's"),
    Case("demo-out-is-file", "demo", plain("--out", f"{W}/a_file.txt"), 2, "is a file, a folder is needed"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = case.args(world)
    before = snapshot(world)
    status = MAINS[case.cli](args)
    err = capsys.readouterr().err
    assert status == case.status, err
    assert case.message in err, err
    assert "Traceback" not in err, err
    after = snapshot(world)
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"inputs or earlier outputs changed: {changed}"
    if case.status == 2:  # refused: nothing written at all (outputs of the configs the case wrote aside)
        new = [name for name in after if name not in before and not name.startswith("configs/")]
        assert not new, f"a refused command wrote {new}"


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30 and {case.cli for case in CASES} == set(MAINS)


def test_bad_images_are_listed_and_the_good_ones_done(world: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert eval_main(["--weights", str(world / "tiny.pt"), "--data", str(world / "mixed"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    for name, reason in (("broken.png", "cannot decode"), ("empty.jpg", "empty file (0 bytes)"),
                         ("float.tiff", "float32 pixels are not supported")):  # fmt: skip
        assert f"{name}: " in err and reason in err, err
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "metrics.json"]
    assert "float.tiff" in (out / "metrics.json").read_text()


def test_image_modes_are_kept(tmp_path: Path) -> None:
    """Grey stays grey, alpha is carried through unchanged, 16-bit is processed and written at 16 bits."""
    data, out = tmp_path / "in", tmp_path / "out"
    data.mkdir()
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (24, 32), dtype=np.uint8)
    rgba = rng.integers(0, 255, (24, 32, 4), dtype=np.uint8)
    deep = rng.integers(0, 65535, (24, 32, 3), dtype=np.uint16)
    for name, pixels in (("grey.png", grey), ("rgba.png", rgba), ("deep.png", deep)):
        cv2.imwrite(str(data / name), pixels)
    torch.manual_seed(0)
    weights = save_checkpoint(tmp_path / "tiny.pt", build_model("realtime", **TINY_NETWORKS["realtime"]))
    assert eval_main(["--weights", str(weights), "--data", str(data), "--out", str(out)]) == 0
    written = {name: cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED) for name in ("grey.png", "rgba.png", "deep.png")}
    assert written["grey.png"].shape == (24, 32) and written["grey.png"].dtype == np.uint8
    assert written["rgba.png"].shape == (24, 32, 4) and (written["rgba.png"][..., 3] == rgba[..., 3]).all()
    assert written["deep.png"].dtype == np.uint16 and written["deep.png"].shape == (24, 32, 3)
    assert len(np.unique(written["deep.png"] % 257)) > 1  # real 16-bit values, not 8-bit ones scaled up
    assert read_picture(out / "deep.png").mode == "RGB 16-bit"


def test_overwrite_replaces_only_what_it_writes(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    image(out / "mine.png", 5)
    keep = snapshot(out)
    assert eval_main(["--weights", str(world / "tiny.pt"), "--data", str(world / "paired"), "--out", str(out)]) == 2
    assert snapshot(out) == keep
    assert eval_main(["--weights", str(world / "tiny.pt"), "--data", str(world / "paired"), "--out", str(out),
                      "--overwrite"]) == 0  # fmt: skip
    assert snapshot(out)["mine.png"] == keep["mine.png"] and (out / "a.png").is_file()


def test_train_overwrite_sets_the_earlier_run_aside(world: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"earlier")
    config = yaml(tmp_path, TRAIN_OK.format(w=world) + f"out: {run}\nbatch_size: 2\npatch_size: 16\n", "ow.yaml")
    assert train_main(["--yaml", config, "--overwrite"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and (aside[0] / "last.pt").read_bytes() == b"earlier"
    assert (run / "final.pt").is_file()


def test_a_bug_keeps_its_traceback(capsys) -> None:
    from derain.cli import run_main

    def broken() -> int:
        return {}["missing"]

    assert run_main("derain-x", broken) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "please report it" in err


KILLED_WRITE = """
import os, signal, sys
from derain.outputs import atomic_path, staged_folder
target, folder = sys.argv[1], sys.argv[2]
if sys.argv[3] == "file":
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(b"new half")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
else:
    with staged_folder(folder, overwrite=True) as staging:
        (staging / "model.onnx").write_bytes(b"half an export")
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_killed_write_leaves_the_old_output(tmp_path: Path, what: str) -> None:
    target, folder = tmp_path / "metrics.json", tmp_path / "export_out"
    target.write_bytes(b"old complete file")
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"old export")
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target), str(folder), what], timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})  # fmt: skip
    assert done.returncode == -signal.SIGKILL
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # the old file / folder, whole
    leftovers = [name for name in after if name not in before]
    assert all(Path(name).parts[0].startswith(".") and ".partial" in name for name in leftovers), leftovers


def test_outputs_get_the_modes_mkdir_and_open_would_give(tmp_path: Path) -> None:
    from derain.outputs import atomic_write_text, current_umask, staged_folder

    with staged_folder(tmp_path / "export_out") as staging:
        (staging / "card.json").write_text("{}")
    atomic_write_text(tmp_path / "stats.json", "{}")
    mask = current_umask()
    assert (tmp_path / "export_out").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "stats.json").stat().st_mode & 0o777 == 0o666 & ~mask
