"""Data v2: calibrated additive domains, the natural-photo test set, dead-leaves scenes, the shipped recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.data.photos import TEST_PHOTOS, TRAIN_PHOTOS, photo
from derain.data.rain import RAIN_DOMAINS, SEEN_DOMAINS, UNSEEN_DOMAINS, get_domain, render_rain
from derain.data.scenes import TEST_CROP, SceneSampler, dead_leaves, grid_crops, paired_crops
from derain.models.registry import ModelSpec
from derain.train.shipped import Plateau, ShippedConfig, check, default_domains, train_shipped
from derain.train.testset import batch_metrics, bootstrap_ci


@pytest.mark.parametrize("domain", SEEN_DOMAINS)
def test_dataset_domains_match_their_published_rainy_input_psnr(domain):
    clean, rainy, _ = paired_crops(domain)
    measured = float(batch_metrics(rainy, clean)["psnr_y"].mean())
    assert abs(measured - get_domain(domain).published_psnr_y) < 0.5, measured


def test_seen_domains_are_additive_streaks_and_the_held_out_domain_stays_out_of_training():
    clean = torch.rand(2, 3, 64, 64) * 0.8
    for name in SEEN_DOMAINS:
        domain = get_domain(name)
        assert domain.haze == (0.0, 0.0) and domain.splashes == (0.0, 0.0) and not domain.screen and not domain.tint
        rainy = render_rain(clean, name, seed=1)
        assert (rainy >= clean - 1e-6).all(), name  # O = B + R: rain only adds light
    assert set(UNSEEN_DOMAINS) == {"real_like", "storm"}
    assert "storm" not in default_domains() and "randomized" not in default_domains()
    storm = render_rain(torch.full((1, 3, 64, 64), 0.3), "storm", seed=2)
    assert not torch.allclose(storm[:, 0], storm[:, 2])  # tinted streaks
    with pytest.raises(ValueError, match="held-out"):
        check(ShippedConfig(domains=("rain100L", "storm")))


def test_the_test_set_is_non_overlapping_crops_of_photos_no_training_image_comes_from():
    assert not set(TEST_PHOTOS) & set(TRAIN_PHOTOS)
    crops = grid_crops()
    assert len(crops) >= 100
    for scene in TEST_PHOTOS:
        height, width = photo(scene).shape[:2]
        boxes = [(c.top, c.left) for c in crops if c.scene == scene]
        for index, (top, left) in enumerate(boxes):
            assert 0 <= top and top + TEST_CROP <= height and 0 <= left and left + TEST_CROP <= width
            for other_top, other_left in boxes[index + 1 :]:  # every pair: disjoint squares
                assert abs(top - other_top) >= TEST_CROP or abs(left - other_left) >= TEST_CROP
    clean_a, rainy_a, scenes = paired_crops("rain100L")
    clean_b, rainy_b, _ = paired_crops("rain1400")
    assert all(np.array_equal(a, b) for a, b in zip(clean_a, clean_b, strict=True))  # the same clean crops
    assert not np.array_equal(np.stack(rainy_a), np.stack(rainy_b))
    assert len(scenes) == len(crops) and set(scenes) == set(TEST_PHOTOS)
    dry_clean, dry_rainy, _ = paired_crops(None)
    assert all(np.array_equal(a, b) for a, b in zip(dry_clean, dry_rainy, strict=True))


def _spectrum_slope(image: np.ndarray) -> float:
    grey = image.astype(np.float64).mean(axis=2)
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    size = grey.shape[0]
    y, x = np.indices(power.shape) - size // 2
    radius = np.hypot(y, x).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    freqs = np.arange(4, size // 2)
    return float(np.polyfit(np.log(freqs), np.log(radial[freqs]), 1)[0])


def test_dead_leaves_are_deterministic_covered_and_have_a_natural_spectrum():
    a = dead_leaves(128, np.random.default_rng(3))
    assert np.array_equal(a, dead_leaves(128, np.random.default_rng(3)))
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
    assert not np.array_equal(a, dead_leaves(128, np.random.default_rng(4)))
    slopes = [_spectrum_slope(dead_leaves(128, np.random.default_rng(s))) for s in range(6)]
    assert -3.0 < np.median(slopes) < -1.6, slopes  # natural images: power ~ 1/f^2 (defocused ones are steeper)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 500  # textured and coloured, not a few flat shapes


def test_scene_sampler_mixes_sources_by_fraction():
    rng = np.random.default_rng(0)
    only_photos = SceneSampler(photo_fraction=1.0, pool=2, pool_size=64)
    assert {only_photos.sample(48, rng)[1] for _ in range(10)} <= set(TRAIN_PHOTOS)
    only_leaves = SceneSampler(photo_fraction=0.0, pool=2, pool_size=64)
    assert {only_leaves.sample(48, rng)[1] for _ in range(10)} == {"dead_leaves"}
    mixed = SceneSampler(photo_fraction=0.5, pool=2, pool_size=64)
    sources = {mixed.sample(48, rng)[1] == "dead_leaves" for _ in range(30)}
    assert sources == {True, False}
    with pytest.raises(ValueError, match="photo_fraction"):
        SceneSampler(photo_fraction=1.5)


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(10, 2, 20), rng.normal(10, 2, 2000)
    for values in (small, large):
        low, high = bootstrap_ci(values)
        assert low < values.mean() < high
    assert np.diff(bootstrap_ci(large))[0] < np.diff(bootstrap_ci(small))[0] / 4
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_plateau_halves_then_stops():
    rule = Plateau(gain=0.1, window=100, drops_allowed=1)
    assert rule.update(100, 20.0) == "improved"
    assert rule.update(150, 20.05) == "wait"  # below the gain, inside the window
    assert rule.update(200, 20.05) == "drop"  # a window without gain: halve the learning rate
    assert rule.update(250, 20.3) == "improved"
    assert rule.update(350, 20.3) == "stop"


def test_shipped_recipe_trains_resumes_and_stops_at_its_plateau(tmp_path):
    config = ShippedConfig(
        model=ModelSpec("realtime", dict(TINY_NETWORKS["realtime"])), out=str(tmp_path / "run"), pool=4,
        batch_size=4, patch_size=48, val_every=5, val_images=8, max_iterations=10, lr=2e-3, device="cpu",
    )  # fmt: skip
    summary = train_shipped(config)
    assert summary["iterations"] == 10 and summary["stopped"] == "max_iterations"
    assert (tmp_path / "run" / "best.pt").is_file() and list((tmp_path / "run").glob("dead_leaves_pool_4x*.npz"))
    assert "storm" in summary["holdout"] and "storm" not in summary["domains"]
    longer = dataclasses.replace(config, max_iterations=15)
    assert train_shipped(longer, resume="auto")["iterations"] == 15  # continues from iteration 10
    straight = dataclasses.replace(longer, out=str(tmp_path / "straight"))
    train_shipped(straight)  # the resumed run ends with the weights of an uninterrupted one
    from derain.train.state import load_state

    resumed, uninterrupted = (load_state(Path(c.out) / "last.pt")["networks"]["network"] for c in (longer, straight))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    rows = (tmp_path / "run" / "validation.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["5", "10", "15"]
    stalled = dataclasses.replace(longer, max_iterations=200, plateau_gain=50.0, plateau_window=5, lr_drops=1)
    summary = train_shipped(stalled, resume="auto")  # no validation can gain 50 dB: drop once, then stop
    assert summary["stopped"] == "plateau" and summary["lr_drops"] == 1 and summary["iterations"] < 40
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stopped"] == "plateau"


def test_every_registered_domain_has_a_role():
    roles = {get_domain(name).role for name in RAIN_DOMAINS}
    assert roles == {"dataset", "unseen", "training"}
