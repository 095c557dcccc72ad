"""Bearer tokens on disk: TorchServe's ``key_file.json`` and arcscan's shared stream tokens.

TorchServe 0.12 writes ``key_file.json`` (``{"inference": {"key": ...}, "management": {...},
"API": {...}}``) into its working directory at every start. The stream clients and the auth
proxy in front of each TorchServe (:mod:`arcscan.ops.authproxy`) share tokens of their own instead:
a plain text file, one token per line (blank lines and ``#`` comments ignored), typically a
Kubernetes Secret mounted as a file. The proxy accepts every token in it and a client sends the
first, so a rotation puts the new token first and drops the old one later.

TorchServe lets the inference key expire after ``token_expiration_min`` and makes new keys at
a restart; :class:`TorchServeKey` holds the key of such a file for the auth proxy and the
stream client, and replaces it when refused.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

from arcscan.errors import ArcscanError, InputError
from arcscan.ops.plainhttp import error_message, post

log = logging.getLogger(__name__)

# Printable ASCII without spaces (a valid header value), long enough not to be guessed.
_TOKEN = re.compile(r"[\x21-\x7e]{16,}")


def key_file_entry(path: Path, kind: str) -> str:
    """``<kind>.key`` of a TorchServe ``key_file.json`` (kind: inference, management or API)."""
    try:
        keys = json.loads(_read(path, "key file"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not a JSON key file ({err})") from err
    entry = keys.get(kind) if isinstance(keys, dict) else None
    key = entry.get("key") if isinstance(entry, dict) else None
    if not isinstance(key, str) or not key:
        raise InputError(f'{path}: no "{kind}": {{"key": ...}} entry (expected a TorchServe key_file.json)')
    return key


def shared_tokens(path: Path) -> list[str]:
    """The tokens of a shared token file, in file order (the first is the one clients send)."""
    tokens = []
    for number, line in enumerate(_read(path, "token file").splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not _TOKEN.fullmatch(token):  # the message never shows the token itself
            raise InputError(f"{path} line {number}: not a token (at least 16 printable ASCII characters, no spaces)")
        tokens.append(token)
    if not tokens:
        raise InputError(f"{path}: no token in the file (one per line)")
    return tokens


def client_token(path: Path) -> str:
    """The token a client sends: the inference key of a TorchServe ``key_file.json`` (a JSON
    object), else the first token of a shared token file."""
    if _read(path, "token file").lstrip().startswith("{"):
        return key_file_entry(path, "inference")
    return shared_tokens(path)[0]


class KeyRenewalError(ArcscanError):
    """TorchServe's token API answered, but did not renew the inference key."""


class TorchServeKey:
    """The inference key in ``key_file`` (TorchServe's ``key_file.json``; with
    ``shared_tokens_ok``, also a shared token file, whose first token is the key), held for
    every thread of one caller.

    :meth:`current` is the key to send. When TorchServe refuses it, :meth:`replace` gives the
    key to send instead: the one another thread found meanwhile, else the file's if it changed
    (TorchServe restarted, or someone renewed or rotated it), else, with a ``management_url``,
    a key renewed through TorchServe's token API (``POST {management_url}/token?type=inference``
    with the file's API key), read from the file again. One thread at a time replaces it, so
    concurrent refusals renew the key once.

    An unreadable file or entry raises :class:`InputError`, a token API that refuses
    :class:`KeyRenewalError`, and one that cannot be reached what :func:`plainhttp.post
    <arcscan.ops.plainhttp.post>` raises.
    """

    def __init__(
        self,
        key_file: Path,
        management_url: str | None = None,
        timeout: float = 30.0,
        *,
        key: str | None = None,
        shared_tokens_ok: bool = False,
    ) -> None:
        if management_url is not None:
            parts = urlsplit(management_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ArcscanError(f"{management_url}: not an http(s) URL of TorchServe's management API")
        self.key_file = Path(key_file)
        self.management_url = management_url
        self.timeout = timeout
        self.shared_tokens_ok = shared_tokens_ok
        self._key = key  # None: read from the file at first use
        self._lock = threading.Lock()

    def current(self) -> str:
        """The key to send now."""
        with self._lock:
            if self._key is None:
                self._key = self._read()
            return self._key

    def replace(self, refused: str) -> str | None:
        """The key to send instead of ``refused``, or None if there is no other."""
        with self._lock:
            if self._key is not None and self._key != refused:
                return self._key  # another thread replaced it meanwhile
            fresh = self._read()
            if fresh == refused and self.management_url:
                self._renew()
                fresh = self._read()
            if fresh == refused:
                return None
            log.info("inference key renewed from %s", self.key_file)
            self._key = fresh
            return fresh

    def _read(self) -> str:
        if self.shared_tokens_ok:
            return client_token(self.key_file)
        return key_file_entry(self.key_file, "inference")

    def _renew(self) -> None:
        """Have TorchServe's token API write a new inference key to the key file."""
        api_key = key_file_entry(self.key_file, "API")
        answer = post(self.management_url, "/token?type=inference", b"", {"Authorization": f"Bearer {api_key}"}, self.timeout)
        if answer.status != 200:
            raise KeyRenewalError(f"TorchServe's token API did not renew the inference key ({answer.status}: {error_message(answer.body)})")


def _read(path: Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read the {what} ({reason})") from err
