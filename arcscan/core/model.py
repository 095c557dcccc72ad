"""The arc classifier: torchvision's ResNet18 with one output score for a 32x32 patch.

Stem choice (measured on 2 CPU cores, batch of 96 patches, see README "Model"):
torchvision's stem is a 7x7 stride-2 convolution for 3-channel 224x224 photos. Our input is
one channel of 32x32 intensities and no pretrained weights can be fetched offline, so the
stem is a single-channel 3x3 convolution, stride 2, followed by the usual max-pool: the
overall stride stays 4 (a 32x32 patch is 8x8 at layer1, 1x1 at layer4, like torchvision's),
which keeps a training step at ~130 ms and a patch at ~0.2 ms. A CIFAR-style stem (stride 1,
no max-pool) was 8x slower to train and 20x slower to scan for the same input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from torch import nn

from arcscan.core.preprocess import PreprocessConfig


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network around a state_dict."""

    patch_size: int = 32
    in_channels: int = 1
    stem_stride: int = 2


def build_model(config: ModelConfig = ModelConfig()) -> nn.Module:
    """ResNet18 (torchvision) with a one-channel 3x3 stem and a single logit output."""
    model = torchvision.models.resnet18(weights=None, num_classes=1)
    model.conv1 = nn.Conv2d(
        config.in_channels, 64, kernel_size=3, stride=config.stem_stride, padding=1, bias=False
    )
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


class Checkpoint(NamedTuple):
    """A trained classifier with what it was trained with: its architecture (``model_args``,
    as nanoGPT stores them) and the normalisation of its patches (``preprocess``; None for a
    checkpoint that predates it, when the caller's settings apply)."""

    model: nn.Module
    model_args: ModelConfig
    preprocess: PreprocessConfig | None


def save_checkpoint(path: str | Path, model: nn.Module, model_args: ModelConfig, preprocess: PreprocessConfig | None = None) -> Path:
    """Save the state_dict with the settings that rebuild and feed it (plain tensors, numbers
    and lists only, so it loads with ``weights_only=True``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"model_args": asdict(model_args), "state_dict": model.state_dict()}
    if preprocess is not None:
        record["preprocess"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(preprocess).items()}
    torch.save(record, path)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from a checkpoint without executing pickled code; eval mode. Older
    checkpoints stored the model arguments under ``config``, a fixed disc (``fov_radius``),
    no flattening (``min_range``) and no horizon glow (``horizon_glow``)."""
    record = torch.load(Path(path), map_location=device, weights_only=True)
    model_args = ModelConfig(**record.get("model_args", record.get("config", {})))
    model = build_model(model_args)
    model.load_state_dict(record["state_dict"])
    stored = dict(record.get("preprocess") or {})
    if "fov_radius" in stored:  # older checkpoints: a fixed 256 x 256 THEMIS disc of that radius
        stored["sky_radius"] = stored.pop("fov_radius")
        stored.pop("frame_shape", None), stored.pop("fov_center", None)
    if "min_range" in stored:  # older checkpoints: unflattened, a stretch floor in counts (now in noise sigmas)
        stored.pop("min_range")
        stored["flatten_sigma"] = 0.0
    if stored:
        stored.setdefault("horizon_glow", 0.0)  # older checkpoints: trained without the horizon glow removed
    preprocess = PreprocessConfig(**stored) if stored else None
    return Checkpoint(model.to(device).eval(), model_args, preprocess)


def export_onnx(model: nn.Module, config: ModelConfig, path: str | Path) -> Path:
    """Export to ONNX (TorchScript exporter; batch dimension dynamic)."""
    path = Path(path)
    example = torch.zeros(1, config.in_channels, config.patch_size, config.patch_size)
    model = model.eval().to("cpu")
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["patches"],
        output_names=["scores"],
        dynamic_axes={"patches": {0: "batch"}, "scores": {0: "batch"}},
        dynamo=False,
    )
    return path


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
