"""The stream clients (one Deployment per imager group, wired to the auth proxy), and that every
``arcscan`` command line in the manifests parses with the real CLI parser. The parser is passed
in (``arcscan.cli.build_parser()``), so this package does not import arcscan."""

from __future__ import annotations

import contextlib
import io
import re
from urllib.parse import urlsplit

from .auth_proxy import AUTH_PROXY_CONTAINER, auth_proxy, auth_proxy_routes
from .constants import STREAM_CLIENT_COMPONENT
from .objects import expanded_command, ident, mounted_secret, pod_template, port_exists, workloads


def stream_problems(objects: list[dict]) -> list[str]:
    """Stream clients: a Deployment per imager group (at least two), a ConfigMap with URL and
    concurrency, the URL a Service port that leads to TorchServe's auth proxy, the token from the
    Secret file that proxy accepts, the metrics port annotated for scraping (``cli_problems``
    runs the arguments through the real parser)."""
    problems = []
    streams = [(obj, spec, labels) for obj, spec, labels in workloads(objects)
               if labels.get("app.kubernetes.io/component") == STREAM_CLIENT_COMPONENT]
    groups = {labels.get("arcscan.io/imager-group") for _, _, labels in streams}
    if len(streams) < 2 or len(groups - {None}) < 2:
        problems.append(f"fewer than two stream-client Deployments with distinct imager groups ({sorted(map(str, groups))})")
    for obj, spec, labels in streams:
        container = spec["containers"][0]
        expanded, values = expanded_command(objects, obj, container)
        for key in ("ARCSCAN_URL", "CONCURRENCY", "WATCH_DIR"):
            if key not in values:
                problems.append(f"{ident(obj)}: {key} not configured (ConfigMap)")
        if unresolved := [a for a in expanded if re.search(r"\$\([A-Za-z_]", a)]:
            problems.append(f"{ident(obj)}: unresolved variables in the arguments: {unresolved}")
        if "--token" in expanded:
            problems.append(f"{ident(obj)}: --token puts the key on the command line; use --token-file")
        url = urlsplit(str(values.get("ARCSCAN_URL", "")))
        try:
            route = (url.hostname, url.port)
        except ValueError:
            route = None
        routes = auth_proxy_routes(objects, obj["metadata"].get("namespace"))
        if url.scheme != "http" or route not in routes or not url.path.startswith("/predictions/"):
            problems.append(f"{ident(obj)}: ARCSCAN_URL {values.get('ARCSCAN_URL')!r} is not /predictions/ on a Service port "
                            f"that leads to TorchServe's auth proxy ({sorted(routes)})")
        if "--token-file" in expanded:
            token_file = expanded[expanded.index("--token-file") + 1]
            secret = mounted_secret(token_file, container, spec)
            if secret is None:
                problems.append(f"{ident(obj)}: --token-file {token_file} is not mounted from a Secret")
            elif route in routes and secret != routes[route]["secret"]:
                problems.append(f"{ident(obj)}: --token-file comes from Secret {secret}, "
                                f"the auth proxy's tokens from {routes[route]['secret']}")
        else:
            problems.append(f"{ident(obj)}: no --token-file")
        annotations = pod_template(obj)["metadata"].get("annotations", {}) or {}
        port = expanded[expanded.index("--metrics-port") + 1] if "--metrics-port" in expanded else None
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != port or not port_exists(port or "", spec):
            problems.append(f"{ident(obj)}: metrics port {port} is not annotated for scraping / not a container port")
    return problems


def arcscan_argv(objects: list[dict]) -> dict[str, list[str]]:
    """The command line of each stream client and auth proxy, $(VAR) expanded from its env and
    ConfigMaps."""
    out = {}
    for obj, spec, labels in workloads(objects):
        if labels.get("app.kubernetes.io/component") == STREAM_CLIENT_COMPONENT:
            out[ident(obj)] = expanded_command(objects, obj, spec["containers"][0])[0]
        elif proxy := auth_proxy(objects, obj):
            out[f"{ident(obj)} container {AUTH_PROXY_CONTAINER}"] = proxy["argv"]
    return out


def cli_problems(argvs: dict[str, list[str]], parser) -> list[str]:
    """The real ``arcscan`` argument parser accepts each command line (``arcscan ...``)."""
    problems = []
    for where, argv in argvs.items():
        if argv[:1] != ["arcscan"]:
            problems.append(f"{where}: does not run arcscan: {argv[:2]}")
            continue
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                parser.parse_args(argv[1:])
        except SystemExit:
            problems.append(f"{where}: arcscan rejects {argv[1:]}: {errors.getvalue().strip().splitlines()[-1]}")
    return problems
