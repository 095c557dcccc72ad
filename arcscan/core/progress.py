"""Progress the way users expect: a tqdm bar with rate and ETA on a terminal, and plain log
lines (the same figures, at most one every ``LOG_INTERVAL_S`` seconds, and a last one at the
end) when stderr is not a terminal, as in CI and DVC logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

LOG_INTERVAL_S = 30.0
_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _LogLines(tqdm):
    """tqdm that writes whole lines instead of redrawing one."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        text = self.__str__() if msg is None else msg
        if text.strip():
            self.fp.write(text.strip() + "\n")
            self.fp.flush()
        return True


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True) -> tqdm:
    """A progress bar over ``iterable`` (or ``total`` steps, advanced with ``update``)."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True)
    return _LogLines(iterable, desc=desc, total=total, unit=unit, mininterval=LOG_INTERVAL_S, bar_format=_LOG_FORMAT, file=sys.stderr)
