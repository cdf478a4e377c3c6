"""The shipped de-rainer: packaged weights that load safely, remove rain, leave dry frames alone, and are the
default of every command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from derain import builtin
from derain.data.io import write_image
from derain.data.scenes import paired_crops
from derain.models import load_model
from derain.train.testset import batch_metrics, model_runner


@pytest.fixture(scope="module")
def shipped():
    return load_model(builtin.resolve_weights("builtin"))


def test_the_weights_ship_with_a_card_that_names_how_they_were_made(shipped):
    assert builtin.builtin_weights().stat().st_size < 10e6  # a few MB, in the package
    card = json.loads(builtin.builtin_card().read_text())
    assert card["network"]["name"] == shipped.spec["name"] == "realtime"
    assert card["training"]["stopped"] in ("plateau", "max_minutes", "max_iterations")
    assert "storm" in card["training"]["holdout"] and "storm" not in card["training"]["domains"]
    assert any("derain-train" in line for line in card["reproduce"])
    assert "iterations on data v2" in builtin.describe_builtin()


@pytest.mark.parametrize("domain", ["rain100H", "storm"])  # seen and held out
def test_it_removes_rain_on_photos_it_never_saw(shipped, domain):
    clean, rainy, scenes = paired_crops(domain)
    picks = [i for i, s in enumerate(scenes) if s == "chelsea.png"]
    before = batch_metrics([rainy[i] for i in picks], [clean[i] for i in picks])["psnr_y"]
    output = model_runner(shipped)([rainy[i] for i in picks])
    after = batch_metrics(output, [clean[i] for i in picks])["psnr_y"]
    assert (after - before).mean() > 0.5, (before.mean(), after.mean())


def test_it_leaves_dry_frames_alone(shipped):
    clean, _, scenes = paired_crops(None)
    picks = [i for i, s in enumerate(scenes) if s == "rocket.jpg"]
    output = model_runner(shipped)([clean[i] for i in picks])
    assert batch_metrics(output, [clean[i] for i in picks])["psnr_y"].mean() >= 38.0


def test_its_dry_frame_settings_load_with_it_and_pass_most_dry_crops_unchanged():
    """The card's shrink and bypass travel with the weights: through the runtime, most dry crops of a photo come
    back bit-identical (without them none does)."""
    from derain.runtime import Derainer

    clean, _, scenes = paired_crops(None)
    crops = [np.ascontiguousarray(clean[i][..., ::-1]) for i, s in enumerate(scenes) if s == "rocket.jpg"]
    derainer = Derainer("builtin", device="cpu")
    unchanged = sum(np.array_equal(derainer(crop), crop) for crop in crops)
    assert unchanged >= len(crops) // 2, f"{unchanged} of {len(crops)} dry crops unchanged"
    network, card = derainer.backend.module.network, json.loads(builtin.builtin_card().read_text())
    settings = card["network"]["kwargs"]
    assert settings["shrink"] > 0 and settings["bypass"] > 0
    assert (network.shrink, network.bypass) == (settings["shrink"] / 255, settings["bypass"] / 255)


def test_derain_eval_uses_it_when_given_no_weights_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "data" / "a.png", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    result = subprocess.run(
        [sys.executable, "-m", "derain.train.evaluate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "using the built-in de-rainer" in result.stderr and (tmp_path / "o" / "a.png").is_file()


def test_derain_stream_resolves_the_builtin_model_before_loading_anything():
    from derain.runtime.cli import check_arguments, parser

    args = parser().parse_args(["--source", "synthetic://rain100L?frames=2"])
    assert check_arguments(args) == [] and args.model == str(builtin.builtin_weights())


def test_a_package_without_the_weights_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(builtin, "weights_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="built-in de-rainer is not installed"):
        builtin.resolve_weights("builtin")
    from derain.train.evaluate import main

    write_image(tmp_path / "data" / "a.png", np.zeros((16, 16, 3), np.uint8))
    assert main(["--data", str(tmp_path / "data")]) == 2
    assert "built-in de-rainer is not installed" in capsys.readouterr().err
