from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from derain.data import (
    RAIN_DOMAINS,
    DatasetError,
    ImageReadError,
    PairedDataset,
    UnpairedDataset,
    match_pairs,
    paired_folder,
    read_image,
    render_rain,
    write_image,
)
from derain.data.augment import dihedral, random_crop
from derain.data.photos import TEST_PHOTOS, TRAIN_PHOTOS, backgrounds
from derain.registry import UnknownNameError


def write_pairs(root, rainy_names, clean_names, size=(12, 10)):
    rng = np.random.default_rng(0)
    for folder, names in (("rain", rainy_names), ("norain", clean_names)):
        for name in names:
            write_image(root / folder / name, rng.integers(0, 255, (*size, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("rainy", "clean", "expected"),
    [
        (["1.png", "2.png"], ["1.png", "2.png"], {"1.png": "1.png", "2.png": "2.png"}),
        (["rain-001.png", "rain-002.png"], ["norain-001.png", "norain-002.png"],
         {"rain-001.png": "norain-001.png", "rain-002.png": "norain-002.png"}),
        (["901_1.jpg", "901_2.jpg", "901_14.jpg", "902_1.jpg"], ["901.jpg", "902.jpg"],
         {"901_1.jpg": "901.jpg", "901_2.jpg": "901.jpg", "901_14.jpg": "901.jpg", "902_1.jpg": "902.jpg"}),
    ],
)  # fmt: skip
def test_naming_conventions_of_public_sets(tmp_path, rainy, clean, expected):
    write_pairs(tmp_path, rainy, clean)
    pairs = match_pairs(tmp_path / "rain", tmp_path / "norain")
    assert {p.rainy.name: p.clean.name for p in pairs} == expected


def test_missing_partners_are_named(tmp_path):
    write_pairs(tmp_path, ["1.png", "2.png", "7.png"], ["1.png", "2.png", "3.png"])
    with pytest.raises(DatasetError) as error:
        match_pairs(tmp_path / "rain", tmp_path / "norain")
    assert "7.png" in str(error.value) and "3.png" in str(error.value)


def test_unreadable_and_mismatched_images_fail_before_training(tmp_path):
    write_pairs(tmp_path, ["1.png", "2.png"], ["1.png"], size=(12, 10))
    write_image(tmp_path / "norain" / "2.png", np.zeros((14, 10, 3), np.uint8))
    (tmp_path / "rain" / "3.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "norain" / "3.png").write_bytes(b"")
    with pytest.raises(DatasetError) as error:
        PairedDataset(tmp_path, patch_size=8)
    message = str(error.value)
    assert "unreadable" in message and "3.png" in message
    assert "2.png (12, 10) vs 2.png (14, 10)" in message


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        paired_folder(tmp_path / "Rain100H" / "train")


def test_corrupt_image_error_names_the_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="x.png"):
        read_image(tmp_path / "x.png")


def test_crops_reflect_pad_small_images_and_are_deterministic(synthetic_root):
    dataset = PairedDataset(synthetic_root / "rain100L" / "train", patch_size=80, seed=3)  # images are 64x64
    first, again = dataset[2], dataset[2]
    assert first["rainy"].shape == (3, 80, 80)
    assert torch.equal(first["rainy"], again["rainy"]) and torch.equal(first["clean"], again["clean"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[2]["rainy"], first["rainy"])


def test_crop_and_augmentation_keep_pairs_aligned():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for seed in range(5):
        a, b = random_crop([image, image.copy()], 8, np.random.default_rng(seed))
        assert np.array_equal(a, b)
    variants = {dihedral(image[:16, :16], mode).tobytes() for mode in range(8)}
    assert len(variants) == 8  # the 8 flips/rotations are distinct on a generic image


def test_rgsud_reader_draws_clean_images_independently(tmp_path):
    write_pairs(tmp_path, [f"{i}.png" for i in range(4)], [f"c{i}.png" for i in range(6)], size=(40, 40))
    dataset = UnpairedDataset(tmp_path / "rain", tmp_path / "norain", patch_size=32, seed=1)
    sample = dataset[1]
    assert sample["rainy"].shape == sample["clean"].shape == (3, 32, 32)
    assert sample["rainy_index"] == 1 and len(dataset) == 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        UnpairedDataset(tmp_path / "rain", tmp_path / "empty")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        UnpairedDataset(tmp_path / "missing", tmp_path / "norain")


def test_photo_split_keeps_test_scenes_out_of_training():
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    train = list(backgrounds("train", 16, 48, 48, seed=0))
    assert len({b.tobytes() for b in train}) == 16  # distinct backgrounds
    assert np.array_equal(train[3], list(backgrounds("train", 4, 48, 48, seed=0))[3])


def test_every_domain_renders_deterministically_on_any_size():
    clean = torch.rand(2, 3, 40, 56)
    for name in RAIN_DOMAINS:
        a = render_rain(clean, name, seed=5)
        b = render_rain(clean, name, seed=5)
        assert torch.equal(a, b), name
        assert a.shape == clean.shape and 0 <= a.min() and a.max() <= 1
        assert not torch.equal(a, render_rain(clean, name, seed=6)), name
    with pytest.raises(UnknownNameError, match="rain100H"):
        render_rain(clean, "rain100h")


def _mean_psnr(name: str, clean: torch.Tensor) -> float:
    rainy = render_rain(clean, name, seed=0)
    mse = (rainy - clean).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse)).mean())


def test_domains_order_by_severity():
    clean = torch.stack(
        [torch.from_numpy(b).permute(2, 0, 1).float() / 255 for b in backgrounds("test", 6, 128, 128, 0)]
    )
    score = {name: _mean_psnr(name, clean) for name in RAIN_DOMAINS}
    assert score["rain100H"] < score["rain1400"] < score["rain100L"]
    assert score["rain1200_heavy"] < score["rain1200_medium"] < score["rain1200_light"]


def test_rain_is_achromatic_streak_structure():
    clean = torch.full((1, 3, 128, 128), 0.3)
    rain = render_rain(clean, "rain100L", seed=1) - clean
    assert torch.allclose(rain[:, 0], rain[:, 1]) and torch.allclose(rain[:, 1], rain[:, 2])
    assert (rain > 0.05).float().mean() > 0.005  # some streaks were drawn


def test_synth_cli_writes_the_seeds_layout(tmp_path):
    from derain.data.cli import main

    assert (
        main(
            [
                "synth",
                "--domains",
                "rain1400,real_like",
                "--out",
                str(tmp_path),
                "--n-train",
                "3",
                "--n-test",
                "2",
                "--size",
                "32x48",
            ]
        )
        == 0
    )
    for domain in ("rain1400", "real_like"):
        pairs = paired_folder(tmp_path / domain / "train")
        assert len(pairs) == 3 and read_image(pairs[0].rainy).shape == (32, 48, 3)
        assert len(paired_folder(tmp_path / domain / "test")) == 2
        for split in ("train", "test"):
            scenes = json.loads((tmp_path / domain / split / "scenes.json").read_text())  # provenance per pair
            names = sorted(p.name for p in (tmp_path / domain / split / "norain").iterdir())
            assert list(scenes) == names
            if split == "test":
                assert list(scenes.values()) == list(TEST_PHOTOS[:2])
            else:  # data v2: dead-leaves scenes mixed with training photos, never a test photo
                assert set(scenes.values()) <= {*TRAIN_PHOTOS, "dead_leaves"}
    assert main(["synth", "--domains", "nope", "--out", str(tmp_path)]) == 2


def test_synthetic_video_is_temporally_coherent():
    from derain.data.video import SyntheticRainVideo

    video = SyntheticRainVideo(width=96, height=64, frames=3, seed=2)
    frames = list(video)
    assert len(frames) == 3 and frames[0].rainy.shape == (64, 96, 3) and frames[0].rainy.dtype == np.uint8
    # Rain moves between frames (the rain layer changes) but smoothly: consecutive frames are closer to each
    # other than frames of an independent rain draw.
    rain = [f.rainy.astype(np.float32) - f.clean for f in frames]
    other = SyntheticRainVideo(width=96, height=64, frames=1, seed=9).frame(1)
    assert not np.array_equal(rain[0], rain[1])
    assert np.abs(frames[1].rainy.astype(np.float32) - frames[0].rainy).mean() < 40
    assert np.array_equal(video.frame(1).rainy, frames[1].rainy)
    assert other.rainy.shape == frames[0].rainy.shape
