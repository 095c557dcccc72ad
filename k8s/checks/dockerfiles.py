"""The images' Dockerfile (pinned bases, non-root, HEALTHCHECK, no credentials, COPY sources
that exist) and ``.dockerignore``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .constants import ROOT


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = re.sub(r"\\\n", " ", text).splitlines()
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "")
            for l in (x.strip() for x in lines) if l and not l.startswith("#")]


def _substitute(image: str, global_args: dict[str, str]) -> str:
    """``FROM ${BASE}``: the default of a global ARG (declared before the first FROM)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), image)


def dockerfile_problems(path: Path) -> list[str]:
    """Pinned base images (a version tag, not latest; a global ARG's default counts), a non-root
    USER and a HEALTHCHECK in every target stage (a stage no other stage builds or copies from),
    no credentials in ENV/ARG, COPY sources that exist (globs may match nothing)."""
    instructions = _instructions(Path(path).read_text())
    problems = []
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    if not stages:
        return [f"{path}: no FROM"]
    global_args = dict(arg.split("=", 1) for op, arg in instructions[:stages[0]] if op == "ARG" and "=" in arg)
    stage_names: list[str] = []
    parents: set[str] = set()
    for index in stages:
        words = instructions[index][1].split()
        image = _substitute(words[0], global_args)
        name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stage_names))
        stage_names.append(name)
        if image in stage_names[:-1]:
            parents.add(image)
            continue
        if "@sha256:" in image:
            continue
        tag = image.rsplit("/", 1)[-1].split(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        if tag is None or tag == "latest" or "$" in image or not re.search(r"\d+\.\d+", tag):
            problems.append(f"{path}: base image {image} is not pinned to a version tag")
    parents |= {m.group(1) for _, arg in instructions for m in re.finditer(r"--from=([\w.-]+)", arg)}
    bounds = stages[1:] + [len(instructions)]
    for name, start, end in zip(stage_names, stages, bounds):
        if name in parents:
            continue
        stage = instructions[start:end]
        users = [arg for op, arg in stage if op == "USER"]
        if not users or users[-1].split(":")[0] in {"root", "0"}:
            problems.append(f"{path}: target stage {name} does not switch to a non-root USER")
        if not any(op == "HEALTHCHECK" and not arg.upper().startswith("NONE") for op, arg in stage):
            problems.append(f"{path}: no HEALTHCHECK in target stage {name}")
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


def dockerfile_targets(path: Path) -> list[str]:
    """The target stages (``--target``) of a multi-stage Dockerfile, in file order."""
    instructions = _instructions(Path(path).read_text())
    names = [arg.split()[2] for op, arg in instructions if op == "FROM" and len(arg.split()) >= 3]
    parents = {arg.split()[0] for op, arg in instructions if op == "FROM"}
    parents |= {m.group(1) for _, arg in instructions for m in re.finditer(r"--from=([\w.-]+)", arg)}
    return [name for name in names if name not in parents]


def dockerignore_problems(path: Path, required: Iterable[str]) -> list[str]:
    entries = {line.strip().rstrip("/") for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")}
    return [f"{path}: does not exclude {entry}" for entry in required if entry.rstrip("/") not in entries]
