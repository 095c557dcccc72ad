"""The auth-proxy sidecar in TorchServe's pod (``arcscan auth-proxy``), which stream clients talk
to: it wants the shared stream token and calls TorchServe on loopback with the pod's own key. Also
which of the pod's ports want a token (no HTTP probe may use them)."""

from __future__ import annotations

import re

from .constants import STREAM_CLIENT_COMPONENT, TORCHSERVE_COMPONENT
from .objects import (containers, expanded_command, ident, mounted_secret, option, pod_template, resolve_port,
                      selected_pods, selects, workloads)
from .torchserve import torchserve_container, torchserve_properties

AUTH_PROXY_CONTAINER = "auth-proxy"
# TorchServe's listeners that want a bearer token (token authorization), so no HTTP probe may use them.
TOKEN_PROTECTED_PORT_KEYS = ("inference_address", "management_address")


def auth_proxy(objects: list[dict], workload: dict) -> dict | None:
    """The auth-proxy sidecar of a workload: {workload (its ident), container, argv ($(VAR)
    expanded), port (of --listen), secret (of --tokens-file)}; None without such a container."""
    spec = pod_template(workload)["spec"]
    container = next((c for c in spec.get("containers", []) if c.get("name") == AUTH_PROXY_CONTAINER), None)
    if container is None:
        return None
    argv = expanded_command(objects, workload, container)[0]
    port = (option(argv, "--listen") or "").rpartition(":")[2]
    return {"workload": ident(workload), "container": container, "argv": argv, "port": int(port) if port.isdigit() else None,
            "secret": mounted_secret(option(argv, "--tokens-file") or "", container, spec)}


def auth_proxy_routes(objects: list[dict], namespace: str | None) -> dict[tuple[str, int], dict]:
    """The (Service name, port) pairs of the namespace that lead to an auth proxy's listening
    port, each with that proxy (:func:`auth_proxy`)."""
    routes = {}
    for service in objects:
        if service.get("kind") != "Service" or service["metadata"].get("namespace") != namespace:
            continue
        for workload, _, _ in selected_pods(objects, service["spec"].get("selector"), namespace):
            proxy = auth_proxy(objects, workload)
            for port in service["spec"].get("ports", []) if proxy else []:
                if resolve_port(port.get("targetPort", port["port"]), proxy["container"]) == proxy["port"]:
                    routes[(service["metadata"]["name"], int(port["port"]))] = proxy
    return routes


def auth_proxy_problems(objects: list[dict]) -> list[str]:
    """TorchServe's pods have the auth-proxy sidecar (``arcscan auth-proxy``): it listens on one
    of its container ports, calls TorchServe's own inference and management addresses with the
    key_file.json in TorchServe's working directory (the same volume), takes its tokens from a
    Secret file, and a Service port and the NetworkPolicy's stream-client rule lead to it."""
    problems = []
    for obj, spec, labels in workloads(objects):
        if labels.get("app.kubernetes.io/component") != TORCHSERVE_COMPONENT:
            continue
        where, proxy, server = ident(obj), auth_proxy(objects, obj), torchserve_container(spec)
        if proxy is None or server is None:
            problems.append(f"{where}: no {AUTH_PROXY_CONTAINER} container next to the torchserve one")
            continue
        argv = proxy["argv"]
        if argv[:2] != ["arcscan", "auth-proxy"]:
            problems.append(f"{where} container {AUTH_PROXY_CONTAINER}: runs {argv[:2]}, not arcscan auth-proxy")
        if proxy["port"] is None or resolve_port(proxy["port"], proxy["container"]) is None:
            problems.append(f"{where}: the auth proxy's --listen {option(argv, '--listen')!r} is not one of its container ports")
        props = torchserve_properties(objects, obj)
        for name, key in (("--inference-url", "inference_address"), ("--management-url", "management_address")):
            if option(argv, name) != props.get(key):
                problems.append(f"{where}: the auth proxy's {name} {option(argv, name)!r} is not TorchServe's {key} {props.get(key)!r}")
        key_file, workdir = option(argv, "--key-file") or "", server.get("workingDir")
        server_mounts = {m["mountPath"]: m["name"] for m in server.get("volumeMounts", [])}
        proxy_mounts = {m["mountPath"]: m["name"] for m in proxy["container"].get("volumeMounts", [])}
        if key_file != f"{workdir}/key_file.json" or proxy_mounts.get(workdir) != server_mounts.get(workdir):
            problems.append(f"{where}: the auth proxy's --key-file {key_file!r} is not key_file.json in TorchServe's working "
                            f"directory {workdir} (mounted from the same volume)")
        if proxy["secret"] is None:
            problems.append(f"{where}: the auth proxy's --tokens-file {option(argv, '--tokens-file')!r} is not mounted from a Secret")
        namespace = obj["metadata"].get("namespace")
        if not any(route["workload"] == where for route in auth_proxy_routes(objects, namespace).values()):
            problems.append(f"{where}: no Service port leads to the auth proxy (port {proxy['port']})")
        admitted = set()  # the proxy's ports the stream clients may reach
        for policy in objects:
            if policy.get("kind") != "NetworkPolicy" or policy["metadata"].get("namespace") != namespace \
                    or not selects(policy["spec"].get("podSelector"), labels):
                continue
            for rule in policy["spec"].get("ingress", []) or []:
                peers = [(peer.get("podSelector") or {}).get("matchLabels", {}) for peer in rule.get("from", []) or []]
                if any(peer.get("app.kubernetes.io/component") == STREAM_CLIENT_COMPONENT for peer in peers):
                    admitted |= {resolve_port(port.get("port"), proxy["container"]) for port in rule.get("ports", []) or []}
        if proxy["port"] not in admitted:
            problems.append(f"{where}: no NetworkPolicy admits the stream clients to the auth proxy (port {proxy['port']})")
    return problems


def torchserve_token_ports(objects: list[dict], workload: dict) -> dict[str, set]:
    """The container port names/numbers of the token-protected listeners in TorchServe's pod:
    TorchServe's inference and management, and the auth proxy's."""
    props = torchserve_properties(objects, workload)
    numbers = set()
    for key in TOKEN_PROTECTED_PORT_KEYS:
        match = re.search(r":(\d+)$", props.get(key, ""))
        if match:
            numbers.add(int(match.group(1)))
    if (proxy := auth_proxy(objects, workload)) and proxy["port"]:
        numbers.add(proxy["port"])
    names = set()
    for container in containers(pod_template(workload)["spec"], init=False):
        for port in container.get("ports", []) or []:
            if int(port["containerPort"]) in numbers and port.get("name"):
                names.add(port["name"])
    return {"names": names, "numbers": numbers}
