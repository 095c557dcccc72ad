"""The images' Dockerfiles (pinned bases, non-root, HEALTHCHECK, no credentials, COPY sources
that exist) and ``.dockerignore``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .constants import ROOT


def dockerfile_problems(path: Path) -> list[str]:
    """Pinned base images (a version tag, not latest), a non-root USER and a HEALTHCHECK in the
    final stage, no credentials in ENV/ARG, COPY sources that exist (globs may match nothing)."""
    text = Path(path).read_text()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "")
                    for l in (x.strip() for x in lines) if l and not l.startswith("#")]
    problems = []
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    if not stages:
        return [f"{path}: no FROM"]
    stage_names = set()
    for index in stages:
        words = instructions[index][1].split()
        image = words[0]
        if image in stage_names:
            continue
        if len(words) >= 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
        if "@sha256:" in image:
            continue
        tag = image.rsplit("/", 1)[-1].split(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        if tag is None or tag == "latest" or "$" in image or not re.search(r"\d+\.\d+", tag):
            problems.append(f"{path}: base image {image} is not pinned to a version tag")
    final = instructions[stages[-1]:]
    users = [arg for op, arg in final if op == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"{path}: the final stage does not switch to a non-root USER")
    if not any(op == "HEALTHCHECK" and not arg.upper().startswith("NONE") for op, arg in final):
        problems.append(f"{path}: no HEALTHCHECK in the final stage")
    for op, arg in instructions:
        if op in {"ENV", "ARG"} and re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY)\w*\s*=\s*\S", arg, re.I):
            problems.append(f"{path}: {op} {arg[:60]} bakes a credential into the image")
        if op in {"COPY", "ADD"} and "--from=" not in arg:
            sources = [s for s in arg.split() if not s.startswith("--")][:-1]
            if arg.strip().startswith("["):
                continue
            for source in sources:
                if not any(ch in source for ch in "*?[") and not (ROOT / source).exists():
                    problems.append(f"{path}: {op} source {source} does not exist in the repository")
        if op == "ADD" and re.search(r"https?://", arg):
            problems.append(f"{path}: ADD from a URL")
    return problems


def dockerignore_problems(path: Path, required: Iterable[str]) -> list[str]:
    entries = {line.strip().rstrip("/") for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")}
    return [f"{path}: does not exclude {entry}" for entry in required if entry.rstrip("/") not in entries]
