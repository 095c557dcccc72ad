"""The command-line tools behind the checks: lookup, the kustomize, checkov and promtool runners,
and reading/writing rendered objects.

Tools are looked up in ``.tools/bin`` (``k8s/install-tools.sh``) first, then on PATH; a missing
one raises :class:`ToolMissing`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from .constants import ROOT

TOOLS_BIN = ROOT / ".tools" / "bin"


class ToolMissing(RuntimeError):
    """A command-line tool is not installed (tests skip with this message)."""


def tool(name: str) -> str | None:
    """``.tools/bin/<name>`` if it exists, else ``<name>`` on PATH, else None."""
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def tool_env() -> dict[str, str]:
    """The environment for tool subprocesses: ``.tools/bin`` first on PATH (checkov looks for
    kustomize/kubectl there), no telemetry or update checks."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    return env


def kustomize_command() -> list[str]:
    """``kustomize build`` or ``kubectl kustomize``, whichever is installed."""
    if found := tool("kustomize"):
        return [found, "build"]
    if found := tool("kubectl"):
        return [found, "kustomize"]
    raise ToolMissing("neither kustomize nor kubectl found (bash k8s/install-tools.sh)")


def render_text(directory: Path) -> str:
    """``kustomize build <directory>``; raises RuntimeError with kustomize's message on failure."""
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, env=tool_env(), timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{result.stderr.strip()}")
    return result.stdout


def load_objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(directory: Path) -> list[dict]:
    return load_objects(render_text(directory))


def compose(folder: Path, resources: Iterable[Path] = (), components: Iterable[Path] = (), namespace: str | None = None,
            extra: dict | None = None) -> Path:
    """Write ``folder/kustomization.yaml`` combining existing kustomizations (relative paths:
    kustomize refuses absolute ones); return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if namespace:
        doc["namespace"] = namespace
    doc["resources"] = [os.path.relpath(Path(p).resolve(), folder.resolve()) for p in resources]
    if components := [os.path.relpath(Path(p).resolve(), folder.resolve()) for p in components]:
        doc["components"] = components
    doc.update(extra or {})
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def write_objects(folder: Path, objects: list[dict]) -> Path:
    """``folder/manifests.yaml`` + a kustomization listing it (for checkov on edited objects)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifests.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["manifests.yaml"]})
    )
    return folder


def checkov_report(directory: Path, framework: str = "kustomize", files: Iterable[Path] = ()) -> dict:
    """Run checkov offline on a kustomization directory (or on ``files`` with another
    framework); return {passed, failed, skipped, resources, failed_checks, skipped_checks}."""
    checkov = tool("checkov")
    if not checkov:
        raise ToolMissing("checkov not found (bash k8s/install-tools.sh)")
    target = [arg for f in files for arg in ("-f", str(f))] or ["-d", str(directory)]
    command = [checkov, *target, "--framework", framework, "--skip-download", "--quiet", "--compact", "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, env=tool_env(), timeout=300)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov printed no JSON (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}") from error
    reports = data if isinstance(data, list) else [data]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "resources": 0, "failed_checks": [], "skipped_checks": []}
    for report in reports:
        if "summary" not in report:  # "no files found" answers
            continue
        summary["passed"] += report["summary"].get("passed", 0)
        summary["failed"] += report["summary"].get("failed", 0)
        summary["skipped"] += report["summary"].get("skipped", 0)
        summary["resources"] += report["summary"].get("resource_count", 0)
        results = report.get("results", {})
        summary["failed_checks"] += [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
        summary["skipped_checks"] += [
            (c["check_id"], c["resource"], (c.get("check_result", {}) or {}).get("suppress_comment", ""))
            for c in results.get("skipped_checks", [])
        ]
    return summary


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    found = tool("promtool")
    if not found:
        raise ToolMissing("promtool not found (bash k8s/install-tools.sh installs Debian's prometheus package)")
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
