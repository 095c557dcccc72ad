"""``arcscan reprocess ARCHIVE_DIR --output CATALOG_DIR``: the archive job from the command line.

Prints a progress bar (files, frames/s, ETA), then the summary line; writes
``CATALOG_DIR/runs/<time>.json`` (the summary) and ``CATALOG_DIR/metrics.prom`` (Prometheus
text format, for a node exporter's textfile collector or a push gateway).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path


def _model(args: argparse.Namespace):
    """The model every actor loads, resolved once here: a registry alias is pinned to the
    version it names now, so a champion moved mid-job does not mix versions in the catalog."""
    from arcscan.archive.pipeline import Model

    if not args.alias:
        return Model.from_checkpoint(args.checkpoint)
    from arcscan import mlops
    from arcscan.config import load_settings

    name = load_settings(args.params).register.model_name
    with mlops.errors_explained(), tempfile.TemporaryDirectory(prefix="arcscan-model-") as folder:
        mlops.configure()
        path, version = mlops.download_checkpoint(name, args.alias, Path(folder))
        return Model(path.read_bytes(), f"{name}/{version.version}")


def write_metrics(summary, path: Path) -> None:
    """The run's counters in Prometheus text format."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    files = Gauge("arcscan_reprocess_files", "archive files of the last run by outcome", ["outcome"], registry=registry)
    for outcome in ("done", "skipped", "stale", "errors"):
        files.labels(outcome).set(getattr(summary, outcome))
    for name, value, text in (("frames", summary.frames, "frames segmented"), ("arcs", summary.arcs, "arcs catalogued"),
                              ("seconds", summary.seconds, "wall seconds"), ("frames_per_second", summary.frames_per_second, "frames per second")):
        Gauge(f"arcscan_reprocess_{name}", f"{text} in the last run", registry=registry).set(value)
    write_to_textfile(str(path), registry)


def cmd_reprocess(args: argparse.Namespace) -> None:
    from arcscan.archive.pipeline import run
    from arcscan.archive.walk import Selection, parse_time

    selection = Selection(
        tuple(s.lower() for s in args.site), tuple(i.lower() for i in args.imager),
        parse_time(args.start) if args.start else None, parse_time(args.end) if args.end else None,
    )
    summary = run(args.archive, args.output, _model(args), args.params, selection, workers=args.workers, threads=args.threads,
                  masks=args.masks, redo=args.redo, address=args.address)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (output / "runs").mkdir(exist_ok=True)
    (output / "runs" / f"{stamp}.json").write_text(json.dumps(asdict(summary) | {"frames_per_second": summary.frames_per_second}, indent=1) + "\n")
    write_metrics(summary, output / "metrics.prom")
    for message in summary.error_messages:
        print(f"error: {message}", file=sys.stderr)
    if summary.stale:
        print(f"{summary.stale} files were made by another model version: --redo redoes them", file=sys.stderr)
    print(summary.line())


def add_reprocess_parser(commands: argparse._SubParsersAction) -> None:
    """The ``reprocess`` subcommand."""
    parser = commands.add_parser("reprocess", help="reprocess an archive of frame files into an arc catalog on Ray (resumable)")
    parser.add_argument("archive", help="archive folder (THEMIS layout YYYY/MM/DD/<site>_<imager>/ut<HH>/, or plain)")
    parser.add_argument("-o", "--output", required=True, help="catalog folder (Parquet by site and date, manifest, errors)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="models/model.pt", help="model checkpoint (default: models/model.pt)")
    source.add_argument("--alias", help="the registered model version with this alias (e.g. champion)")
    parser.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    parser.add_argument("--imager", action="append", default=[], help="only this imager (repeatable)")
    parser.add_argument("--start", help="UTC start, ISO 8601 (inclusive)")
    parser.add_argument("--end", help="UTC end, ISO 8601 (exclusive)")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray inside this command)")
    parser.add_argument("--workers", type=int, help="segmenting actors (default: the cluster's CPUs / --threads, or one per GPU)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per actor (default 1)")
    parser.add_argument("--masks", action="store_true", help="also store the masks (bit-packed, compressed)")
    parser.add_argument("--redo", action="store_true", help="redo files committed by another model version")
    parser.set_defaults(run=cmd_reprocess)
