"""The streaming runtime on CPU: sources, sinks, the bounded-latency pipeline, reopening, signals, bad input, memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.export.onnx_export import export_onnx
from derain.models import build_model, save_checkpoint
from derain.runtime import (
    Backend,
    BackendError,
    Backoff,
    Derainer,
    SinkError,
    SourceError,
    Status,
    Stream,
    open_sink,
    open_source,
)
from derain.runtime.sources import Captured, Source

pytest.importorskip("onnxruntime", reason="the [dev] extra installs onnxruntime")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny realtime network (not the identity) as a uint8 ONNX graph and as a checkpoint."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=1.0).eval()
    onnx_path = export_onnx(model, folder / "model.onnx", 32, 32, io="uint8", metadata={"io": "uint8",
                            "pad_multiple": 8})  # fmt: skip
    return {"onnx": onnx_path, "pytorch": save_checkpoint(folder / "model.pt", model)}


class ListSource(Source):
    """Frames from a list (then EOS); `fail_at` read numbers return ERROR (a cable pulled), and every reopen
    continues where the stream was."""

    def __init__(self, frames: list[np.ndarray], live: bool = False, fail_at: tuple[int, ...] = ()) -> None:
        super().__init__("list://")
        self.frames, self.live, self.fail_at = frames, live, fail_at
        self.reads = self.opens = self.position = 0

    def open(self, timeout: float = 10.0) -> None:
        self.opens += 1

    def read(self) -> Captured:
        self.reads += 1
        if self.reads in self.fail_at:
            return Captured(Status.ERROR, detail="cable pulled")
        if self.position >= len(self.frames):
            return Captured(Status.EOS)
        self.position += 1
        return Captured(Status.OK, self.frames[self.position - 1], time.monotonic())


class SlowBackend(Backend):
    """A real backend that takes `delay` seconds longer per call (a network too slow for the camera)."""

    name = "slow"

    def __init__(self, inner: Backend, delay: float) -> None:
        super().__init__(inner.path, inner.spec)
        self.inner, self.delay = inner, delay

    def run(self, frames):
        time.sleep(self.delay)
        return self.inner(frames)


def derain_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("derain-")]


def test_runtime_imports_no_torch_and_runs_an_onnx_graph_without_it(artifacts):
    code = (
        "import sys, numpy as np\n"
        "from derain.runtime import Derainer\n"
        f"out = Derainer({str(artifacts['onnx'])!r}, device='cpu')(np.zeros((40, 56, 3), np.uint8))\n"
        "assert out.shape == (40, 56, 3), out.shape\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(('derain.train', "
        "'derain.models', 'derain.export', 'derain.data')))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["onnx", "pytorch"])
def test_synthetic_stream_in_lossless_mode_writes_every_frame_at_its_size(artifacts, kind, tmp_path):
    uri = "synthetic://rain100L?size=72x40&frames=12&pace=false"
    derainer = Derainer(artifacts[kind], device="cpu")
    indices = []
    for clean, info in derainer.stream(uri):
        assert clean.shape == info.rainy.shape == (40, 72, 3) and clean.dtype == np.uint8
        assert info.action == "derained" and info.latency_ms >= info.infer_ms > 0
        indices.append(info.index)
    assert indices == list(range(12))
    stats = Stream(open_source(uri), derainer).run(open_sink(tmp_path / "frames"))  # through the sink thread
    written = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(written) == stats.counts["emitted"] == 12 and stats.counts["sink_dropped"] == 0
    assert all(cv2.imread(str(path)).shape == (40, 72, 3) for path in written)
    assert stats.snapshot()["written_latency_ms"]["p50"] >= stats.snapshot()["latency_ms"]["p50"]
    assert not derain_threads()


def test_slow_backend_keeps_latency_bounded_and_counts_the_drops(artifacts):
    delay = 0.05
    derainer = Derainer(SlowBackend(Derainer(artifacts["onnx"], device="cpu").backend, delay))
    source = open_source("synthetic://default?size=48x32&fps=100&frames=150")  # paced: a live 100 fps camera
    stream = Stream(source, derainer)
    assert not stream.lossless
    outputs = list(stream)
    stats = stream.stats.snapshot()
    # a frame waits at most one inference in the latest-frame slot, then takes one: bound 2 x 50 ms + 60 ms slack
    assert stats["latency_ms"]["p99"] < 2 * delay * 1000 + 60, stats["latency_ms"]
    assert stats["dropped_stale"] > stats["captured"] / 2
    assert stats["captured"] - stats["emitted"] - stats["dropped_stale"] in (0, 1)  # at most the last one unread
    assert len(outputs) == stats["emitted"]


def test_deadline_passes_stale_frames_through_and_counts_them(artifacts):
    derainer = Derainer(SlowBackend(Derainer(artifacts["onnx"], device="cpu").backend, 0.03))
    frames = [np.full((32, 32, 3), i, np.uint8) for i in range(20)]
    stream = Stream(ListSource(frames), derainer, lossless=True, deadline_ms=20)
    actions = [info.action for _, info in stream]
    assert actions[0] == "derained"  # nothing known about the network yet
    assert "passthrough" in actions and stream.stats.counts["deadline_passthrough"] == actions.count("passthrough")
    passed = [(clean, info) for clean, info in Stream(ListSource(frames), derainer, lossless=True, deadline_ms=20)
              if info.action == "passthrough"]  # fmt: skip
    assert all(np.array_equal(clean, info.rainy) for clean, info in passed)


class SlowOnce(SlowBackend):
    """Slow on its first call only (a CUDA graph capture, a JIT compile), fast after."""

    def run(self, frames):
        delay, self.delay = self.delay, 0.0
        time.sleep(delay)
        return self.inner(frames)


def test_one_slow_call_does_not_switch_the_network_off_for_good(artifacts):
    derainer = Derainer(SlowOnce(Derainer(artifacts["onnx"], device="cpu").backend, 0.3))
    source = open_source("synthetic://default?size=48x32&fps=50&frames=150")  # 3 s of a live camera
    actions = [info.action for _, info in Stream(source, derainer, deadline_ms=100)]
    assert "passthrough" in actions[:10]  # right after the slow call the estimate says "too slow"
    assert actions[-20:].count("derained") >= 15  # a probe a second re-measures the network: back to de-raining


def test_a_live_source_that_fails_is_reopened_and_the_stream_goes_on(artifacts):
    frames = [np.full((32, 32, 3), i * 10, np.uint8) for i in range(11)]
    source = ListSource(frames, live=True, fail_at=(5,))
    stream = Stream(source, Derainer(artifacts["onnx"], device="cpu"), lossless=True, backoff=Backoff(first=0.01))
    outputs = list(stream)
    assert len(outputs) == 11 and source.opens == 1 and stream.stats.counts["reconnects"] == 1

    always_failing = ListSource(frames, live=True, fail_at=tuple(range(1, 100)))
    always_failing.reopen = lambda timeout=10.0: (_ for _ in ()).throw(SourceError("camera unplugged"))
    stream = Stream(always_failing, Derainer(artifacts["onnx"], device="cpu"), backoff=Backoff(0.01, 0.02, 3))
    with pytest.raises(SourceError, match="gave up after 3"):
        list(stream)
    assert not derain_threads()


def test_a_source_that_never_opens_fails_within_its_timeout(tmp_path):
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)  # FFmpeg blocks forever opening a pipe nobody writes to
    started = time.monotonic()
    with pytest.raises(SourceError, match="did not open within 1.0 s"):
        open_source(str(fifo), timeout=1.0)
    assert time.monotonic() - started < 3
    with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):  # release the blocked opener thread
        pass


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("csi://0", "GStreamer"),
        ("appsrc ! fakesink", "GStreamer"),
        ("v4l2:///dev/video99", "not found"),
        ("ftp://camera", "unknown source scheme"),
        ("missing.mp4", "not found"),
        ("synthetic://drizzle", "unknown rain domain"),
        ("synthetic://rain100L?size=big", "WIDTHxHEIGHT"),
        ("synthetic://rain100L?colour=red", "unknown option"),
    ],
)
def test_sources_that_cannot_work_here_say_why(uri, message):
    if message == "GStreamer":
        from derain.runtime.sources import gstreamer_available

        if gstreamer_available():
            pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match=message):
        open_source(uri, timeout=2.0)


def test_corrupt_and_off_contract_frames_in_a_folder_are_skipped_and_counted(artifacts, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "a_good.png"), good)
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "c_garbage.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    cv2.imwrite(str(folder / "d_grey.png"), good[..., 0])
    cv2.imwrite(str(folder / "e_alpha.png"), np.dstack([good, good[..., :1]]))
    cv2.imwrite(str(folder / "f_tiny.png"), good[:1, :1])
    cv2.imwrite(str(folder / "g_16bit.png"), good.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "h_good.png"), good[::-1])
    stream = Stream(open_source(str(folder)), Derainer(artifacts["onnx"], device="cpu"))
    stats = stream.run(open_sink(tmp_path / "out"))
    # grey, alpha and 16-bit files are read as BGR frames (a CLI user cannot call cvtColor); the rest is skipped
    assert stats.counts["emitted"] == 5 and stats.counts["skipped_corrupt"] == 3
    assert len(list((tmp_path / "out").iterdir())) == 5
    source = open_source(str(folder))
    source.open()
    frames = [source.read() for _ in range(8)]
    assert [f.status for f in frames].count(Status.OK) == 6  # the 1x1 frame reads, the stream skips it
    grey, alpha, deep = (frames[i].frame for i in (3, 4, 6))
    assert np.array_equal(grey, np.repeat(good[..., :1], 3, axis=2)) and np.array_equal(alpha, good)
    assert np.array_equal(deep, good)  # 16-bit scaled back to the 8-bit values it was made from


def test_derain_stream_fails_when_it_writes_none_of_the_frames(artifacts, tmp_path, capsys):
    from derain.runtime.cli import main as stream_main

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.jpg").write_bytes(b"")
    assert stream_main(["--model", str(artifacts["onnx"]), "--source", str(folder), "--sink", str(tmp_path / "o"),
                        "--quiet"]) == 2  # fmt: skip
    assert "no frame came through (2 unreadable" in capsys.readouterr().err
    cv2.imwrite(str(folder / "c.png"), np.zeros((32, 48, 3), np.uint8))
    assert stream_main(["--model", str(artifacts["onnx"]), "--source", str(folder), "--sink", str(tmp_path / "o2"),
                        "--quiet"]) == 3  # fmt: skip
    assert "2 frame(s) could not be read" in capsys.readouterr().err


def test_a_model_that_cannot_be_loaded_leaves_no_sink_behind(tmp_path, capsys):
    from derain.runtime.cli import main as stream_main

    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    out = tmp_path / "never"
    code = stream_main(["--model", str(tmp_path / "broken.onnx"), "--source", "synthetic://rain100L?frames=2&size=64x48",
                        "--sink", str(out), "--quiet"])  # fmt: skip
    assert code == 2 and "not a loadable ONNX graph" in capsys.readouterr().err
    assert not out.exists()


def test_overwrite_replaces_an_earlier_runs_frames_in_a_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    for index in range(10):
        cv2.imwrite(str(folder / f"frame_{index:06d}.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "notes.txt").write_text("mine")
    sink = open_sink(folder, overwrite=True)
    for _ in range(3):
        sink.write(np.full((16, 16, 3), 7, np.uint8))
    sink.close()
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:06d}.png" for i in range(3)] + ["notes.txt"]


def test_the_latest_frame_slot_keeps_the_newest_frame():
    from derain.runtime.stream import FrameSlot

    slot = FrameSlot(capacity=1, drop_oldest=True)
    assert [slot.put(index) for index in range(4)] == [0, 1, 1, 1]
    assert slot.get(timeout=0.1) == 3 and slot.get(timeout=0.01) is None


def test_stream_statistics_report_the_percentiles_of_what_was_recorded():
    from derain.runtime.stats import StreamStats

    stats = StreamStats()
    latencies = np.random.default_rng(0).exponential(40.0, 500)
    for value in latencies:
        stats.emitted(float(value))
        stats.record("infer", float(value) / 2)
    snapshot = stats.snapshot()
    for point in (50, 90, 99):
        assert snapshot["latency_ms"][f"p{point}"] == pytest.approx(np.percentile(latencies, point))
        assert snapshot["infer_ms"][f"p{point}"] == pytest.approx(np.percentile(latencies / 2, point))
    assert snapshot["emitted"] == 500


def test_an_empty_batch_comes_back_empty(artifacts):
    for kind in ("onnx", "pytorch"):
        empty = np.zeros((0, 48, 64, 3), np.uint8)
        out = Derainer(artifacts[kind], device="cpu")(empty)
        assert out.shape == (0, 48, 64, 3) and out.dtype == np.uint8


def test_the_shipped_model_is_the_default_of_the_embedding_api():
    from derain.builtin import builtin_weights

    for model in ("builtin", None):
        derainer = Derainer(model, device="cpu")
        assert derainer.backend.name == "pytorch" and derainer.backend.path == builtin_weights()
    assert Derainer(device="cpu").backend.path == builtin_weights()
    with pytest.raises(TypeError, match="artifact path, a folder of them, 'builtin' or a Backend"):
        Derainer(3)


def test_fp16_on_a_cpu_is_refused_with_the_precision_that_is_fastest_there(artifacts):
    with pytest.raises(BackendError, match="use fp32, the fastest precision there"):
        Derainer(artifacts["pytorch"], device="cpu", precision="fp16")


def test_artifacts_that_are_not_de_rainers_get_a_clear_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 10]) for n in ("a", "b")]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "adder", inputs, [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "adder.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf at all")
    (tmp_path / "weights.h5").write_bytes(b"")
    cases = {
        "adder.onnx": "not a de-raining graph",
        "garbage.onnx": "not a loadable ONNX graph",
        "weights.h5": "no backend for 'weights.h5'",
        "missing.onnx": "not found",
        "missing.engine": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(BackendError, match=message):
            Derainer(tmp_path / name, device="cpu")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(BackendError, match="expected a derain checkpoint"):
        Derainer(tmp_path / "other.pt", device="cpu")


def test_sinks_never_replace_outputs_unasked(tmp_path):
    video = tmp_path / "out.mp4"
    video.write_bytes(b"earlier run")
    with pytest.raises(SinkError, match="exists; pass --overwrite"):
        open_sink(video)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "keep.png").write_bytes(b"x")
    with pytest.raises(SinkError, match="not empty"):
        open_sink(tmp_path / "folder")
    with pytest.raises(SinkError, match="unknown sink"):
        open_sink(tmp_path / "out.gif")
    assert video.read_bytes() == b"earlier run" and (tmp_path / "folder" / "keep.png").read_bytes() == b"x"


def test_video_file_round_trip_through_the_stream(artifacts, tmp_path):
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(10)]
    with open_sink(tmp_path / "in.mp4", fps=10) as sink:
        for frame in frames:
            sink.write(frame)
    source = open_source(str(tmp_path / "in.mp4"))
    assert not source.live and source.size == (64, 48)
    stream = Stream(source, Derainer(artifacts["onnx"], device="cpu"))
    stats = stream.run(open_sink(tmp_path / "out.mp4", fps=10))
    assert stats.counts["emitted"] == 10 and stats.status == "eos"
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10


def test_a_file_shorter_than_its_header_says_ends_cleanly(artifacts, tmp_path):
    with open_sink(tmp_path / "clip.avi", fps=10) as sink:
        for index in range(30):
            sink.write(np.full((48, 64, 3), 8 * index, np.uint8))
    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 6 // 10])  # the header still says 30 frames
    source = open_source(str(tmp_path / "cut.avi"))
    stream = Stream(source, Derainer(artifacts["onnx"], device="cpu"))
    started = time.monotonic()
    outputs = list(stream)
    assert time.monotonic() - started < 30 and stream.stats.status == "eos"
    assert 5 <= len(outputs) < 30


def test_derain_stream_tiles_frames_larger_than_a_static_graph(artifacts, tmp_path):
    model = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=1.0).eval()
    static = export_onnx(model, tmp_path / "static.onnx", 64, 96, dynamic=False, io="uint8",
                         metadata={"io": "uint8", "pad_multiple": 8})  # fmt: skip
    source = "synthetic://rain100L?size=160x120&frames=3&pace=false"
    command = [sys.executable, "-m", "derain.runtime.cli", "--model", str(static), "--source", source,
               "--sink", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 3
    assert cv2.imread(str(tmp_path / "out" / "frame_000002.png")).shape == (120, 160, 3)


def test_frames_below_a_profile_minimum_are_padded_up():
    from derain.runtime import InputSpec

    spec = InputSpec(min_size=(64, 64), max_size=(256, 256))
    assert spec.fitting_size(48, 100) == (64, 100) and spec.fitting_size(300, 100) is None
    static = InputSpec(fixed_sizes=((64, 96), (128, 160)))
    assert static.fitting_size(70, 90) == (128, 160) and static.largest() == (128, 160)


@pytest.mark.parametrize("kind", ["onnx", "pytorch"])
def test_clones_run_in_threads_and_agree(artifacts, kind):
    derainer = Derainer(artifacts[kind], device="cpu")
    frames = [np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(6)]
    expected = [derainer(frame) for frame in frames]
    results: dict[int, list[np.ndarray]] = {}

    def work(worker: int) -> None:
        with derainer.clone() as mine:
            results[worker] = [mine(frame) for frame in frames]

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(a, b) for worker in range(3) for a, b in zip(results[worker], expected))


def test_a_long_stream_does_not_grow_memory(artifacts):
    def resident_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(16)]
    derainer = Derainer(artifacts["onnx"], device="cpu")
    samples = {}

    def on_frame(info) -> None:
        if info.index in (500, 4999):
            samples[info.index] = resident_mb()

    stream = Stream(ListSource([pool[i % 16] for i in range(5000)]), derainer)
    stats = stream.run(open_sink(lambda frame: None), on_frame=on_frame)
    assert stats.counts["emitted"] == 5000
    assert samples[4999] - samples[500] < 20, samples  # bound: 20 MB over 4,500 frames (windowed stats, no queue)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_derain_stream_cleanly_with_a_playable_video(artifacts, tmp_path, number):
    video = tmp_path / "out.mp4"
    command = [sys.executable, "-m", "derain.runtime.cli", "--model", str(artifacts["onnx"]), "--source",
               "synthetic://rain100L?size=96x64&fps=30", "--sink", str(video), "--side-by-side", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "out.partial.mp4"
    deadline = time.monotonic() + 90
    while not partial.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == (130 if number == signal.SIGINT else 0), stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["written"] > 5 and summary["status"] == "stopped"
    assert video.exists() and not partial.exists()
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == summary["written"]  # every frame written is there, to the last one
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 2 * 96  # side by side


def test_derain_stream_reports_bad_arguments_in_one_line(artifacts, tmp_path, capsys):
    from derain.runtime.cli import main

    (tmp_path / "taken.mp4").write_bytes(b"x")
    model = str(artifacts["onnx"])
    cases = [
        (["--model", "nope.onnx", "--source", "0"], "model not found"),
        (["--model", model, "--source", "ftp://x"], "unknown source scheme"),
        (["--model", model, "--source", "synthetic://rain100L?frames=2", "--sink", str(tmp_path / "taken.mp4")],
         "pass --overwrite"),
        (["--model", model, "--source", "synthetic://rain100L", "--max-fps", "-1", "--frames", "0"],
         "--max-fps must be positive"),
        (["--model", model, "--source", str(tmp_path), "--sink", str(tmp_path / "out")], "would write into"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert (tmp_path / "taken.mp4").read_bytes() == b"x"


def test_a_fused_pixel_path_is_kept_only_when_it_gives_the_reference_pixels(artifacts, caplog):
    """`check_fused` at load: the same frame through both paths of a backend (here the CPU PyTorch backend, and
    stand-ins for a fused path: itself, a BGR/RGB swap, a single-level rounding slip, a crash)."""
    from derain.runtime.backends.base import BackendError, check_fused
    from derain.runtime.backends.pytorch import TorchBackend

    backend = TorchBackend.load(artifacts["pytorch"], device="cpu")
    size = (24, 40)
    assert check_fused("test", "auto", backend.run, backend.run, size)

    def one_slip(frame):
        out = backend.run(frame).copy()
        out[0, 0, 0, 0] ^= 1  # one value off by one level: an engine's nondeterminism, tolerated
        return out

    assert check_fused("test", "on", backend.run, one_slip, size)
    swapped = lambda frame: backend.run(frame)[..., ::-1]  # noqa: E731 - a kernel with the channels crossed
    with caplog.at_level("WARNING", logger="derain.runtime.backends"):
        assert not check_fused("test", "auto", backend.run, swapped, size)
    assert "disagree" in caplog.text and "of the pixels differ" in caplog.text
    with pytest.raises(BackendError, match="kernels='on'.*differ"):
        check_fused("test", "on", backend.run, swapped, size)

    def crash(frame):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    assert not check_fused("test", "auto", backend.run, crash, size)
    calls = []

    def broken_after_the_crash(frame):  # the reference fails too once the fused path has faulted
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return backend.run(frame)

    with pytest.raises(BackendError, match="left CUDA unusable"):
        check_fused("test", "auto", broken_after_the_crash, crash, size)


def test_the_pytorch_backend_says_which_pixel_path_it_took(artifacts, caplog):
    """Without CUDA the frame conversions are FrameIO's torch ops, logged; asking for the fused kernels fails with
    a reason instead of running something else."""
    from derain.runtime.backends.base import BackendError
    from derain.runtime.backends.pytorch import TorchBackend

    with caplog.at_level("INFO", logger="derain.runtime.backends"):
        backend = TorchBackend.load(artifacts["pytorch"], device="cpu")
    assert backend.describe()["pixel_path"] == "torch ops"
    assert "pixel path = torch ops (no CUDA device)" in caplog.text
    assert backend.run(np.zeros((16, 24, 3), np.uint8)).shape == (16, 24, 3)
    with pytest.raises(BackendError, match="kernels='on' needs a CUDA device"):
        TorchBackend.load(artifacts["pytorch"], device="cpu", kernels="on")
    with pytest.raises(BackendError, match="kernels must be one of"):
        TorchBackend.load(artifacts["pytorch"], device="cpu", kernels="fast")


def test_the_readmes_detector_loop_runs_as_written(capsys):
    """The README's embedding example, extracted and run unchanged."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    marker = "An embedding in a detector loop"
    block = readme[readme.index(marker):].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frame ")]
    # a live source: the newest frame wins, so a slow CPU may skip some of the five
    assert 1 <= len(lines) <= 5 and all("blobs, derained," in line and "ms after capture" in line for line in lines)
