"""TorchServe handler for arcscan: request bytes -> frames -> arc masks -> JSON.

A thin adapter (see STYLE.md): decoding and bounds checks (``arcscan.decode_frames``),
segmentation (``arcscan.Segmenter``), the answer record and the error types live in the library. This
file maps a batch of requests onto them, answers every request on its own and turns an
``arcscan.errors.InputError`` into that request's 4xx answer ``{"error": message}`` so that
one bad upload neither fails the rest of the batch nor the worker.

The model archive (built by ``serving/build_mar.py``) holds the checkpoint (``model.pt``,
loaded with ``weights_only=True``, with its model arguments and normalisation), the
``params.yaml`` it was registered with (scan, CRF and object settings), the
``arcscan`` package source and ``model_info.json`` (registered name and version).

Request: the raw file as the body (``application/octet-stream``, or no ``Content-Type``) or as
a multipart field; any format :func:`arcscan.decode_frames` reads (THEMIS stream0 minute, every
frame; THEMIS level-1 CDF; FITS; 8/16-bit PNG, TIFF, JPEG; ``.npy``). The optional ``X-Filename`` header names the upload in answers and messages.

A form-encoded body (``Content-Type: application/x-www-form-urlencoded``, what ``curl --data-binary``
sends unless told otherwise) cannot carry a file: TorchServe's frontend splits it into fields
at ``&`` and ``=``, percent-decodes them and reads them as UTF-8, so the bytes are lost. Such a
request is answered 415 with a message asking for ``Content-Type: application/octet-stream``
(400 when there are no fields, or when the fields are plainly a form: a few short names and
no ``data``); neither field names nor values are echoed when they are not short plain names.
Most binary files sent so never reach this handler: on a ``%`` not followed by two hex digits
or a CR without LF the frontend's form decoder (Netty's ``HttpPostStandardRequestDecoder``)
fails first and TorchServe answers 500 ``ErrorDataDecoderException``, for a bad ``%`` with the
body's text in the message. Clients reach TorchServe only through ``arcscan auth-proxy``,
which sends such bodies (and bodies without a ``Content-Type``) as ``application/octet-stream``,
accepting the file, and passes no TorchServe 5xx on that could echo a body (see
:mod:`arcscan.ops.authproxy`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from http import HTTPStatus
from pathlib import Path

import numpy as np
import torch
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler

import arcscan
from arcscan import Frame, Limits, Segmentation, decode_frames, frame_record, input_name, load_checkpoint, load_settings, mask_png
from arcscan.errors import InputError, UnsupportedFormat
from arcscan.core.geometry import Sky

logger = logging.getLogger(__name__)

MODEL_INFO = "model_info.json"
PARAMS = "params.yaml"
FILENAME_HEADER = "x-filename"
CONTENT_TYPE_HEADER = "content-type"
FORM_ENCODED = "application/x-www-form-urlencoded"
DEFAULT_NAME = "upload"
SEND_OCTET_STREAM = (
    "send the file's bytes as the body with Content-Type: application/octet-stream "
    "(curl: -H 'Content-Type: application/octet-stream' --data-binary @FILE)"
)
_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")  # a form field name shown in a message
MAX_SHOWN_FIELDS = 10
THREADS_ENV = "ARCSCAN_TORCH_THREADS"  # set by serving/serve.py: cores / workers

# Metric names as the handler emits them (TorchServe adds the ModelName and Level labels).
FRAMES_METRIC = "ArcscanFrames"  # counter: frames segmented
REJECTED_METRIC = "ArcscanRejected"  # counter: requests answered 4xx
SCAN_METRIC = "ArcscanScanMs"  # counter: sum of raster-scan milliseconds (rate / frames = mean)
CRF_METRIC = "ArcscanCrfMs"  # counter: sum of dense-CRF milliseconds
ARC_FRACTION_METRIC = "ArcscanArcFraction"  # gauge: mean arc fraction of the last answered file


# What happens to one request of a batch: its frames (then frames with their segmentation)
# or the InputError that answers it.
Decoded = list[tuple[Frame, Sky]] | InputError
Segmented = list[tuple[Frame, Segmentation]] | InputError


class ArcscanHandler(BaseHandler):
    """Segment every frame of each uploaded file; answer JSON per request."""

    def initialize(self, context) -> None:
        model_dir = Path(context.system_properties["model_dir"])
        self.manifest = context.manifest
        gpu = context.system_properties.get("gpu_id")
        self.device = torch.device(f"cuda:{gpu}" if torch.cuda.is_available() and gpu is not None else "cpu")
        if os.environ.get(THREADS_ENV):
            torch.set_num_threads(int(os.environ[THREADS_ENV]))
        checkpoint = load_checkpoint(model_dir / self.manifest["model"]["serializedFile"], self.device)
        self.segmenter = load_settings(model_dir / PARAMS).segmenter(checkpoint)
        info = json.loads((model_dir / MODEL_INFO).read_text())
        self.model_info = {"name": info["name"], "version": str(info["version"])}
        self.limits = Limits()
        self.initialized = True
        logger.info(
            "arcscan %s version %s ready: arcscan from %s, sky radius %s px, %d torch threads, %s",
            self.model_info["name"], self.model_info["version"], Path(arcscan.__file__).parent,
            self.segmenter.preprocess.sky_radius, torch.get_num_threads(), self.device,
        )

    def preprocess(self, data: list[dict]) -> list[tuple[str, Decoded]]:
        requests = []
        for idx, row in enumerate(data):
            source = self._filename(idx)
            try:
                body = _payload(row, source, self._header(idx, CONTENT_TYPE_HEADER) or "")
                frames = decode_frames(body, source, self.limits)
                requests.append((source, [(frame, self.segmenter.sky_of(frame)) for frame in frames]))
            except InputError as error:
                requests.append((source, error))
        return requests

    def inference(self, requests: list[tuple[str, Decoded]]) -> list[tuple[str, Segmented]]:
        done = []
        for source, frames in requests:
            if not isinstance(frames, InputError):
                try:
                    frames = [(frame, self.segmenter(frame, sky)) for frame, sky in frames]
                except InputError as error:
                    frames = error
            done.append((source, frames))
        return done

    def postprocess(self, requests: list[tuple[str, Segmented]]) -> list[dict]:
        answers = []
        for idx, (source, outcome) in enumerate(requests):
            self.context.set_response_content_type(idx, "application/json")
            if isinstance(outcome, InputError):
                logger.info("rejected %s: %d %s", source, outcome.status, outcome)
                self.context.set_response_status(outcome.status, HTTPStatus(outcome.status).phrase, idx)
                self._count(REJECTED_METRIC, 1, idx)
                answers.append({"error": str(outcome)})
                continue
            self._record([result for _, result in outcome], idx)
            answers.append(
                {
                    "model": self.model_info,
                    "source": source,
                    "frames": [_frame_json(frame, result) for frame, result in outcome],
                }
            )
        return answers

    def describe_handle(self) -> dict:
        """``GET /models/<name>?customized=true`` on the management API."""
        self.context.set_response_content_type(0, "application/json")
        return {**self.model_info, "sky_radius": self.segmenter.preprocess.sky_radius}

    def _is_explain(self) -> bool:
        return False  # no explanations: an ``explain`` header must not reach BaseHandler's Captum path

    # ------------------------------------------------------------------------------------

    def _filename(self, idx: int) -> str:
        value = self._header(idx, FILENAME_HEADER)
        return (input_name(_header_text(value)) or DEFAULT_NAME) if value is not None else DEFAULT_NAME

    def _header(self, idx: int, name: str) -> str | None:
        """Request ``idx``'s header ``name`` (lower case; the frontend passes every header on)."""
        headers = self.context.get_all_request_header(idx) if self.context is not None else {}
        for key, value in (headers or {}).items():
            if key.lower() == name and isinstance(value, str):
                return value
        return None

    def _record(self, results: list[Segmentation], idx: int) -> None:
        # A fresh dimensions list on every call: TorchServe appends its default dimensions to
        # the list it is given, and a shared (default) list breaks the next metric (503).
        self._count(FRAMES_METRIC, len(results), idx)
        self._count(SCAN_METRIC, round(sum(r.scan_ms for r in results), 3), idx)
        self._count(CRF_METRIC, round(sum(r.crf_ms for r in results), 3), idx)
        fraction = float(np.mean([r.arc_fraction for r in results]))
        self.context.metrics.add_metric(ARC_FRACTION_METRIC, fraction, "ratio", idx, [], MetricTypes.GAUGE)

    def _count(self, name: str, value: float, idx: int) -> None:
        self.context.metrics.add_counter(name, value, idx, [])


def _payload(row: dict, source: str, content_type: str = "") -> bytes:
    """The uploaded file's bytes: the raw body (``body``), the multipart field ``data`` or the
    one multipart field there is (TorchServe turns each form field into a key). A form-encoded
    body (``content_type``) is refused: its bytes do not survive the frontend's form decoding."""
    form_encoded = content_type.split(";")[0].strip().lower() == FORM_ENCODED
    if not row:
        what = "a form-encoded body without fields" if form_encoded else "a form without fields"
        raise InputError(f"{source}: no file in the request ({what}); {SEND_OCTET_STREAM}")
    if form_encoded:
        if _plain_names(row) and len(row) > 1 and not {"data", "body"} & set(row):
            raise InputError(f"{source}: form-encoded body with {_shown_fields(row)}; {SEND_OCTET_STREAM}")
        raise UnsupportedFormat(
            f"{source}: got a form-encoded body (Content-Type: {FORM_ENCODED}, curl's default for --data-binary), "
            f"which cannot carry a file's bytes; {SEND_OCTET_STREAM}"
        )
    if "data" in row or "body" in row:
        value = row.get("data", row.get("body"))
    elif len(row) == 1:
        (value,) = row.values()
    else:
        raise InputError(f"{source}: form upload with {_shown_fields(row)}; send the file as field 'data'")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):  # TorchServe decoded a text/* body; UTF-8 gives the bytes back
        return value.encode("utf-8")
    raise UnsupportedFormat(  # TorchServe decoded an application/json body (an object, list, number or null)
        f"{source}: got a JSON body; send the file's bytes (Content-Type: application/octet-stream)"
    )


def _plain_names(row: dict) -> bool:
    """Whether the form's field names are a few short plain names (not cut out of a binary body)."""
    return len(row) <= MAX_SHOWN_FIELDS and all(isinstance(name, str) and _FIELD_NAME.fullmatch(name) for name in row)


def _shown_fields(row: dict) -> str:
    """The fields for a message: ``fields ['a', 'b']`` when they are plain names, else only how
    many there are: names cut out of a binary body are not echoed."""
    return f"fields {sorted(row)}" if _plain_names(row) else f"{len(row)} fields (names not shown)"


def _header_text(value: str) -> str:
    """A header value as the client wrote it: the frontend reads header bytes as ISO-8859-1,
    so a UTF-8 name arrives as mojibake (``näme`` as ``nÃ¤me``); undone where it decodes."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _frame_json(frame: Frame, result: Segmentation) -> dict:
    return {**frame_record(frame, result), "mask_png": base64.b64encode(mask_png(result.mask)).decode("ascii")}
