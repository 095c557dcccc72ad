"""Which project files one frame crosses on its way through the TorchServe handler.

    python benchmarks/call_path.py

Builds what TorchServe unpacks from a model archive (a random-weight checkpoint, params.yaml,
model_info.json) in a temporary folder, initialises ``serving/handler.py`` with TorchServe's
own Context and posts one stream0 frame through ``handle``, tracing every call. Prints the
project files met (initialisation and request), the distinct caller -> callee file pairs
(module crossings) and, for the request alone, each call that crosses from one project file
into another.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

import ts
from ts.context import Context
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arcscan.core.model import ModelConfig, build_model, save_checkpoint  # noqa: E402
from arcscan.core.synth import generate_minute  # noqa: E402
from arcscan.io.frames import encode_stream0  # noqa: E402
from serving.handler import ArcscanHandler  # noqa: E402


def project_file(code_path: str) -> str | None:
    """The repository-relative path of a file of ``arcscan/`` or ``serving/``, else None."""
    path = Path(code_path).resolve()
    if not path.is_relative_to(ROOT):
        return None
    relative = path.relative_to(ROOT)
    return str(relative) if relative.parts[0] in ("arcscan", "serving") else None


class CallTracer:
    """A ``sys.setprofile`` hook recording calls from one project file into another."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.crossings: set[tuple[str, str]] = set()
        self.request_calls: list[str] | None = None  # a list while the request runs

    def __call__(self, frame: FrameType, event: str, _arg: object) -> None:
        if event != "call" or (callee := project_file(frame.f_code.co_filename)) is None:
            return
        self.files.add(callee)
        caller = frame.f_back
        while caller is not None and project_file(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is None or (source := project_file(caller.f_code.co_filename)) == callee:
            return
        self.crossings.add((source, callee))
        if self.request_calls is not None:
            self.request_calls.append(f"{source} -> {callee}:{frame.f_code.co_name}")


def model_dir(folder: Path) -> Path:
    save_checkpoint(folder / "model.pt", build_model(ModelConfig()), ModelConfig())
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (folder / "model_info.json").write_text(json.dumps({"name": "arcscan-arc", "version": "1"}))
    return folder


def main() -> None:
    folder = model_dir(Path(tempfile.mkdtemp(prefix="arcscan-call-path-")))
    metrics = MetricsCacheYamlImpl(config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "arcscan"
    manifest = {"model": {"modelName": "arcscan", "serializedFile": "model.pt", "handler": "handler.py"}}
    context = Context("arcscan", str(folder), manifest, 1, None, ts.__version__, metrics=metrics)
    frames, _ = generate_minute(seed=1, start=datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=1)
    batch = [{
        "requestId": b"1",
        "parameters": [{"name": "body", "value": encode_stream0(frames), "contentType": "application/octet-stream"}],
        "headers": [{"name": b"X-Filename", "value": b"frame.pgm"}],
    }]
    processors, inputs, ids = Service.retrieve_data_for_inference(batch)
    context.request_ids, context.request_processor, context.metrics.request_ids = ids, processors, ids

    tracer, handler = CallTracer(), ArcscanHandler()
    sys.setprofile(tracer)
    try:
        handler.initialize(context)
        tracer.request_calls = []
        (answer,) = handler.handle(inputs, context)
    finally:
        sys.setprofile(None)
    assert "frames" in answer, answer
    print(json.dumps({
        "files": sorted(tracer.files),
        "crossings": sorted(f"{a} -> {b}" for a, b in tracer.crossings),
        "request_calls": tracer.request_calls,
        "summary": {"files": len(tracer.files), "crossings": len(tracer.crossings), "request_calls": len(tracer.request_calls)},
    }, indent=1))


if __name__ == "__main__":
    main()
