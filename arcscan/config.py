"""params.yaml: load it and build the library's config dataclasses from its sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

import yaml

from arcscan.errors import InputError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict:
    """The parameters file as a dict."""
    with Path(path).open() as handle:
        return yaml.safe_load(handle)


def build(cls: type[T], section: dict | None) -> T:
    """A config dataclass from a params section; lists become tuples, unknown keys are errors
    (a typo in params.yaml must not be silently ignored)."""
    section = section or {}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(section) - known
    if unknown:
        raise InputError(f"{cls.__name__}: unknown parameters {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})
