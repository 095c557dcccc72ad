"""Progress off a terminal: whole log lines with rate and ETA, never a carriage return, never
the same line twice."""

import io
import sys

from arcscan.core import progress as progress_module


def test_progress_writes_plain_lines_when_stderr_is_not_a_terminal(monkeypatch):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    bar = progress_module.progress(desc="train", total=4, unit="step")
    for step in range(4):
        bar.update()
        if step == 1:
            bar.set_postfix(risk="0.5")  # new figures: a line now
    bar.close()
    text = captured.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("]\n") and "" not in lines and len(lines) == len(set(lines)) == 3
    assert lines[1].startswith("train: 2/4 [") and "risk=0.5" in lines[1]
    assert lines[-1].startswith("train: 4/4 [") and "step/s" in lines[-1]


def test_disabled_progress_is_silent(monkeypatch):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    assert list(progress_module.progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert captured.getvalue() == ""
