"""Authenticating reverse proxy in front of one TorchServe: the sidecar of each TorchServe pod.

TorchServe 0.12 makes new random keys at every start and lets the inference key expire after
``token_expiration_min``, so clients of several replicas behind one Service cannot hold a valid
key. The proxy holds the key of its own TorchServe for them:

* Clients send ``POST /predictions/<model>[/<version>]`` with ``Authorization: Bearer <token>``,
  a token of the shared tokens file (:func:`arcscan.ops.tokens.shared_tokens`), read at every
  request, so a rotated Kubernetes Secret counts as soon as the kubelet updates the file, and
  compared in constant time. No or another token: 401, before the body is read. Other paths:
  404, other methods: 405, a body over ``max_body_bytes`` (TorchServe's ``max_request_size``): 413.
* The body, ``Content-Type`` and ``X-Filename`` go to TorchServe's inference address with the
  pod's inference key from TorchServe's ``key_file.json``. A body without a ``Content-Type`` or
  sent as ``application/x-www-form-urlencoded`` (what ``curl --data-binary @file`` sends unless
  told otherwise) goes as ``application/octet-stream``: it is taken as the file. TorchServe's
  frontend would otherwise decode a form-encoded body itself, which loses a file's bytes and,
  on a binary body, fails with 500 ``ErrorDataDecoderException`` echoing the body; no frame
  format is a form-encoded text, so nothing valid is lost (a real form's fields get the
  handler's 415 "not a recognised frame format" instead of its 400). When TorchServe refuses
  the key (400 ``InvalidKeyException``: expired, or TorchServe restarted with new keys), the
  proxy takes the file's key if it changed, else renews it through TorchServe's token API
  (``POST {management}/token?type=inference`` with the file's API key), and retries once.
* TorchServe's status, body and ``Content-Type`` come back unchanged (the handler's 4xx
  included), except for a 5xx that could echo the request body, which never goes back: a 500
  ``ErrorDataDecoderException`` (its form decoder failed on a multipart body that is not one)
  becomes a 400 ``{"error": message}`` asking for ``application/octet-stream``; any other 5xx
  whose body is neither arcscan's ``{"error": message}`` nor a JSON object of short printable
  strings (TorchServe's ``{"code", "type", "message"}``) keeps its status with ``{"error":
  "TorchServe answered <status> (<type>)"}`` instead. The proxy's own answers are JSON
  ``{"error": message}``: 502 when TorchServe cannot be reached or refuses even a renewed key,
  503 while its key file is missing or the tokens file cannot be read, 504 when TorchServe does
  not answer within ``timeout``.

One log line per request (client, request line, status, bytes, milliseconds), never a token or
a key. ``arcscan auth-proxy`` (:func:`add_auth_proxy_parser`) runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import hmac
import http.client
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from arcscan.errors import ArcscanError, InputError
from arcscan.ops.plainhttp import Answer, post
from arcscan.ops.tokens import KeyRenewalError, TorchServeKey, shared_tokens

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 2**20  # TorchServe's max_request_size (serving/config.properties)
_PREDICTIONS = re.compile(r"/predictions/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")
_FORWARDED_HEADERS = ("Content-Type", "X-Filename")
OCTET_STREAM = "application/octet-stream"
FORM_ENCODED = "application/x-www-form-urlencoded"  # TorchServe's frontend decodes these bodies itself
SEND_OCTET_STREAM = "send the file's bytes as the body with Content-Type: application/octet-stream"
_SHORT_TEXT = 300  # characters of a TorchServe 5xx message that are passed on
_JAVA_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]{0,100}")


@dataclass(frozen=True)
class ProxyConfig:
    """Where the proxy listens, whom it lets in, and the TorchServe it fronts."""

    tokens_file: Path  # the shared tokens, one per line
    key_file: Path  # TorchServe's key_file.json
    host: str = "127.0.0.1"  # 0.0.0.0 in a pod
    port: int = 8443
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    max_body_bytes: int = MAX_BODY_BYTES
    timeout: float = 150.0  # seconds for TorchServe's answer: its default_response_timeout (120 s) + margin

    def __post_init__(self) -> None:
        for url in (self.inference_url, self.management_url):
            if not _is_http_origin(url):
                raise ArcscanError(f"{url}: not a TorchServe address (http://HOST:PORT)")
        if self.max_body_bytes < 1 or not self.timeout > 0:
            raise ArcscanError(f"max body bytes {self.max_body_bytes} and timeout {self.timeout}: both must be positive")


class ProxyError(ArcscanError):
    """A request the proxy answers itself: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TorchServe:
    """The pod's TorchServe, called with its own inference key from ``key_file.json``. A
    refused key is replaced by the first request that sees the refusal (see
    :class:`~arcscan.ops.tokens.TorchServeKey`); the others take the replacement."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.key = TorchServeKey(config.key_file, config.management_url, config.timeout)

    def predict(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[Answer, bool]:
        """TorchServe's answer to ``POST path``, and whether the key had to be replaced for it."""
        with _torchserve_errors(self.config.management_url, self.config.timeout):
            key = self.key.current()
        answer = self._post_prediction(path, body, headers, key)
        if not _key_refused(answer):
            return answer, False
        with _torchserve_errors(self.config.management_url, self.config.timeout):
            fresh = self.key.replace(key)
        if fresh is not None:
            answer = self._post_prediction(path, body, headers, fresh)
        if fresh is None or _key_refused(answer):
            raise ProxyError(502, "TorchServe refused its own inference key, also after renewing it")
        return answer, True

    def _post_prediction(self, path: str, body: bytes, headers: dict[str, str], key: str) -> Answer:
        headers = headers | {"Authorization": f"Bearer {key}"}
        with _torchserve_errors(self.config.inference_url, self.config.timeout):
            return post(self.config.inference_url, path, body, headers, self.config.timeout)


class AuthProxy(ThreadingHTTPServer):
    """The proxy server: ``serve_forever()`` until ``shutdown()``; ``url`` is where it listens."""

    request_queue_size = 64  # connections waiting to be accepted (socketserver's default: 5)

    def __init__(self, config: ProxyConfig) -> None:
        shared_tokens(config.tokens_file)  # an unreadable or empty tokens file fails at start
        self.config = config
        self.torchserve = TorchServe(config)
        try:
            super().__init__((config.host, config.port), _Handler)
        except OSError as err:
            raise ArcscanError(f"cannot listen on {config.host}:{config.port} ({err.strerror})") from err

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is one of the shared tokens (each compared in constant time);
        :class:`ProxyError` 503 when the tokens file cannot be read."""
        try:
            tokens = shared_tokens(self.config.tokens_file)
        except InputError as err:
            log.error("%s", err)
            raise ProxyError(503, "the proxy cannot read its tokens file") from err
        matches = [hmac.compare_digest(token.encode(), accepted.encode()) for accepted in tokens]
        return any(matches)

    def handle_error(self, request: object, client_address: tuple) -> None:
        """A client that went away is one warning line; anything else keeps its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.warning("%s: connection lost (%s)", client_address[0], error)
        else:
            log.exception("%s: request failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TorchServe
    timeout = 60  # seconds a client may idle, or take to send a request
    server_version, sys_version = "arcscan-auth-proxy", ""
    server: AuthProxy
    started = 0.0  # monotonic time the current request line arrived (0: none yet)

    def parse_request(self) -> bool:
        self.started = time.monotonic()
        return super().parse_request()

    def do_POST(self) -> None:
        body, notes, extra = None, [], {}
        try:
            if not _PREDICTIONS.fullmatch(self.path):
                raise ProxyError(404, f"{self.path[:100]}: not found (the proxy forwards POST /predictions/<model> only)")
            self._authorize()
            body = self._read_body()
            headers = {name: self.headers[name] for name in _FORWARDED_HEADERS if name in self.headers}
            sent_as = _forwarded_content_type(headers.get("Content-Type"))
            if headers.get("Content-Type", sent_as) != sent_as:
                notes.append(f"{headers['Content-Type'].split(';')[0].strip()[:60]!r} sent as {sent_as}")
            headers["Content-Type"] = sent_as
            answer, renewed = self.server.torchserve.predict(self.path, body, headers)
            notes += ["TorchServe key replaced"] if renewed else []
            answer, note = _for_client(answer)
            notes += [note] if note else []
        except ProxyError as error:
            self.close_connection |= body is None  # an unread body must not be taken for the next request
            answer = _error(error.status, str(error))
            extra = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        self._send(answer, "; ".join(notes), extra)

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is not read
        message = f"{self.command} is not allowed (the proxy forwards POST /predictions/<model> only)"
        self._send(_error(405, message), extra={"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (malformed request, unknown method) in JSON too."""
        self.close_connection = True
        self._send(_error(code, message or HTTPStatus(code).phrase))

    def _authorize(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ProxyError(401, "no bearer token (Authorization: Bearer <stream token>)")
        if not self.server.accepts(token.strip()):
            raise ProxyError(401, "the bearer token is not accepted")

    def _read_body(self) -> bytes:
        limit = self.server.config.max_body_bytes
        length = self.headers.get("Content-Length")
        if length is None or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise ProxyError(411, "no Content-Length (chunked bodies are not accepted)")
        if not (length.isascii() and length.isdigit()):
            raise ProxyError(400, f"Content-Length {length[:20]!r} is not a byte count")
        size = int(length)
        if size > limit:
            raise ProxyError(413, f"body of {size} bytes exceeds the limit of {limit}")
        body = self.rfile.read(size)
        if len(body) < size:
            raise ProxyError(400, f"body ended after {len(body)} of {size} bytes")
        return body

    def _send(self, answer: Answer, note: str = "", extra: dict[str, str] | None = None) -> None:
        """Send ``answer`` and log the request's line."""
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        elapsed = f"{(time.monotonic() - self.started) * 1000:.0f} ms" if self.started else "-"
        log.info('%s "%s" %d %d B %s%s', self.client_address[0], self.requestline[:200], answer.status,
                 len(answer.body), elapsed, f" ({note})" if note else "")
        self.started = 0.0

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by ``_send``, with their time."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        log.warning("%s: " + format, self.client_address[0], *args)


@contextmanager
def _torchserve_errors(base_url: str, timeout: float) -> Iterator[None]:
    """Failures of a call to TorchServe at ``base_url`` as the proxy's answers: 503 while its
    key file cannot be read, 502 when its token API refuses or it cannot be reached, 504 when it
    does not answer within ``timeout``."""
    try:
        yield
    except KeyRenewalError as err:
        raise ProxyError(502, str(err)) from err
    except InputError as err:
        raise ProxyError(503, f"no TorchServe key yet: {err}") from err
    except TimeoutError as err:
        raise ProxyError(504, f"TorchServe at {base_url} did not answer within {timeout:g} s") from err
    except (OSError, http.client.HTTPException) as err:
        raise ProxyError(502, f"TorchServe at {base_url} cannot be reached ({err})") from err


def _is_http_origin(url: str) -> bool:
    """Whether ``url`` is ``http://HOST[:PORT]`` without a path."""
    try:
        parts = urlsplit(url)
        return parts.scheme == "http" and bool(parts.hostname) and parts.path in ("", "/") and parts.port != 0
    except ValueError:  # a malformed port
        return False


def _key_refused(answer: Answer) -> bool:
    """TorchServe's answer to a wrong or expired key."""
    return answer.status == 400 and b"InvalidKeyException" in answer.body


def _forwarded_content_type(content_type: str | None) -> str:
    """The ``Content-Type`` TorchServe gets: the client's, but ``application/octet-stream`` for
    none or a form-encoded one (a file's bytes are not form fields)."""
    if content_type is None or content_type.split(";")[0].strip().lower() in ("", FORM_ENCODED):
        return OCTET_STREAM
    return content_type


def _for_client(answer: Answer) -> tuple[Answer, str]:
    """TorchServe's answer as the client gets it: unchanged, but for a 5xx that could echo the
    request body (see the module docstring); and a note for the log line when it was replaced."""
    if answer.status < 500:
        return answer, ""
    try:
        payload = json.loads(answer.body)
    except ValueError:  # also a body that is not UTF-8
        payload = None
    kind = payload.get("type") if isinstance(payload, dict) else None
    kind = kind if isinstance(kind, str) and _JAVA_NAME.fullmatch(kind) else ""
    note = f"TorchServe's {answer.status}{f' {kind}' if kind else ''} not passed on"
    if kind == "ErrorDataDecoderException":
        message = f"the body is not the form its Content-Type says (TorchServe's form decoder failed); {SEND_OCTET_STREAM}"
        return _error(400, message), note
    if isinstance(payload, dict) and (_is_arcscan_error(payload) or all(_short_text(v) for v in payload.values())):
        return answer, ""
    try:
        phrase = f" {HTTPStatus(answer.status).phrase}"
    except ValueError:  # a status http.HTTPStatus does not know
        phrase = ""
    return _error(answer.status, f"TorchServe answered {answer.status}{phrase}{f' ({kind})' if kind else ''}"), note


def _is_arcscan_error(payload: dict) -> bool:
    """Whether ``payload`` is the handler's ``{"error": message}``."""
    return set(payload) == {"error"} and isinstance(payload["error"], str)


def _short_text(value: object) -> bool:
    """A JSON value that cannot carry much of a body: a number, or a short printable string."""
    if isinstance(value, str):
        return len(value) <= _SHORT_TEXT and value.isprintable()
    return value is None or isinstance(value, (bool, int, float))


def _error(status: int, message: str) -> Answer:
    return Answer(status, json.dumps({"error": message}).encode(), "application/json")


def serve(config: ProxyConfig) -> None:
    """Run the proxy in the foreground until SIGTERM or SIGINT."""
    server = AuthProxy(config)

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever(): not from its thread

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info("listening on %s, forwarding POST /predictions/<model> to %s", server.url, config.inference_url)
    with server:
        server.serve_forever()


# ------------------------------------------------------------------------------ command line


def add_auth_proxy_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``auth-proxy`` subcommand on ``subparsers`` (it runs :func:`cmd_auth_proxy`)."""
    proxy = subparsers.add_parser(
        "auth-proxy",
        help="authenticating proxy in front of one TorchServe: shared stream tokens in, TorchServe's own key out",
        description=__doc__.splitlines()[0],
    )
    proxy.add_argument("--listen", type=_host_port, default="127.0.0.1:8443", metavar="HOST:PORT",
                       help="address to listen on (default: 127.0.0.1:8443; 0.0.0.0:8443 in a pod)")
    proxy.add_argument("--tokens-file", required=True, metavar="PATH",
                       help="the tokens clients may send, one per line (a mounted Secret; read at every request)")
    proxy.add_argument("--key-file", required=True, metavar="PATH",
                       help="TorchServe's key_file.json (in its working directory)")
    proxy.add_argument("--inference-url", default="http://127.0.0.1:8080", metavar="URL",
                       help="TorchServe's inference address (default: http://127.0.0.1:8080)")
    proxy.add_argument("--management-url", default="http://127.0.0.1:8081", metavar="URL",
                       help="TorchServe's management address, for renewing its key (default: http://127.0.0.1:8081)")
    proxy.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, metavar="N",
                       help=f"larger bodies get 413 (default: {MAX_BODY_BYTES}, TorchServe's max_request_size)")
    proxy.add_argument("--timeout", type=float, default=ProxyConfig.timeout, metavar="SECONDS",
                       help=f"seconds to wait for TorchServe's answer (default: {ProxyConfig.timeout:g})")
    proxy.set_defaults(run=cmd_auth_proxy)
    return proxy


def cmd_auth_proxy(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, port = args.listen
    serve(ProxyConfig(
        tokens_file=Path(args.tokens_file),
        key_file=Path(args.key_file),
        host=host,
        port=port,
        inference_url=args.inference_url,
        management_url=args.management_url,
        max_body_bytes=args.max_body_bytes,
        timeout=args.timeout,
    ))


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)
