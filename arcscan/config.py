"""Settings: every section of ``params.yaml``, built and checked once.

Each section becomes the config dataclass of the room that uses it (unknown keys are errors:
a typo in params.yaml must not be silently ignored). The dataclass defaults equal the
shipped params.yaml (``tests/test_config.py`` holds them together). The patch size is set
once, by ``patches.size``: the model's ``patch_size`` and the scan's follow it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from arcscan.core.augment import AugmentConfig
from arcscan.core.fastscan import FastScanConfig
from arcscan.core.geometry import SkyConfig, SkyFinder
from arcscan.core.model import Checkpoint, ModelConfig
from arcscan.core.patches import PatchConfig
from arcscan.core.preprocess import PreprocessConfig
from arcscan.core.segment import CRFConfig, ObjectConfig, ScanConfig, Segmenter
from arcscan.core.train import TrainConfig
from arcscan.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class StarterConfig:
    """The synthetic starter dataset in ``data/`` (``make starter-data`` rebuilds it)."""

    seed: int = 2026
    train_minutes: int = 24
    test_minutes: int = 12
    frames_per_minute: int = 5
    label_seed: int = 7
    train_positive: int = 200
    train_negative: int = 200
    test_positive: int = 300
    test_negative: int = 300


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate stage: sample overlays written and logged."""

    overlays: int = 4


@dataclass(frozen=True)
class RegisterConfig:
    """The registered model's name, the metric promotion compares (higher is better) and the
    metrics a challenger may not be worse on than the champion (the real-frame figures)."""

    model_name: str = "arcscan-arc"
    metric: str = "pixel_iou_crf"
    guards: tuple[str, ...] = ("real_pixel_iou", "real_arcs_found")


@dataclass(frozen=True)
class Settings:
    """All of params.yaml."""

    starter: StarterConfig = StarterConfig()
    sky: SkyConfig = SkyConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    patches: PatchConfig = PatchConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    augment: AugmentConfig = AugmentConfig()
    scan: ScanConfig = ScanConfig()
    crf: CRFConfig = CRFConfig()
    objects: ObjectConfig = ObjectConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    register: RegisterConfig = RegisterConfig()
    archive: FastScanConfig = FastScanConfig()

    def sky_finder(self) -> SkyFinder:
        """What finds the sky of each frame (imager profiles, else the frame itself)."""
        return SkyFinder(self.sky)

    def segmenter(self, checkpoint: Checkpoint) -> Segmenter:
        """The segmenter of a trained model with these scan, CRF and object settings."""
        return Segmenter.from_checkpoint(checkpoint, self.scan, self.crf, self.objects, self.sky, self.preprocess)


def load_params(path: str | Path = "params.yaml") -> dict:
    """The parameters file as a dict."""
    with Path(path).open() as handle:
        return yaml.safe_load(handle) or {}


def build(cls: type[T], section: dict | None, **derived) -> T:
    """A config dataclass from a params section; lists become tuples, unknown keys are errors.
    ``derived`` fields come from elsewhere and may not be set in the section."""
    section = dict(section or {})
    known = {f.name for f in dataclasses.fields(cls)} - set(derived)
    unknown = set(section) - known
    if unknown:
        hint = f" ({', '.join(sorted(derived))} follows patches.size)" if set(derived) & unknown else ""
        raise InputError(f"{cls.__name__}: unknown parameters {sorted(unknown)}{hint}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}, **derived)


def settings_from(params: dict, base_dir: str | Path = ".") -> Settings:
    """Every section of a params dict, built (missing sections take the defaults); relative
    paths in it (imager elevation maps) are taken from ``base_dir``."""
    unknown = set(params) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise InputError(f"params: unknown sections {sorted(unknown)}")
    patches = build(PatchConfig, params.get("patches"))
    return Settings(
        starter=build(StarterConfig, params.get("starter")),
        sky=build(SkyConfig, params.get("sky"), base_dir=str(base_dir)),
        preprocess=build(PreprocessConfig, params.get("preprocess")),
        patches=patches,
        model=build(ModelConfig, params.get("model"), patch_size=patches.size),
        train=build(TrainConfig, params.get("train")),
        augment=build(AugmentConfig, params.get("augment")),
        scan=build(ScanConfig, params.get("scan"), patch_size=patches.size),
        crf=build(CRFConfig, params.get("crf")),
        objects=build(ObjectConfig, params.get("objects")),
        evaluate=build(EvaluateConfig, params.get("evaluate")),
        register=build(RegisterConfig, params.get("register")),
        archive=build(FastScanConfig, params.get("archive")),
    )


def load_settings(path: str | Path = "params.yaml") -> Settings:
    """The settings of a parameters file (relative paths in it are from its folder)."""
    return settings_from(load_params(path), Path(path).parent)
