"""Training-time augmentation of patches: what differs between imagers, nights and skies.

Arcs cross a patch at any angle (imagers are mounted differently: DASC's arcs run top to
bottom, THEMIS's across) and at somewhat different scales (lenses, heights, distance from
zenith); cameras differ in gain, offset and response curve (raw counts, rescaled products,
8-bit JPEG), in focus and in noise. Each batch gets, per patch: a random flip, a rotation by
any angle with a random scale (reflected at the border), a random gain and offset, a gamma,
sometimes a Gaussian blur, and Gaussian noise; values are clipped back to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of each random change; ``enabled: false`` trains on the patches as they are."""

    enabled: bool = True
    rotate: bool = True  # any angle (flips are always drawn when enabled)
    scale: tuple[float, float] = (0.8, 1.25)
    gain: tuple[float, float] = (0.7, 1.3)
    offset: float = 0.05  # +- this, in [0, 1] units
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 1.5)  # pixels
    noise_sigma: float = 0.03  # up to this, in [0, 1] units


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator)


def _log_uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, (math.log(bounds[0]), math.log(bounds[1])), generator))


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each patch blurred by its own Gaussian (separable, 7-tap, reflected border)."""
    taps = torch.arange(-3, 4, dtype=x.dtype)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (n, 7)
    n, c, h, w = x.shape
    grouped = x.reshape(1, n * c, h, w)
    rows = F.conv2d(F.pad(grouped, (3, 3, 0, 0), mode="reflect"), kernel.repeat_interleave(c, 0)[:, None, None, :], groups=n * c)
    both = F.conv2d(F.pad(rows, (0, 0, 3, 3), mode="reflect"), kernel.repeat_interleave(c, 0)[:, None, :, None], groups=n * c)
    return both.reshape(n, c, h, w)


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A randomly changed copy of a batch of patches (n, 1, s, s) in [0, 1]."""
    if not config.enabled:
        return x
    n = len(x)
    flip_h = torch.rand(n, generator=generator) < 0.5
    flip_v = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    angle = 2 * math.pi * torch.rand(n, generator=generator) if config.rotate else torch.zeros(n)
    zoom = _log_uniform(n, config.scale, generator)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = _log_uniform(n, config.gain, generator)[:, None, None, None]
    offset = _uniform(n, (-config.offset, config.offset), generator)[:, None, None, None]
    gamma = _log_uniform(n, config.gamma, generator)[:, None, None, None]
    x = (x * gain + offset).clamp(0, 1) ** gamma
    blurred = torch.rand(n, generator=generator) < config.blur_probability
    if blurred.any():
        x = x.clone()
        x[blurred] = _blur(x[blurred], _uniform(int(blurred.sum()), config.blur_sigma, generator))
    noise = config.noise_sigma * torch.rand(n, generator=generator)[:, None, None, None]
    return (x + noise * torch.randn(x.shape, generator=generator)).clamp(0, 1)
