"""Patch augmentation: ranges respected, reproducible, orientation truly randomised."""

import torch

from arcscan.core.augment import AugmentConfig, augment


def stripes(n: int) -> torch.Tensor:
    x = torch.zeros(n, 1, 32, 32)
    x[:, :, 14:18, :] = 0.8  # an east-west band through the centre
    return x


def test_disabled_is_the_identity_and_enabled_stays_in_range_and_is_seeded():
    x = torch.rand(64, 1, 32, 32)
    assert augment(x, AugmentConfig(enabled=False), torch.Generator().manual_seed(0)) is x
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1


def test_rotation_turns_bands_to_every_orientation():
    quiet = AugmentConfig(gain=(1, 1), offset=0, gamma=(1, 1), blur_probability=0, noise_sigma=0, scale=(1, 1))
    out = augment(stripes(400), quiet, torch.Generator().manual_seed(2))[:, 0]
    rows, cols = out.mean(2).std(1), out.mean(1).std(1)  # band across: rows vary; band along: columns vary
    assert (cols > rows).float().mean() > 0.25 and (rows > cols).float().mean() > 0.25
    fixed = augment(stripes(50), AugmentConfig(rotate=False, **{k: getattr(quiet, k) for k in ("gain", "offset", "gamma", "blur_probability", "noise_sigma", "scale")}), torch.Generator().manual_seed(2))[:, 0]
    assert (fixed.mean(2).std(1) > fixed.mean(1).std(1)).all()  # flips alone keep it east-west


def test_intensity_changes_vary_brightness_and_contrast():
    x = torch.full((200, 1, 32, 32), 0.5)
    out = augment(x, AugmentConfig(rotate=False, blur_probability=0, noise_sigma=0), torch.Generator().manual_seed(3))
    means = out.mean((1, 2, 3))
    assert means.std() > 0.05 and means.min() < 0.45 and means.max() > 0.55
