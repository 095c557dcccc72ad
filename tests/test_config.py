"""One source of truth for settings: params.yaml builds every section, the dataclass defaults
equal the shipped params.yaml, the patch size is set once, and a checkpoint carries what it
was trained with."""

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from arcscan.config import Settings, load_params, load_settings, settings_from
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from arcscan.core.preprocess import PreprocessConfig
from arcscan.core.segment import ScanConfig
from arcscan.errors import InputError
from arcscan.io.frames import Frame

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_equals_the_library_defaults():
    shipped = load_settings(ROOT / "params.yaml")
    # the imager profiles are this project's instruments and files, not knobs: the library has none
    assert replace(shipped, sky=replace(shipped.sky, imagers=(), base_dir=".")) == Settings()
    assert [p.name for p in shipped.sky.imagers] == ["themis-gako", "dasc-pkr", "synthetic"]


def test_every_section_of_params_yaml_is_built():
    params = load_params(ROOT / "params.yaml")
    assert set(params) == {field for field in Settings.__dataclass_fields__}


def test_unknown_keys_and_sections_are_refused():
    with pytest.raises(InputError, match="unknown parameters \\['strid'\\]"):
        settings_from({"scan": {"strid": 8}})
    with pytest.raises(InputError, match="unknown sections \\['scann'\\]"):
        settings_from({"scann": {}})


def test_the_patch_size_is_set_once():
    settings = settings_from({"patches": {"size": 24}})
    assert settings.model.patch_size == settings.scan.patch_size == 24
    with pytest.raises(InputError, match="patch_size follows patches.size"):
        settings_from({"scan": {"patch_size": 16}})


def test_a_checkpoint_carries_its_model_arguments_and_normalisation(tmp_path):
    preprocess = replace(PreprocessConfig(), sky_radius=50.0, high_percentile=99.0)
    path = save_checkpoint(tmp_path / "model.pt", build_model(ModelConfig(stem_stride=1)), ModelConfig(stem_stride=1), preprocess)
    checkpoint = load_checkpoint(path)
    assert checkpoint.model_args == ModelConfig(stem_stride=1) and checkpoint.preprocess == preprocess
    segmenter = Settings().segmenter(checkpoint)  # the checkpoint's normalisation wins over the settings'
    assert segmenter.preprocess == preprocess
    result = segmenter(Frame(np.full((128, 128), 3300, np.uint16)))  # no dark surround: the inscribed disc
    assert result.image01.shape == (128, 128) and result.mask.shape == (128, 128) and result.sky_source == "inscribed"
    assert result.scale == pytest.approx(50.0 / (64 * 80 / 90))


def test_a_checkpoint_without_normalisation_takes_the_settings(tmp_path):
    torch.save({"config": {"patch_size": 32, "in_channels": 1, "stem_stride": 2}, "state_dict": build_model().state_dict()}, tmp_path / "old.pt")
    checkpoint = load_checkpoint(tmp_path / "old.pt")  # written before model_args had its name
    assert checkpoint.preprocess is None and Settings().segmenter(checkpoint).preprocess == PreprocessConfig()


def test_a_checkpoint_of_the_fixed_256_px_disc_loads_with_its_radius_as_the_model_scale(tmp_path):
    old = {"frame_shape": [256, 256], "fov_center": [127.5, 127.5], "fov_radius": 100.0, "low_percentile": 1.0, "high_percentile": 99.5, "min_range": 300.0}
    torch.save({"model_args": {"patch_size": 32, "in_channels": 1, "stem_stride": 2}, "state_dict": build_model().state_dict(), "preprocess": old}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").preprocess == replace(PreprocessConfig(), sky_radius=100.0, flatten_sigma=0.0, horizon_glow=0.0)


def test_a_checkpoint_from_before_the_horizon_glow_loads_without_it(tmp_path):
    before = {k: v for k, v in asdict(PreprocessConfig()).items() if k != "horizon_glow"}
    torch.save({"model_args": {"patch_size": 32, "in_channels": 1, "stem_stride": 2}, "state_dict": build_model().state_dict(), "preprocess": before}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").preprocess == replace(PreprocessConfig(), horizon_glow=0.0)
    saved = save_checkpoint(tmp_path / "new.pt", build_model(), ModelConfig(), PreprocessConfig())
    assert load_checkpoint(saved).preprocess.horizon_glow == PreprocessConfig().horizon_glow > 0


def test_a_scan_with_another_patch_size_than_the_trained_one_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", build_model(), ModelConfig())
    settings = replace(Settings(), scan=ScanConfig(patch_size=16))
    with pytest.raises(InputError, match="scan patch size 16 differs from the 32 px patches the model was trained on"):
        settings.segmenter(load_checkpoint(path))
