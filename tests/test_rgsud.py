"""RGSUD: offline scorers, reward pool, losses, the unpaired networks, and the two-stage trainer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import TINY_NETWORKS

from derain.data.datasets import PairedDataset, UnpairedDataset
from derain.models import CheckpointError, build_model, save_checkpoint
from derain.models.registry import ModelSpec
from derain.quality import psnr
from derain.quality.niqe import NIQEModel, _aggd, _ggd
from derain.quality.scorers import NIQEScorer, fit_scorer, spearman
from derain.train.losses import channel_consistency, psnr_loss, ssim_loss
from derain.train.rgsud import RewardPool, UnpairedConfig, load_scorer, train_unpaired

TINY_PARTS = {"transfer": {"width": 8, "blocks": 1}, "discriminator": {"ndf": 8}, "dem": {"width": 8, "levels": 3}}


@pytest.fixture(scope="module")
def unpaired_root(tmp_path_factory):
    from derain.data.synth import synthesize

    root = tmp_path_factory.mktemp("unpaired")
    synthesize(["rain100L"], root, n_train=8, n_test=3, size=(96, 96), seed=5)
    return root / "rain100L"


def test_ggd_and_aggd_fits_recover_known_shapes():
    gen = torch.Generator().manual_seed(0)
    gaussian = torch.randn(2, 100_000, generator=gen).double()
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((2, 100_000)).double()
    assert _ggd(gaussian)[:, 0].sub(2).abs().max() < 0.05
    assert _ggd(laplace)[:, 0].sub(1).abs().max() < 0.05
    alpha, mean, left, right = _aggd(gaussian)[0]
    assert abs(alpha - 2) < 0.05 and abs(mean) < 0.02 and abs(left - 1) < 0.03 and abs(right - 1) < 0.03


def test_niqe_prefers_clean_over_rainy_and_blurred(tmp_path):
    from derain.data.io import to_tensor
    from derain.data.photos import SCENE_PHOTOS, photo, random_background
    from derain.data.synth import synthesize

    root = synthesize(["rain100H"], tmp_path, n_train=0, n_test=6, size=(128, 128), seed=2)["rain100H"]
    test = PairedDataset(root / "test")
    # NIQE's model of natural statistics is fitted on photos of whole scenes (fitted on dead-leaves scenes or
    # texture close-ups, it prefers rainy photos to clean ones).
    rng = np.random.default_rng(2)
    fit = [random_background(photo(SCENE_PHOTOS[i % len(SCENE_PHOTOS)]), 128, 128, rng) for i in range(16)]
    model = NIQEModel.fit([to_tensor(image) for image in fit], block=32)
    clean = torch.stack([test[i]["clean"] for i in range(len(test))])
    rainy = torch.stack([test[i]["rainy"] for i in range(len(test))])
    blurred = torch.nn.functional.avg_pool2d(clean, 5, 1, 2, count_include_pad=False)
    assert model.score(clean).mean() < model.score(rainy).mean()
    assert model.score(clean).mean() < model.score(blurred).mean()
    with pytest.raises(ValueError, match="at least 64x64"):
        model.score(torch.rand(1, 3, 48, 48))


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic, abs=1e-9)


def test_losses():
    x, y = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    assert psnr_loss(x, y).item() == pytest.approx(-psnr(x, y).mean().item(), abs=1e-4)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6) and ssim_loss(x, y) > 0
    grey = x + torch.rand(3, 1, 32, 32)
    assert channel_consistency(x, grey).item() == pytest.approx(0.0, abs=1e-6)
    assert channel_consistency(x, y) > 0.1


def test_rgsud_networks_shapes():
    transfer = build_model("rain_transfer", **TINY_PARTS["transfer"])
    critic = build_model("patch_discriminator", **TINY_PARTS["discriminator"])
    dem = build_model("dem_unet", **TINY_PARTS["dem"])
    x = torch.rand(2, 3, 64, 64)
    assert transfer(x, x).shape == x.shape and dem(x).shape == x.shape
    assert critic(x).shape[:2] == (2, 1)


def test_reward_crops_follow_the_rainy_window(unpaired_root):
    dataset = UnpairedDataset(unpaired_root / "train" / "rain", unpaired_root / "train" / "norain", patch_size=48)
    from derain.data.io import read_image

    dataset.rewards = [read_image(p) for p in dataset.rainy_files]  # reward = the rainy image itself
    dataset.rewards[1] = None
    sample = dataset[0]
    assert torch.equal(sample["reward"], sample["rainy"]) and sample["has_reward"]
    assert not dataset[1]["has_reward"] and dataset[1]["reward"].abs().sum() == 0


def test_reward_pool_keeps_the_better_output_and_rejects_colour_drift(unpaired_root):
    train = PairedDataset(unpaired_root / "train")
    scorer = NIQEScorer(NIQEModel.fit([train[i]["clean"] for i in range(len(train))], block=32))
    files = sorted((unpaired_root / "test" / "rain").iterdir())
    clean_files = sorted((unpaired_root / "test" / "norain").iterdir())
    identity = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=0.0)
    pool = RewardPool(len(files))
    first = pool.sweep(identity, files, scorer, torch.device("cpu"), 0, 0.03, clean_files)
    assert first["filled"] == len(files) and first["replaced"] == 0
    again = pool.sweep(identity, files, scorer, torch.device("cpu"), 1, 0.03, clean_files)
    assert again["replaced"] == 0  # not strictly better: kept
    tinted = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=0.0)
    with torch.no_grad():
        tinted.tail.bias.copy_(torch.tensor([0.3, -0.3, 0.0] * 4))  # a strong colour cast
    cast = pool.sweep(tinted, files, scorer, torch.device("cpu"), 2, 0.03, clean_files)
    assert cast["replaced"] == 0
    assert pool.history[-1]["mean_score"] == pytest.approx(first["mean_score"])


def _config(root, out, **changes) -> UnpairedConfig:
    values = dict(
        rain_data=str(root / "train" / "rain"),
        clean_data=str(root / "train" / "norain"),
        test_data=str(root / "test"),
        model=ModelSpec("realtime", TINY_NETWORKS["realtime"]),
        out=str(out),
        patch_size=48,
        batch_size=2,
        stage1_iterations=4,
        stage2_iterations=4,
        plugin_warmup=0,
        scorer="niqe",  # fitted in a second (the default rain CNN trains a classifier)
        sweep_every=2,
        val_every=2,
        niqe_block=32,
        checkpoint_every=2,
        log_every=1,
        device="cpu",
        **TINY_PARTS,
    )
    values.update(changes)
    return UnpairedConfig(**values)


def test_two_stages_run_and_record_rewards(unpaired_root, tmp_path):
    summary = train_unpaired(_config(unpaired_root, tmp_path / "run", snapshots=True))
    assert summary["stages"]["stage1"]["done"] and summary["stages"]["stage2"]["done"]
    history = summary["reward_history"]
    assert [h["stage"] for h in history if "stage" in h] == ["stage1", "stage1", "stage2", "stage2"]
    assert all(h["filled"] == 8 for h in history)
    scores = [h["mean_score"] for h in history]
    assert scores == sorted(scores, reverse=True)  # the pool only ever keeps better-scored rewards
    assert len(list((tmp_path / "run" / "snapshots").glob("*.pt"))) == 4
    assert (tmp_path / "run" / "stage2_final.pt").is_file() and (tmp_path / "run" / "reward_scores.png").is_file()
    assert load_scorer(tmp_path / "run" / "scorer.pt").name == "niqe"
    with pytest.raises(FileExistsError):
        train_unpaired(_config(unpaired_root, tmp_path / "run"))
    resumed = train_unpaired(_config(unpaired_root, tmp_path / "run"), resume="auto")  # finished: nothing redone
    assert resumed["stages"]["stage2"]["iterations"] == 4
    log_rows = (tmp_path / "run" / "stage2_log.csv").read_text().splitlines()
    assert "self_reinforcement" in log_rows[0]


def test_plug_in_fine_tunes_a_supervised_network(unpaired_root, tmp_path):
    pretrained = save_checkpoint(tmp_path / "sup.pt", build_model("realtime", **TINY_NETWORKS["realtime"]))
    summary = train_unpaired(_config(unpaired_root, tmp_path / "plug", init=str(pretrained)))
    assert list(summary["stages"]) == ["stage2"]
    assert summary["reward_history"][0]["step"] == 0  # the pool is seeded with the pretrained outputs
    validation = summary["stages"]["stage2"]["validation"]
    assert [v["step"] for v in validation] == [0, 2, 4]  # the pretrained network is validated before it trains
    best = torch.load(tmp_path / "plug" / "stage2_best.pt", weights_only=True)
    assert best["validation"]["psnr_rgb"] == pytest.approx(max(v["psnr_rgb"] for v in validation))
    other = save_checkpoint(tmp_path / "p.pt", build_model("prenet", **TINY_NETWORKS["prenet"]))
    with pytest.raises(CheckpointError, match="prenet"):
        train_unpaired(_config(unpaired_root, tmp_path / "bad", init=str(other)))


def test_plug_in_warmup_trains_the_auxiliaries_and_holds_the_derainer(unpaired_root, tmp_path):
    from derain.train.state import load_state

    network = build_model("realtime", **TINY_NETWORKS["realtime"])
    pretrained = save_checkpoint(tmp_path / "sup.pt", network)
    config = _config(unpaired_root, tmp_path / "warm", init=str(pretrained), plugin_warmup=3, stage2_iterations=0)
    summary = train_unpaired(config)
    assert summary["stages"]["stage2"]["warmup_iterations"] == 3 and summary["stages"]["stage2"]["iterations"] == 0
    state = load_state(tmp_path / "warm" / "stage2_last.pt")
    assert state["step"] == 3
    held = load_state(tmp_path / "warm" / "stage2_final.pt")["weights"]
    for key, value in network.state_dict().items():
        assert torch.equal(held[key], value), key  # frozen: not one weight (nor a norm statistic) moved
    untouched = _config(unpaired_root, tmp_path / "none", init=str(pretrained), stage2_iterations=0)
    train_unpaired(untouched)  # no iteration at all: its state holds the auxiliaries as built (same seed)
    start = load_state(tmp_path / "none" / "stage2_last.pt")["networks"]
    for name in ("transfer", "dem", "critic"):
        assert any(not torch.equal(state["networks"][name][k], v) for k, v in start[name].items()), name
    moved = train_unpaired(_config(unpaired_root, tmp_path / "moved", init=str(pretrained), plugin_warmup=3))
    assert moved["stages"]["stage2"]["iterations"] == 4
    trained = load_state(tmp_path / "moved" / "stage2_final.pt")["weights"]
    assert any(not torch.equal(trained[k], v) for k, v in network.state_dict().items())


def test_combined_scorer_saves_and_loads(unpaired_root, tmp_path):
    train = PairedDataset(unpaired_root / "train")
    clean = [train[i]["clean"] for i in range(len(train))]
    rainy = [train[i]["rainy"] for i in range(len(train))]
    scorer = fit_scorer("combined", clean, rainy, block=32, classifier_steps=20)
    scorer.save(tmp_path / "s.pt")
    again = load_scorer(tmp_path / "s.pt")
    images = torch.stack(rainy[:2])
    assert torch.allclose(scorer.score(images), again.score(images))
    assert isinstance(again.state()["niqe_scale"], float)  # a plain number: the file reads weights-only


def test_rgsud_killed_mid_epoch_resumes_to_the_same_networks(unpaired_root, tmp_path):
    """Killed after its first checkpoint (step 3 of stage 1; 8 images, batch 2: mid-epoch) and resumed, the run ends
    with the same de-rainer and reward pool as an uninterrupted one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from derain.config import config_to_dict
    from derain.train.state import load_state

    def config_file(out):
        raw = config_to_dict(_config(unpaired_root, out, checkpoint_every=3, stage1_iterations=6,
                                     stage2_iterations=4))  # fmt: skip
        path = out.parent / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump({"trainer": "unpaired", **raw}))
        return path

    command = [sys.executable, "-m", "derain.train.cli", "--yaml"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, str(config_file(killed))], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not (killed / "stage1_last.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    at = load_state(killed / "stage1_last.pt")
    assert at["method"]["stage"] == "stage1" and 0 < at["step"] < 6
    subprocess.run([*command, str(config_file(killed)), "--resume", "auto"], check=True, capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run([*command, str(config_file(straight))], check=True, capture_output=True)
    for name in ("stage1_final.pt", "stage2_final.pt"):
        a, b = load_state(killed / name)["weights"], load_state(straight / name)["weights"]
        for key in b:
            assert torch.allclose(a[key], b[key], atol=1e-6), f"{name} {key}"
