"""The TorchServe handler without Java: the real ``ts`` Context, message decoding and metrics
cache of a TorchServe worker, a random-weight checkpoint and small synthetic frames.

Requests reach the handler as a worker gets them: the frontend's part (form fields to
parameters, header bytes read as ISO-8859-1) is mimicked, the rest is TorchServe's own code
(``otf_message_handler.retrieve_msg`` decodes JSON and text bodies, ``Service`` builds the batch).
Every accepted format answers the documented JSON; every case of the hostile corpus
(``tests/hostile.py``) answers its 4xx status with ``{"error": message}`` naming the input,
in bounded time and memory, touching no file the client names, and the same handler serves
the next request; random and mutated bodies never raise.
"""

from __future__ import annotations

import base64
import email
import gzip
import io
import json
import logging
import re
import struct
import sys
import time
import tracemalloc
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote_plus

import numpy as np
import png
import pytest
import torch
import ts
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ts.context import Context
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.protocol.otf_message_handler import retrieve_msg
from ts.service import Service
from urllib3 import encode_multipart_formdata

from arcscan.config import load_params, load_settings
from arcscan.io.frames import Frame, encode_stream0
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from serving.handler import ArcscanHandler
from hostile import CASES, MIB, Case, minute, npy, png16, valid_bodies

ROOT = Path(__file__).resolve().parents[1]

MODEL_INFO = {"name": "arcscan-arc", "version": "test-1"}
FRAME_KEYS = {"index", "timestamp", "site", "imager", "mask_png", "arc_fraction", "sky", "objects", "scan_ms", "crf_ms"}
OBJECT_KEYS = {"area", "length", "mean_width", "orientation_deg", "centroid_x", "centroid_y", "mean_intensity", "geo"}  # geo: physical figures (arcscan.geo), null without a geometry


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


def request(body: bytes, filename: str | bytes | None = None, content_type: str | None = "application/octet-stream", **headers: str | bytes) -> dict:
    """One HTTP request as TorchServe's frontend passes it on: every header (``Content-Type``
    too, unless None), values as it reads them (bytes as ISO-8859-1; a ``str`` is sent UTF-8
    encoded, as clients do) and the body as parameters: one per form field (a file keeps its
    Content-Type, other fields have none), else ``body`` with the body's MIME type."""
    if filename is not None:
        headers["X-Filename"] = filename
    if content_type is not None:
        headers["Content-Type"] = content_type
    content_type = content_type or ""
    raw = {name: value.encode() if isinstance(value, str) else value for name, value in headers.items()}
    mime = content_type.split(";")[0].strip()
    if mime == "multipart/form-data":
        form = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = form.get_payload() if form.is_multipart() else []
        parameters = [
            (part.get_param("name", header="content-disposition"), part.get_content_type() if part.get_filename() else "", part.get_payload(decode=True))
            for part in parts
        ]
    elif mime == "application/x-www-form-urlencoded":
        parameters = [(name, "", value.encode()) for name, value in form_fields(body)]
    else:
        parameters = [("body", mime, body)]
    return {"headers": {name: value.decode("latin-1") for name, value in raw.items()}, "parameters": parameters}


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """A form-encoded body's fields as the frontend (Netty's ``HttpPostStandardRequestDecoder``)
    makes them: split at ``&`` and the first ``=``, a last part without ``=`` dropped, names
    and values percent-decoded and read as UTF-8 (bytes that are not UTF-8 become U+FFFD).
    Where Netty fails on a ``%`` without two hex digits (a 500 before any worker), the ``%``
    is kept here."""
    parts = body.split(b"&")
    fields = []
    for number, part in enumerate(parts, 1):
        if b"=" not in part and number == len(parts):
            continue
        name, _, value = part.partition(b"=")
        name, value = (unquote_plus(text.decode("utf-8", "replace"), errors="replace") for text in (name, value))
        if name:
            fields.append((name, value))
    return fields


def _field(value: bytes) -> bytes:
    return struct.pack("!i", len(value)) + value


def worker_message(requests: tuple[dict, ...]) -> bytes:
    """The frontend's inference message to a worker, as its ``ModelRequestEncoder`` writes it."""
    end = struct.pack("!i", -1)
    message = bytearray(b"I")
    for i, r in enumerate(requests):
        message += _field(f"request-{i}".encode())
        message += b"".join(_field(k.encode()) + _field(v.encode()) for k, v in r["headers"].items()) + end
        message += b"".join(_field(name.encode()) + _field(kind.encode()) + _field(value) for name, kind, value in r["parameters"]) + end
    return bytes(message + end)


class _Socket(io.BytesIO):
    """A worker's frontend socket that has just received one message."""

    recv = io.BytesIO.read


def call(served, *requests: dict) -> list[tuple[int, dict]]:
    """Run a batch through ``handle`` like a worker does (``retrieve_msg``, ``Service.predict``);
    (status, JSON answer) each."""
    handler, context = served
    _, batch = retrieve_msg(_Socket(worker_message(requests)))
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
    segmenter = load_settings(model_dir / "params.yaml").segmenter(load_checkpoint(model_dir / "model.pt"))
    expected = segmenter(Frame(frame.image))
    out = answer["frames"][0]
    assert np.array_equal(decode_mask(out["mask_png"]) == 255, expected.mask)
    assert out["arc_fraction"] == pytest.approx(expected.arc_fraction)
    assert len(out["objects"]) == len(expected.objects)


@pytest.mark.parametrize(("name", "body", "shapes"), [
    ("wide.pgm", lambda: encode_stream0(minute(1, shape=(128, 256))), [(128, 256)]),
    ("mixed.pgm", lambda: encode_stream0(minute(1) + [Frame(minute(1, shape=(200, 200))[0].image, {}, "", 1)]), [(256, 256), (200, 200)]),
    ("small.png", lambda: png16(np.zeros((64, 80), np.uint8), bitdepth=8), [(64, 80)]),
])
def test_frames_of_any_size_are_answered_in_their_own_pixels(served, name, body, shapes):
    [(status, answer)] = call(served, request(body(), name))
    assert status == 200, answer
    assert [decode_mask(f["mask_png"]).shape for f in answer["frames"]] == shapes
    assert all(f["sky"] in {"estimated", "inscribed"} for f in answer["frames"])  # no profile matches these


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
    [(_, answer)] = call(served, request(png16(minute(1)[0].image), **{"x-filename": "lower.png"}))
    assert answer["source"] == "lower.png"


def test_multipart_and_form_uploads_of_the_file(served):
    frame = minute(1, seed=8)[0]
    files = {"data": ("f.png", png16(frame.image), "image/png")}
    for fields in (files, {**files, "comment": "aurora"}, {"file": files["data"]}):
        body, content_type = encode_multipart_formdata(fields)
        [(status, answer)] = call(served, request(body, "form.png", content_type))
        assert status == 200, answer
        check_answer(answer, "form.png", [frame], with_metadata=False)


def test_a_body_without_content_type_is_the_file(served):
    frames = minute(2, seed=10)
    for body, name in [(encode_stream0(frames), "m.pgm"), (gzip.compress(encode_stream0(frames), mtime=0), "m.pgm.gz")]:
        sent = request(body, name, content_type=None)
        assert not any(key.lower() == "content-type" for key in sent["headers"])
        [(status, answer)] = call(served, sent)
        assert status == 200, answer
        check_answer(answer, name, frames)


FORM_ENCODED = "application/x-www-form-urlencoded"
OCTET_STREAM_HINT = "send the file's bytes as the body with Content-Type: application/octet-stream"


def assert_no_echo(message: str, body: bytes) -> None:
    """``message`` is short, printable and holds nothing of ``body`` beyond what the handler says anyway."""
    assert len(message) < 400 and message.isprintable(), message
    text = body.decode("utf-8", "replace")
    pieces = [piece for piece in re.split(r"[&=\s]", text) if len(piece) >= 8]
    assert not [piece for piece in pieces if piece in message], message


def _files() -> dict[str, bytes]:
    frame = minute(1, seed=11)[0]
    return {"m.pgm": encode_stream0([frame]), "m.pgm.gz": gzip.compress(encode_stream0([frame]), mtime=0),
            "f.png": png16(frame.image), "f.npy": npy(frame.image)}


@pytest.mark.parametrize("kind", sorted(_files()))
def test_a_file_sent_form_encoded_gets_415_asking_for_octet_stream_without_echoing_it(served, kind):
    """``curl --data-binary @file`` without ``-H 'Content-Type: ...'``: the frontend hands the
    body over as form fields cut out of it (lossy) when its form decoder gets through (else
    TorchServe answers 500 itself, see test_serving_e2e.py); the answer names the fix and
    echoes nothing."""
    body = _files()[kind]
    [(status, answer)] = call(served, request(body, kind, FORM_ENCODED))
    assert (status, list(answer)) == (415, ["error"]), answer
    message = answer["error"]
    assert message.startswith(f"{kind}: got a form-encoded body") and OCTET_STREAM_HINT in message, message
    assert_no_echo(message, body)
    good(served)


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"data=%89PNG%0D%0A%1A%0A", 415, "got a form-encoded body"),  # a file in a field: its bytes are lost
        (b"file=x", 415, "got a form-encoded body"),
        (b"a=1&data=2", 415, "got a form-encoded body"),
        (b"\x89\x01\x1b[31m&\xff\xfe=1&\x00\x02=2&k=v", 415, "got a form-encoded body"),  # binary names: not listed
        (b"a=1&b=2&c", 400, "form-encoded body with fields ['a', 'b']"),
        (b"abc", 400, "no file in the request (a form-encoded body without fields)"),
        (b"abc&", 415, "got a form-encoded body"),
    ],
    ids=["file in data", "one field", "data among fields", "binary names", "plain fields", "no '='", "one empty field"],
)
def test_form_encoded_bodies_name_the_fix(served, body, status, fragment):
    [(got, answer)] = call(served, request(body, "f.bin", FORM_ENCODED + "; charset=UTF-8"))
    assert (got, list(answer)) == (status, ["error"]), answer
    assert answer["error"].startswith("f.bin: ") and fragment in answer["error"] and OCTET_STREAM_HINT in answer["error"]
    assert_no_echo(answer["error"].replace("['a', 'b']", ""), body)


def test_multipart_field_names_cut_from_binary_are_not_echoed(served):
    body, content_type = encode_multipart_formdata({"\x1b[31m\u202e": "1", "n" * 100: "2", "ok": "3"})
    [(status, answer)] = call(served, request(body, "form.bin", content_type))
    assert status == 400 and answer["error"] == "form.bin: form upload with 3 fields (names not shown); send the file as field 'data'"


# ----------------------------------------------------------------------------- hostile inputs


_AUDITED: list[list[tuple[str, tuple]]] = []


def _audit(event: str, args: tuple) -> None:
    if _AUDITED and (event == "open" or event.startswith(("os.", "shutil."))):
        _AUDITED[-1].append((event, args))


@cache
def _install_audit_hook() -> None:
    sys.addaudithook(_audit)  # for the rest of the process: audit hooks cannot be removed


@contextmanager
def file_access() -> Iterator[list[tuple[str, tuple]]]:
    """The filesystem audit events (``open``, ``os.*``, ``shutil.*``) raised inside the block
    (imports included: a first use may load a module)."""
    _install_audit_hook()
    _AUDITED.append([])
    try:
        yield _AUDITED[-1]
    finally:
        _AUDITED.pop()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input_gets_its_4xx_naming_the_input_and_the_next_request_succeeds(served, case: Case):
    body = case.body()
    sent = request(body, case.filename, case.content_type)
    tracemalloc.start()
    start = time.perf_counter()
    with file_access() as touched:
        [(status, answer)] = call(served, sent)
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (status, list(answer)) == (case.status, ["error"]), answer
    assert answer["error"].startswith(f"{case.shown}: ") and case.fragment in answer["error"], answer["error"]
    names = {case.shown, (case.filename or b"").decode("latin-1")} - {""}
    assert not [event for event in touched if any(name in repr(event) for name in names)], touched  # no file named by the client
    assert seconds < 5 and peak < 2 * len(body) + 48 * MIB, (seconds, peak / MIB)
    good(served)


def check_any_answer(status: int, answer: dict, source: str) -> None:
    """A 200 with the documented answer, or a 4xx with ``{"error": message}`` naming the input."""
    if status == 200:
        assert set(answer) == {"model", "source", "frames"} and answer["source"] == source
        assert answer["frames"] and all(set(frame) == FRAME_KEYS for frame in answer["frames"])
        assert all(decode_mask(frame["mask_png"]).shape == (256, 256) for frame in answer["frames"])
    else:
        assert 400 <= status < 500 and set(answer) == {"error"}, (status, answer)
        assert answer["error"].startswith(f"{source}: "), answer


VALID = valid_bodies()
MAGICS = [b"", b"\x1f\x8b\x08\x00", b"P5\n", b"\x89PNG\r\n\x1a\n", b"\x93NUMPY\x01\x00"]


@st.composite
def mutated_bodies(draw) -> bytes:
    """A valid body (stream0, .pgm.gz, PNG, .npy) with bit flips (mostly near the start, where
    the headers are), bytes spliced in and a truncation."""
    body = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    reach = draw(st.sampled_from([64, 1024, len(body)]))
    for position, bit in draw(st.lists(st.tuples(st.integers(0, reach - 1), st.integers(0, 7)), max_size=8)):
        body[position] ^= 1 << bit
    if draw(st.booleans()):
        position = draw(st.integers(0, reach))
        body[position:position] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):
        del body[draw(st.integers(0, len(body))) :]
    return bytes(body)


HOSTILE_BODIES = st.one_of(st.builds(bytes.__add__, st.sampled_from(MAGICS), st.binary(max_size=2048)), mutated_bodies())


@settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=HOSTILE_BODIES)
def test_random_and_mutated_bodies_never_raise(served, body):
    [(status, answer)] = call(served, request(body, "fuzz.bin"))
    check_any_answer(status, answer, "fuzz.bin")


def test_a_bad_request_does_not_spoil_the_rest_of_its_batch(served):
    frame = minute(1, seed=5)[0]
    answers = call(served, request(png16(frame.image), "a.png"), request(b"junk", "b.bin"), request(npy(frame.image), "c.npy"))
    assert [status for status, _ in answers] == [200, 415, 200]
    assert answers[0][1]["frames"][0]["mask_png"] == answers[2][1]["frames"][0]["mask_png"]
    assert "error" in answers[1][1]


def test_describe_and_explain_headers(served):
    [(status, described)] = call(served, request(b"", describe="True"))
    assert status == 200 and described == {**MODEL_INFO, "sky_radius": 112.0}
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
