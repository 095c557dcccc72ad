"""Build the TorchServe model archive ``arcscan.mar`` from a registered model version.

    python serving/build_mar.py --alias champion --output serving/model-store
    python serving/build_mar.py --checkpoint model.pt --params params.yaml --version test-1 --output DIR

The first form (``make mar``) downloads ``<register.model_name>@<alias>`` from the MLflow
registry with the ``params.yaml`` logged next to its ``model.pt``; the second builds from
local files and is for tests and experiments only (nothing unregistered is ever served by
``make mar``). Before packing, the checkpoint is loaded (weights only) and a ``Segmenter`` is
built from the params, so a broken pair fails here and not in the server.

The archive holds ``model.pt``, ``params.yaml``, ``handler.py``, ``model_info.json`` (name,
version, checksums, code commit) and the ``arcscan`` package source: the served code is the
code of the build, whatever arcscan version the serving environment has installed (its
third-party dependencies must be installed there; ``install_py_dep_per_model`` is off).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: import the repository's arcscan
    sys.path.insert(0, str(ROOT))

from arcscan.config import load_settings  # noqa: E402
from arcscan.core.model import load_checkpoint  # noqa: E402

HANDLER = ROOT / "serving" / "handler.py"
PACKAGE = ROOT / "arcscan"
REPO_PARAMS = ROOT / "params.yaml"
ARCHIVE_NAME = "arcscan"  # the TorchServe model name: POST /predictions/arcscan


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _code_commit() -> dict:
    """The repository commit the packed code comes from, and whether it had local changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "arcscan", "serving/handler.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changes)}


def check(checkpoint: Path, params: Path) -> None:
    """Fail now if the checkpoint does not load or the params do not build its segmenter."""
    load_settings(params).segmenter(load_checkpoint(checkpoint))


def _elevation_maps(params: Path) -> list[Path]:
    """The relative calibration paths (elevation maps, azimuth images) the imager profiles of ``params`` name."""
    profiles = load_settings(params).sky.imagers
    return [Path(name) for p in profiles for name in (p.elevation, p.azimuth) if name and not Path(name).is_absolute()]


def archiver() -> str:
    """The ``torch-model-archiver`` next to this Python, else the one on PATH."""
    local = Path(sys.executable).parent / "torch-model-archiver"
    found = str(local) if local.is_file() else shutil.which("torch-model-archiver")
    if not found:
        raise SystemExit("torch-model-archiver not found (pip install torch-model-archiver==0.12.0)")
    return found


def build(checkpoint: Path, params: Path, info: dict, output: Path, name: str = ARCHIVE_NAME) -> Path:
    """Pack ``output/<name>.mar`` (replaced atomically if it exists); return its path."""
    checkpoint, params, output = Path(checkpoint), Path(params), Path(output)
    check(checkpoint, params)
    info = {
        **info,
        "checkpoint_sha256": _sha256(checkpoint),
        "params_sha256": _sha256(params),
        "code": _code_commit(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arcscan-mar-") as tmp:
        extra = Path(tmp) / "extra"  # its contents land at the archive's root
        # copied with fresh file times: ZIP (the .mar) cannot store times before 1980, and images
        # built reproducibly give their files the time 0 (1970; containers/images.sh)
        shutil.copytree(PACKAGE, extra / "arcscan", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), copy_function=shutil.copyfile)
        handler = shutil.copyfile(HANDLER, Path(tmp) / HANDLER.name)
        shutil.copyfile(params, extra / "params.yaml")
        for relative in _elevation_maps(params):  # the imager profiles' calibrations travel with the params
            source = next((base / relative for base in (params.parent, ROOT) if (base / relative).is_file()), None)
            if source is None:
                raise SystemExit(f"{params}: imager elevation map {relative} not found next to it or in {ROOT}")
            (extra / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, extra / relative)
        (extra / "model_info.json").write_text(json.dumps(info, indent=2) + "\n")
        if checkpoint.name != "model.pt":  # the handler reads the manifest's serializedFile
            shutil.copyfile(checkpoint, Path(tmp) / "model.pt")
            checkpoint = Path(tmp) / "model.pt"
        export = Path(tmp) / "export"
        export.mkdir()
        subprocess.run(
            [
                archiver(),
                "--model-name", name,
                "--version", str(info["version"]),
                "--serialized-file", str(checkpoint),
                "--handler", str(handler),
                "--extra-files", str(extra),
                "--export-path", str(export),
            ],
            check=True,
        )
        target = output / f"{name}.mar"
        staged = output / f".{name}.mar.tmp"
        shutil.copyfile(export / f"{name}.mar", staged)
        os.replace(staged, target)
    return target


def from_registry(model_name: str, alias: str, folder: Path) -> tuple[Path, Path, dict]:
    """Download ``model_name@alias``: (checkpoint, params.yaml, model_info)."""
    from arcscan import mlops

    with mlops.failures_reported("build_mar"):
        mlops.configure()
        checkpoint, version = mlops.download_checkpoint(model_name, alias, folder)
    params, params_origin = checkpoint.parent / "params.yaml", "registry"
    if not params.is_file():
        warnings.warn(
            f"{model_name} version {version.version} has no params.yaml next to model.pt: "
            f"packing the repository's {REPO_PARAMS} instead",
            stacklevel=2,
        )
        params, params_origin = REPO_PARAMS, "repository (fallback)"
    info = {
        "name": model_name,
        "version": str(version.version),
        "alias": alias,
        "run_id": version.run_id,
        "origin": "registry",
        "params_origin": params_origin,
    }
    return checkpoint, params, info


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--alias", help="registry alias to package, e.g. champion")
    source.add_argument("--checkpoint", type=Path, help="local checkpoint (tests only; needs --params and --version)")
    parser.add_argument("--params", type=Path, help="params.yaml to pack with --checkpoint")
    parser.add_argument("--version", help="version label for --checkpoint builds")
    parser.add_argument("--model-name", help="registered model name (default: register.model_name of params.yaml)")
    parser.add_argument("--output", type=Path, default=ROOT / "serving" / "model-store", help="model store folder")
    args = parser.parse_args(argv)
    model_name = args.model_name or load_settings(args.params or REPO_PARAMS).register.model_name

    if args.alias:
        if args.params or args.version:
            parser.error("--params and --version go with --checkpoint; --alias takes both from the registry")
        with tempfile.TemporaryDirectory(prefix="arcscan-download-") as tmp:
            checkpoint, params, info = from_registry(model_name, args.alias, Path(tmp))
            target = build(checkpoint, params, info, args.output)
    else:
        if not (args.params and args.version):
            parser.error("--checkpoint needs --params and --version")
        info = {"name": model_name, "version": args.version, "alias": None, "run_id": None,
                "origin": f"local checkpoint {args.checkpoint.name}", "params_origin": str(args.params)}
        target = build(args.checkpoint, args.params, info, args.output)
    print(f"{target}: {info['name']} version {info['version']}")
    return target


if __name__ == "__main__":
    main()
