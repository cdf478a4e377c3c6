"""CLGID: rain generators, the bank, replay, distillation, the stream loop, resume after SIGKILL, DDP (gloo)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_NETWORKS

from derain.data.synth import synthesize, synthesize_split
from derain.models import build_model, load_model
from derain.models.vrgnet import VRGNet, grey_rain
from derain.train.continual import ContinualConfig, replay, train_stream
from derain.train.generator_bank import GeneratorBank, GeneratorConfig, train_rain_generator
from derain.train.state import load_state

TINY_GAN = {"iterations": 6, "batch_size": 4, "checkpoint_every": 3, "background_stages": 1, "background_channels": 8}


@pytest.fixture(scope="module")
def stream_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    synthesize(["rain100H", "rain100L", "rain1400"], root, n_train=8, n_test=2, size=(64, 64), seed=3)
    synthesize_split("real_like", "test", 2, root / "real_like" / "test", size=(64, 64), seed=3)
    return root


def tiny_stream(root: Path, out: Path, **changes) -> dict:
    config = {
        "trainer": "continual",
        "data_root": str(root),
        "stream": ["rain100H", "rain100L", "rain1400"],
        "unseen": ["real_like/test"],
        "method": "clgid",
        "model": {"name": "realtime", "kwargs": TINY_NETWORKS["realtime"]},
        "out": str(out / "run"),
        "bank": str(out / "bank"),
        "generator": TINY_GAN,
        "iterations": 12,
        "batch_size": 4,
        "checkpoint_every": 4,
        "log_every": 2,
        "device": "cpu",
    }
    config.update(changes)
    return config


def as_config(raw: dict) -> ContinualConfig:
    from derain.config import load_config

    path = Path(raw["out"]).parent / "c.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return load_config(ContinualConfig, path, drop=("trainer",))


@pytest.mark.parametrize("size", [64, 128])
def test_vrgnet_shapes_and_non_negative_rain(size):
    net = VRGNet(size=size, background_stages=1, background_channels=8)
    rainy = torch.rand(2, 3, size, size)
    parts = net.synthesize(rainy)
    assert parts["fake"].shape == rainy.shape and parts["mu_z"].shape == (2, 128)
    assert net.critic(rainy).shape == (2,)
    rain = net.generator.sample(3)
    assert rain.shape == (3, 3, size, size) and rain.min() >= 0
    grey = grey_rain(rain)
    assert torch.equal(grey[:, 0], grey[:, 2]) and torch.equal(grey[:, 0], rain.amax(1))


def test_generator_size_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        build_model("vrgnet_generator", size=96)


def test_replay_adds_grey_rain_from_every_generator():
    generators = [build_model("vrgnet_generator").eval() for _ in range(3)]
    for index, generator in enumerate(generators):  # distinct constant "rain" per generator
        torch.nn.init.zeros_(generator.project.weight)
        generator.project.bias.data.fill_(1.0)
        for layer in generator.decoder:
            if isinstance(layer, torch.nn.ConvTranspose2d):
                torch.nn.init.constant_(layer.weight, 1e-3 * (1 + 0.1 * index))
        last = [layer for layer in generator.decoder if isinstance(layer, torch.nn.ConvTranspose2d)][-1]
        with torch.no_grad():  # coloured rain out of the generator: replay must make it grey (its channel max)
            last.weight[:, 1] *= 0.5
            last.weight[:, 2] *= 0.25
    clean = torch.rand(64, 3, 64, 64) * 0.5
    clean[:, :, 32, 32] = 0.1
    out = replay(clean, generators, torch.Generator().manual_seed(0))
    added = out - clean
    assert out.min() >= 0 and out.max() <= 1
    unclipped = (out < 1).all(1)
    assert unclipped.float().mean() > 0.5
    for a, b in ((0, 1), (1, 2)):
        assert torch.allclose(added[:, a][unclipped], added[:, b][unclipped], atol=1e-6)  # grey rain
    levels = {round(v, 4) for v in added[:, :, 32, 32].mean(1).tolist()}
    assert len(levels) == 3  # every generator was drawn for some sample
    again = replay(clean, generators, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_rain_generator_trains_resumes_and_loads(stream_root, tmp_path):
    config = GeneratorConfig(**{**TINY_GAN, "iterations": 3, "milestones": ()})  # no decay: lengths comparable
    train_rain_generator(stream_root / "rain100H" / "train", tmp_path / "g", config)
    state = load_state(tmp_path / "g" / "last.pt")
    assert state["step"] == 3
    more = GeneratorConfig(**{**TINY_GAN, "iterations": 6, "milestones": ()})
    path = train_rain_generator(stream_root / "rain100H" / "train", tmp_path / "g", more)
    assert json.loads((tmp_path / "g" / "summary.json").read_text())["critic_steps"] == 6
    # 8 images, batch 4: stopped at step 3 is mid-epoch; the resumed generator equals a straight run of 6
    straight = train_rain_generator(stream_root / "rain100H" / "train", tmp_path / "straight", more)
    resumed_weights, straight_weights = load_state(path)["weights"], load_state(straight)["weights"]
    for key, value in straight_weights.items():
        assert torch.allclose(resumed_weights[key], value, atol=1e-6), key
    generator = load_model(path, expect="vrgnet_generator")
    assert generator(torch.randn(2, 128)).shape == (2, 3, 64, 64)
    assert (tmp_path / "g" / "samples.png").is_file()
    bank = GeneratorBank(tmp_path)
    assert bank.has("g") and not bank.has("other")
    assert not any(p.requires_grad for p in bank.load("g").parameters())


def test_summary_on_a_hand_made_matrix(tmp_path):
    """Average seen and backward transfer after the last task, with the numbers worked by hand.
    BWT = mean over tasks i < T of R[T, i] - R[i, i] (Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory")."""
    from derain.train.reports import summarize

    config = as_config(tiny_stream(tmp_path, tmp_path, stream=["a", "b", "c"], unseen=[]))
    score = lambda value: {"psnr_rgb": value, "psnr_y": value + 1, "ssim_rgb": 0.5, "ssim_y": 0.5}  # noqa: E731
    rows = {"a": {"a": score(30)}, "b": {"a": score(26), "b": score(28)},
            "c": {"a": score(25), "b": score(27), "c": score(31)}}  # fmt: skip
    summary = summarize(config, {"rows": rows})
    assert summary["avg_seen_psnr_rgb"] == pytest.approx((25 + 27 + 31) / 3)
    assert summary["bwt_psnr_rgb"] == pytest.approx(((25 - 30) + (27 - 28)) / 2)  # -3.0
    assert summary["bwt_psnr_y"] == pytest.approx(-3.0)


def test_stream_writes_matrix_summary_and_heatmap(stream_root, tmp_path):
    summary = train_stream(as_config(tiny_stream(stream_root, tmp_path, stream=["rain100H", "rain100L"])))
    run = tmp_path / "run"
    matrix = json.loads((run / "matrix.json").read_text())["rows"]
    assert list(matrix) == ["rain100H", "rain100L"]
    assert set(matrix["rain100H"]) == {"rain100H", "rain100L", "unseen:real_like/test"}
    expected_bwt = matrix["rain100L"]["rain100H"]["psnr_rgb"] - matrix["rain100H"]["rain100H"]["psnr_rgb"]
    assert summary["bwt_psnr_rgb"] == pytest.approx(expected_bwt)
    assert summary["avg_seen_psnr_rgb"] == pytest.approx(
        (matrix["rain100L"]["rain100H"]["psnr_rgb"] + matrix["rain100L"]["rain100L"]["psnr_rgb"]) / 2
    )
    assert (run / "matrix.png").stat().st_size > 1000 and (run / "matrix.csv").read_text().count("\n") == 3
    png = cv2.imread(str(run / "matrix.png")).astype(int)
    assert (png.max(2) - png.min(2)).max() > 100  # cells coloured by the viridis map, not shades of grey
    log_rows = (run / "task2_rain100L" / "log.csv").read_text().splitlines()
    assert "kd" in log_rows[0] and len(log_rows) > 2
    assert (tmp_path / "bank" / "rain100H" / "generator.pt").is_file()
    assert not (tmp_path / "bank" / "rain100L").exists()  # the last dataset's generator is never needed
    with pytest.raises(FileExistsError, match="resume auto"):
        train_stream(as_config(tiny_stream(stream_root, tmp_path, stream=["rain100H", "rain100L"])))


def test_distillation_has_gradient_only_in_paper_mode(stream_root, tmp_path):
    """released_code mode detaches KD: with replay loss and KD alone the runs differ only through KD."""
    weights = {}
    for mode in ("paper", "released_code"):
        raw = tiny_stream(
            stream_root,
            tmp_path / mode,
            stream=["rain100H", "rain100L"],
            unseen=[],
            kd_mode=mode,
            kd_weight=50.0,
            bank=str(tmp_path / "bank"),
        )
        train_stream(as_config(raw))
        weights[mode] = load_state(tmp_path / mode / "run" / "task2_rain100L" / "final.pt")
    differs = any(
        not torch.equal(weights["paper"]["weights"][k], weights["released_code"]["weights"][k])
        for k in weights["paper"]["weights"]
    )
    assert differs


def test_bad_dataset_fails_before_training(stream_root, tmp_path):
    raw = tiny_stream(stream_root, tmp_path, stream=["rain100H", "rain9000"])
    with pytest.raises(Exception, match="rain9000/train"):
        train_stream(as_config(raw))
    assert not (tmp_path / "bank").exists() and not (tmp_path / "run" / "task1_rain100H").exists()


def _cli(config_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "derain.train.cli", "--yaml", str(config_path), *extra]


def test_sigkill_then_resume_matches_an_uninterrupted_run(stream_root, tmp_path):
    # 8 images, batch 4: 2 steps an epoch; checkpoints every 3 steps, so the first (where the kill lands) is mid-epoch
    raw = tiny_stream(stream_root, tmp_path / "a", iterations=40, checkpoint_every=3)
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(raw))
    process = subprocess.Popen(_cli(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "a" / "run" / "task2_rain100L" / "last.pt"
    deadline = time.time() + 240
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert marker.exists(), "the run never reached task 2"
    task1 = tmp_path / "a" / "run" / "task1_rain100H" / "final.pt"
    generator = tmp_path / "a" / "bank" / "rain100H" / "generator.pt"
    stamps = (task1.stat().st_mtime_ns, generator.stat().st_mtime_ns)
    killed_at = load_state(marker)["step"]
    assert 0 < killed_at < 40
    subprocess.run(_cli(path, "--resume", "auto"), check=True, capture_output=True)
    assert (task1.stat().st_mtime_ns, generator.stat().st_mtime_ns) == stamps  # nothing finished is redone

    reference = tiny_stream(stream_root, tmp_path / "b", iterations=40, checkpoint_every=3, bank=raw["bank"])
    reference_path = tmp_path / "b.yaml"
    reference_path.write_text(yaml.safe_dump(reference))
    # in a process of its own, as the killed and resumed runs: torch's thread count is process-wide (an earlier
    # test in this process may have set it), and another count sums convolutions in another order
    subprocess.run(_cli(reference_path), check=True, capture_output=True)
    for task in ("task2_rain100L", "task3_rain1400"):
        resumed = load_state(tmp_path / "a" / "run" / task / "final.pt")["weights"]
        straight = load_state(tmp_path / "b" / "run" / task / "final.pt")["weights"]
        for key in straight:
            assert torch.allclose(resumed[key], straight[key], atol=1e-6), f"{task} {key} differs after resume"


def test_ddp_two_cpu_processes_with_gloo(stream_root, tmp_path):
    raw = tiny_stream(stream_root, tmp_path, stream=["rain100H", "rain100L"], iterations=6, batch_size=4)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(raw))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "derain.train.cli",
        "--yaml",
        str(path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    matrix = json.loads((tmp_path / "run" / "matrix.json").read_text())["rows"]
    assert list(matrix) == ["rain100H", "rain100L"]
    trained = load_model(tmp_path / "run" / "task2_rain100L" / "final.pt", expect="realtime")
    fresh = build_model("realtime", **TINY_NETWORKS["realtime"])
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))


def test_joint_and_sequential_baselines_need_no_generators(stream_root, tmp_path):
    for method in ("joint", "sequential"):
        raw = tiny_stream(stream_root, tmp_path / method, stream=["rain100H", "rain100L"], method=method, iterations=4)
        summary = train_stream(as_config(raw))
        rows = json.loads((tmp_path / method / "run" / "matrix.json").read_text())["rows"]
        assert list(rows) == (["joint"] if method == "joint" else ["rain100H", "rain100L"])
        task = json.loads(next((tmp_path / method / "run").glob("task1_*/task.json")).read_text())
        assert task["iterations"] == (8 if method == "joint" else 4)  # joint: the whole stream's budget
        assert ("bwt_psnr_rgb" in summary) == (method == "sequential")
        assert not (tmp_path / method / "bank").exists()


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_clgid_runs_with_every_network_of_the_registry(name, stream_root, tmp_path_factory):
    """Replay + distillation over each network's stage outputs (MPRNet 3, the others 1), one shared bank."""
    bank = tmp_path_factory.getbasetemp() / "shared_bank"
    out = tmp_path_factory.mktemp(name)
    model = {"name": name, "kwargs": TINY_NETWORKS[name]}
    raw = tiny_stream(stream_root, out, stream=["rain100H", "rain100L"], model=model, iterations=6, bank=str(bank))
    summary = train_stream(as_config(raw | {"log_every": 1}))
    assert summary["tasks_done"] == 2 and np.isfinite(summary["avg_seen_psnr_rgb"])
    trained = load_model(out / "run" / "task2_rain100L" / "final.pt", expect=name)
    assert trained.spec["name"] == name and all(torch.isfinite(v).all() for v in trained.state_dict().values())
    with open(out / "run" / "task2_rain100L" / "log.csv") as file:
        rows = list(csv.DictReader(file))
    kd = [float(row["kd"]) for row in rows]
    assert kd[0] == pytest.approx(0.0, abs=1e-6)  # the student starts as the teacher
    assert max(kd) > 0 and all(np.isfinite(float(row["loss"])) for row in rows)


def test_individual_trains_every_dataset_alone_from_a_fresh_network(stream_root, tmp_path):
    raw = tiny_stream(stream_root, tmp_path / "ind", stream=["rain100H", "rain100L"], method="individual", iterations=4)
    summary = train_stream(as_config(raw))
    rows = json.loads((tmp_path / "ind" / "run" / "matrix.json").read_text())["rows"]
    assert list(rows) == ["rain100H", "rain100L"] and "bwt_psnr_rgb" not in summary
    own = [rows[name][name]["psnr_rgb"] for name in ("rain100H", "rain100L")]
    assert summary["avg_seen_psnr_rgb"] == pytest.approx(sum(own) / 2)
    unseen = [rows[name]["unseen:real_like/test"]["psnr_y"] for name in rows]
    assert summary["unseen_real_like/test_psnr_y"] == pytest.approx(sum(unseen) / 2)
    # task 2 is exactly a one-dataset run of rain100L (task index 0 with seed + 1), not a fine-tune of task 1
    alone = tiny_stream(
        stream_root, tmp_path / "alone", stream=["rain100L"], method="individual", iterations=4, seed=1235
    )
    train_stream(as_config(alone))
    task2 = load_state(tmp_path / "ind" / "run" / "task2_rain100L" / "final.pt")["weights"]
    single = load_state(tmp_path / "alone" / "run" / "task1_rain100L" / "final.pt")["weights"]
    for key in single:
        torch.testing.assert_close(task2[key], single[key], atol=1e-6, rtol=0)
    fine_tuned = tiny_stream(
        stream_root, tmp_path / "sf", stream=["rain100H", "rain100L"], method="sequential", iterations=4
    )
    train_stream(as_config(fine_tuned))
    sequential = load_state(tmp_path / "sf" / "run" / "task2_rain100L" / "final.pt")["weights"]
    assert any(not torch.allclose(sequential[k].float(), task2[k].float()) for k in task2)


CODES = {"100H": "Rain100H", "100L": "Rain100L", "1400": "Rain1400"} | {
    f"1200{level[0]}": f"Rain1200_{level}" for level in ("light", "medium", "heavy")
}


def test_the_released_streams_load_and_check_their_data_first(tmp_path):
    """Every paper stream config (clgid_paper.yaml and its `base:` variants) is the order its name says, shares
    the paper's recipe and generator bank, and fails before training, naming each missing dataset."""
    from derain.config import load_config
    from derain.data.pairing import DatasetError

    folder = Path(__file__).resolve().parents[1] / "train" / "configs"
    paths = sorted(folder.glob("clgid_paper*.yaml"))
    assert len(paths) == 5
    configs = {p.name: load_config(ContinualConfig, p, drop=("trainer",)) for p in paths}
    orders = {"clgid_paper.yaml": "100H-100L-1400-1200m"} | {
        name: name.removeprefix("clgid_paper_").removesuffix(".yaml") for name in configs if name != "clgid_paper.yaml"
    }
    assert sorted(len(c.stream) for c in configs.values()) == [4, 4, 4, 4, 6]
    for name, config in configs.items():
        assert config.stream == tuple(CODES[code] for code in orders[name].split("-")), name
        recipe = (config.model.name, config.epochs, config.batch_size, config.lr, config.method)
        assert recipe == ("mprnet", 250, 16, 2e-4, "clgid"), name
        assert config.bank == "runs/generator_bank" and config.unseen == ("../real/SPA",)
    assert len({c.out for c in configs.values()}) == 5
    config = configs["clgid_paper_1400-1200m-100H-100L-1200l-1200h.yaml"]
    empty = tmp_path / "Derain" / "syn"
    empty.mkdir(parents=True)
    local = ContinualConfig(**{**config.__dict__, "data_root": str(empty), "out": str(tmp_path / "run")})
    with pytest.raises(DatasetError) as error:
        train_stream(local)
    for name in config.stream:
        assert f"{name}/train" in str(error.value)
    assert not (tmp_path / "run").exists()


def test_renderer_replay_draws_each_earlier_domains_rain(stream_root, tmp_path):
    from derain.train.continual import RenderedRain

    clean = torch.rand(32, 3, 64, 64) * 0.5
    sources = [RenderedRain("rain100H", 256), RenderedRain("rain100L", 256)]
    out = replay(clean, sources, torch.Generator().manual_seed(1))
    assert out.shape == clean.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, replay(clean, sources, torch.Generator().manual_seed(1)))
    # rain100H adds a haze veil (a raised mean), rain100L only sparse streaks: both kinds appear in one batch
    lift = (out - clean).flatten(1).median(1).values
    assert (lift > 0.05).any() and (lift < 0.01).any()
    # a whole stream runs with it and trains no generator
    raw = tiny_stream(stream_root, tmp_path / "oracle", stream=["rain100H", "rain100L"], replay_source="renderer")
    assert train_stream(as_config(raw))["tasks_done"] == 2
    assert not (tmp_path / "oracle" / "bank").exists()
    raw = tiny_stream(stream_root, tmp_path / "bad", replay_source="renderer", stream=["rain100H", "my_rain"])
    with pytest.raises(ValueError, match="built-in rain domains"):
        train_stream(as_config(raw))


def test_tasks_train_to_a_plateau_and_keep_their_best_validation(tmp_path):
    """gain 100 dB: only the first validation counts as progress, the window runs out at step 6 (lr halved), then
    at step 10 (stop). A learning rate of 1 wrecks the network on the way, so its best validation is an early one
    and the task's result must be those weights, not the last ones."""
    root = tmp_path / "data"
    synthesize(["rain100H", "rain100L"], root, n_train=8, n_test=2, size=(64, 64), seed=3, n_val=2)
    raw = tiny_stream(root, tmp_path, stream=["rain100H", "rain100L"], unseen=[], method="sequential", lr=1.0,
                      iterations=50, plateau_window=4, plateau_gain=100.0, lr_drops=1, validate_every=2,
                      checkpoint_every=3, warmup_epochs=0)  # fmt: skip
    train_stream(as_config(raw))
    for task in ("task1_rain100H", "task2_rain100L"):
        folder = tmp_path / "run" / task
        record = json.loads((folder / "task.json").read_text())
        assert (record["stopped"], record["iterations"], record["lr_drops"]) == ("plateau", 10, 1)
        rows = list(csv.DictReader((folder / "validation.csv").open()))
        assert [r["decision"] for r in rows] == ["improved", "wait", "drop", "wait", "stop"]
        assert float(rows[3]["lr"]) == pytest.approx(float(rows[1]["lr"]) / 2)
        best_row = max(rows, key=lambda r: float(r["val_psnr"]))
        assert record["best_step"] == int(best_row["step"]) < 10
        assert record["best_val_psnr"] == pytest.approx(float(best_row["val_psnr"]))
        final, best = load_state(folder / "final.pt")["weights"], load_state(folder / "best.pt")["weights"]
        last = load_state(folder / "last.pt")
        assert last["step"] == 10 and last["loop"]["stopped"] == "plateau"
        assert all(torch.equal(final[k], best[k]) for k in final)
        assert any(not torch.equal(final[k], last["networks"]["student"][k]) for k in final)


def test_a_plateau_stream_needs_validation_folders(stream_root, tmp_path):
    raw = tiny_stream(stream_root, tmp_path, stream=["rain100H"], unseen=[], plateau_window=4)
    with pytest.raises(Exception, match="rain100H/val"):
        train_stream(as_config(raw))


def test_released_code_distillation_trains_as_kd_weight_zero(stream_root, tmp_path):
    """The released code's detached KD term adds a number to the loss and nothing to the gradient: its network is
    the paper loss's with KD weight 0 (the benchmark's KD sweep uses it as the 0 point)."""
    weights = {}
    for label, changes in {"zero": {"kd_weight": 0.0}, "released": {"kd_mode": "released_code"}}.items():
        raw = tiny_stream(stream_root, tmp_path / label, stream=["rain100H", "rain100L"], unseen=[],
                          bank=str(tmp_path / "bank"), **changes)  # fmt: skip
        train_stream(as_config(raw))
        weights[label] = load_state(tmp_path / label / "run" / "task2_rain100L" / "final.pt")["weights"]
    for key, value in weights["zero"].items():
        assert torch.allclose(value, weights["released"][key], atol=1e-6), key


def test_clgid_loss_weighs_its_terms_as_configured():
    from derain.train.continual import RenderedRain, replay_loss

    torch.manual_seed(0)
    student, teacher = (
        build_model("realtime", **TINY_NETWORKS["realtime"]),
        build_model("realtime", **TINY_NETWORKS["realtime"]),
    )
    rainy, clean = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    totals = {}
    for weights in ((0.5, 0.5, 1.0), (2.0, 0.5, 0.1)):
        config = ContinualConfig(data_root="unused", stream=("rain100H",), current_weight=weights[0],
                                 replay_weight=weights[1], kd_weight=weights[2])  # fmt: skip
        loss, parts = replay_loss(student, teacher, [RenderedRain("rain100H", 32)], rainy, clean,
                                  torch.Generator().manual_seed(1), config)  # fmt: skip
        expected = weights[0] * parts["loss_real"] + weights[1] * parts["loss_replay"] + weights[2] * parts["kd"]
        assert loss.item() == pytest.approx(expected, rel=1e-5)
        totals[weights] = loss.item()
    assert totals[(0.5, 0.5, 1.0)] != pytest.approx(totals[(2.0, 0.5, 0.1)])


def test_a_fresh_network_trains_its_minimum_before_the_plateau_may_stop_it(tmp_path):
    """As above, but task 1 starts from a fresh network and must reach 14 iterations before stopping (the stop
    decisions at 10 and 12 wait); task 2 starts from task 1's network and stops at 10 as before."""
    root = tmp_path / "data"
    synthesize(["rain100H", "rain100L"], root, n_train=8, n_test=2, size=(64, 64), seed=3, n_val=2)
    raw = tiny_stream(root, tmp_path, stream=["rain100H", "rain100L"], unseen=[], method="sequential", lr=1.0,
                      iterations=50, plateau_window=4, plateau_gain=100.0, lr_drops=1, validate_every=2,
                      plateau_min_fresh=14, checkpoint_every=3, warmup_epochs=0)  # fmt: skip
    train_stream(as_config(raw))
    stops = [json.loads((tmp_path / "run" / t / "task.json").read_text())["iterations"]
             for t in ("task1_rain100H", "task2_rain100L")]  # fmt: skip
    assert stops == [14, 10]


@pytest.mark.parametrize("memory", ["parametric", "paired_gan"])
def test_clgid_replays_from_the_new_rain_memories(stream_root, tmp_path, memory):
    raw = tiny_stream(stream_root, tmp_path, stream=["rain100H", "rain100L"], unseen=[], iterations=4, memory=memory,
                      parametric={"evaluations": 16, "count": 16},
                      paired_gan={"iterations": 4, "batch_size": 4, "critic_width": 8, "similarity_every": 2,
                                  "similarity_samples": 8, "device": "cpu"})  # fmt: skip
    summary = train_stream(as_config(raw))
    assert summary["tasks_done"] == 2
    entry = tmp_path / "bank" / memory / "rain100H"
    assert (entry / ("rain.json" if memory == "parametric" else "generator.pt")).is_file()
    assert not (tmp_path / "bank" / "rain100L").exists()  # only earlier datasets are memorised


def test_derain_train_fits_each_parametric_memory_from_the_pairs_on_disk(tmp_path):
    """The real-data path: `derain-data synth` writes the seeds' layout, `derain-train` with a continual config
    replaying from the parametric memory fits one memory per earlier dataset from its pairs (JSON + samples)."""
    from derain.data.cli import main as data_main
    from derain.train.cli import main as train_main

    root = tmp_path / "Derain"
    assert data_main(["synth", "--domains", "rain100H,rain100L", "--out", str(root), "--n-train", "6",
                      "--n-test", "2", "--size", "64x64"]) == 0  # fmt: skip
    raw = tiny_stream(root, tmp_path, stream=["rain100H", "rain100L"], unseen=[], iterations=4, memory="parametric",
                      parametric={"evaluations": 12, "count": 16}, kd_weight=0.0)  # fmt: skip
    path = tmp_path / "clgid.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert train_main(["--yaml", str(path)]) == 0
    memory = tmp_path / "bank" / "parametric" / "rain100H"
    saved = json.loads((memory / "rain.json").read_text())
    assert saved["parametric_rain"]["layers"] >= 1 and saved["train_dir"].endswith("rain100H/train")
    assert (memory / "samples.png").is_file() and not (tmp_path / "bank" / "parametric" / "rain100L").exists()
    assert (tmp_path / "run" / "task2_rain100L" / "final.pt").is_file()
