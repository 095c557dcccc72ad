"""Prometheus: ``promtool check config`` (with a fallback for Debian's promtool, which lacks
Kubernetes service discovery) and the operator's PrometheusRule against alerts.yml."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from .tools import promtool


def promtool_check_config(config: Path) -> tuple[subprocess.CompletedProcess, str | None]:
    """``promtool check config``. Debian's promtool is built without Kubernetes service
    discovery and refuses ``kubernetes_sd_configs``; then the same file is checked with each
    kubernetes_sd_configs replaced by an empty file_sd_configs (the relabelling, rule files and
    everything else still go through promtool) and the SD blocks are checked here. The second
    value says when that fallback was used."""
    result = promtool("check", "config", str(config))
    if result.returncode == 0 or "kubernetes_sd_configs not found" not in result.stdout + result.stderr:
        return result, None
    doc = yaml.safe_load(Path(config).read_text())
    sd_problems = []
    with tempfile.TemporaryDirectory(prefix="arcscan-promtool-") as tmp:
        for job in doc.get("scrape_configs", []):
            for sd in job.pop("kubernetes_sd_configs", []) or []:
                if sd.get("role") not in {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}:
                    sd_problems.append(f"job {job.get('job_name')}: kubernetes_sd_configs role {sd.get('role')!r}")
                unknown = set(sd) - {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
                if unknown:
                    sd_problems.append(f"job {job.get('job_name')}: unknown kubernetes_sd_configs fields {sorted(unknown)}")
                job.setdefault("file_sd_configs", []).append({"files": [str(Path(tmp) / "targets.json")]})
        for rule_file in doc.get("rule_files", []):
            shutil.copy(Path(config).parent / rule_file, Path(tmp) / Path(rule_file).name)
        (Path(tmp) / "prometheus.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        fallback = promtool("check", "config", str(Path(tmp) / "prometheus.yml"))
    if sd_problems:
        fallback = subprocess.CompletedProcess(fallback.args, 1, fallback.stdout + "\n".join(sd_problems), fallback.stderr)
    return fallback, "promtool lacks Kubernetes SD (Debian build): kubernetes_sd_configs checked structurally"


def prometheus_rule_problems(rule_object: dict, alerts: dict) -> list[str]:
    """The operator's PrometheusRule carries exactly the groups of alerts.yml."""
    if rule_object.get("spec", {}).get("groups") != alerts.get("groups"):
        return ["k8s/monitoring/prometheusrule.yaml differs from alerts.yml: copy alerts.yml's groups into it"]
    return []
