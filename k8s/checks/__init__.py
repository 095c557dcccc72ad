"""Offline checks of arcscan's deployment files: Kubernetes manifests, Dockerfiles, Prometheus.

No cluster, registry or Docker engine is needed. ``tests/test_k8s.py`` runs every check on the
real files and, to show that the checks bite, on broken copies: both go through the functions
re-exported here (``import k8s.checks as checks`` from the repository root). Each
``*_problems`` function returns a list of human-readable problems (empty = fine).

Modules:

- ``tools``: tool lookup; kustomize (render, compose, load/write objects), checkov and
  promtool runners; ``ToolMissing`` when a tool is not installed.
- ``objects``: generic helpers on rendered objects (find, pod templates, containers, ports,
  options, mounted volumes and Secrets, selectors; ``mutate`` for broken copies).
- ``schema``: strict kubernetes-validate, and the Prometheus-operator CRs checked by hand.
- ``policies``: what every manifest and pod follows (labels, pinned images, selectors,
  probes, security, references) and which checkov findings count.
- ``torchserve``: TorchServe's pod, config.properties and its NetworkPolicy.
- ``auth_proxy``: the auth-proxy sidecar in front of TorchServe and its token-protected ports.
- ``streams``: the stream clients, and that the manifests' ``arcscan`` command lines parse
  with the real CLI parser (passed in: this package does not import arcscan).
- ``mlflow_auth``: MLflow's basic-auth server and the clients' credentials.
- ``dockerfiles``: ``containers/Dockerfile`` (every target stage) and ``.dockerignore``.
- ``prometheus``: ``promtool check config`` (Debian fallback) and the PrometheusRule.
- ``rayjob``: the archive's KubeRay RayJob against the KubeRay CRD's schema, and what the job needs.
- ``constants``: the repository root and the component labels several modules share.

Tools (``k8s/install-tools.sh`` installs them): kustomize via ``kubectl kustomize`` (or a
``kustomize`` binary), ``checkov`` and ``promtool``; looked up in ``.tools/bin`` first, then on
PATH. Schemas: ``kubernetes-validate`` (Python API, strict) from the project's environment.
"""

from __future__ import annotations

from .auth_proxy import AUTH_PROXY_CONTAINER, auth_proxy, auth_proxy_problems
from .dockerfiles import dockerfile_problems, dockerfile_targets, dockerignore_problems
from .mlflow_auth import (MLFLOW_AUTH_APP, MLFLOW_CREDENTIALS, mlflow_auth_problems, mlflow_client_problems,
                          mlflow_server_container)
from .objects import container_ports, containers, find, ident, mutate, pod_template, secret_env
from .policies import (checkov_problems, image_problems, label_problems, probe_problems, reference_problems,
                       security_problems, selector_problems)
from .prometheus import prometheus_rule_problems, promtool_check_config
from .rayjob import crd_path, crd_schema, rayjob_problems, rayjob_schema_problems
from .schema import OPERATOR_KINDS, operator_resource_problems, schema_problems
from .streams import arcscan_argv, cli_problems, stream_problems
from .tools import ToolMissing, checkov_report, compose, load_objects, promtool, render, write_objects
from .torchserve import config_properties_problems, derived_config_problems, parse_properties, torchserve_problems

__all__ = [
    "AUTH_PROXY_CONTAINER", "MLFLOW_AUTH_APP", "MLFLOW_CREDENTIALS", "OPERATOR_KINDS", "ToolMissing",
    "arcscan_argv", "auth_proxy", "auth_proxy_problems", "checkov_problems", "checkov_report", "cli_problems",
    "compose", "config_properties_problems", "crd_path", "crd_schema", "container_ports", "containers", "derived_config_problems",
    "dockerfile_problems", "dockerfile_targets", "dockerignore_problems", "find", "ident", "image_problems", "label_problems",
    "load_objects", "mlflow_auth_problems", "mlflow_client_problems", "mlflow_server_container", "mutate",
    "operator_resource_problems", "parse_properties", "pod_template", "probe_problems", "prometheus_rule_problems",
    "promtool", "promtool_check_config", "rayjob_problems", "rayjob_schema_problems", "reference_problems", "render", "schema_problems", "secret_env",
    "security_problems", "selector_problems", "stream_problems", "torchserve_problems", "write_objects",
]
