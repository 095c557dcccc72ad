"""A real TorchServe (Java) serving an archive built by ``serving/build_mar.py``.

One server per module, on free 127.0.0.1 ports, configured from ``serving/config.properties``
with only the ports replaced (token authorization stays on) and started and stopped by
``serving/serve.py``; it is stopped (and killed if it hangs) also when a test fails.
Timings (cold start, a 20-frame minute) and the workers' memory around the hostile corpus
are printed: run with ``-s`` to see them.
"""

from __future__ import annotations

import gzip
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from hypothesis import HealthCheck, given, settings

from arcscan.io.frames import encode_stream0
from hostile import CASES, Case, minute, npy, png16, stream0
from serving import serve
from servers import free_port, random_model_archive
from test_handler import HOSTILE_BODIES, check_answer, check_any_answer

pytestmark = pytest.mark.slow

MODEL = {"name": "arcscan-arc", "version": "e2e-1"}
TIMINGS: dict[str, float] = {}


def server_config(path: Path) -> Path:
    """serving/config.properties with free ports; every other line as checked in."""
    path = serve.free_port_config(path)
    text = path.read_text()
    assert "disable_token_authorization" not in text and "enable_model_api=false" in text
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    store = random_model_archive(root, MODEL["version"]).parent
    config = server_config(root / "config.properties")
    start = time.perf_counter()
    with serve.running(store, config, root / "run", timeout_s=120) as running:
        TIMINGS["cold start to READY (s)"] = time.perf_counter() - start
        yield running
    jvm = psutil.Process(running.pid) if psutil.pid_exists(running.pid) else None
    assert jvm is None or jvm.status() == psutil.STATUS_ZOMBIE, "TorchServe JVM still running after stop"
    print("\n" + "\n".join(f"e2e timing: {k}: {v:.2f}" for k, v in TIMINGS.items()))


def post(server, body: bytes, filename: str | bytes | None = None, token: bool = True, content_type: str = "application/octet-stream") -> requests.Response:
    headers = {"Content-Type": content_type}
    if filename:
        headers["X-Filename"] = filename  # bytes are sent as they are
    if token:
        headers.update(server.auth("inference"))
    return requests.post(server.predictions_url(), data=body, headers=headers, timeout=120)


def test_stream0_minute_of_20_frames(server):
    frames = minute(20)
    body = gzip.compress(encode_stream0(frames))
    name = "20140310_0600_gill_themis19_full.pgm.gz"
    for attempt in (1, 2):
        start = time.perf_counter()
        answer = post(server, body, name)
        TIMINGS[f"20-frame .pgm.gz request #{attempt} (s)"] = time.perf_counter() - start
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        check_answer(answer.json(), name, frames, model=MODEL)
    per_frame = answer.json()["frames"]
    TIMINGS["mean scan ms per frame"] = float(np.mean([f["scan_ms"] for f in per_frame]))
    TIMINGS["mean CRF ms per frame"] = float(np.mean([f["crf_ms"] for f in per_frame]))


def test_plain_pgm_png_and_npy(server):
    frames = minute(2, seed=1)
    answer = post(server, encode_stream0(frames), "minute.pgm")
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), "minute.pgm", frames, model=MODEL)

    answer = post(server, png16(frames[0].image), "frame.png")
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), "frame.png", frames[:1], with_metadata=False, model=MODEL)

    answer = post(server, npy(np.stack([f.image for f in frames])))
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), "upload", frames, with_metadata=False, model=MODEL)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_every_real_file_of_every_imager_is_answered_in_its_own_pixels(server):
    """Each real file in ../shared/data (every format and size) through the real TorchServe."""
    files = sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix.lower() in {".fits", ".cdf", ".png", ".gz", ".pgm"}) if SHARED.is_dir() else []
    if not files:
        pytest.skip(f"{SHARED} not present (real samples live in ../shared/data)")
    from arcscan.io.frames import read_frames
    from test_handler import decode_mask

    for path in files:
        answer = post(server, path.read_bytes(), path.name)
        assert answer.status_code == 200, f"{path.name}: {answer.text[:300]}"
        frames = answer.json()["frames"]
        expected = read_frames(path)
        assert len(frames) == len(expected), path.name
        assert decode_mask(frames[0]["mask_png"]).shape == expected[0].image.shape, path.name
        assert frames[0]["sky"] in {"profile dasc-pkr", "profile themis-gako", "estimated"}, (path.name, frames[0]["sky"])


def test_requests_without_a_valid_token_are_refused(server):
    body = png16(minute(1)[0].image)
    for headers in ({}, {"Authorization": "Bearer wrong"}, server.auth("management")):
        answer = requests.post(server.predictions_url(), data=body, headers=headers, timeout=30)
        assert answer.status_code == 400 and "Token Authorization failed" in answer.text
        assert "frames" not in answer.text
    answer = requests.get(f"{server.management_url}/models", timeout=30)
    assert answer.status_code == 400 and "Token Authorization failed" in answer.text


def workers(server) -> dict[int, psutil.Process]:
    """The TorchServe worker processes of the server, by pid."""
    return {p.pid: p for p in server.workers()}


def answered_as_expected(case: Case, answer: requests.Response) -> bool:
    """The case's answer: its frontend's, or the handler's ``{"error": message}`` naming the input."""
    if case.frontend:
        return answer.status_code == case.frontend[0] and case.frontend[1] in answer.text
    body = answer.json()
    message = body["error"] if set(body) == {"error"} else ""
    return answer.status_code == case.status and message.startswith(f"{case.shown}: ") and case.fragment in message


def test_hostile_corpus_and_random_bodies_leave_the_same_workers_serving(server):
    """Every case of the corpus (``tests/hostile.py``) gets its answer from a real TorchServe,
    then random and mutated bodies get a 200 or a 4xx; afterwards the same worker processes
    serve (none died or was restarted), their memory has grown by less than 300 MB, and a
    good request succeeds."""
    assert post(server, png16(minute(1, seed=2)[0].image), "warm.png").status_code == 200
    before = workers(server)
    assert len(before) == 2, before
    rss_before = {pid: process.memory_info().rss for pid, process in before.items()}

    start = time.perf_counter()
    wrong = []
    for case in CASES:
        answer = post(server, case.body(), case.filename, content_type=case.content_type)
        if not answered_as_expected(case, answer):
            wrong.append((case.id, answer.status_code, answer.text[:200]))
    TIMINGS[f"hostile corpus, {len(CASES)} requests (s)"] = time.perf_counter() - start
    assert not wrong, wrong

    start = time.perf_counter()

    @settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=HOSTILE_BODIES)
    def random_and_mutated(body: bytes) -> None:
        answer = post(server, body, "fuzz.bin")
        check_any_answer(answer.status_code, answer.json(), "fuzz.bin")

    random_and_mutated()
    TIMINGS["40 random and mutated bodies (s)"] = time.perf_counter() - start

    after = workers(server)
    assert set(after) == set(before) and all(process.is_running() for process in after.values())
    growth = {pid: (after[pid].memory_info().rss - rss) / 2**20 for pid, rss in rss_before.items()}
    for number, (pid, rss) in enumerate(sorted(rss_before.items()), 1):
        TIMINGS[f"worker {number} RSS before the corpus (MB)"] = rss / 2**20
        TIMINGS[f"worker {number} RSS after the corpus and fuzzing (MB)"] = rss / 2**20 + growth[pid]
    assert max(growth.values()) < 300, growth
    frames = minute(1, seed=4)
    answer = post(server, encode_stream0(frames), "after.pgm")
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), "after.pgm", frames, model=MODEL)


def test_management_describes_the_archived_model(server):
    answer = requests.get(f"{server.management_url}/models/arcscan?customized=true", headers=server.auth("management"), timeout=30)
    assert answer.status_code == 200, answer.text
    [description] = answer.json()
    assert description["modelVersion"] == MODEL["version"]
    assert description["customizedMetadata"] == {**MODEL, "sky_radius": 112.0}


def test_no_route_registers_or_removes_a_model_at_run_time(server):
    """enable_model_api=false: even with the management key, models cannot be registered
    (from the store or a URL) or unregistered; the served model stays."""
    headers = server.auth("management")
    attempts = [
        requests.post(f"{server.management_url}/models", params={"url": "arcscan.mar", "model_name": "other"}, headers=headers, timeout=30),
        requests.post(f"{server.management_url}/models", params={"url": "https://example.org/evil.mar"}, headers=headers, timeout=30),
        requests.delete(f"{server.management_url}/models/arcscan", headers=headers, timeout=30),
    ]
    for answer in attempts:
        assert answer.status_code == 405 and "MethodNotAllowedException" in answer.text, (answer.status_code, answer.text)
    models = requests.get(f"{server.management_url}/models", headers=headers, timeout=30).json()["models"]
    assert [model["modelName"] for model in models] == ["arcscan"]


def test_metrics_endpoint_shows_the_handler_metrics(server):
    assert post(server, png16(minute(1)[0].image), "m.png").status_code == 200
    assert post(server, b"junk", "j.bin").status_code == 415
    names = ["ArcscanFrames", "ArcscanScanMs", "ArcscanCrfMs", "ArcscanArcFraction", "ArcscanRejected"]
    deadline = time.monotonic() + 20
    while True:  # the frontend picks metrics up from the worker log: allow it a moment
        text = requests.get(f"{server.metrics_url}/metrics", timeout=30).text  # no token on this port
        values = {
            name: float(match.group(1))
            for name in names
            if (match := re.search(rf'^{name}\{{ModelName="arcscan",Level="Model",[^}}]*\}} (\S+)$', text, re.M))
        }
        if len(values) == len(names) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(values) == set(names), text
    assert values["ArcscanFrames"] >= 1 and values["ArcscanScanMs"] > 0 and values["ArcscanCrfMs"] > 0
    assert values["ArcscanRejected"] >= 1 and 0 <= values["ArcscanArcFraction"] <= 1
    assert re.search(r"^# TYPE ArcscanFrames counter$", text, re.M)
    assert re.search(r"^# TYPE ArcscanArcFraction gauge$", text, re.M)


def test_stream_client_delivers_every_frame_of_a_replayed_minute_exactly_once(server, tmp_path):
    from datetime import datetime, timezone

    from arcscan.ops.stream import RESULTS, StreamConfig, read_ledger, run_stream
    from arcscan.core.synth import write_minute

    frames_path, _ = write_minute(tmp_path / "archive", seed=26, start=datetime(2026, 3, 1, 6, tzinfo=timezone.utc))
    config = StreamConfig(url=server.predictions_url(), token=server.key(), output=tmp_path / "out", concurrency=4)
    summary = run_stream(config, replay=[frames_path])
    assert (summary.succeeded, summary.failed) == (20, 0)
    again = run_stream(config, replay=[frames_path])  # a restart: nothing is sent twice
    assert (again.sent, again.skipped_already_done) == (0, 20)
    entries = read_ledger(tmp_path / "out" / RESULTS)
    assert sorted(e["index"] for e in entries) == list(range(20))
    assert {e["model_version"] for e in entries} == {MODEL["version"]}
    assert all((tmp_path / "out" / e["mask"]).is_file() for e in entries)


def test_stream_client_renews_an_expired_key(server, tmp_path):
    """TorchServe keys expire (token_expiration_min): a client given the key file and the
    management URL renews the key through TorchServe's token API and carries on."""
    from datetime import datetime, timezone

    from arcscan.ops.stream import StreamConfig, run_stream
    from arcscan.core.synth import write_minute

    stale_file = server.key_file.read_text()
    stale_key = server.key()
    # Make the key in the file stale, as expiry does: renew it behind the file's back.
    renewed = requests.post(f"{server.management_url}/token", params={"type": "inference"}, headers=server.auth("API"), timeout=10)
    assert renewed.status_code == 200, renewed.text
    server.key_file.write_text(stale_file)
    refused = requests.post(server.predictions_url(), data=b"x", headers={"Authorization": f"Bearer {stale_key}"}, timeout=10)
    assert refused.status_code == 400 and "InvalidKeyException" in refused.text

    frames_path, _ = write_minute(tmp_path / "archive", seed=5, start=datetime(2026, 3, 2, 6, tzinfo=timezone.utc), n_frames=4)
    config = StreamConfig(
        url=server.predictions_url(), token=stale_key, output=tmp_path / "out",
        token_file=server.key_file, renew_url=server.management_url, concurrency=1,
    )
    summary = run_stream(config, replay=[frames_path])
    assert (summary.succeeded, summary.failed) == (4, 0)
    assert server.key() != stale_key  # renewed through the management API, key file rewritten


SHARED_TOKEN = "e2e-shared-stream-token-0001"


@pytest.fixture(scope="module")
def auth_proxy(server, tmp_path_factory):
    """``arcscan auth-proxy`` as a process of its own, as in the pod, in front of the module's
    TorchServe with one shared token; stopped with SIGTERM (killed if it hangs)."""
    folder = tmp_path_factory.mktemp("auth-proxy")
    (folder / "tokens").write_text(SHARED_TOKEN + "\n")
    port = free_port()
    command = [
        sys.executable, "-m", "arcscan", "auth-proxy", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(folder / "tokens"),
        "--key-file", str(server.key_file), "--inference-url", server.inference_url, "--management-url", server.management_url,
    ]
    with open(folder / "auth-proxy.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (folder / "auth-proxy.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "auth proxy not listening after 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/predictions/arcscan"
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=10) == 0, (folder / "auth-proxy.log").read_text()  # SIGTERM: a clean stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log_lines = (folder / "auth-proxy.log").read_text().splitlines()
    assert not any(SHARED_TOKEN in line or server.key() in line for line in log_lines)
    TIMINGS["requests logged by the auth proxy"] = sum('"POST /predictions/arcscan HTTP/1.1"' in line for line in log_lines)


def test_stream_client_through_the_auth_proxy(server, auth_proxy, tmp_path):
    """The deployment's path: stream client (shared token from a plain token file) -> auth
    proxy -> TorchServe (the pod's own key); TorchServe's key alone does not pass the proxy."""
    from arcscan.ops.stream import RESULTS, StreamConfig, load_token, read_ledger, run_stream
    from arcscan.core.synth import write_minute

    frames_path, _ = write_minute(tmp_path / "archive", seed=31, start=datetime(2026, 3, 3, 6, tzinfo=timezone.utc))
    token_file = tmp_path / "stream-token"
    token_file.write_text(SHARED_TOKEN + "\n")
    config = StreamConfig(url=auth_proxy, token=load_token(token_file=token_file), token_file=token_file, output=tmp_path / "out", concurrency=4)
    start = time.perf_counter()
    summary = run_stream(config, replay=[frames_path])
    TIMINGS["20 frames through the auth proxy, 4 in flight (s)"] = time.perf_counter() - start
    assert (summary.succeeded, summary.failed) == (20, 0)
    entries = read_ledger(tmp_path / "out" / RESULTS)
    assert sorted(e["index"] for e in entries) == list(range(20))
    assert {e["model_version"] for e in entries} == {MODEL["version"]}

    body = png16(minute(1)[0].image)
    for headers in (server.auth("inference"), server.auth("API"), {}):
        refused = requests.post(auth_proxy, data=body, headers=headers, timeout=30)
        assert refused.status_code == 401 and "token" in refused.json()["error"], refused.text


def test_auth_proxy_passes_answers_through_and_renews_an_expired_key(server, auth_proxy):
    shared = {"Authorization": f"Bearer {SHARED_TOKEN}", "Content-Type": "application/octet-stream"}
    direct = post(server, b"GIF89a" + bytes(64), "bad.bin")
    proxied = requests.post(auth_proxy, data=b"GIF89a" + bytes(64), headers=shared | {"X-Filename": "bad.bin"}, timeout=30)
    assert direct.status_code == 415 and (proxied.status_code, proxied.json()) == (direct.status_code, direct.json())
    too_large = requests.post(auth_proxy, data=b"\x1f\x8b" + bytes(16 * 2**20), headers=shared, timeout=30)
    assert too_large.status_code == 413 and "exceeds the limit" in too_large.json()["error"]

    # The proxy's key goes stale, as expiry does: renewed behind its back, the file restored.
    stale_file, stale_key = server.key_file.read_text(), server.key()
    renewed = requests.post(f"{server.management_url}/token", params={"type": "inference"}, headers=server.auth("API"), timeout=10)
    assert renewed.status_code == 200, renewed.text
    server.key_file.write_text(stale_file)
    answer = requests.post(auth_proxy, data=png16(minute(1, seed=3)[0].image), headers=shared | {"X-Filename": "renew.png"}, timeout=60)
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), "renew.png", minute(1, seed=3), with_metadata=False, model=MODEL)
    assert server.key() != stale_key  # the proxy renewed it through the token API


FORM_ENCODED = "application/x-www-form-urlencoded"  # what curl --data-binary sends unless told otherwise
OCTET_STREAM_HINT = "send the file's bytes as the body with Content-Type: application/octet-stream"
# A multipart body Netty's decoder fails on (a part without Content-Disposition): 500 ErrorDataDecoderException.
BROKEN_MULTIPART = (b"--xyz\r\nGarbage\r\n\r\n", b"\r\n--xyz--\r\n"), "multipart/form-data; boundary=xyz"


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """``body`` with exactly these headers (no Content-Type unless given)."""
    return requests.post(url, data=body, headers=headers, timeout=120)


def test_a_real_torchserve_and_bodies_without_content_type_or_form_encoded(server):
    """Straight to TorchServe (in the pod only): no Content-Type is the file; form-encoded, its
    frontend decodes the body as form fields itself. Most binary bodies fail there (a ``%`` not
    followed by two hex digits, a CR without LF), 500 ErrorDataDecoderException, echoing the
    body (what the auth proxy keeps from clients); one that gets through reaches the handler
    as fields, 415."""
    frames = minute(2, seed=12)
    plain, packed = encode_stream0(frames), gzip.compress(encode_stream0(frames), mtime=0)
    auth = server.auth("inference")
    for body, name in [(plain, "m.pgm"), (packed, "m.pgm.gz")]:
        answer = raw_post(server.predictions_url(), body, auth | {"X-Filename": name})
        assert answer.status_code == 200, answer.text
        check_answer(answer.json(), name, frames, model=MODEL)

    for body in (plain, stream0(1)):  # Netty's "Bad end of line" (a lone CR), "Bad string: '<the body>'" (a bad %)
        failed = raw_post(server.predictions_url(), body, auth | {"Content-Type": FORM_ENCODED, "X-Filename": "m.pgm"})
        assert failed.status_code == 500 and failed.json()["type"] == "ErrorDataDecoderException", failed.text[:300]
    assert failed.json()["message"].startswith("Bad string: 'P5\n#\"Site unique ID\" gill\n")  # the body, echoed

    reaches_the_handler = gzip.compress(stream0(1), mtime=0)  # no lone CR, no bad % before Netty's decoder stops
    answer = raw_post(server.predictions_url(), reaches_the_handler, auth | {"Content-Type": FORM_ENCODED, "X-Filename": "m.pgm.gz"})
    assert answer.status_code == 415 and set(answer.json()) == {"error"}, answer.text[:300]
    message = answer.json()["error"]
    assert message.startswith("m.pgm.gz: got a form-encoded body") and OCTET_STREAM_HINT in message
    assert len(message) < 400 and message.isprintable()

    (head, tail), content_type = BROKEN_MULTIPART
    broken = raw_post(server.predictions_url(), head + plain + tail, auth | {"Content-Type": content_type})
    assert broken.status_code == 500 and broken.json()["type"] == "ErrorDataDecoderException", broken.text[:300]


def test_auth_proxy_takes_a_body_without_content_type_or_form_encoded_as_the_file(server, auth_proxy):
    """Through the proxy (every cluster client's path) ``curl --data-binary @file`` works: a
    body without Content-Type or form-encoded goes to TorchServe as application/octet-stream,
    and a TorchServe 500 of its form decoder comes back as a 400 that echoes nothing."""
    frames = minute(2, seed=13)
    plain, packed = encode_stream0(frames), gzip.compress(encode_stream0(frames), mtime=0)
    shared = {"Authorization": f"Bearer {SHARED_TOKEN}"}
    for content_type in (None, FORM_ENCODED, FORM_ENCODED + "; charset=UTF-8"):
        for body, name in [(plain, "m.pgm"), (packed, "m.pgm.gz")]:
            headers = shared | {"X-Filename": name} | ({"Content-Type": content_type} if content_type else {})
            answer = raw_post(auth_proxy, body, headers)
            assert answer.status_code == 200, (content_type, name, answer.text[:300])
            check_answer(answer.json(), name, frames, model=MODEL)
    image = minute(1, seed=14)[0]
    for body, name in [(png16(image.image), "f.png"), (npy(image.image), "f.npy")]:  # straight to TorchServe, such bodies mostly get its 500
        answer = raw_post(auth_proxy, body, shared | {"X-Filename": name, "Content-Type": FORM_ENCODED})
        assert answer.status_code == 200, (name, answer.text[:300])
        check_answer(answer.json(), name, [image], with_metadata=False, model=MODEL)

    (head, tail), content_type = BROKEN_MULTIPART
    answer = raw_post(auth_proxy, head + plain + tail, shared | {"Content-Type": content_type})
    assert answer.status_code == 400 and set(answer.json()) == {"error"}, answer.text[:300]
    assert OCTET_STREAM_HINT in answer.json()["error"] and b"Site unique ID" not in answer.content
