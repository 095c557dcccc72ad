"""Stream client: send all-sky frames one by one to the arcscan inference endpoint.

Frames come from one of two sources: a folder where new stream0 minutes arrive (``watch``),
or files and archive folders replayed at the imagers' own pace (frame timestamps, optionally
sped up) or as fast as possible (``replay``). Each frame is posted as a one-frame stream0 body
to ``POST {url}`` with a bearer token (the auth proxy's shared token, or TorchServe's own
inference key when talking to TorchServe directly), ``concurrency`` frames at a time.
Connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff and full
jitter; any other 4xx is final.

The output folder is the ledger, append-only, each line flushed and fsynced:

* ``results.jsonl``: one line per acknowledged frame, keyed by (file name, frame index): the
  server's answer for the frame (without its mask), under the client's own keys (file, index,
  timestamp, site, imager, model, model_version, latency_ms, attempts, status, mask, at). A run
  starts by reading it and never sends a recorded frame again, so a restart resumes where the
  last run stopped. A crash leaves at most a truncated last line; readers skip it.
* ``failed.jsonl``: one line per frame that failed (4xx answer, retries exhausted, malformed
  answer, unreadable file). Failed frames are not in ``results.jsonl``: the next run tries
  them again.
* ``masks/<site>/<file stem>_<index:02d>.png``: the mask of each acknowledged frame, written
  (and fsynced) before its results line.
* ``catalog.csv``: the arc catalog, one row per arc per acknowledged frame, the same rows as
  ``arcscan segment --catalog`` and the archive (:mod:`arcscan.geo.catalog`).

Per imager, the metrics also carry what the answers say: arc fraction, arcs per frame, the
arcs' boundary latitudes and, with a drift reference, drift scores against the training set
(:mod:`~arcscan.ops.stream.drift`).

A refused token (401/403, or TorchServe's 400 ``InvalidKeyException``) is first renewed:
with a ``token_file`` the token is read again (the server or an operator may have rotated
it), and with a ``renew_url`` (TorchServe's management address) an expired inference key is
renewed through TorchServe's token API with the file's API key (TorchServe keys expire after
``token_expiration_min``). If that gives no new key, the run stops with an error instead of
recording every frame as failed. SIGINT/SIGTERM stop it cleanly: no new frames are sent,
requests under way finish, frames waiting for a retry are abandoned (recorded nowhere, so the
next run sends them).

The rooms: :mod:`~arcscan.ops.stream.sources` (which files, in what order),
:mod:`~arcscan.ops.stream.client` (posting one frame), :mod:`~arcscan.ops.stream.ledger`
(recording it), :mod:`~arcscan.ops.stream.metrics` (Prometheus), :mod:`~arcscan.ops.stream.run`
(the run loop) and :mod:`~arcscan.ops.stream.cli` (``arcscan stream``). The names below are
imported from them on first use, so that ``arcscan`` (whose parser imports the ``cli`` room)
does not load ``requests`` and Prometheus before a stream runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arcscan.ops.stream.client import load_token
    from arcscan.ops.stream.ledger import FAILED, RESULTS, read_ledger
    from arcscan.ops.stream.run import StreamConfig, StreamSummary, run_stream
    from arcscan.ops.stream.sources import replay_files, watch_files

_ROOMS = {
    "StreamConfig": "run",
    "StreamSummary": "run",
    "run_stream": "run",
    "read_ledger": "ledger",
    "RESULTS": "ledger",
    "FAILED": "ledger",
    "replay_files": "sources",
    "watch_files": "sources",
    "load_token": "client",
}
__all__ = list(_ROOMS)


def __getattr__(name: str) -> object:
    if name not in _ROOMS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_ROOMS[name]}"), name)
