"""Bearer tokens on disk: TorchServe's ``key_file.json`` and arcscan's shared stream tokens.

TorchServe 0.12 writes ``key_file.json`` (``{"inference": {"key": ...}, "management": {...},
"API": {...}}``) into its working directory at every start. The stream clients and the auth
proxy in front of each TorchServe (:mod:`arcscan.ops.authproxy`) share tokens of their own instead:
a plain text file, one token per line (blank lines and ``#`` comments ignored), typically a
Kubernetes Secret mounted as a file. The proxy accepts every token in it and a client sends the
first, so a rotation puts the new token first and drops the old one later.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from arcscan.errors import InputError

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


def _read(path: Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read the {what} ({reason})") from err
