"""The labelling web app: a FastAPI server over a folder of frames and one labels CSV.

Routes (JSON unless said; errors are ``{"error": message}`` with a 4xx status):

- ``GET /`` the page (``static/``: plain HTML, JS and CSS, no build step)
- ``GET /api/state`` labels file, target counts, default labeller, the model (if any)
- ``GET /api/files`` frame files with their frames (index, timestamp, size) and skipped files
- ``GET /api/frame?file=&frame=`` one frame's metadata and its patch box (frame pixels)
- ``GET /api/pixels?file=&frame=`` the raw counts, little-endian uint16 (``X-Width``, ``X-Height``)
- ``GET /api/probability?file=&frame=`` the model's arc probability, an 8-bit PNG (p x 255)
- ``GET /api/suggest?file=&frame=&n=`` uncertain patches and confident disagreements
- ``GET /api/labels[?since=revision]``, ``PUT /api/labels`` (add or relabel),
  ``DELETE /api/labels?file=&frame=&x=&y=``: every change saved at once (:mod:`.store`)

Safety: the server binds 127.0.0.1 unless told otherwise and answers only requests addressed
to the host it listens on (DNS rebinding); only files of the folder are served
(:mod:`.folder`); request bodies are bounded (413); bodies must be JSON of the right types
(422); with a token, every ``/api`` request needs ``Authorization: Bearer <token>`` (401);
nothing is written but the labels file.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import io
import socket
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from arcscan.core.patches import POSITIVE
from arcscan.errors import InputError
from arcscan.label.folder import MAX_NAME, FrameFolder, check_name
from arcscan.label.store import LABEL_NAMES, Label, LabelFileError, LabelStore, format_labels
from arcscan.label.suggest import ModelHelp, disagreements, uncertain_patches

STATIC = Path(__file__).with_name("static")
MAX_BODY_BYTES = 4096  # one label as JSON is about 100 bytes
MAX_PIXELS = 100_000  # bound on coordinates and frame indices (frames are at most 1024 px a side)
LABEL_CODES = {name: code for code, name in LABEL_NAMES.items()}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

FileName = Annotated[str, Query(min_length=1, max_length=MAX_NAME)]
Index = Annotated[int, Query(ge=0, le=MAX_PIXELS)]


class LabelIn(BaseModel):
    """A label placed or changed on the page (strict types: "3" is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    file: str = Field(min_length=1, max_length=MAX_NAME)
    frame: int = Field(ge=0, le=MAX_PIXELS)
    x: int = Field(ge=0, le=MAX_PIXELS)
    y: int = Field(ge=0, le=MAX_PIXELS)
    label: Literal["arc", "other"]
    who: str = Field(default="", max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")


def check_labels_fit(store: LabelStore, folder: FrameFolder) -> None:
    """LabelFileError unless every label of the file lies on a frame of the folder: a CSV
    made for other frames is refused, not rewritten."""
    for label in store.labels():
        try:
            folder.check_centre(label.file, label.frame, label.x, label.y)
        except InputError as err:
            raise LabelFileError(f"{store.path.name} does not fit the frames in {folder.root}: {err}; refusing to rewrite it") from err


def labels_answer(labels: list[Label], since: str | None = None) -> dict:
    """The labels with their counts and a revision (a digest of the file's content)."""
    revision = hashlib.sha256(format_labels(labels).encode()).hexdigest()[:16]
    if since == revision:
        return {"revision": revision, "unchanged": True}
    arcs = sum(label.label == POSITIVE for label in labels)
    return {"revision": revision, "labels": [label.record() for label in labels], "counts": {"arc": arcs, "other": len(labels) - arcs}}


def create_app(
    folder: FrameFolder,
    store: LabelStore,
    target: dict[str, int],
    model: ModelHelp | None = None,
    token: str | None = None,
    allowed_hosts: list[str] = ("127.0.0.1", "localhost"),
) -> FastAPI:
    """The app over ``folder`` and ``store`` (see the module docstring); ``target`` is the
    number of arc and other labels to aim for (params.yaml ``patches.n_positive/negative``)."""
    check_labels_fit(store, folder)
    app = FastAPI(title="arcscan label", docs_url=None, redoc_url=None, openapi_url=None, max_body_size=MAX_BODY_BYTES)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token and request.url.path.startswith("/api/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"error": "missing or wrong token (Authorization: Bearer <token>)"}, status_code=401)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(InputError)
    async def input_error(request: Request, err: InputError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in err.errors())
        return JSONResponse({"error": f"invalid request: {problems}"[:1000]}, status_code=422)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/state")
    def state() -> dict:
        return {
            "labels_file": store.path.name,
            "frames_dir": folder.root.name,
            "target": target,
            "who": getpass.getuser(),
            "model": model.description if model else None,
        }

    @app.get("/api/files")
    def files() -> dict:
        listed, skipped = folder.listing()
        return {"files": [{"file": f.file, "frames": [vars(i) for i in f.frames]} for f in listed], "skipped": skipped}

    @app.get("/api/frame")
    def frame(file: FileName, frame: Index) -> dict:
        found = folder.frame(file, frame)
        height, width = found.image.shape
        return {
            "file": file, "index": frame, "width": width, "height": height, "site": found.site, "imager": found.imager,
            "timestamp": found.timestamp.isoformat() if found.timestamp else None, "box": folder.box(file, frame),
        }

    @app.get("/api/pixels")
    def pixels(file: FileName, frame: Index) -> Response:
        image = folder.frame(file, frame).image
        headers = {"X-Width": str(image.shape[1]), "X-Height": str(image.shape[0]), "Cache-Control": "no-store"}
        return Response(image.astype("<u2").tobytes(), media_type="application/octet-stream", headers=headers)

    def probability_of(file: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        found = folder.frame(file, index)
        if model is None:
            raise InputError("no model: start the page with --checkpoint PATH or --alias champion")
        return model.probability((*folder.version(file), index), found)

    @app.get("/api/probability")
    def probability(file: FileName, frame: Index) -> Response:
        p, _ = probability_of(file, frame)
        buffer = io.BytesIO()
        Image.fromarray(np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/suggest")
    def suggest(file: FileName, frame: Index, n: int = Query(10, ge=1, le=100)) -> dict:
        p, sky = probability_of(file, frame)
        here = [label for label in store.labels() if (label.file, label.frame) == (file, frame)]
        box = folder.box(file, frame)
        return {
            "box": box,
            "uncertain": [vars(s) for s in uncertain_patches(p, sky, box, n, [(label.x, label.y) for label in here])],
            "disagree": [vars(s) for s in disagreements(p, [(label.x, label.y, label.label) for label in here], n)],
        }

    @app.get("/api/labels")
    def labels(since: str | None = Query(None, max_length=64)) -> dict:
        return labels_answer(store.labels(), since)

    @app.put("/api/labels")
    def put_label(body: LabelIn) -> dict:
        folder.check_centre(body.file, body.frame, body.x, body.y)
        store.put(body.file, body.frame, body.x, body.y, LABEL_CODES[body.label], body.who.strip())
        return labels_answer(store.labels())

    @app.delete("/api/labels")
    def delete_label(file: FileName, frame: Index, x: Index, y: Index) -> dict:
        check_name(file)
        store.delete(file, frame, x, y)
        return labels_answer(store.labels())

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    sock = socket.create_server((host, port))
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket, token: str | None = None) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted; prints the page's address
    first (with the token in the fragment, which browsers never send to servers)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    print(f"arcscan label: http://{host}:{port}/" + (f"#token={token}" if token else ""), file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
