from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from derain.quality import psnr, rgb_to_y, ssim, uint8_metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(7)
    clean = rng.random((3, 3, 48, 40))
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)
    return torch.from_numpy(noisy), torch.from_numpy(clean)


def test_rgb_psnr_matches_scikit_image(pair):
    pred, target = pair
    ours = psnr(pred, target, "rgb")
    for i in range(3):
        assert float(ours[i]) == pytest.approx(
            peak_signal_noise_ratio(target[i].numpy(), pred[i].numpy(), data_range=1.0), abs=1e-9
        )


def test_y_conversion_matches_scikit_image(pair):
    image = pair[0][0].permute(1, 2, 0).numpy()
    assert np.allclose(rgb_to_y(pair[0][:1])[0, 0].numpy(), rgb2ycbcr(image)[..., 0], atol=1e-6)


def test_y_psnr_and_ssim_match_scikit_image_matlab_settings(pair):
    pred, target = pair
    y_pred, y_target = rgb_to_y(pred)[:, 0].numpy(), rgb_to_y(target)[:, 0].numpy()
    ours_psnr, ours_ssim = psnr(pred, target, "y"), ssim(pred, target, "y")
    for i in range(3):
        expected = structural_similarity(
            y_target[i], y_pred[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert float(ours_ssim[i]) == pytest.approx(expected, abs=1e-7)
        assert float(ours_psnr[i]) == pytest.approx(
            peak_signal_noise_ratio(y_target[i], y_pred[i], data_range=255), abs=1e-9
        )


def test_rgb_ssim_is_zero_padded_gaussian_ssim(pair):
    """CLGID's RGB SSIM: per-channel Gaussian SSIM with zero-padded 'same' filtering; oracle: OpenCV filter2D."""
    pred, target = pair
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def filt(x):
        return cv2.filter2D(x, -1, window, borderType=cv2.BORDER_CONSTANT)

    values = []
    for c in range(3):
        x, y = pred[0, c].numpy(), target[0, c].numpy()
        mx, my = filt(x), filt(y)
        sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        values.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())
    assert float(ssim(pred[:1], target[:1], "rgb")[0]) == pytest.approx(np.mean(values), abs=1e-7)
    # Not the same number as the 'valid' convention: the border handling is part of the convention.
    assert float(ssim(pred[:1], target[:1], "rgb")[0]) != pytest.approx(
        structural_similarity(target[0].numpy(), pred[0].numpy(), channel_axis=0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0), abs=1e-6)  # fmt: skip


def test_identical_images_and_bad_shapes():
    image = torch.rand(1, 3, 16, 16)
    assert float(ssim(image, image, "y")[0]) == pytest.approx(1.0)
    assert torch.isinf(psnr(image, image))
    with pytest.raises(ValueError, match="one shape"):
        psnr(image, torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="unknown metric convention"):
        psnr(image, image, "lab")


def test_uint8_metrics_has_both_conventions():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    values = uint8_metrics(a, b)
    assert set(values) == {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}
    assert values["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)


def test_the_ssim_loss_is_the_metric_ssim():
    """One SSIM: the training loss is -log10 of the RGB metric's mean (same window, padding and constants)."""
    from derain.quality.metrics import ssim
    from derain.train.losses import ssim_loss

    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 24, 24, dtype=torch.float64), torch.rand(2, 3, 24, 24, dtype=torch.float64)
    assert float(ssim_loss(pred, target)) == pytest.approx(-math.log10(float(ssim(pred, target, "rgb").mean())))
    assert torch.allclose(ssim(pred, target, "y"), ssim(pred, target, "y", separable=False))
