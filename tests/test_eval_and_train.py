"""The evaluation CLI, tiling, and brief supervised training on the built-in data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.data import read_image, write_image
from derain.models import build_model, load_model, run_padded, save_checkpoint
from derain.models.registry import ModelSpec
from derain.models.tiling import tiled_forward
from derain.train.evaluate import main as eval_main
from derain.train.state import load_state
from derain.train.supervised import SupervisedConfig, learning_rate, train_supervised


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", build_model("realtime", **TINY_NETWORKS["realtime"]))


def test_eval_writes_outputs_and_both_metric_conventions(synthetic_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    data = synthetic_root / "rain100H" / "test"
    assert (
        eval_main(
            ["--checkpoint", str(tiny_checkpoint), "--data_path", str(data), "--out", str(out), "--device", "cpu"]
        )
        == 0
    )
    names = sorted(p.name for p in (data / "rain").iterdir())
    assert sorted(p.name for p in out.glob("*.png")) == names
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["mean"]) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"} and metrics["images"] == len(names)
    assert (out / "metrics.csv").read_text().count("\n") == len(names) + 2
    assert "psnr_y" in capsys.readouterr().out


def test_eval_on_a_folder_without_clean_images(tmp_path, tiny_checkpoint):
    write_image(tmp_path / "in" / "a.jpg", np.full((20, 30, 3), 128, np.uint8))
    assert (
        eval_main(["--weights", str(tiny_checkpoint), "--data", str(tmp_path / "in"), "--out", str(tmp_path / "o")])
        == 0
    )
    assert read_image(tmp_path / "o" / "a.jpg").shape == (20, 30, 3)
    report = json.loads((tmp_path / "o" / "metrics.json").read_text())  # what was done, no scores without clean images
    assert report["images"] == 1 and report["failed"] == [] and "mean" not in report
    assert not (tmp_path / "o" / "metrics.csv").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [("empty", "no images in"), ("corrupt", "cannot decode image"), ("arch", "expected a derain checkpoint")],
)
def test_eval_errors_are_one_line(tmp_path, tiny_checkpoint, capsys, setup, message):
    data = tmp_path / "data"
    data.mkdir()
    weights = tiny_checkpoint
    if setup == "corrupt":
        (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    if setup == "arch":
        write_image(data / "a.png", np.zeros((16, 16, 3), np.uint8))
        weights = tmp_path / "other.pt"
        torch.save({"state_dict": build_model("nafnet", **TINY_NETWORKS["nafnet"]).state_dict()}, weights)
    strict = ["--strict"] if setup == "corrupt" else []  # else listed, exit 3
    assert eval_main(["--weights", str(weights), "--data", str(data), *strict]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_tiling_matches_a_whole_image_pass():
    """With a context at least the receptive field, tiles give the whole-image result (to float rounding)."""
    torch.manual_seed(0)
    model = build_model("prenet", **TINY_NETWORKS["prenet"]).eval()  # receptive field radius: 2 x 13 pixels
    image = torch.rand(1, 3, 100, 130)
    with torch.no_grad():
        whole = run_padded(model, image)
    tiled = tiled_forward(model, image, tile=80, context=26)
    assert tiled.shape == image.shape
    assert float((tiled - whole).abs().max()) < 1e-5
    short = tiled_forward(model, image, tile=80, context=0)  # without the context the seams differ
    assert float((short - whole).abs().max()) > 5e-5
    with pytest.raises(ValueError, match="context"):
        tiled_forward(model, image, tile=64, context=32)


def test_learning_rate_warms_up_then_decays():
    config = SupervisedConfig(train_data=("x",), iterations=100, lr=1e-3, min_lr=1e-6, warmup_iterations=10)
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 10) == pytest.approx(1e-3)
    assert learning_rate(config, 100) == pytest.approx(1e-6)


def test_brief_training_improves_on_the_rainy_input_and_resumes(synthetic_root, tmp_path):
    train = str(synthetic_root / "rain100H" / "train")
    test = str(synthetic_root / "rain100H" / "test")
    config = SupervisedConfig(
        train_data=(train,), test_data=(test,), model=ModelSpec("realtime", dict(TINY_NETWORKS["realtime"])),
        out=str(tmp_path / "run"), patch_size=32, batch_size=4, iterations=60, lr=2e-3, checkpoint_every=20,
        device="cpu",
    )  # fmt: skip
    final = train_supervised(config)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # The identity-initialized network starts at the rainy-input PSNR; training must move above it.
    from derain.train.evaluation import rainy_input_scores

    before = rainy_input_scores(synthetic_root / "rain100H" / "test")["psnr_rgb"]
    assert summary["test"][test]["psnr_rgb"] > before + 0.5
    assert (tmp_path / "run" / "config.yaml").is_file()
    # Resuming a finished run does no more work and keeps the weights.
    again = train_supervised(config, resume="auto")
    assert load_state(again)["step"] == 60
    a, b = load_model(final), load_model(again)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_fails_before_starting_on_a_missing_dataset(tmp_path):
    from derain.train.cli import main

    assert main([f"train_data=[{tmp_path / 'nope'}]", f"out={tmp_path / 'run'}"]) == 2
    assert not (tmp_path / "run" / "last.pt").exists()
    assert main([f"train_data=[{tmp_path}]", "iteratons=5"]) == 2  # typo: did-you-mean error


def test_supervised_resume_mid_epoch_matches_an_uninterrupted_run(synthetic_root, tmp_path):
    """12 training images, batch 4: 3 steps an epoch. Stopped at step 5 (mid-epoch, 2 batches in) and resumed to
    step 9, the weights equal a straight run of 9 (a resume that replays the epoch's start would differ)."""
    train = str(synthetic_root / "rain100H" / "train")

    def config(out: str, iterations: int) -> SupervisedConfig:
        return SupervisedConfig(
            train_data=(train,), model=ModelSpec("realtime", dict(TINY_NETWORKS["realtime"])), out=out,
            patch_size=32, batch_size=4, iterations=iterations, lr=1e-3, min_lr=1e-3, checkpoint_every=100,
            device="cpu", seed=3,
        )  # fmt: skip

    straight = load_state(train_supervised(config(str(tmp_path / "a"), 9)))
    assert load_state(train_supervised(config(str(tmp_path / "b"), 5)))["step"] == 5
    resumed = load_state(train_supervised(config(str(tmp_path / "b"), 9), resume="auto"))
    assert resumed["step"] == 9
    for key, value in straight["weights"].items():
        assert torch.equal(value, resumed["weights"][key]), key
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("time_s,step,lr,loss") and rows[-1].split(",")[1] == "9"


def test_two_ranks_equal_one_rank_of_the_same_global_batch(synthetic_root, tmp_path):
    """Bug: DDP without the gradient all-reduce (each rank would step on its own half batch and drift apart)."""
    import os
    import subprocess
    import sys

    import yaml

    raw = {"train_data": [str(synthetic_root / "rain100H" / "train")],
           "model": {"name": "realtime", "kwargs": TINY_NETWORKS["realtime"]}, "patch_size": 32, "batch_size": 4,
           "iterations": 4, "lr": 1e-3, "min_lr": 1e-3, "device": "cpu", "checkpoint_every": 100}  # fmt: skip
    weights = {}
    for ranks in (1, 2):
        path = tmp_path / f"r{ranks}.yaml"
        path.write_text(yaml.safe_dump({**raw, "out": str(tmp_path / f"r{ranks}")}))
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
                   str(29530 + ranks), "-m", "derain.train.cli", "--yaml", str(path)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        weights[ranks] = load_state(tmp_path / f"r{ranks}" / "final.pt")["weights"]
    for key, value in weights[1].items():
        assert torch.allclose(value, weights[2][key], atol=1e-5), key
