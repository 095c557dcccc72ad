"""The auth proxy (``arcscan auth-proxy``) against a real local HTTP test double of TorchServe.

The double speaks TorchServe 0.12's protocol where the proxy meets it: predictions want the
inference key of ``key_file.json`` (else 400 ``InvalidKeyException``), the token API renews
that key with the API key and rewrites the file. The proxy runs in-process on a free port; the
end-to-end test against a real TorchServe is in ``test_serving_e2e.py``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from arcscan.ops.authproxy import MAX_BODY_BYTES, AuthProxy, ProxyConfig
from arcscan.cli import main
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "shared-stream-token-0001"
NEW_TOKEN = "shared-stream-token-0002"
INVALID_KEY = b'{"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed"}'


class FakeTorchServe(ThreadingHTTPServer):
    """``POST /predictions/<model>`` answers ``answer`` given the current inference key, else 400
    InvalidKeyException; ``POST /token?type=inference`` with the API key makes a new inference key
    and rewrites the key file. ``seen`` records every prediction request that arrived."""

    daemon_threads = True
    request_queue_size = 64  # as TorchServe's Netty: concurrent connections are not dropped

    def __init__(self, key_file: Path) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.key_file = key_file
        self.keys = {"inference": "ts-inference-key-0", "management": "ts-management-key", "API": "ts-api-key"}
        self.expired = False  # the inference key has expired (until renewed)
        self.renewals = 0
        self.seen: list[dict] = []
        self.answer = (200, b'{"frames": []}', "application/json")
        self.lock = threading.Lock()
        self.write_key_file()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def write_key_file(self) -> None:
        self.key_file.write_text(json.dumps({kind: {"key": key} for kind, key in self.keys.items()}))

    def restart(self) -> None:
        """New keys, as every TorchServe start makes."""
        self.keys = {kind: f"{key}-restarted" for kind, key in self.keys.items()}
        self.write_key_file()


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeTorchServe

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        if self.path == "/token?type=inference":
            time.sleep(0.1)  # a renewal takes a moment: concurrent refusals all arrive meanwhile
        with server.lock:
            if self.path == "/token?type=inference":
                if self.headers.get("Authorization") != f"Bearer {server.keys['API']}":
                    return self._answer(400, INVALID_KEY)
                server.renewals += 1
                server.keys["inference"] = f"ts-inference-key-{server.renewals}"
                server.expired = False
                server.write_key_file()
                return self._answer(200, json.dumps({"inference": server.keys["inference"]}).encode())
            server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if server.expired or self.headers.get("Authorization") != f"Bearer {server.keys['inference']}":
                return self._answer(400, INVALID_KEY)
            status, payload, content_type = server.answer
        self._answer(status, payload, content_type)

    def _answer(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """``server`` answering in a thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def config(torchserve: FakeTorchServe, tokens_file: Path, **overrides) -> ProxyConfig:
    return ProxyConfig(**{
        "tokens_file": tokens_file, "key_file": torchserve.key_file, "port": 0,
        "inference_url": torchserve.url, "management_url": torchserve.url,
    } | overrides)


@pytest.fixture
def torchserve(tmp_path) -> Iterator[FakeTorchServe]:
    with serving(FakeTorchServe(tmp_path / "key_file.json")) as server:
        yield server


@pytest.fixture
def tokens_file(tmp_path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# shared stream tokens, one per line\n{TOKEN}\n")
    return path


@pytest.fixture
def proxy(torchserve, tokens_file) -> Iterator[AuthProxy]:
    with serving(AuthProxy(config(torchserve, tokens_file))) as server:
        yield server


def post(proxy: AuthProxy, body: bytes = b"frame", token: str | None = TOKEN,
         path: str = "/predictions/arcscan") -> requests.Response:
    headers = {"Content-Type": "application/octet-stream", "X-Filename": "20140310_0600_gill_themis19_full.pgm.gz"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(proxy.url + path, data=body, headers=headers, timeout=10)


def test_a_shared_token_gets_the_request_to_torchserve_with_its_own_key(proxy, torchserve):
    torchserve.answer = (200, b'{"frames": [{"index": 0}]}', "application/json")
    for path in ("/predictions/arcscan", "/predictions/arcscan/2"):
        answer = post(proxy, b"\x1f\x8b stream0 minute", path=path)
        assert answer.status_code == 200, answer.text
        assert answer.content == b'{"frames": [{"index": 0}]}' and answer.headers["Content-Type"] == "application/json"
    first, second = torchserve.seen
    assert (first["path"], second["path"]) == ("/predictions/arcscan", "/predictions/arcscan/2")
    assert first["body"] == b"\x1f\x8b stream0 minute"
    assert first["headers"]["Authorization"] == "Bearer ts-inference-key-0"
    assert first["headers"]["Content-Type"] == "application/octet-stream"
    assert first["headers"]["X-Filename"] == "20140310_0600_gill_themis19_full.pgm.gz"
    assert TOKEN not in json.dumps(first["headers"])


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", TOKEN, f"Basic {TOKEN}", "Bearer ts-inference-key-0", "Bearer "],
    ids=["none", "wrong token", "no scheme", "basic", "TorchServe's own key", "empty"],
)
def test_requests_without_a_shared_token_are_refused_and_not_forwarded(proxy, torchserve, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    answer = requests.post(proxy.url + "/predictions/arcscan", data=b"frame", headers=headers, timeout=10)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in answer.json()["error"]
    assert torchserve.seen == []


def test_only_post_predictions_is_forwarded(proxy, torchserve):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, status in [
        ("GET", "/predictions/arcscan", 405), ("DELETE", "/predictions/arcscan", 405), ("PUT", "/predictions/arcscan", 405),
        ("POST", "/models", 404), ("POST", "/token?type=inference", 404), ("POST", "/predictions/a/b/c", 404),
        ("POST", "/predictions/../models", 404), ("BREW", "/predictions/arcscan", 501),
    ]:
        answer = requests.request(method, proxy.url + path, data=b"x", headers=auth, timeout=10)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error"]
    assert torchserve.seen == []


def test_bodies_over_the_limit_get_413_and_are_not_forwarded(torchserve, tokens_file):
    with serving(AuthProxy(config(torchserve, tokens_file, max_body_bytes=1000))) as proxy:
        answer = post(proxy, bytes(1001))
        assert answer.status_code == 413 and "1001 bytes exceeds the limit of 1000" in answer.json()["error"]
        assert torchserve.seen == []
        assert post(proxy, bytes(1000)).status_code == 200
        auth = {"Authorization": f"Bearer {TOKEN}"}
        chunked = requests.post(proxy.url + "/predictions/arcscan", data=iter([b"a", b"b"]), headers=auth, timeout=10)
        assert chunked.status_code == 411
    assert len(torchserve.seen) == 1


def test_the_default_limit_is_torchserves_max_request_size():
    config_text = (ROOT / "serving" / "config.properties").read_text()
    assert MAX_BODY_BYTES == int(re.search(r"^max_request_size=(\d+)$", config_text, re.M).group(1))


@pytest.mark.parametrize(
    "status, payload",
    [(400, b'{"error": "bad.pgm.gz: truncated gzip"}'), (413, b'{"error": "too many frames"}'),
     (415, b'{"error": "x.bin: not a recognised frame format"}'), (503, b'{"code": 503, "message": "overloaded"}')],
)
def test_torchserve_answers_pass_through_unchanged(proxy, torchserve, status, payload):
    torchserve.answer = (status, payload, "application/json")
    answer = post(proxy)
    assert (answer.status_code, answer.content, answer.headers["Content-Type"]) == (status, payload, "application/json")
    assert torchserve.renewals == 0


def proxy_log_lines(caplog, count: int, timeout: float = 5.0) -> list[str]:
    """The proxy's log lines once there are ``count`` (a request's line follows its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "arcscan.ops.authproxy"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded ; charset=UTF-8", ""],
    ids=["none", "form-encoded (curl --data-binary)", "form-encoded, odd case and charset", "empty"],
)
def test_a_body_without_content_type_or_form_encoded_goes_as_octet_stream(proxy, torchserve, caplog, content_type):
    """TorchServe's frontend would decode a form-encoded body itself (a 500 echoing a binary
    body): the proxy sends the body's bytes as the file."""
    caplog.set_level(logging.INFO, logger="arcscan.ops.authproxy")
    body = b"P5\n%zz&a=b+c\x00\xff" + bytes(range(256))
    headers = {"Authorization": f"Bearer {TOKEN}"} | ({"Content-Type": content_type} if content_type is not None else {})
    answer = requests.post(proxy.url + "/predictions/arcscan", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    [seen] = torchserve.seen
    assert seen["body"] == body and seen["headers"]["Content-Type"] == "application/octet-stream"
    [line] = proxy_log_lines(caplog, 1)
    assert line.endswith("sent as application/octet-stream)") == (content_type is not None), line


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "multipart/form-data; boundary=x", "application/json", "text/plain", "image/png", "application/x-www-form-urlencodedx"],
)
def test_other_content_types_are_forwarded_as_sent(proxy, torchserve, content_type):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    assert requests.post(proxy.url + "/predictions/arcscan", data=b"body", headers=headers, timeout=10).status_code == 200
    assert torchserve.seen[-1]["headers"]["Content-Type"] == content_type


SECRET_BODY = b"P5\n#\"Site unique ID\" gill\n256 256\n65535\n" + bytes(range(256)) * 4


def torchserve_error(status: int, kind: str, message: str) -> bytes:
    """A TorchServe frontend error answer as it writes them (pretty-printed JSON)."""
    return json.dumps({"code": status, "type": kind, "message": message}, indent=2).encode()


@pytest.mark.parametrize(
    "status, payload, content_type, expected",
    [
        (500, torchserve_error(500, "ErrorDataDecoderException", "Bad string: '" + SECRET_BODY.decode("latin-1") + "'"), "application/json",
         (400, "the body is not the form its Content-Type says (TorchServe's form decoder failed); "
               "send the file's bytes as the body with Content-Type: application/octet-stream")),
        (500, torchserve_error(500, "ErrorDataDecoderException", "Invalid hex byte at index '0' in string: '%zz'"), "application/json",
         (400, "the body is not the form its Content-Type says (TorchServe's form decoder failed); "
               "send the file's bytes as the body with Content-Type: application/octet-stream")),
        (500, torchserve_error(500, "IllegalStateException", "x" * 2000), "application/json",
         (500, "TorchServe answered 500 Internal Server Error (IllegalStateException)")),
        (503, torchserve_error(503, "Weird Type\n", "line one\nline two"), "application/json", (503, "TorchServe answered 503 Service Unavailable")),
        (502, b"<html>" + SECRET_BODY + b"</html>", "text/html", (502, "TorchServe answered 502 Bad Gateway")),
        (599, b"[1, 2]", "application/json", (599, "TorchServe answered 599")),
    ],
    ids=["form decoder echo", "form decoder, short", "long message", "control characters", "not JSON", "unknown status"],
)
def test_a_torchserve_5xx_that_could_echo_the_body_is_not_passed_on(proxy, torchserve, caplog, status, payload, content_type, expected):
    caplog.set_level(logging.INFO, logger="arcscan.ops.authproxy")
    torchserve.answer = (status, payload, content_type)
    answer = post(proxy, SECRET_BODY)
    assert (answer.status_code, answer.json()) == (expected[0], {"error": expected[1]})
    assert answer.headers["Content-Type"] == "application/json"
    assert b"Site unique ID" not in answer.content and b"%zz" not in answer.content and b"xxxx" not in answer.content
    [line] = proxy_log_lines(caplog, 1)
    assert re.search(rf'" {expected[0]} \d+ B \d+ ms \(TorchServe\'s {status}( [A-Za-z]+)? not passed on\)$', line), line
    assert "Site unique ID" not in caplog.text


@pytest.mark.parametrize(
    "payload",
    [torchserve_error(503, "ServiceUnavailableException", 'Model "arcscan" has no worker to serve inference request. Please use scale workers API to add workers.'),
     torchserve_error(500, "InternalServerException", "Worker died."),
     b'{"error": "m.pgm: an arcscan message\\nover two lines"}'],
    ids=["no worker", "worker died", "arcscan's error"],
)
def test_torchserve_5xx_with_short_messages_and_arcscan_errors_pass_through(proxy, torchserve, payload):
    torchserve.answer = (json.loads(payload).get("code", 500), payload, "application/json")
    answer = post(proxy)
    assert (answer.status_code, answer.content) == (torchserve.answer[0], payload)


def test_torchserve_unreachable_gets_502(torchserve, tokens_file):
    with serving(AuthProxy(config(torchserve, tokens_file, inference_url=f"http://127.0.0.1:{free_port()}"))) as proxy:
        answer = post(proxy)
    assert answer.status_code == 502 and "cannot be reached" in answer.json()["error"]


def test_no_key_file_yet_gets_503(proxy, torchserve):
    torchserve.key_file.unlink()  # TorchServe is still starting
    answer = post(proxy)
    assert answer.status_code == 503 and "no TorchServe key yet" in answer.json()["error"]
    torchserve.write_key_file()
    assert post(proxy).status_code == 200


def test_an_expired_key_is_renewed_once_through_the_token_api(proxy, torchserve):
    assert post(proxy).status_code == 200
    torchserve.expired = True
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(proxy), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert torchserve.renewals == 1  # one request renewed it, the others took the new key
    assert post(proxy).status_code == 200 and torchserve.renewals == 1
    assert torchserve.seen[-1]["headers"]["Authorization"] == "Bearer ts-inference-key-1"


def test_new_keys_after_a_torchserve_restart_come_from_the_key_file(proxy, torchserve):
    assert post(proxy).status_code == 200
    torchserve.restart()
    assert post(proxy).status_code == 200
    assert torchserve.renewals == 0
    assert torchserve.seen[-1]["headers"]["Authorization"] == "Bearer ts-inference-key-0-restarted"


def test_a_key_that_cannot_be_renewed_gets_502(proxy, torchserve):
    torchserve.expired = True
    torchserve.keys["API"] = "not-the-api-key-in-the-file"
    torchserve.write_key_file()
    torchserve.keys["API"] = "ts-api-key"  # what TorchServe really accepts
    answer = post(proxy)
    assert answer.status_code == 502 and "token API did not renew" in answer.json()["error"]


def test_the_tokens_file_is_read_again_so_tokens_can_be_rotated(proxy, tokens_file):
    assert post(proxy, token=TOKEN).status_code == 200
    assert post(proxy, token=NEW_TOKEN).status_code == 401
    tokens_file.write_text(f"{NEW_TOKEN}\n{TOKEN}\n")  # the new token first, the old one still accepted
    assert post(proxy, token=NEW_TOKEN).status_code == 200 and post(proxy, token=TOKEN).status_code == 200
    tokens_file.write_text(f"{NEW_TOKEN}\n")  # the old one retired
    assert post(proxy, token=TOKEN).status_code == 401 and post(proxy, token=NEW_TOKEN).status_code == 200
    tokens_file.unlink()
    answer = post(proxy, token=NEW_TOKEN)
    assert answer.status_code == 503 and "cannot read its tokens file" in answer.json()["error"]


def test_one_log_line_per_request_without_tokens_or_keys(proxy, torchserve, caplog):
    caplog.set_level(logging.INFO, logger="arcscan.ops.authproxy")
    torchserve.expired = True
    assert post(proxy).status_code == 200
    assert post(proxy, token="wrong-token-0123456789").status_code == 401
    lines = proxy_log_lines(caplog, 2)  # a request's line is written just after its answer
    assert len(lines) == 2, lines
    assert re.search(r'"POST /predictions/arcscan HTTP/1.1" 200 \d+ B \d+ ms \(TorchServe key replaced\)$', lines[0])
    assert re.search(r'"POST /predictions/arcscan HTTP/1.1" 401 \d+ B \d+ ms$', lines[1])
    for secret in (TOKEN, "wrong-token", "ts-inference-key", "ts-api-key"):
        assert secret not in caplog.text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tokens-file", "{tmp}/missing"], "missing: cannot read the token file (No such file or directory)"),
        (["--tokens-file", "{tmp}/short"], "short line 1: not a token"),
        (["--tokens-file", "{tmp}/tokens", "--inference-url", "https://127.0.0.1:8080"], "not a TorchServe address"),
        (["--tokens-file", "{tmp}/tokens", "--max-body-bytes", "0"], "must be positive"),
    ],
    ids=["no tokens file", "short token", "not http", "no body"],
)
def test_cli_refuses_a_bad_configuration_at_start(tmp_path, capsys, args, message):
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    (tmp_path / "short").write_text("letmein\n")
    argv = ["auth-proxy", "--listen", "127.0.0.1:0", "--key-file", str(tmp_path / "key_file.json")]
    with pytest.raises(SystemExit) as exit_:
        main(argv + [a.format(tmp=tmp_path) for a in args])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "letmein" not in error


def test_cli_refuses_a_port_in_use(tmp_path, tokens_file, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit):
            main(["auth-proxy", "--listen", f"127.0.0.1:{port}", "--tokens-file", str(tokens_file),
                  "--key-file", str(tmp_path / "key_file.json")])
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
