"""Posting one frame to the inference endpoint: the bearer token, retries with backoff, the
answer parsed into an :class:`Outcome`, and a refused token replaced.

A frame goes as a one-frame stream0 body to ``POST {url}``. Connection errors, timeouts, 429
and 5xx answers are retried with exponential backoff and full jitter; any other 4xx is final.
A refused token (401/403, or TorchServe's 400 ``InvalidKeyException``) is replaced through
:class:`~arcscan.ops.tokens.TorchServeKey`; if there is no other, :class:`ArcscanError` stops
the run.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from arcscan.errors import ArcscanError
from arcscan.io.frames import Frame, encode_stream0
from arcscan.ops.plainhttp import error_message
from arcscan.ops.tokens import KeyRenewalError, TorchServeKey, client_token

if TYPE_CHECKING:
    from arcscan.ops.stream.run import StreamConfig

log = logging.getLogger(__name__)


def load_token(token: str | None = None, token_file: str | Path | None = None) -> str:
    """The bearer token: ``token`` itself, or from ``token_file``: the inference key of a
    TorchServe ``key_file.json``, or the first token of a shared token file (the auth proxy's)."""
    if token and token_file:
        raise ArcscanError("give either a token or a token file, not both")
    if token_file:
        return client_token(Path(token_file))
    if not token:
        raise ArcscanError(
            "no inference token: pass --token (or set ARCSCAN_TOKEN) or --token-file "
            "(TorchServe's key_file.json or the auth proxy's token file)"
        )
    return token


@dataclass
class Outcome:
    """How sending one frame ended: ``ok`` (with the model, the answer's frame object without
    its mask, and the mask PNG), ``rejected``, ``unavailable``, ``bad-response`` or ``abandoned``."""

    kind: str
    attempts: int
    status: int | None = None
    message: str = ""
    model: dict | None = None
    result: dict | None = None
    mask_png: bytes = b""


class Client:
    """Sends frames to ``config.url`` from any number of threads: one keep-alive session per
    thread, one token for all. ``on_retry(frame)`` is called before each repeated request; a
    set ``stop`` abandons the frames waiting for a retry."""

    def __init__(self, config: StreamConfig, stop: threading.Event, on_retry: Callable[[Frame], None]) -> None:
        self.config = config
        self.stop = stop
        self.on_retry = on_retry
        self.key = None  # without a token file, the token cannot be replaced
        if config.token_file is not None:
            self.key = TorchServeKey(config.token_file, config.renew_url, config.timeout, key=config.token, shared_tokens_ok=True)
        self._sessions = threading.local()

    def post(self, frame: Frame) -> Outcome:
        """Post one frame, retrying connection errors, timeouts, 429 and 5xx."""
        body = encode_stream0([frame])
        token = self.key.current() if self.key else self.config.token
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "X-Filename": frame.source,
        }
        session = self._session()
        status, message = None, ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.on_retry(frame)
                cap = min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1))
                if self.stop.wait(random.uniform(0, cap)):
                    return Outcome("abandoned", attempt, status, message)
            try:
                response = session.post(self.config.url, data=body, headers=headers, timeout=self.config.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                status, message = None, f"{type(err).__name__}: {err}"
                continue
            status = response.status_code
            if status < 400:
                return _accepted(response, attempt + 1)
            message = error_message(response.content)
            if status in (401, 403) or (status == 400 and "InvalidKeyException" in response.text):
                token = self._replacement(token)
                if token is None:
                    raise ArcscanError(f"{self.config.url} refused the inference token ({status}: {message})")
                headers["Authorization"] = f"Bearer {token}"
                continue
            if status == 429 or status >= 500:
                continue
            return Outcome("rejected", attempt + 1, status, message)
        return Outcome("unavailable", self.config.retries + 1, status, message)

    def _replacement(self, refused: str) -> str | None:
        """The token to send instead of ``refused`` (see :meth:`TorchServeKey.replace
        <arcscan.ops.tokens.TorchServeKey.replace>`), or None if there is none."""
        if self.key is None:
            return None
        try:
            return self.key.replace(refused)
        except (KeyRenewalError, OSError, http.client.HTTPException) as err:
            log.error("renewing the inference key at %s failed: %s", self.config.renew_url, err)
            return None

    def _session(self) -> requests.Session:
        """One keep-alive session per worker thread (sessions are not thread-safe)."""
        if not hasattr(self._sessions, "session"):
            self._sessions.session = requests.Session()
        return self._sessions.session


def _accepted(response: requests.Response, attempts: int) -> Outcome:
    """The outcome of a 2xx answer: ``ok`` if it holds a frame result with a mask, else ``bad-response``."""
    try:
        answer = response.json()
        result = dict(answer["frames"][0])
        mask_png = base64.b64decode(result.pop("mask_png"), validate=True)
        model = dict(answer.get("model") or {})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error) as err:
        return Outcome("bad-response", attempts, response.status_code, f"answer without a frame result and mask ({err!r})")
    return Outcome("ok", attempts, response.status_code, model=model, result=result, mask_png=mask_png)
