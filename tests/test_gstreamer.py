"""Into a perception stack: the `derain` GStreamer element, GStreamer sources and sinks, per-frame info, NV12,
artifact choice and stream health. Real pipelines (Debian's GStreamer, which CI installs); skipped where the
bindings are missing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from test_runtime import artifacts  # noqa: F401 - the fixture: a tiny network as an ONNX graph and a checkpoint

from derain.cpp_ext.reference import network_to_nv12, nv12_to_network
from derain.frames import FrameError, from_network, to_network
from derain.runtime import Derainer, gst
from derain.runtime.backends import BackendError
from derain.runtime.choose import choose_artifact
from derain.runtime.sources import Captured, Source, SourceError, Status, open_source
from derain.runtime.stream import Backoff

needs_gst = pytest.mark.skipif(not gst.available(), reason="GStreamer's Python bindings are not installed")
SIZE = (64, 96)  # H, W: even (NV12), not a multiple of the network's 8 in width / 32 in height


@pytest.fixture(scope="module")
def derainer():
    return Derainer("builtin", device="cpu", threads=1)


@pytest.fixture(scope="module")
def rainy_folder(tmp_path_factory):
    """Six rainy frames of the built-in video (rain rendered, so the network has something to remove)."""
    folder = tmp_path_factory.mktemp("rainy")
    source = open_source(f"synthetic://rain100H?size={SIZE[1]}x{SIZE[0]}&frames=6&pace=false&seed=3")
    for index in range(6):
        captured = source.read()
        cv2.imwrite(str(folder / f"frame_{index:06d}.png"), captured.frame)
    return folder


def pull_all(appsink, timeout_s: float = 60.0) -> list:
    samples = []
    while True:
        sample = appsink.try_pull_sample(int(timeout_s * 1e9))
        if sample is None:
            return samples
        samples.append(sample)


def sample_bytes(sample) -> np.ndarray:
    Gst = gst.gst().Gst
    buffer = sample.get_buffer()
    ok, mapped = buffer.map(Gst.MapFlags.READ)
    assert ok
    data = np.frombuffer(mapped.data, np.uint8).copy()
    buffer.unmap(mapped)
    return data


@needs_gst
@pytest.mark.parametrize("fmt", ["BGR", "NV12"])
def test_the_element_in_a_real_pipeline_gives_derainers_pixels_and_keeps_timestamps(fmt, derainer, rainy_folder,
                                                                                     tmp_path):  # fmt: skip
    from derain.runtime.gst_element import register

    register()
    Gst = gst.gst().Gst
    height, width = SIZE
    encoded = tmp_path / "out.avi"
    pipeline = Gst.parse_launch(
        f"multifilesrc location={rainy_folder}/frame_%06d.png index=0 stop-index=5 caps=image/png,framerate=5/1 ! "
        f"pngdec ! videoconvert ! video/x-raw,format={fmt} ! tee name=t ! queue ! appsink name=raw sync=false "
        "t. ! queue ! derain name=d threads=1 ! tee name=o ! queue ! appsink name=out sync=false "
        "o. ! queue ! videoconvert ! video/x-raw,format=BGR ! appsink name=shown sync=false "
        "o. ! queue ! videoconvert ! video/x-raw,format=BGR ! jpegenc quality=95 ! avimux ! "
        f"filesink location={encoded}"
    )  # fmt: skip
    element = pipeline.get_by_name("d")
    events = []

    def probe(pad, info):
        event = info.get_event()
        if event.type == Gst.EventType.CUSTOM_DOWNSTREAM and event.get_structure().get_name() == "derain-frame":
            events.append(event.get_structure().get_value("pts"))
        return Gst.PadProbeReturn.OK

    element.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, probe)
    assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
    assert pipeline.get_state(int(30e9))[0] == Gst.StateChangeReturn.SUCCESS
    latency = Gst.Query.new_latency()
    assert element.get_static_pad("src").query(latency)
    _, minimum, _ = latency.parse_latency()
    assert minimum > 0  # the element adds what it measured when it warmed up at the negotiated size
    raw, out = pull_all(pipeline.get_by_name("raw")), pull_all(pipeline.get_by_name("out"))
    shown = [sample_bytes(s).reshape(height, width, 3) for s in pull_all(pipeline.get_by_name("shown"))]
    bus, messages = pipeline.get_bus(), []
    while True:  # what the application reads: the element's messages, up to the end of stream
        message = bus.timed_pop_filtered(int(30e9), Gst.MessageType.EOS | Gst.MessageType.ERROR |
                                         Gst.MessageType.ELEMENT)  # fmt: skip
        assert message is not None and message.type != Gst.MessageType.ERROR, message and message.parse_error()
        if message.type == Gst.MessageType.EOS:
            break
        if message.get_structure().get_name() == "derain-frame":
            messages.append(message.get_structure())
    counts = {name: element.get_property(name) for name in ("processed", "dry", "passed-through")}
    pipeline.set_state(Gst.State.NULL)

    assert len(raw) == len(out) == 6
    for before, after in zip(raw, out, strict=True):
        # timestamps and caps leave as they came
        assert after.get_buffer().pts == before.get_buffer().pts and after.get_buffer().pts != Gst.CLOCK_TIME_NONE
        assert after.get_buffer().duration == before.get_buffer().duration
        assert after.get_caps().is_equal(before.get_caps())
        frame, result = sample_bytes(before), sample_bytes(after)
        if fmt == "BGR":
            assert np.array_equal(result.reshape(height, width, 3), derainer(frame.reshape(height, width, 3)))
        else:
            luma, chroma = frame[: height * width].reshape(height, width), frame[height * width :]
            want_luma, want_chroma = derainer.nv12(luma, chroma.reshape(height // 2, width // 2, 2))
            assert np.array_equal(result[: height * width].reshape(height, width), want_luma)
            assert np.array_equal(result[height * width :].reshape(height // 2, width // 2, 2), want_chroma)
        assert not np.array_equal(result, frame)  # rain was removed: the element did not pass frames through
    # what it did, per frame, for a downstream element (events, before each buffer) and the application (the bus)
    assert events == [sample.get_buffer().pts for sample in out]
    assert [m.get_value("pts") for m in messages] == events and [m.get_value("index") for m in messages] == list(
        range(6))
    assert all(m.get_value("action") == "derained" and m.get_value("rain-score") > 0.5 for m in messages)
    assert counts == {"processed": 6, "dry": 0, "passed-through": 0}
    # the encoded file holds the de-rained frames (JPEG: close, not exact), as GStreamer shows them in BGR
    decoded = cv2.VideoCapture(str(encoded))
    frames = [f for ok, f in iter(lambda: decoded.read(), (False, None)) if ok]
    assert len(frames) == len(shown) == 6
    for frame, expected in zip(frames, shown, strict=True):
        assert cv2.PSNR(frame, expected) > 30


@needs_gst
def test_the_element_carries_a_temporal_models_past_from_buffer_to_buffer(rainy_folder):
    from derain.runtime.gst_element import register

    register()
    Gst = gst.gst().Gst
    height, width = SIZE
    pipeline = Gst.parse_launch(
        f"multifilesrc location={rainy_folder}/frame_%06d.png index=0 stop-index=5 caps=image/png,framerate=5/1 ! "
        "pngdec ! videoconvert ! video/x-raw,format=BGR ! tee name=t ! queue ! appsink name=raw sync=false "
        "t. ! queue ! derain model=builtin-temporal threads=1 ! appsink name=out sync=false"
    )  # fmt: skip
    assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE
    raw, out = pull_all(pipeline.get_by_name("raw")), pull_all(pipeline.get_by_name("out"))
    pipeline.set_state(Gst.State.NULL)
    assert len(raw) == len(out) == 6
    stream = Derainer("builtin-temporal", device="cpu", threads=1)
    used_the_past = []
    for index, (before, after) in enumerate(zip(raw, out, strict=True)):
        frame = sample_bytes(before).reshape(height, width, 3)
        expected = stream(frame, timestamp=before.get_buffer().pts / Gst.SECOND)  # the same frames, in order
        assert np.array_equal(sample_bytes(after).reshape(height, width, 3), expected), index
        used_the_past.append(not np.array_equal(expected, stream.clone()(frame)))  # a fresh stream has no past
    assert not used_the_past[0] and any(used_the_past[1:])


@needs_gst
def test_a_model_that_cannot_load_is_a_pipeline_error_in_one_line(tmp_path):
    from derain.runtime.gst_element import register

    register()
    Gst = gst.gst().Gst
    pipeline = Gst.parse_launch(f"videotestsrc num-buffers=1 ! videoconvert ! video/x-raw,format=BGR ! derain "
                                f"model={tmp_path}/missing.onnx ! fakesink")  # fmt: skip
    assert pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE
    message = pipeline.get_bus().timed_pop_filtered(int(5e9), Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    error, _ = message.parse_error()
    assert "missing.onnx" in error.message and "not found" in error.message


@needs_gst
def test_gst_launch_finds_the_element_through_derain_gst_env(rainy_folder, tmp_path):
    """The one line of the README: gst-launch-1.0 with the environment `derain-gst env` prints."""
    from derain.runtime.gst_cli import plugin_loader

    if plugin_loader() is None:
        pytest.skip("GStreamer's Python plugin loader is not installed (gstreamer1.0-python3-plugin-loader)")
    from derain.runtime.gst_cli import environment

    out = tmp_path / "frames"
    out.mkdir()
    command = [
        "gst-launch-1.0", "-q", "multifilesrc", f"location={rainy_folder}/frame_%06d.png", "index=0", "stop-index=2",
        "caps=image/png,framerate=5/1", "!", "pngdec", "!", "videoconvert", "!", "video/x-raw,format=BGR", "!",
        "derain", "model=builtin", "threads=1", "!", "videoconvert", "!", "pngenc", "!", "multifilesink",
        f"location={out}/%02d.png",
    ]  # fmt: skip
    env = {**__import__("os").environ, **environment()}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "CRITICAL" not in result.stderr  # the bindings' floating-reference complaint is silenced, nothing else
    written = sorted(out.iterdir())
    assert len(written) == 3
    rainy = cv2.imread(str(rainy_folder / "frame_000000.png"))
    expected = Derainer("builtin", device="cpu", threads=1)(rainy)
    assert np.array_equal(cv2.imread(str(written[0])), expected)


# ------------------------------------------------------------------------------------------ sources and sinks


@needs_gst
def test_a_gst_source_gives_frames_with_their_pipeline_timestamps(derainer):
    stream = derainer.stream("gst:videotestsrc num-buffers=4 pattern=ball ! video/x-raw,width=64,height=48,"
                             "framerate=20/1")  # fmt: skip
    infos = [info for _, info in stream]
    assert [i.index for i in infos] == [0, 1, 2, 3]
    assert [i.clock for i in infos] == ["pipeline"] * 4
    assert [round(i.timestamp, 6) for i in infos] == [0.0, 0.05, 0.1, 0.15]
    assert all(i.action in ("derained", "dry") for i in infos)
    snapshot = stream.stats.snapshot()
    assert snapshot["emitted"] == 4 and snapshot["rainy"] + snapshot["dry"] == 4 and snapshot["status"] == "eos"


@needs_gst
def test_a_live_pipeline_is_open_when_its_first_frame_is_here(derainer):
    """A live source that never sends (a UDP port nobody streams to) does not open; --wait-for-source and
    --reconnect then have something to count."""
    port = 40000 + (int(time.time() * 1000) % 10000)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open gst:udpsrc.*within 1.0 s"):
        open_source(f'gst:udpsrc port={port} caps="application/x-rtp,media=video,encoding-name=VP8,payload=96,'
                    'clock-rate=90000" ! rtpvp8depay ! vp8dec', timeout=1.0)  # fmt: skip
    assert time.monotonic() - started < 5
    live = open_source("gst:videotestsrc is-live=true ! video/x-raw,width=32,height=32,framerate=50/1", timeout=5)
    assert live.live and live.size == (32, 32) and live.fps == 50
    assert live.read().clock == "pipeline"
    live.close()


@needs_gst
def test_the_element_passes_frames_through_to_keep_its_deadline_and_counts_them(derainer, rainy_folder):
    """deadline-ms below the network's time: the first frame is de-rained (a probe), the next ones within the second
    are passed on unchanged, counted, and said to be so."""
    from derain.runtime.gst_element import register

    register()
    Gst = gst.gst().Gst
    height, width = SIZE
    pipeline = Gst.parse_launch(
        f'appsrc name=src format=time caps="video/x-raw,format=BGR,width={width},height={height},framerate=30/1" ! '
        "derain name=d threads=1 deadline-ms=0.001 ! appsink name=out sync=false"
    )  # fmt: skip
    src, out = pipeline.get_by_name("src"), pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    frames = [cv2.imread(str(rainy_folder / f"frame_{i:06d}.png")) for i in range(4)]
    results = []
    for index, frame in enumerate(frames):
        buffer = Gst.Buffer.new_wrapped(frame.tobytes())
        buffer.pts = int(index * 1e9 / 30)
        src.emit("push-buffer", buffer)
        results.append(sample_bytes(out.try_pull_sample(int(60e9))).reshape(height, width, 3))
    actions = []
    while (message := pipeline.get_bus().pop_filtered(Gst.MessageType.ELEMENT)) is not None:
        if message.get_structure().get_name() == "derain-frame":
            actions.append((message.get_structure().get_value("action"), message.get_structure().get_value("rainy")))
    counts = {name: pipeline.get_by_name("d").get_property(name) for name in ("processed", "passed-through")}
    pipeline.set_state(Gst.State.NULL)
    assert actions[0] == ("derained", True) and np.array_equal(results[0], derainer(frames[0]))
    passed = [i for i, (action, _) in enumerate(actions) if action == "passthrough"]
    assert passed and counts == {"processed": 4 - len(passed), "passed-through": len(passed)}
    for i in passed:
        assert np.array_equal(results[i], frames[i]) and actions[i][1] is False


@needs_gst
def test_a_missing_element_is_named_with_its_package():
    with pytest.raises(SourceError, match=r"nvarguscamerasrc \(JetPack"):
        open_source("gst:nvarguscamerasrc ! fakesink")
    with pytest.raises(SourceError, match="nvarguscamerasrc"):
        open_source("csi://0")


@needs_gst
def test_derain_stream_reads_a_gst_pipeline_and_sends_rtp_to_a_local_receiver(tmp_path):
    """derain-stream as a process: gst: in, rtp:// out (VP8, plugins-good), received on the loopback."""
    Gst = gst.gst().Gst
    port = 50000 + (int(time.time() * 1000) % 10000)
    _, receiver = gst.rtp_sender("127.0.0.1", port, "vp8")
    listening = Gst.parse_launch(receiver.replace("autovideosink", "video/x-raw,format=BGR ! appsink name=got "
                                                  "sync=false"))  # fmt: skip
    listening.set_state(Gst.State.PLAYING)
    got = listening.get_by_name("got")
    received: list = []
    thread = threading.Thread(target=lambda: received.extend(pull_all(got, timeout_s=20)), daemon=True)
    thread.start()
    frames_log = tmp_path / "frames.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "derain.runtime.cli", "--source",
         "gst:videotestsrc num-buffers=20 pattern=ball ! video/x-raw,width=64,height=48,framerate=20/1",
         "--sink", f"rtp://127.0.0.1:{port}?codec=vp8", "--threads", "1", "--quiet", "--lossless",
         "--frames-log", str(frames_log)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["emitted"] == 20 and summary["written"] == 20
    records = [json.loads(line) for line in frames_log.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(20)) and {r["clock"] for r in records} == {"pipeline"}
    assert records[1]["timestamp"] == pytest.approx(0.05)
    thread.join(timeout=60)
    listening.set_state(Gst.State.NULL)
    assert len(received) >= 15  # UDP on the loopback: a frame or two may be lost before the receiver is up
    assert sample_bytes(received[-1]).size == 64 * 48 * 3


# ------------------------------------------------------------------------------------------ NV12, choice, health


def test_nv12_through_derainer_is_the_bgr_contract_between_the_reference_conversions(derainer, rainy_folder):
    rainy = cv2.imread(str(rainy_folder / "frame_000001.png"))
    height, width = rainy.shape[:2]
    luma, chroma = network_to_nv12(to_network(rainy[None]), height, width)
    out_luma, out_chroma = derainer.nv12(luma[0], chroma[0])
    bgr = from_network(nv12_to_network(luma, chroma), height, width)[0]
    want_luma, want_chroma = network_to_nv12(to_network(derainer(bgr)[None]), height, width)
    assert np.array_equal(out_luma, want_luma[0]) and np.array_equal(out_chroma, want_chroma[0])
    assert np.abs(out_luma.astype(int) - luma[0]).mean() > 0.5  # rain came out
    with pytest.raises(FrameError, match="even"):
        derainer.nv12(luma[0][:-1], chroma[0])
    bt709 = derainer.nv12(luma[0], chroma[0], matrix=709, full_range=True)
    assert not np.array_equal(bt709[0], out_luma)


def test_a_folder_of_artifacts_gives_the_best_this_machine_runs_and_says_why(artifacts, tmp_path, caplog):  # noqa: F811
    import shutil

    folder = tmp_path / "deploy"
    folder.mkdir()
    shutil.copy(artifacts["onnx"], folder / "model_fp32.onnx")
    shutil.copy(artifacts["pytorch"], folder / "model.pt")
    caplog.set_level("INFO", logger="derain.runtime.choose")
    choice = choose_artifact(folder, device="cpu")
    assert choice.path.name == "model_fp32.onnx" and choice.precision == "fp32"
    assert "chose model_fp32.onnx" in caplog.text
    with pytest.raises(BackendError, match="model_fp32.onnx: fp32, not int8"):
        choose_artifact(folder, "int8", device="cpu")
    with pytest.raises(BackendError, match="model.pt: a checkpoint runs in fp32 on a CPU, not fp16"):
        choose_artifact(folder, "fp16", device="cpu")
    assert choose_artifact(folder, device="cpu", backend="pytorch").path.name == "model.pt"
    derainer = Derainer(folder, device="cpu", threads=1)
    assert derainer.backend.name == "onnxruntime"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match="holds no artifact"):
        Derainer(empty)


def test_a_source_that_comes_up_late_is_waited_for(tmp_path, derainer):
    folder = tmp_path / "late"
    with pytest.raises(SourceError, match="not found"):
        open_source(str(folder))

    def appear() -> None:
        time.sleep(0.6)
        folder.mkdir()
        cv2.imwrite(str(folder / "a.png"), np.zeros((16, 16, 3), np.uint8))

    threading.Thread(target=appear, daemon=True).start()
    started = time.monotonic()
    frames = list(derainer.stream(str(folder), wait_for_source=10))
    assert len(frames) == 1 and 0.5 < time.monotonic() - started < 10
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "never"), wait=0.5)


class DeadCamera(Source):
    """A live camera that delivers two frames, then fails every read and every reopen (its cable pulled)."""

    live = True

    def __init__(self) -> None:
        super().__init__("dead://0")
        self.reads = self.opens = 0

    def open(self, timeout: float = 10.0) -> None:
        self.opens += 1
        if self.opens > 1:
            raise SourceError("no such device")

    def read(self) -> Captured:
        self.reads += 1
        if self.reads <= 2:
            return Captured(Status.OK, np.zeros((16, 16, 3), np.uint8), time.monotonic())
        return Captured(Status.ERROR, detail="cable pulled")


def test_reconnect_bounds_the_reopen_attempts_of_a_failing_live_source(derainer):
    camera = DeadCamera()
    camera.open()
    stream = derainer.stream(camera, reconnect=2, backoff=Backoff(first=0.01), lossless=True)
    frames = []
    with pytest.raises(SourceError, match="gave up after 2 reopen attempts"):
        for frame, _ in stream:
            frames.append(frame)
    assert len(frames) == 2 and camera.opens == 3 and stream.stats.snapshot()["status"] == "error"
    with pytest.raises(ValueError, match="reconnect"):
        derainer.stream(DeadCamera(), reconnect=-1)


def test_every_frame_that_will_not_come_out_is_told_as_dropped():
    """A live 100 fps source and a 40 ms network: frames replaced in the latest-frame slot reach on_drop, with
    their own index and timestamp; together with the emitted ones they are every frame read."""
    from derain.runtime import Stream

    def slow(frame: np.ndarray) -> np.ndarray:
        time.sleep(0.04)
        return frame

    dropped = []
    source = open_source("synthetic://default?size=32x32&fps=100&frames=60")
    stream = Stream(source, slow, on_drop=dropped.append)
    emitted = [info for _, info in stream]
    snapshot = stream.stats.snapshot()
    assert dropped and all(info.action == "dropped" and info.clock == "stream" for info in dropped)
    assert len(dropped) == snapshot["dropped_stale"] and len(emitted) == snapshot["emitted"]
    indices = sorted([i.index for i in dropped] + [i.index for i in emitted])
    assert indices == list(range(snapshot["captured"]))
    assert all(i.timestamp == pytest.approx(i.index / 100) for i in dropped)
