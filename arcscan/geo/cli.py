"""The ``arcscan keogram`` subcommand: segment a night of one imager (or several), then per
imager and night a keogram (PNG with the arc mask, netCDF data), the arc catalog (Parquet and
CSV) and a plot of the arcs' boundary latitudes against time. Only the parser is built at
import; the work is imported when the subcommand runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_keogram_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``keogram`` subcommand on ``subparsers`` (it runs :func:`cmd_keogram`)."""
    keogram = subparsers.add_parser(
        "keogram",
        help="keogram (PNG + netCDF), arc catalog (Parquet + CSV) and boundary-latitude plot of a night of frames",
        description=__doc__.splitlines()[0],
    )
    keogram.add_argument("files", nargs="+", help="frame files of one night (any format arcscan reads); several imagers are kept apart")
    keogram.add_argument("-o", "--output", default="keograms", help="output folder (default: keograms)")
    source = keogram.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default="models/model.pt", help="model checkpoint (default: models/model.pt)")
    source.add_argument("--alias", help="use the registered model version with this alias (e.g. champion)")
    keogram.set_defaults(run=cmd_keogram)
    return keogram


def model_name(args: argparse.Namespace) -> str:
    """The model version a catalog names: ``@alias`` or the checkpoint's file name."""
    return f"@{args.alias}" if args.alias else Path(args.checkpoint).name


def cmd_keogram(args: argparse.Namespace) -> None:
    from itertools import groupby

    from arcscan.cli import _segmenter
    from arcscan.core.progress import progress
    from arcscan.core.segment import frame_record
    from arcscan.errors import InputError
    from arcscan.geo.catalog import catalog_rows, write_csv, write_parquet
    from arcscan.geo.keogram import keogram, plot_boundaries, plot_keogram, write_netcdf
    from arcscan.io.frames import read_frames

    segmenter = _segmenter(args)
    frames = [frame for name in args.files for frame in read_frames(Path(name))]
    if any(frame.timestamp is None for frame in frames):
        raise InputError("a keogram needs frame times: some frames carry none")
    out = Path(args.output)
    imager_of = lambda frame: (frame.site, frame.imager, frame.timestamp.date().isoformat())  # noqa: E731
    for (site, imager, night), group in groupby(sorted(frames, key=lambda f: (*imager_of(f), f.timestamp)), key=imager_of):
        group = list(group)
        geometry = segmenter.find_sky.geometry(site, imager, group[0].image.shape)
        if geometry is None:
            raise InputError(f"site {site!r} imager {imager!r}: no imager profile with a pixel geometry (a skymap, or elevation + azimuth + location) in {args.params}")
        results, rows = [], []
        for frame in progress(group, desc=f"{site} {night}", unit="frame"):
            result = segmenter(frame)
            results.append(result)
            rows += catalog_rows(frame_record(frame, result), model_name(args), file=frame.source)
        config = segmenter.find_sky.config
        data = keogram(group, results, geometry, config.emission_altitude_km, config.min_elevation)
        stem = "_".join(part for part in (night.replace("-", ""), site, imager) if part)
        written = [
            plot_keogram(data, out / f"{stem}_keogram.png"),
            write_netcdf(data, out / f"{stem}_keogram.nc"),
            write_parquet(rows, out / f"{stem}_catalog.parquet"),
            write_csv(rows, out / f"{stem}_catalog.csv"),
            plot_boundaries(rows, out / f"{stem}_boundaries.png", f"{site} {imager} {night}: arc boundaries".replace("  ", " ")),
        ]
        print(f"{site} {night}: {len(group)} frames, {len(rows)} arcs; " + ", ".join(str(p) for p in written), file=sys.stdout)
