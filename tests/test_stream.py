"""Stream client against a real local HTTP server that speaks the endpoint's protocol.

The server is a protocol test double of the TorchServe endpoint (bearer token, one-frame
stream0 body in, JSON with a base64 PNG mask out) that can be told to answer 503, drop
connections or reject a file, so the client's retries, ledger and resume can be checked.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import Future
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import png
import pytest

from arcscan.errors import ArcscanError, InputError
from arcscan.io.frames import decode_frames
from arcscan.ops.stream import FAILED, RESULTS, StreamConfig, load_token, read_ledger, replay_files, run_stream
from arcscan.ops.stream.cli import add_stream_parser
from arcscan.core.synth import write_minute
from servers import free_port

TOKEN = "inference-key-1"
API_KEY = "api-key"
MINUTE = "20260101_0600_synt_themis99_full.pgm.gz"
NEXT_MINUTE = "20260101_0601_synt_themis99_full.pgm.gz"


class Endpoint(ThreadingHTTPServer):
    """``POST /predictions/arcscan``: the first ``drop_first`` requests lose their connection,
    the next ``fail_first`` get 503, files named in ``reject`` get 400, the rest a mask of the
    pixels above the frame's median. ``requests`` logs the X-Filename of every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EndpointHandler)
        self.drop_first = 0
        self.fail_first = 0
        self.reject: set[str] = set()
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.token: str | None = TOKEN  # the inference key accepted now (None: expired)
        self.expire_after: int | None = None  # the key expires after this many requests
        self.key_file: Path | None = None  # rewritten on renewal, as TorchServe does
        self.renew_on_expiry = False  # someone else renews the key (and rewrites the file) at once

    def renew(self) -> str:
        """A new inference key, written to the key file (TorchServe's token API)."""
        self.token = f"inference-key-{len(self.requests) + 2}"
        self.key_file.write_text(json.dumps({"inference": {"key": self.token}, "API": {"key": API_KEY}}))
        return self.token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/predictions/arcscan"


class _EndpointHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TorchServe
    server: Endpoint

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/token?type=inference":  # the management API's key renewal
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self._answer(400, {"code": 400, "type": "InvalidKeyException", "message": "wrong API key"})
            with self.server.lock:
                return self._answer(200, {"inference": self.server.renew()})
        name = self.headers.get("X-Filename", "")
        with self.server.lock:
            self.server.requests.append(name)
            number = len(self.server.requests)
            if self.server.expire_after is not None and number == self.server.expire_after + 1:
                self.server.token = None
                if self.server.renew_on_expiry:
                    self.server.renew()
            accepted = self.server.token
        if self.headers.get("Authorization") != f"Bearer {accepted}":
            return self._answer(400, {"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed"})
        if number <= self.server.drop_first:
            self.close_connection = True  # no answer at all
            return
        if number <= self.server.drop_first + self.server.fail_first:
            return self._answer(503, {"code": 503, "type": "ServiceUnavailableException", "message": "overloaded"})
        if name in self.server.reject:
            return self._answer(400, {"error": f"{name}: not a frame this endpoint accepts"})
        (frame,) = decode_frames(body, name)
        mask = frame.image > np.median(frame.image)
        buffer = io.BytesIO()
        png.Writer(mask.shape[1], mask.shape[0], greyscale=True, bitdepth=1).write(buffer, mask.astype(np.uint8))
        result = {
            "index": 0,
            "timestamp": frame.timestamp.isoformat(),
            "site": frame.site,
            "imager": frame.imager,
            "mask_png": base64.b64encode(buffer.getvalue()).decode(),
            "arc_fraction": float(mask.mean()),
            "objects": [{"area": int(mask.sum())}],
            "scan_ms": 1.0,
            "crf_ms": 2.0,
        }
        self._answer(200, {"model": {"name": "arcscan", "version": "7"}, "source": name, "frames": [result]})

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint():
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def minutes(tmp_path_factory) -> Path:
    """Two synthetic stream0 minutes (20 frames each), made once."""
    folder = tmp_path_factory.mktemp("minutes")
    for minute in (0, 1):
        _, masks_path = write_minute(folder, minute, datetime(2026, 1, 1, 6, minute), 20)
        masks_path.unlink()
    assert sorted(p.name for p in folder.iterdir()) == [MINUTE, NEXT_MINUTE]
    return folder


def _config(endpoint: Endpoint, output: Path, **overrides) -> StreamConfig:
    return StreamConfig(**{"url": endpoint.url, "token": TOKEN, "output": output, "backoff": 0.01, "poll": 0.05} | overrides)


def _keys(output: Path) -> list[tuple[str, int]]:
    return [(entry["file"], entry["index"]) for entry in read_ledger(output / RESULTS)]


def test_replay_delivers_every_frame_once_with_its_mask(endpoint, minutes, tmp_path):
    summary = run_stream(_config(endpoint, tmp_path), replay=[minutes / MINUTE])

    assert (summary.sent, summary.succeeded, summary.failed, summary.skipped_already_done) == (20, 20, 0, 0)
    entries = read_ledger(tmp_path / RESULTS)
    assert sorted(_keys(tmp_path)) == [(MINUTE, i) for i in range(20)] and len(endpoint.requests) == 20
    first = next(e for e in entries if e["index"] == 0)
    assert first["timestamp"].startswith("2026-01-01T06:00:00") and (first["site"], first["imager"]) == ("synt", "themis99")
    assert (first["model"], first["model_version"], first["status"], first["attempts"]) == ("arcscan", "7", 200, 1)
    assert 0 < first["arc_fraction"] < 1 and first["latency_ms"] > 0 and first["objects"]
    assert first["mask"] == "masks/synt/20260101_0600_synt_themis99_full_00.png"
    width, height, _, _ = png.Reader(filename=str(tmp_path / first["mask"])).read()
    assert (width, height) == (256, 256)
    assert read_ledger(tmp_path / FAILED) == []


def test_replay_is_paced_by_frame_timestamps(endpoint, minutes, tmp_path):
    summary = run_stream(_config(endpoint, tmp_path), replay=[minutes / MINUTE], speed=60.0)
    assert summary.succeeded == 20
    assert 0.9 < summary.duration < 5  # 19 gaps of 3 s at 60x: 0.95 s


def test_replay_orders_files_and_folders_by_time(minutes, tmp_path):
    assert [p.name for p in replay_files([minutes / NEXT_MINUTE, minutes])] == [MINUTE, NEXT_MINUTE]
    with pytest.raises(InputError, match="no such file"):
        replay_files([tmp_path / "missing.pgm.gz"])


def test_replay_takes_every_frame_format_the_readers_read(endpoint, tmp_path):
    from astropy.io import fits
    from PIL import Image

    folder = tmp_path / "imagers"
    folder.mkdir()
    rows, cols = np.mgrid[:96, :128]
    sky = np.where(np.hypot(rows - 48, cols - 64) < 44, 9000, 3300).astype(np.uint16)
    fits.writeto(folder / "PKR_DASC_0558_20151007_082351.743.FITS", sky.astype(">i2"))
    Image.fromarray((sky // 257).astype(np.uint8)).save(folder / "camera.png")
    np.save(folder / "stack.npy", np.stack([sky, sky]))
    (folder / "notes.txt").write_text("not a frame file")
    assert sorted(p.name for p in replay_files([folder])) == ["PKR_DASC_0558_20151007_082351.743.FITS", "camera.png", "stack.npy"]
    summary = run_stream(_config(endpoint, tmp_path / "out"), replay=[folder / "PKR_DASC_0558_20151007_082351.743.FITS"], speed=None)
    assert (summary.sent, summary.succeeded, summary.failed) == (1, 1, 0)
    (entry,) = read_ledger(tmp_path / "out" / RESULTS)  # sent as stream0 with the FITS metadata kept
    assert (entry["file"], entry["site"], entry["timestamp"]) == ("PKR_DASC_0558_20151007_082351.743.FITS", "pkr", "2015-10-07T08:23:51.743000+00:00")


def test_retries_after_503_and_dropped_connections(endpoint, minutes, tmp_path):
    endpoint.drop_first, endpoint.fail_first = 3, 5
    summary = run_stream(_config(endpoint, tmp_path, concurrency=2), replay=[minutes / MINUTE], speed=None)

    assert (summary.sent, summary.succeeded, summary.failed) == (20, 20, 0)
    assert sorted(_keys(tmp_path)) == [(MINUTE, i) for i in range(20)]
    assert len(endpoint.requests) == 28  # 20 frames + 8 repeats
    assert sum(e["attempts"] - 1 for e in read_ledger(tmp_path / RESULTS)) == 8


def test_retries_are_bounded_then_recorded_as_failed(endpoint, minutes, tmp_path):
    endpoint.fail_first = 10**6
    summary = run_stream(_config(endpoint, tmp_path, retries=2, concurrency=4), replay=[minutes / MINUTE])

    assert (summary.succeeded, summary.failed) == (0, 20) and len(endpoint.requests) == 60
    failed = read_ledger(tmp_path / FAILED)
    assert {(f["reason"], f["status"], f["attempts"], f["message"]) for f in failed} == {("unavailable", 503, 3, "overloaded")}


def test_400_is_recorded_as_failed_and_not_retried(endpoint, minutes, tmp_path):
    endpoint.reject = {MINUTE}
    summary = run_stream(_config(endpoint, tmp_path), replay=[minutes])

    assert (summary.sent, summary.succeeded, summary.failed) == (40, 20, 20)
    assert Counter(endpoint.requests) == {MINUTE: 20, NEXT_MINUTE: 20}
    failed = read_ledger(tmp_path / FAILED)
    assert sorted((f["file"], f["index"]) for f in failed) == [(MINUTE, i) for i in range(20)]
    assert {(f["reason"], f["status"], f["attempts"]) for f in failed} == {("rejected", 400, 1)}
    assert "not a frame this endpoint accepts" in failed[0]["message"]
    assert sorted(_keys(tmp_path)) == [(NEXT_MINUTE, i) for i in range(20)]


def test_an_unreadable_file_is_recorded_and_the_rest_sent(endpoint, minutes, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(minutes, archive)
    data = (archive / MINUTE).read_bytes()
    (archive / MINUTE).write_bytes(data[: len(data) // 2])  # a transfer cut short
    summary = run_stream(_config(endpoint, tmp_path / "out"), replay=[archive])

    assert (summary.sent, summary.succeeded, summary.failed) == (20, 20, 1)
    (failed,) = read_ledger(tmp_path / "out" / FAILED)
    assert (failed["file"], failed["index"], failed["reason"]) == (MINUTE, None, "unreadable")
    assert "truncated gzip" in failed["message"]


def test_resume_after_a_stop_sends_only_what_is_missing(endpoint, minutes, tmp_path):
    first = run_stream(_config(endpoint, tmp_path, max_frames=15, concurrency=3), replay=[minutes])
    assert (first.sent, first.succeeded) == (15, 15)

    second = run_stream(_config(endpoint, tmp_path, concurrency=3), replay=[minutes])
    assert (second.sent, second.succeeded, second.skipped_already_done) == (25, 25, 15)
    keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) == 40 and len(endpoint.requests) == 40

    third = run_stream(_config(endpoint, tmp_path), replay=[minutes])
    assert (third.sent, third.skipped_already_done) == (0, 40) and len(endpoint.requests) == 40


def test_sigterm_stops_cleanly_and_the_next_run_completes(endpoint, minutes, tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    stopped = run_stream(_config(endpoint, tmp_path), replay=[minutes / MINUTE], speed=10.0)  # 5.7 s unless stopped

    assert stopped.duration < 3 and 0 < stopped.succeeded < 20 and stopped.failed == 0
    assert signal.getsignal(signal.SIGTERM) is previous
    resumed = run_stream(_config(endpoint, tmp_path), replay=[minutes / MINUTE])
    keys = _keys(tmp_path)
    assert resumed.skipped_already_done == stopped.succeeded
    assert sorted(keys) == [(MINUTE, i) for i in range(20)] and len(keys) == 20


def test_a_truncated_last_line_is_tolerated_and_its_frame_sent_again(endpoint, minutes, tmp_path):
    run_stream(_config(endpoint, tmp_path, max_frames=5, concurrency=1), replay=[minutes / MINUTE])
    results = tmp_path / RESULTS
    data = results.read_bytes()
    results.write_bytes(data[: len(data) - 40])  # a crash in the middle of writing line 5
    assert len(_keys(tmp_path)) == 4

    summary = run_stream(_config(endpoint, tmp_path), replay=[minutes / MINUTE])
    assert (summary.sent, summary.skipped_already_done) == (16, 4)
    keys = _keys(tmp_path)
    assert sorted(keys) == [(MINUTE, i) for i in range(20)] and len(keys) == 20
    lines = results.read_bytes().splitlines()
    assert len(lines) == 21 and sum(1 for line in lines if not line.endswith(b"}")) == 1


def test_watch_picks_up_a_file_once_it_is_complete(endpoint, minutes, tmp_path):
    incoming, output = tmp_path / "incoming", tmp_path / "out"
    incoming.mkdir()
    stop = threading.Event()
    config = _config(endpoint, output, settle=30.0)  # only a complete gzip is ready in time
    run = _in_background(lambda: run_stream(config, watch=incoming, stop=stop))

    data = (minutes / MINUTE).read_bytes()
    (incoming / MINUTE).write_bytes(data[: len(data) // 2])  # still being written
    (incoming / "notes.txt").write_text("not a frame file")
    time.sleep(0.3)
    assert endpoint.requests == []
    with (incoming / MINUTE).open("ab") as rest:
        rest.write(data[len(data) // 2 :])
    _wait_for(lambda: len(_keys(output)) == 20)
    stop.set()

    summary = run.result(timeout=10)
    assert (summary.sent, summary.succeeded) == (20, 20) and len(endpoint.requests) == 20
    assert sorted(_keys(output)) == [(MINUTE, i) for i in range(20)]


def test_watch_stops_after_the_given_time(endpoint, tmp_path):
    summary = run_stream(_config(endpoint, tmp_path / "out"), watch=tmp_path, stop_after=0.3)
    assert summary.sent == 0 and 0.3 <= summary.duration < 2


def test_watch_exposes_prometheus_metrics(endpoint, minutes, tmp_path):
    incoming, output, port = tmp_path / "incoming", tmp_path / "out", free_port()
    incoming.mkdir()
    endpoint.fail_first = 2
    stop = threading.Event()
    run = _in_background(lambda: run_stream(_config(endpoint, output, metrics_port=port), watch=incoming, stop=stop))

    shutil.copy(minutes / MINUTE, incoming)
    succeeded = 'arcscan_stream_frames_succeeded_total{imager="themis99"}'
    _wait_for(lambda: len(_keys(output)) == 20)  # the metrics server is up by then
    _wait_for(lambda: _scrape(port).get(succeeded) == 20)  # counted after everything else
    values = _scrape(port)
    stop.set()
    run.result(timeout=10)

    assert values['arcscan_stream_frames_sent_total{imager="themis99"}'] == 20
    assert values['arcscan_stream_retries_total{imager="themis99"}'] == 2
    assert values["arcscan_stream_latency_seconds_count"] == 20
    assert values["arcscan_stream_in_flight"] == 0
    assert values["arcscan_stream_lag_seconds"] > 0  # the frames are from 2026-01-01 06:00
    assert len(_keys(output)) == 20


def _scrape(port: int) -> dict[str, float]:
    """The samples of a Prometheus text exposition, by name and labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def test_missing_or_refused_token_is_a_clear_error(endpoint, minutes, tmp_path, monkeypatch):
    monkeypatch.delenv("ARCSCAN_TOKEN", raising=False)
    parser = argparse.ArgumentParser()
    add_stream_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["stream", "--url", endpoint.url, "--replay", str(minutes / MINUTE), "-o", str(tmp_path)])
    with pytest.raises(ArcscanError, match="no inference token"):
        args.run(args)

    with pytest.raises(ArcscanError, match="refused the inference token .400: Token Authorization failed"):
        run_stream(_config(endpoint, tmp_path, token="wrong"), replay=[minutes / MINUTE])
    assert _keys(tmp_path) == [] and read_ledger(tmp_path / FAILED) == []


def test_token_from_a_torchserve_key_file(tmp_path):
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"management": {"key": "m"}, "inference": {"key": TOKEN}, "API": {"key": "a"}}))
    assert load_token(token_file=key_file) == TOKEN
    key_file.write_text(json.dumps({"management": {"key": "m"}}))
    with pytest.raises(InputError, match="key_file.json: no \"inference\""):
        load_token(token_file=key_file)


def test_token_from_the_auth_proxys_plain_token_file(tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text("# shared stream tokens: the first is sent\nshared-stream-token-0002\nshared-stream-token-0001\n")
    assert load_token(token_file=token_file) == "shared-stream-token-0002"
    token_file.write_text("# no token here\n\n")
    with pytest.raises(InputError, match="tokens: no token in the file"):
        load_token(token_file=token_file)
    token_file.write_text("shared-stream-token-0002\nletmein\n")
    with pytest.raises(InputError, match="tokens line 2: not a token") as refused:
        load_token(token_file=token_file)
    assert "letmein" not in str(refused.value)  # the message never shows a token
    with pytest.raises(InputError, match="missing: cannot read the token file"):
        load_token(token_file=tmp_path / "missing")


def test_cli_replays_and_reports(endpoint, minutes, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_stream_parser(parser.add_subparsers(dest="command"))
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": TOKEN}}))
    output = tmp_path / "out"
    args = parser.parse_args(
        ["stream", "--url", endpoint.url, "--token-file", str(key_file), "--replay", str(minutes), "--speed", "fast", "-o", str(output), "--concurrency", "3"]
    )
    args.run(args)
    assert "sent 40, succeeded 40, failed 0" in capsys.readouterr().out
    assert len(set(_keys(output))) == 40


def _in_background(work) -> Future:
    """Run ``work`` in a daemon thread; the future holds its value or its error."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(work())
        except Exception as error:  # handed to the test thread by future.result()
            future.set_exception(error)

    threading.Thread(target=target, daemon=True).start()
    return future


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _key_file(path: Path, token: str) -> Path:
    path.write_text(json.dumps({"inference": {"key": token}, "API": {"key": API_KEY}}))
    return path


def test_a_key_rotated_in_the_key_file_is_picked_up(endpoint, minutes, tmp_path):
    key_file = _key_file(tmp_path / "key_file.json", TOKEN)
    endpoint.key_file, endpoint.expire_after, endpoint.renew_on_expiry = key_file, 5, True
    summary = run_stream(_config(endpoint, tmp_path / "out", token_file=key_file, concurrency=1), replay=[minutes / MINUTE])
    assert (summary.succeeded, summary.failed) == (20, 0)
    assert json.loads(key_file.read_text())["inference"]["key"] != TOKEN


def test_an_expired_key_is_renewed_through_the_token_api(endpoint, minutes, tmp_path):
    key_file = _key_file(tmp_path / "key_file.json", TOKEN)
    endpoint.key_file, endpoint.expire_after = key_file, 5
    config = _config(endpoint, tmp_path / "out", token_file=key_file, renew_url=endpoint.url.rsplit("/predictions", 1)[0], concurrency=2)
    summary = run_stream(config, replay=[minutes / MINUTE])
    assert (summary.succeeded, summary.failed) == (20, 0)
    assert sorted(i for _, i in _keys(tmp_path / "out")) == list(range(20))
    assert json.loads(key_file.read_text())["inference"]["key"] != TOKEN


def test_an_expired_key_without_a_way_to_renew_stops_the_run(endpoint, minutes, tmp_path):
    key_file = _key_file(tmp_path / "key_file.json", TOKEN)
    endpoint.key_file, endpoint.expire_after = key_file, 5
    with pytest.raises(ArcscanError, match="refused the inference token"):
        run_stream(_config(endpoint, tmp_path / "out", token_file=key_file, concurrency=1), replay=[minutes / MINUTE])
    assert len(_keys(tmp_path / "out")) == 5  # what was answered before stays recorded


def test_a_rotated_token_file_is_read_again_when_the_token_is_refused(endpoint, minutes, tmp_path):
    """The auth proxy's shared token is rotated: the client's token is refused, the file's
    first token is the new one, and the run carries on with it."""
    token_file = tmp_path / "tokens"
    token_file.write_text("shared-stream-token-0001\n")
    endpoint.token = "shared-stream-token-0001"
    config = _config(endpoint, tmp_path / "out", token=load_token(token_file=token_file), token_file=token_file, concurrency=1)
    rotated = _in_background(lambda: run_stream(config, replay=[minutes / MINUTE], speed=50.0))
    _wait_for(lambda: len(endpoint.requests) >= 3)
    with endpoint.lock:
        token_file.write_text("shared-stream-token-0002\nshared-stream-token-0001\n")
        endpoint.token = "shared-stream-token-0002"  # the old token retired
    summary = rotated.result(timeout=30)
    assert (summary.succeeded, summary.failed) == (20, 0)
