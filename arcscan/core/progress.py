"""Progress the way users expect: a tqdm bar with rate and ETA on a terminal, and plain log
lines (the same figures, at most one every ``LOG_INTERVAL_S`` seconds, whenever the caller
posts new figures such as an epoch's risk, and at the end) when stderr is not a terminal, as
in CI and DVC logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _Lines:
    """A text stream that passes on whole lines only (tqdm's bare newlines and carriage
    returns are dropped)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class _LogLines(tqdm):
    """tqdm that writes whole lines, each at once, instead of redrawing one; a line only when
    the count or the figures changed."""

    _last: tuple | None = None

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        text = (self.__str__() if msg is None else msg).strip()
        state = (self.n, self.postfix)
        if text and state != self._last:
            self.fp.write(text + "\n")
            self.fp.flush()
            self._last = state
        return True


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True) -> tqdm:
    """A progress bar over ``iterable`` (or ``total`` steps, advanced with ``update``)."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True)
    return _LogLines(iterable, desc=desc, total=total, unit=unit, mininterval=LOG_INTERVAL_S, bar_format=_LOG_FORMAT, file=_Lines(sys.stderr))
