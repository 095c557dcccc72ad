"""The TorchServe handler without Java: the real ``ts`` Context, request decoding and metrics
cache of a TorchServe worker, a random-weight checkpoint and small synthetic frames.

Every accepted format answers the documented JSON; every bad input answers its 4xx status
with ``{"error": message}`` and the same handler serves the next request.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import png
import pytest
import torch
import ts
import yaml
from ts.context import Context
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.service import Service

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arcscan.config import load_params  # noqa: E402
from arcscan.frames import Frame, Limits, encode_stream0, format_timestamp  # noqa: E402
from arcscan.model import ModelConfig, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from arcscan.segment import Segmenter  # noqa: E402
from serving.handler import ArcscanHandler  # noqa: E402

MODEL_INFO = {"name": "arcscan-arc", "version": "test-1"}
START = datetime(2014, 3, 10, 6, 0, 0, 63119, tzinfo=timezone.utc)
FRAME_KEYS = {"index", "timestamp", "site", "imager", "mask_png", "arc_fraction", "objects", "scan_ms", "crf_ms"}
OBJECT_KEYS = {"area", "length", "mean_width", "orientation_deg", "centroid_x", "centroid_y", "mean_intensity"}


# ----------------------------------------------------------------------------- inputs


def minute(n: int = 2, shape: tuple[int, int] = (256, 256), seed: int = 0, **metadata: str) -> list[Frame]:
    """``n`` frames of noise over a bright disc, with stream0 metadata, 3 s apart."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    disc = ((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2) < (0.45 * min(shape)) ** 2
    frames = []
    for i in range(n):
        image = (3300 + disc * 4000 + rng.normal(0, 200, shape)).clip(0, 65535).astype(np.uint16)
        meta = {
            "Site unique ID": "gill",
            "Imager unique ID": "themis19",
            "Image request start": format_timestamp(START + timedelta(seconds=3 * i)),
            "Ccd background": "3300",
            **metadata,
        }
        frames.append(Frame(image, meta, "synthetic", i))
    return frames


def png16(image: np.ndarray, bitdepth: int = 16) -> bytes:
    buffer = io.BytesIO()
    png.Writer(image.shape[1], image.shape[0], greyscale=True, bitdepth=bitdepth).write(buffer, image.tolist())
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- handler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """What TorchServe unpacks from arcscan.mar: checkpoint, params, model_info.json."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", build_model(ModelConfig()), ModelConfig())
    params = load_params(ROOT / "params.yaml")
    params["scan"]["stride"] = 32  # fewer patches: quality does not matter here, speed does
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "model_info.json").write_text(json.dumps(MODEL_INFO))
    return folder


def make_context(model_dir: Path) -> Context:
    """The Context a TorchServe worker builds (``ts.service.Service``), with its metrics cache."""
    metrics = MetricsCacheYamlImpl(config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "arcscan"
    manifest = {"model": {"modelName": "arcscan", "modelVersion": "test-1", "serializedFile": "model.pt", "handler": "handler.py"}}
    return Context("arcscan", str(model_dir), manifest, 1, None, ts.__version__, metrics=metrics)


@pytest.fixture(scope="module")
def served(model_dir):
    """One initialised handler and its context, shared like a worker shares them."""
    context = make_context(model_dir)
    handler = ArcscanHandler()
    handler.initialize(context)
    return handler, context


def request(body, filename: str | None = None, content_type: str = "application/octet-stream", **headers: str) -> dict:
    """One request as the frontend sends it to a worker (``Service.retrieve_data_for_inference``)."""
    if filename is not None:
        headers["X-Filename"] = filename
    return {"body": body, "content_type": content_type, "headers": headers}


def call(served, *requests: dict) -> list[tuple[int, dict]]:
    """Run a batch through ``handle`` like ``Service.predict``; (status, JSON answer) each."""
    handler, context = served
    batch = [
        {
            "requestId": f"request-{i}".encode(),
            "parameters": [{"name": "body", "contentType": r["content_type"], "value": r["body"]}],
            "headers": [{"name": k.encode(), "value": v.encode()} for k, v in r["headers"].items()],
        }
        for i, r in enumerate(requests)
    ]
    processors, inputs, ids = Service.retrieve_data_for_inference(batch)
    context.request_ids, context.request_processor, context.metrics.request_ids = ids, processors, ids
    answers = handler.handle(inputs, context)
    assert isinstance(answers, list) and len(answers) == len(requests)
    out = []
    for idx, answer in enumerate(answers):
        status, _ = context.get_response_status(idx)
        assert context.get_response_content_type(idx) == "application/json"
        out.append((status, json.loads(json.dumps(answer))))  # TorchServe sends json.dumps(answer)
    return out


def check_answer(answer: dict, source: str, frames: list[Frame], with_metadata: bool = True, model: dict = MODEL_INFO) -> None:
    """The documented answer: model, source, and per frame its metadata, mask and summary."""
    assert set(answer) == {"model", "source", "frames"}
    assert answer["model"] == model and answer["source"] == source
    assert [f["index"] for f in answer["frames"]] == list(range(len(frames)))
    for out, frame in zip(answer["frames"], frames):
        assert set(out) == FRAME_KEYS
        if with_metadata:
            assert out["timestamp"] == frame.timestamp.isoformat()
            assert (out["site"], out["imager"]) == ("gill", "themis19")
        else:
            assert out["timestamp"] is None and out["site"] == "" and out["imager"] == ""
        mask = decode_mask(out["mask_png"])
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert 0.0 <= out["arc_fraction"] <= 1.0
        assert all(set(o) == OBJECT_KEYS for o in out["objects"])
        assert out["scan_ms"] > 0 and out["crf_ms"] > 0


def decode_mask(text: str) -> np.ndarray:
    width, height, rows, info = png.Reader(bytes=base64.b64decode(text)).read()
    assert info["bitdepth"] == 8 and info["greyscale"]
    return np.vstack([np.asarray(row, np.uint8) for row in rows])


def good(served) -> None:
    """The next request after a bad one is answered normally."""
    frame = minute(1, seed=9)[0]
    [(status, answer)] = call(served, request(png16(frame.image), "next.png"))
    assert status == 200, answer
    check_answer(answer, "next.png", [frame], with_metadata=False)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", ["20140310_0600_gill_themis19_full.pgm", "20140310_0600_gill_themis19_full.pgm.gz"])
def test_stream0_answers_every_frame_with_metadata(served, name):
    frames = minute(3)
    body = encode_stream0(frames)
    [(status, answer)] = call(served, request(gzip.compress(body) if name.endswith(".gz") else body, name))
    assert status == 200, answer
    check_answer(answer, name, frames)


def test_png_answers_one_frame_and_the_mask_is_the_library_s(served, model_dir):
    frame = minute(1, seed=3)[0]
    [(status, answer)] = call(served, request(png16(frame.image), "frame.png"))
    assert status == 200, answer
    check_answer(answer, "frame.png", [frame], with_metadata=False)
    model, _ = load_checkpoint(model_dir / "model.pt")
    expected = Segmenter.from_params(model, load_params(model_dir / "params.yaml"))(Frame(frame.image))
    out = answer["frames"][0]
    assert np.array_equal(decode_mask(out["mask_png"]) == 255, expected.mask)
    assert out["arc_fraction"] == pytest.approx(expected.arc_fraction)
    assert len(out["objects"]) == len(expected.objects)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_npy_stack_answers_every_frame(served, dtype):
    frames = minute(2, seed=4)
    stack = np.stack([f.image for f in frames]).astype(dtype)
    [(status, answer)] = call(served, request(npy(stack), "stack.npy"))
    assert status == 200, answer
    check_answer(answer, "stack.npy", frames, with_metadata=False)


def test_without_filename_header_the_source_is_upload_and_names_are_cleaned(served):
    image = minute(1)[0].image
    (_, plain), (_, odd) = call(served, request(png16(image)), request(png16(image), "../../etc/x\n\x1b[31m.png"))
    assert plain["source"] == "upload"
    assert odd["source"] == "x[31m.png"  # last path component, control characters dropped


def test_header_names_are_case_insensitive(served):
    [(_, answer)] = call(served, {"body": png16(minute(1)[0].image), "content_type": "application/octet-stream", "headers": {"x-filename": "lower.png"}})
    assert answer["source"] == "lower.png"


# ----------------------------------------------------------------------------- bad inputs


def _too_big() -> bytes:
    return b"\x1f\x8b" + bytes(Limits().max_bytes - 1)


BAD = {
    "truncated gzip": (lambda: gzip.compress(encode_stream0(minute(2)))[:5000], 400, "truncated gzip"),
    "corrupt gzip": (lambda: b"\x1f\x8b\x08\x00" + bytes(range(200)), 400, "gzip"),
    "not an image": (lambda: b"GIF89a" + bytes(100), 415, "not a recognised frame format"),
    "text body": (lambda: "hello, world", 415, "not a recognised frame format"),
    "JSON body": (lambda: {"image": [1, 2, 3]}, 415, "JSON body"),
    "empty body": (lambda: b"", 400, "empty input"),
    "body over the size limit": (_too_big, 413, "exceeds the limit"),
    "wrong size stream0": (lambda: encode_stream0(minute(1, shape=(128, 256))), 400, "expected 256x256 pixels, got 256x128"),
    "wrong size in a later frame": (lambda: encode_stream0(minute(1) + [Frame(minute(1, shape=(200, 200))[0].image, {}, "", 1)]), 400, "frame 1: expected 256x256 pixels, got 200x200"),
    "wrong size png": (lambda: png16(np.zeros((64, 64), np.uint16)), 400, "expected 256x256"),
    "8-bit png": (lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=8), 415, "8-bit PNG"),
    "8-bit pgm": (lambda: b"P5\n256 256\n255\n" + bytes(256 * 256), 415, "8-bit PGM"),
    "8-bit npy": (lambda: npy(np.zeros((256, 256), np.uint8)), 415, "8-bit"),
    "NaN in array": (lambda: npy(np.full((256, 256), np.nan, np.float32)), 400, "NaN"),
    "negative counts": (lambda: npy(np.full((256, 256), -1.0)), 400, "outside 0..65535"),
    "truncated npy": (lambda: npy(np.zeros((256, 256), np.uint16))[:1000], 400, ".npy"),
    "truncated pgm pixels": (lambda: encode_stream0(minute(1))[:-10], 400, "truncated pixel data"),
    "too many frames": (lambda: encode_stream0(minute(21, shape=(16, 16))), 413, "more than 20 frames"),
    "bad timestamp metadata": (lambda: encode_stream0(minute(1, **{"Image request start": "yesterday"})), 400, "unreadable timestamp"),
    "bad ccd background": (lambda: encode_stream0(minute(1, **{"Ccd background": "dark"})), 400, "unreadable CCD background"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_answers_4xx_with_a_message_and_the_next_request_succeeds(served, case):
    make, status, fragment = BAD[case]
    body = make()
    content_type = "application/json" if isinstance(body, dict) else "text/plain" if isinstance(body, str) else "application/octet-stream"
    [(code, answer)] = call(served, request(body, "bad.bin", content_type))
    assert code == status, answer
    assert set(answer) == {"error"} and fragment in answer["error"]
    assert answer["error"].startswith("bad.bin")  # the message names the input
    good(served)


def test_a_bad_request_does_not_spoil_the_rest_of_its_batch(served):
    frame = minute(1, seed=5)[0]
    answers = call(served, request(png16(frame.image), "a.png"), request(b"junk", "b.bin"), request(npy(frame.image), "c.npy"))
    assert [status for status, _ in answers] == [200, 415, 200]
    assert answers[0][1]["frames"][0]["mask_png"] == answers[2][1]["frames"][0]["mask_png"]
    assert "error" in answers[1][1]


def test_describe_and_explain_headers(served):
    [(status, described)] = call(served, request(b"", describe="True"))
    assert status == 200 and described == {**MODEL_INFO, "frame_shape": [256, 256]}
    [(status, answer)] = call(served, request(png16(minute(1)[0].image), "x.png", explain="True"))
    assert status == 200 and len(answer["frames"]) == 1  # no Captum path: a normal answer


# ----------------------------------------------------------------------------- metrics


def test_handler_metrics_reach_the_worker_log_with_consistent_dimensions(served, caplog):
    caplog.set_level(logging.INFO, logger="ts.metrics")
    frames = minute(2, seed=6)
    for _ in range(2):  # twice: a dimensions mix-up shows on the second update
        [(status, _)] = call(served, request(encode_stream0(frames), "m.pgm"))
        assert status == 200
        [(status, _)] = call(served, request(b"junk", "j.bin"))
        assert status == 415
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if "Failed" in line]
    for name, unit in [("ArcscanFrames", "Count"), ("ArcscanScanMs", "Count"), ("ArcscanCrfMs", "Count"), ("ArcscanArcFraction", "ratio"), ("ArcscanRejected", "Count")]:
        emitted = [line for line in lines if line.startswith(f"[METRICS]{name}.{unit}:")]
        assert len(emitted) == 2, (name, lines)
        assert all("|#ModelName:arcscan,Level:Model|" in line for line in emitted)
    assert sum("[METRICS]ArcscanFrames.Count:2|" in line for line in lines) == 2
