"""Plain HTTP POSTs with the standard library: the auth proxy's calls to TorchServe and the
renewal of TorchServe's inference key (:class:`arcscan.ops.tokens.TorchServeKey`).

The standard library only, so that the auth proxy needs nothing else; no environment proxies
either, as these calls go to a TorchServe in the same pod or on the same host.
"""

from __future__ import annotations

import http.client
import json
from typing import NamedTuple
from urllib.parse import urlsplit


class Answer(NamedTuple):
    """An HTTP answer: status, body and ``Content-Type``."""

    status: int
    body: bytes
    content_type: str


def post(base_url: str, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """``POST`` to ``path`` under ``base_url`` (``http`` or ``https``, with an optional path
    prefix): the answer. A server that cannot be reached raises :class:`OSError` (a
    :class:`TimeoutError` when it does not answer within ``timeout`` seconds) or
    :class:`http.client.HTTPException`."""
    url = urlsplit(base_url)
    connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(url.hostname, url.port, timeout=timeout)
    try:
        connection.request("POST", url.path.rstrip("/") + path, body, headers)
        response = connection.getresponse()
        return Answer(response.status, response.read(), response.getheader("Content-Type") or "application/octet-stream")
    finally:
        connection.close()


def error_message(body: bytes) -> str:
    """The message of an error answer: ``error`` (arcscan) or ``message`` (TorchServe) of a
    JSON object, else the text; at most 500 characters."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:500]
    if isinstance(payload, dict):
        return str(payload.get("error") or payload.get("message") or payload)[:500]
    return str(payload)[:500]
