"""derain-adapt: footage sampling, the rain fit's objective, the guard, and a whole (tiny) adaptation that resumes.

Bad input (no rainy frames, dry frames only, an undecodable clip, an output inside the input) is in
test_bad_inputs.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from derain.builtin import resolve_weights
from derain.data.footage import list_clips, read_clip
from derain.data.io import to_tensor, write_image
from derain.data.rain import compose_rain, render_rain, render_rain_layer
from derain.data.scenes import SceneSampler
from derain.data.video import ClipConfig, write_footage
from derain.models import load_model, read_checkpoint
from derain.train.adapt import (
    AdaptConfig,
    FootageTarget,
    adapt,
    eligible,
    footage_veil,
    rain_coverage,
    read_footage,
    render_camera_rain,
)
from derain.train.rain_memory import ParametricRain


def _video(path: Path, frames: int, fps: float = 10.0, size: tuple[int, int] = (128, 112)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for index in range(frames):
        writer.write(np.full((size[1], size[0], 3), (index * 7) % 255, np.uint8))
    writer.release()
    return path


def test_render_rain_is_its_layers_then_composition() -> None:
    clean = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    whole = render_rain(clean, "storm", seed=5)
    generator = torch.Generator().manual_seed(5)
    layers = render_rain_layer(2, 48, 64, "storm", generator, clean.device)
    assert torch.equal(whole, compose_rain(clean, *layers, "storm", generator))


@pytest.mark.parametrize("veil", [0.0, 0.08, 0.2])
def test_the_veil_is_measured_from_the_dark_channels_and_streaks_are_not_veil(veil: float) -> None:
    """Scenes under a veil of known thickness (the renderer's, with its airlight's spread) and dense bright
    streaks: the dark channels of the rainy frames against the same scenes dry give the veil back, the streaks do
    not count as veil; without dry frames the dark-channel prior gives it a little high. (Dry frames of other scenes
    add their difference in dark level: the benchmark's footage measures that error.)"""
    from derain.data.rain import RainDomain, StreakLayer

    sampler = SceneSampler(1.0, pool=0, seed=0)
    rng = np.random.default_rng(3)
    scenes = [sampler.sample(192, rng, width=320)[0] for _ in range(16)]
    streaks = (StreakLayer(density=(6e-4, 6e-4), length=(25, 60), width=(0.9, 1.6), brightness=(0.5, 0.8)),)
    domain = RainDomain("veiled", "test", streaks, haze=(veil, veil))
    clean = torch.stack([to_tensor(frame) for frame in scenes])
    rainy = render_rain(clean, domain, seed=4)
    frames = [(frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for frame in rainy]
    measured = footage_veil(frames, scenes)
    assert measured["haze"] == pytest.approx(veil, abs=0.03), measured
    # no dry footage: the dark-channel prior (a dry scene's dark level is about 0) over-reads by the scenes' own
    # dark level, which is small for these photos
    assert footage_veil(scenes, None)["haze"] < 0.05
    assert footage_veil(frames, None)["haze"] == pytest.approx(veil, abs=0.06)


def test_clips_are_sampled_sparsely_and_spread(tmp_path: Path) -> None:
    video = _video(tmp_path / "clip.mp4", 30, fps=10.0)
    frames, skipped = read_clip(str(video), every_seconds=0.5, per_clip=48)
    assert len(frames) == 6 and skipped == 0  # one frame per 5 of a 10 fps clip
    frames, _ = read_clip(str(video), every_seconds=0.1, per_clip=4)
    assert len(frames) == 4  # the cap spreads the frames over the clip: every 8th frame
    assert frames[-1].mean() > frames[0].mean() + 100  # the last sample comes from the clip's end
    folder = tmp_path / "frames"
    for index in range(10):
        write_image(folder / f"{index:02d}.png", np.full((112, 128, 3), index * 20, np.uint8))
    (folder / "05.png").write_bytes(b"\x89PNG broken")
    frames, skipped = read_clip(str(folder), every_seconds=0.5, per_clip=20)
    assert len(frames) == 9 and skipped == 1  # an undecodable frame is skipped and counted
    frames, _ = read_clip(str(folder), every_seconds=0.5, per_clip=3)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 80, 180]  # spread: the first, middle and last images
    assert list_clips((str(tmp_path),), "--rainy") == [str(video)]  # a folder of videos: each video


def test_footage_holds_out_whole_clips(tmp_path: Path) -> None:
    for clip in range(4):
        for index in range(3):
            write_image(tmp_path / f"clip{clip}" / f"{index}.png", np.full((112, 128, 3), 10 * clip, np.uint8))
    footage = read_footage((str(tmp_path),), AdaptConfig(rainy=(), out="x"), "--rainy")
    assert len(footage.names) == 4 and len(footage.frames) == 12
    train, held = footage.split(0.25)
    assert len(train) == 9 and len(held) == 3
    assert {int(f[0, 0, 0]) for f in held} == {30} and 30 not in {int(f[0, 0, 0]) for f in train}


def test_the_fit_objective_tells_the_footages_rain_from_other_rain() -> None:
    """Rain seen only through what the network removes: the rain that made the footage is closer than rain of
    another direction, or without its veil, and a fresh draw of the same rain is closer than either."""
    network = load_model(resolve_weights("builtin"))
    sampler = SceneSampler(1.0, pool=0, seed=0)
    rng = np.random.default_rng(0)
    clean = torch.stack([to_tensor(sampler.sample(64, rng)[0]) for _ in range(48)])
    truth = ParametricRain(layers=2, spacing=8.0, density=0.002, length=14.0, width=0.5, brightness=0.4, angle=40.0,
                           angle_spread=5.0, haze=0.12, haze_depth=0.4, screen=1.0)  # fmt: skip
    footage = render_camera_rain(truth, clean, seed=2)
    target = FootageTarget(network, footage, clean, seed=3)
    same = target.distance(truth, seed=4)["distance"]
    turned = target.distance(ParametricRain(**{**truth.__dict__, "angle": -30.0}), seed=4)["distance"]
    streaks_only = target.distance(ParametricRain(**{**truth.__dict__, "haze": 0.0, "density": 0.0004}),
                                   seed=4)["distance"]  # fmt: skip
    assert same < turned and same < streaks_only, (same, turned, streaks_only)


def test_the_guard_keeps_out_any_loss() -> None:
    start = {"old_a": 30.0, "old_b": 25.0, "old_mean": 27.5, "dry_psnr": 45.0, "dry_crops_psnr": 50.0,
             "footage_rain": 0.2}
    config = AdaptConfig(rainy=(), out="x")
    assert eligible(dict(start), start, config) == []
    assert eligible({**start, "footage_rain": 0.1, "old_a": 29.8}, start, config) == []  # within 0.3 dB
    assert "a -0.50 dB" in "; ".join(eligible({**start, "old_a": 29.5}, start, config))
    assert eligible({**start, "old_mean": 27.3}, start, config)  # the mean may fall 0.1 dB at most
    assert eligible({**start, "dry_psnr": 43.5}, start, config)
    unchanged = {**start, "dry_psnr": 100.0}  # dry frames passed through exactly: near-unchanged still passes
    assert eligible({**start, "dry_psnr": 55.0}, unchanged, config) == []
    assert eligible({**start, "dry_psnr": 45.0}, unchanged, config)
    assert "dry crops -2.00 dB" in "; ".join(eligible({**start, "dry_crops_psnr": 48.0}, start, config))
    assert eligible({**start, "footage_rain": 0.21}, start, config)


@pytest.mark.slow
def test_a_tiny_adaptation_runs_guards_reports_and_resumes(tmp_path: Path) -> None:
    config = ClipConfig(frames=4, height=112, width=160, dry_prob=0.0, shots=(1, 1))
    sampler = SceneSampler(1.0, pool=0, seed=0)
    rainy = write_footage(tmp_path / "rainy", "storm", 2, config, sampler=sampler)
    rainy.append(write_footage(tmp_path / "rainy", "storm", 1, config, seed=9, sampler=sampler, video=True)[0])
    dry = write_footage(tmp_path / "dry", "storm", 2, config, dry=True, sampler=sampler)
    assert rainy[-1].suffix == ".mp4" and rain_coverage(load_model(resolve_weights("builtin")),
                                                        read_footage((str(rainy[-1]),), AdaptConfig(rainy=(), out="x"),
                                                                     "--rainy").frames) > 0.2  # fmt: skip
    out = tmp_path / "run"
    settings = dict(rainy=tuple(str(p) for p in rainy), dry=tuple(str(p) for p in dry), out=str(out), method="mix",
                    iterations=4, val_every=2, fit_evaluations=10, fit_crops=16, scorer_steps=10, reward_crops=8,
                    reward_every=2, val_per_domain=2, batch_size=4, photo_fraction=1.0, pool=0,
                    device="cpu")  # fmt: skip
    summary = adapt(AdaptConfig(**settings))
    assert summary["steps"] == 4 and summary["footage"]["rainy_clips"] == 3
    # the last clip (the video: 4 frames at 10 fps, one kept per 0.5 s) is held out whole
    assert summary["footage"]["held_out_frames"] == 1 and summary["footage"]["rainy_frames"] == 9
    state = read_checkpoint(out / "adapted.pt")
    shipped = read_checkpoint(resolve_weights("builtin"))
    assert state["model"] == shipped["model"]  # the start's network and arguments (dry-frame bypass included)
    same = all(torch.equal(state["weights"][k], shipped["weights"][k]) for k in shipped["weights"])
    assert same == (summary["kept"] == "start")
    if summary["kept"] == "adapted":  # what the guard let through passed it
        assert eligible(summary["adapted"], summary["start"], AdaptConfig(**settings)) == []
    rain = ParametricRain.load(out / "rain.json")
    assert rain.layers >= 1 and json.loads((out / "rain.json").read_text())["evaluations"] >= 10
    report = (out / "report.md").read_text()
    assert "earlier domains, mean PSNR" in report and (out / "report.jpg").is_file() and (out / "rain.png").is_file()
    resumed = adapt(AdaptConfig(**{**settings, "iterations": 6}), resume="auto")
    assert resumed["steps"] == 6 and resumed["fit"]["objective"] == summary["fit"]["objective"]  # the fit is kept
