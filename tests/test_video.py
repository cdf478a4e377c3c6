"""The video de-rainer: rendered clips, video metrics, the temporal network, its state in the runtime, its export,
its training recipe, and detection agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.data.video import ClipConfig, render_clip
from derain.models import build_model, save_checkpoint
from derain.models.temporal import from_per_frame
from derain.quality.detection import counts, f1, match
from derain.quality.video import CleanMotion, flicker, frame_scores, warp, warping_error
from derain.runtime import BackendError, Derainer
from derain.runtime.temporal import TemporalState, scene_change

SMALL = ClipConfig(frames=6, height=96, width=128, shots=(1, 1), motions=("pan",), dry_prob=0.0)


def test_clips_are_deterministic_and_their_flow_maps_frames_onto_the_previous_ones():
    for motion in ("pan", "zoom", "forward"):
        config = ClipConfig(frames=5, height=128, width=192, shots=(1, 1), motions=(motion,), dry_prob=0.0)
        clip = render_clip("rain100L", 4, config)
        again = render_clip("rain100L", 4, config)
        assert np.array_equal(clip.rainy, again.rainy) and np.array_equal(clip.clean, again.clean)
        assert not np.array_equal(clip.rainy, clip.clean)
        assert np.isnan(clip.flow[0]).all()
        moved = np.abs(clip.clean[3].astype(int) - clip.clean[2]).mean()
        warped, inside = warp(clip.clean[2], clip.flow[3])
        error = np.abs(warped.astype(int) - clip.clean[3])[inside].mean()
        assert moved > 1.0 and error < 0.6 * moved, (motion, moved, error)  # the exact flow explains the motion
        backwards, _ = warp(clip.clean[2], -clip.flow[3])
        assert np.abs(backwards.astype(int) - clip.clean[3]).mean() > 2 * error  # and its direction matters


def test_clips_have_cuts_dry_stretches_and_falling_rain():
    clip = render_clip("rain100H", 1, ClipConfig(frames=12, height=48, width=64, shots=(3, 3), dry_prob=0.0))
    assert len(clip.cuts) == 3 and clip.cuts[0] == 0
    assert all(np.isnan(clip.flow[c]).all() for c in clip.cuts)
    rain = clip.rainy.astype(int) - clip.clean
    assert not np.array_equal(rain[1], rain[2])  # the rain moves from frame to frame
    dry = render_clip("rain100L", 2, ClipConfig(frames=20, height=32, width=32, shots=(1, 1), dry_prob=1.0))
    assert (dry.rain < 1).any()
    still = dry.rain <= 0
    assert np.array_equal(dry.rainy[still], dry.clean[still])  # a dry frame is the clean frame
    with pytest.raises(ValueError, match="unknown camera motions"):
        ClipConfig(motions=("teleport",))


def test_video_metrics_see_flicker_and_misalignment_but_not_the_clean_video():
    clip = render_clip("rain100L", 5, ClipConfig(frames=8, height=64, width=96, shots=(1, 1), motions=("static",),
                                                 dry_prob=0.0))  # fmt: skip
    motion = CleanMotion(clip.clean, clip.cuts)
    assert flicker(clip.clean, motion) == pytest.approx(0.0, abs=1e-6)
    clean_error = warping_error(clip.clean, motion)
    noisy = np.clip(clip.clean + np.random.default_rng(0).normal(0, 6, clip.clean.shape), 0, 255).astype(np.uint8)
    assert flicker(noisy, motion) > 3.0  # a new noise draw per frame: the still background flickers
    assert warping_error(noisy, motion) > 10 * max(clean_error, 1e-6)
    assert flicker(clip.rainy, motion) > 1.0
    scores = frame_scores(clip.rainy, clip.clean)
    assert scores["psnr_y"].shape == (8,) and (scores["psnr_y"] < 100).all()
    with pytest.raises(ValueError, match="uint8 RGB clips"):
        frame_scores(clip.rainy[:, :, :, :1], clip.clean)


@pytest.fixture(scope="module")
def temporal_checkpoint(tmp_path_factory):
    """A tiny temporal network started from a tiny per-frame one, its memory branch and trust map made non-zero."""
    torch.manual_seed(0)
    per_frame = build_model("realtime", **TINY_NETWORKS["realtime"])
    model = from_per_frame(per_frame.state_dict(), **TINY_NETWORKS["realtime"])
    torch.nn.init.normal_(model.memory_out.weight, std=0.2)
    torch.nn.init.normal_(model.trust.weight, std=0.5)
    torch.nn.init.constant_(model.trust.bias, 0.0)
    folder = tmp_path_factory.mktemp("temporal")
    return save_checkpoint(folder / "temporal.pt", model), save_checkpoint(folder / "per_frame.pt", per_frame)


def test_a_temporal_network_with_no_past_is_its_per_frame_network():
    torch.manual_seed(1)
    per_frame = build_model("realtime", **TINY_NETWORKS["realtime"]).eval()
    model = from_per_frame(per_frame.state_dict(), **TINY_NETWORKS["realtime"]).eval()
    image, before, made = torch.rand(3, 1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(image), per_frame(image))
        start = (model(image, before, made) - per_frame(image)).abs().max()
        assert start < 1e-3  # begins as the per-frame network (trust at sigmoid(-8))
        torch.nn.init.normal_(model.memory_out.weight, std=0.2)
        torch.nn.init.normal_(model.trust.weight, std=0.5)
        torch.nn.init.constant_(model.trust.bias, 0.0)
        assert torch.equal(model(image, image, image), per_frame(image))  # a reset: exactly per-frame, always
        assert (model(image, before, made) - per_frame(image)).abs().max() > 0.01  # the past now counts
    with pytest.raises(ValueError, match="not the realtime network"):
        from_per_frame({**per_frame.state_dict(), "extra.weight": torch.zeros(1)}, **TINY_NETWORKS["realtime"])


def test_the_runtime_carries_the_state_per_stream_and_resets_it(temporal_checkpoint):
    temporal, per_frame = temporal_checkpoint
    clip = render_clip("rain1200_heavy", 4, SMALL)
    frames = [np.ascontiguousarray(f[..., ::-1]) for f in clip.rainy]
    derainer, reference = Derainer(temporal), Derainer(per_frame)
    assert derainer.temporal and not reference.temporal
    outputs = [derainer(f, timestamp=i / 30) for i, f in enumerate(frames)]
    assert np.array_equal(outputs[0], reference(frames[0]))  # the first frame has no past
    assert not np.array_equal(outputs[3], reference(frames[3]))  # later ones do
    again = derainer.clone()  # another stream: its own, empty past
    assert np.array_equal(again(frames[3]), reference(frames[3]))
    assert np.array_equal(derainer(frames[3], timestamp=5.0), reference(frames[3]))  # a gap of seconds
    assert derainer.state.resets["gap"] == 1
    bigger = np.ascontiguousarray(np.pad(frames[4], ((0, 8), (0, 8), (0, 0))))
    assert np.array_equal(derainer(bigger, timestamp=5.03), reference(bigger))  # a new frame size
    derainer(frames[4], timestamp=5.06)
    other = np.ascontiguousarray(255 - frames[5])  # another scene
    assert np.array_equal(derainer(other, timestamp=5.1), reference(other))
    assert derainer.state.resets["cut"] == 1 and derainer.state.resets["size"] == 2  # to the new size and back
    derainer(frames[1])
    derainer.reset()
    assert np.array_equal(derainer(frames[2]), reference(frames[2]))
    batch = derainer(np.stack(frames[:3]))  # a batch is consecutive frames
    assert batch.shape == (3, *frames[0].shape)
    with pytest.raises(BackendError, match="per-frame de-rainer"):
        reference.backend(frames[0], (frames[0], frames[0]))


def test_cut_detection_ignores_rain_and_motion_but_sees_a_new_scene():
    clip = render_clip("rain100H", 9, ClipConfig(frames=8, height=96, width=128, shots=(2, 2), dry_prob=0.0))
    bgr = clip.rainy[..., ::-1]
    cut = clip.cuts[1]
    within = [scene_change(bgr[t], bgr[t - 1]) for t in range(1, 8) if t != cut]
    state = TemporalState()
    assert max(within) < state.cut_levels
    other = render_clip("rain100H", 10, ClipConfig(frames=1, height=96, width=128, shots=(1, 1)))
    assert scene_change(np.ascontiguousarray(other.rainy[0][..., ::-1]), bgr[0]) > state.cut_levels


def test_temporal_onnx_graph_takes_its_state_as_inputs_and_matches_pytorch(temporal_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from derain.export.onnx_export import export_onnx
    from derain.models import load_model

    temporal, _ = temporal_checkpoint
    path = export_onnx(load_model(temporal).eval(), tmp_path / "temporal.onnx", 32, 32, io="uint8")
    graph, torch_side = Derainer(path), Derainer(temporal)
    assert graph.temporal
    assert [t.name for t in graph.backend.session.get_inputs()] == ["frame", "previous_frame", "previous_output"]
    clip = render_clip("rain100L", 2, SMALL)
    for index, frame in enumerate(clip.rainy):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        a, b = graph(bgr, timestamp=index / 30), torch_side(bgr, timestamp=index / 30)
        assert np.abs(a.astype(int) - b).max() <= 1


@pytest.mark.trt
def test_temporal_engine_builds_with_its_state_inputs(temporal_checkpoint, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed (the [export] extra installs it)")
    from derain.export.pipeline import export
    from derain.runtime.card import read_card

    temporal, _ = temporal_checkpoint
    result = export(weights=str(temporal), out=str(tmp_path / "out"), precision="fp32", shapes=((32, 32),),
                    dynamic=((16, 16), (64, 64)), targets=((86,),), test_count=2)  # fmt: skip
    card = read_card(result.engines[0]["engine"])
    assert [i["name"] for i in card["inputs"]] == ["frame", "previous_frame", "previous_output"]
    assert card["parity"]["psnr_rgb_fp32"] > 30
    with pytest.raises(Exception, match="temporal|FP32"):
        export(weights=str(temporal), out=str(tmp_path / "int8"), precision="int8", shapes=((32, 32),),
               targets=((86,),))  # fmt: skip


def test_temporal_recipe_trains_validates_and_resumes(tmp_path):
    from derain.train.temporal import TemporalConfig, train_temporal

    torch.manual_seed(0)
    per_frame = save_checkpoint(tmp_path / "per_frame.pt", build_model("realtime", **TINY_NETWORKS["realtime"]))
    config = TemporalConfig(init=str(per_frame), out=str(tmp_path / "run"), model=TemporalConfig.model.__class__(
        "realtime_temporal", TINY_NETWORKS["realtime"]), frames=3, patch_size=32, batch_size=2, anchor_batch=2,
        pool=4, val_pool=4, val_every=2, val_clips=2, max_iterations=2, warmup_iterations=0, device="cpu")  # fmt: skip
    first = train_temporal(config)
    assert first["iterations"] == 2 and np.isfinite(first["start"]["val_psnr"])
    longer = TemporalConfig(**{**config.__dict__, "max_iterations": 4})
    resumed = train_temporal(longer, resume="auto")
    assert resumed["iterations"] == 4
    temporal = save_checkpoint(tmp_path / "temporal.pt", from_per_frame(torch.load(per_frame, weights_only=True)[
        "weights"], **TINY_NETWORKS["realtime"]))  # fmt: skip
    second = TemporalConfig(**{**config.__dict__, "init": str(temporal), "out": str(tmp_path / "stage2"),
                               "temporal_weight": 1.0})  # fmt: skip
    summary = train_temporal(second)  # a second stage from a temporal network, with the steadiness loss
    assert summary["iterations"] == 2 and (tmp_path / "stage2" / "final.pt").is_file()
    steady = [float(row.split(",")[-1]) for row in (tmp_path / "stage2" / "log.csv").read_text().splitlines()[1:]]
    assert steady and all(np.isfinite(steady))
    other = save_checkpoint(tmp_path / "prenet.pt", build_model("prenet", **TINY_NETWORKS["prenet"]))
    with pytest.raises(ValueError, match="per-frame 'realtime' checkpoint"):  # a de-rainer of another kind
        train_temporal(TemporalConfig(**{**config.__dict__, "init": str(other), "out": str(tmp_path / "x")}))


def test_detection_agreement_counts_hits_false_alarms_and_misses():
    assert match([[0, 0, 10, 10]], [[1, 1, 10, 10]]) == (1, 0, 0)
    assert match([[0, 0, 10, 10]], [[8, 8, 10, 10]]) == (0, 1, 1)  # IoU under 0.5
    assert match([], [[0, 0, 5, 5]]) == (0, 0, 1)
    tally = counts([[[0, 0, 10, 10]], [], [[50, 50, 5, 5]]], [[[0, 0, 10, 10]], [[0, 0, 4, 4]], []])
    assert tally.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert f1(tally) == pytest.approx(2 / 4)
    assert np.isnan(f1(np.zeros((2, 3))))


def test_the_runtime_finds_the_camera_motion_and_training_warps_the_past_as_it_does():
    from derain.runtime.temporal import align, camera_motion
    from derain.train.temporal import warp_onto

    for motion in ("pan", "forward"):
        config = ClipConfig(frames=5, height=128, width=192, shots=(1, 1), motions=(motion,), dry_prob=0.0)
        clip = render_clip("rain1200_heavy", 4, config)
        frame, previous = (np.ascontiguousarray(clip.rainy[3][..., ::-1]), np.ascontiguousarray(
            clip.clean[2][..., ::-1]))  # fmt: skip
        estimate = camera_motion(frame, previous)
        ys, xs = np.mgrid[0:128, 0:192]
        off = [estimate[i, 0] * xs + estimate[i, 1] * ys + estimate[i, 2] - (xs, ys)[i] - clip.flow[3][..., i]
               for i in (0, 1)]  # fmt: skip
        still = np.median(np.hypot(*clip.flow[3].transpose(2, 0, 1)))
        assert np.median(np.hypot(*off)) < min(1.0, 0.8 * still), motion  # closer than assuming no motion
        (mine,) = align(frame, (previous,), clip.motion[3])
        as_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float()  # noqa: E731
        (theirs,) = warp_onto(as_tensor(frame), (as_tensor(previous),), torch.from_numpy(clip.motion[3])[None].float())
        assert np.abs(theirs[0].permute(1, 2, 0).round().numpy() - mine).max() <= 1
    same = np.ascontiguousarray(clip.rainy[0][..., ::-1])
    assert np.allclose(camera_motion(same, same), np.eye(2, 3), atol=0.05)
