"""The ``arcscan`` command line: label, synthesise, segment, promote, serve the tracking store.

Input errors (bad frames, bad CSV rows, registry refusals) print one clear line on stderr and
exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from arcscan.archive.cli import add_reprocess_parser
from arcscan.ops.authproxy import add_auth_proxy_parser
from arcscan.errors import ArcscanError
from arcscan.geo.cli import add_keogram_parser, model_name
from arcscan.ops.stream.cli import add_stream_parser


def _segmenter(args: argparse.Namespace):
    """The model from a checkpoint file, or from the registry alias (``--alias``)."""
    from arcscan.config import load_settings
    from arcscan.core.model import load_checkpoint

    settings = load_settings(args.params)
    if args.alias:
        from arcscan import mlops

        name = settings.register.model_name
        folder = Path(tempfile.mkdtemp(prefix="arcscan-model-"))
        with mlops.errors_explained():
            mlops.configure()
            checkpoint, version = mlops.download_checkpoint(name, args.alias, folder)
        print(f"model: {name} version {version.version} (@{args.alias})", file=sys.stderr)
    else:
        checkpoint = Path(args.checkpoint)
    return settings.segmenter(load_checkpoint(checkpoint))


def cmd_segment(args: argparse.Namespace) -> None:
    from arcscan.core.progress import progress
    from arcscan.core.render import overlay, save_png
    from arcscan.core.segment import frame_record
    from arcscan.io.frames import read_frames

    segmenter = _segmenter(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    catalog = []  # one row per arc per frame (--catalog)
    bar = progress(args.files, desc="segment", unit="file", enabled=len(args.files) > 1)
    for name in bar:
        path = Path(name)
        for frame in read_frames(path):
            result = segmenter(frame)
            stem = f"{path.name.split('.')[0]}_{frame.index:02d}"
            save_png(overlay(result.image01, result.mask), out / f"{stem}_overlay.png")
            save_png(result.mask, out / f"{stem}_mask.png")
            record = {"file": path.name, **frame_record(frame, result)}
            (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
            if args.catalog:
                from arcscan.geo.catalog import catalog_rows

                catalog += catalog_rows(record, model_name(args))
            bar.write(f"{stem}: arc fraction {result.arc_fraction:.3f}, {len(result.objects)} arcs, scan {result.scan_ms:.0f} ms, CRF {result.crf_ms:.0f} ms", file=sys.stdout)
    if args.catalog:
        from arcscan.geo.catalog import write_csv, write_parquet

        print(f"catalog: {write_parquet(catalog, Path(args.catalog) / 'catalog.parquet')}, {write_csv(catalog, Path(args.catalog) / 'catalog.csv')} ({len(catalog)} arcs)")


def cmd_patches(args: argparse.Namespace) -> None:
    from arcscan.config import load_settings
    from arcscan.core.patches import labelled_set

    settings = load_settings(args.params)
    patches = labelled_set(args.csv, args.frames, settings.preprocess, settings.patches.size, settings.sky_finder())
    patches.save(args.output)
    print(f"{args.output}: {int((patches.labels == 1).sum())} arc and {int((patches.labels == 0).sum())} other patches")


def cmd_label(args: argparse.Namespace) -> None:
    import secrets

    from arcscan.label.store import LabelStore

    store = LabelStore(args.labels)  # a corrupt or foreign CSV is refused before anything heavy loads
    from arcscan.config import load_settings
    from arcscan.label.app import bind, create_app, serve
    from arcscan.label.folder import FrameFolder
    from arcscan.label.suggest import ModelHelp

    settings = load_settings(args.params)
    folder = FrameFolder(args.frames_dir, settings.sky_finder(), settings.preprocess, settings.patches.size)
    model = None
    if args.alias or args.checkpoint:
        model = ModelHelp(_segmenter(args), f"@{args.alias}" if args.alias else Path(args.checkpoint).name)
    token = secrets.token_urlsafe(24) if args.token == "generate" else args.token
    hosts = ["*"] if args.host in ("0.0.0.0", "::") else ["127.0.0.1", "localhost", args.host]
    target = {"arc": settings.patches.n_positive, "other": settings.patches.n_negative}
    app = create_app(folder, store, target, model, token, hosts)
    serve(app, bind(args.host, args.port), token)


def cmd_synth(args: argparse.Namespace) -> None:
    from arcscan.core.synth import write_minute

    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc)
    for minute in range(args.minutes):
        frames_path, masks_path = write_minute(Path(args.output), args.seed + minute, start + timedelta(minutes=minute), args.frames)
        print(f"{frames_path} {masks_path}")


def cmd_promote(args: argparse.Namespace) -> None:
    from arcscan import mlops
    from arcscan.config import load_settings

    register = load_settings(args.params).register
    with mlops.errors_explained():
        mlops.configure()
        result = mlops.promote(register.model_name, register.metric, force=args.force, guards=register.guards)
    print(result.reason)


def cmd_rollback(args: argparse.Namespace) -> None:
    from arcscan import mlops
    from arcscan.config import load_settings

    with mlops.errors_explained():
        mlops.configure()
        result = mlops.rollback(load_settings(args.params).register.model_name)
    print(result.reason)


def cmd_mlflow_server(args: argparse.Namespace) -> None:
    from arcscan import mlops

    backend = args.backend_store_uri or mlops.default_backend_store_uri()
    command = mlops.tracking_server_command(backend, Path(args.artifacts), args.host, args.port, auth=args.auth)
    auth_config = None
    if args.auth:
        folder = Path(args.artifacts).absolute().parent
        database = args.auth_database_uri or f"sqlite:///{folder / 'basic_auth.db'}"
        auth_config = mlops.write_auth_config(folder / "basic_auth.ini", database)
    print(f"MLflow tracking server on http://{args.host}:{args.port} (backend {backend.split('@')[-1]}"
          f"{', basic auth' if args.auth else ''})", file=sys.stderr)
    raise SystemExit(subprocess.call(command, env=mlops.tracking_server_env(auth_config=auth_config)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arcscan", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="segment frames: overlay PNG, mask PNG and JSON per frame")
    segment.add_argument("files", nargs="+", help="stream0 .pgm/.pgm.gz, 16-bit PNG or .npy files")
    segment.add_argument("-o", "--output", default="segmented", help="output folder")
    source = segment.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="models/model.pt", help="model checkpoint (default: models/model.pt)")
    source.add_argument("--alias", help="use the registered model version with this alias (e.g. champion)")
    segment.add_argument("--catalog", metavar="DIR", help="also write the arc catalog (catalog.parquet, catalog.csv: one row per arc per frame) to DIR")
    segment.set_defaults(run=cmd_segment)

    patches = commands.add_parser("patches", help="turn a label CSV (file,frame,x,y,label) into a labelled patch set")
    patches.add_argument("csv")
    patches.add_argument("--frames", required=True, help="folder holding the files named in the CSV")
    patches.add_argument("-o", "--output", required=True, help="output .npz")
    patches.set_defaults(run=cmd_patches)

    label = commands.add_parser("label", help="the labelling page: place arc/other patches on frames in the browser, saved to a labels CSV")
    label.add_argument("frames_dir", help="folder of frames (any format arcscan reads); CSV file names are relative to it")
    label.add_argument("--labels", required=True, help="labels CSV (file,frame,x,y,label,who,when), created if missing")
    label.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    label.add_argument("--port", type=int, default=0, help="port (default: a free one; the address is printed)")
    label.add_argument("--token", nargs="?", const="generate", help="require this token (none given: a random one, printed in the address)")
    helper = label.add_mutually_exclusive_group()
    helper.add_argument("--checkpoint", help="model checkpoint whose probabilities and suggestions help")
    helper.add_argument("--alias", help="the registered model version with this alias (e.g. champion)")
    label.set_defaults(run=cmd_label)

    synth = commands.add_parser("synth", help="write synthetic stream0 minutes with ground-truth masks")
    synth.add_argument("output")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--minutes", type=int, default=1)
    synth.add_argument("--frames", type=int, default=20, help="frames per minute")
    synth.add_argument("--start", default="2026-01-01T06:00:00", help="UTC start time")
    synth.set_defaults(run=cmd_synth)

    promote = commands.add_parser("promote", help="move alias champion to the challenger if it is better")
    promote.add_argument("--force", action="store_true", help="promote even if it is not better")
    promote.set_defaults(run=cmd_promote)

    rollback = commands.add_parser("rollback", help="move alias champion back to the previous champion")
    rollback.set_defaults(run=cmd_rollback)

    server = commands.add_parser("mlflow-server", help="run a real MLflow tracking server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--backend-store-uri", help="default: the embedded SQLite store mlflow/store/mlflow.db")
    server.add_argument("--artifacts", default="mlflow/store/artifacts", help="artifact folder")
    server.add_argument("--auth", action="store_true", help="MLflow's basic-auth app: needs MLFLOW_FLASK_SERVER_SECRET_KEY, and MLFLOW_AUTH_ADMIN_PASSWORD at the first start")
    server.add_argument("--auth-database-uri", help="users and permissions (default: SQLite basic_auth.db beside the artifact folder)")
    server.set_defaults(run=cmd_mlflow_server)

    add_stream_parser(commands)
    add_keogram_parser(commands)
    add_reprocess_parser(commands)
    add_auth_proxy_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ArcscanError as err:
        print(f"arcscan {args.command}: {err}", file=sys.stderr)
        raise SystemExit(2) from err
