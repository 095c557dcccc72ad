"""The ``arcscan stream`` subcommand: send frames to the inference endpoint, one request each.

Frames come from a watched folder or a replay; answers go to a resumable ledger in the output
folder (see :mod:`arcscan.ops.stream`). Only the parser is built at import; the client itself is
imported when the subcommand runs, so that ``arcscan`` starts quickly.

Exit status 0 when every frame sent was acknowledged, 1 when some were recorded as failed,
2 (from ``arcscan.cli``) for a bad configuration or a refused token.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

TOKEN_ENV = "ARCSCAN_TOKEN"


def add_stream_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``stream`` subcommand on ``subparsers`` (it runs :func:`cmd_stream`)."""
    stream = subparsers.add_parser(
        "stream",
        help="send frames one by one to the inference endpoint; results.jsonl, failed.jsonl, masks and the arc catalog (catalog.csv) in --output",
        description=__doc__.splitlines()[0],
    )
    stream.add_argument("--url", required=True, help="prediction endpoint, e.g. http://127.0.0.1:8080/predictions/arcscan")
    auth = stream.add_mutually_exclusive_group()
    auth.add_argument("--token", metavar="KEY", help=f"bearer token (visible in the process list: prefer --token-file or ${TOKEN_ENV})")
    auth.add_argument("--token-file", metavar="PATH", help="the auth proxy's token file (its first token is sent) or TorchServe's key_file.json (its inference key); read again when refused")
    stream.add_argument("--renew-url", metavar="URL", help="TorchServe management URL (e.g. http://127.0.0.1:8081): renew an expired inference key with the API key of --token-file")
    source = stream.add_mutually_exclusive_group(required=True)
    source.add_argument("--watch", metavar="DIR", help="send the stream0 files that arrive in DIR, until stopped")
    source.add_argument("--replay", nargs="+", metavar="PATH", help="stream0 files and archive folders (searched recursively)")
    stream.add_argument(
        "--speed",
        type=_speed,
        metavar="realtime|fast|FACTOR",
        default="realtime",
        help="replay pace: realtime (3 s per frame, from the timestamps), fast (no waiting) or a factor such as 10 (default: realtime)",
    )
    stream.add_argument("-o", "--output", metavar="DIR", default="runs/stream", help="results folder (default: runs/stream)")
    stream.add_argument("--concurrency", type=_positive_int, metavar="N", default=4, help="frames in flight at once (default: 4)")
    stream.add_argument("--retries", type=_non_negative_int, metavar="N", default=5, help="retries per frame after connection errors, timeouts, 429, 5xx (default: 5)")
    stream.add_argument("--timeout", type=_positive_float, metavar="SECONDS", default=30.0, help="seconds per request (default: 30)")
    stream.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on --metrics-host:PORT")
    stream.add_argument("--metrics-host", metavar="ADDRESS", default="127.0.0.1", help="address of the metrics server (default: 127.0.0.1; 0.0.0.0 in a container, so that Prometheus can scrape it)")
    stream.add_argument("--drift-reference", metavar="PATH", help="training-set histograms (e.g. k8s/monitoring/drift_reference.json): export per-imager drift scores")
    stream.add_argument("--stop-after", type=_positive_float, metavar="SECONDS", help="stop after this long (watch mode)")
    stream.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after sending this many frames")
    stream.add_argument("--poll", type=_positive_float, metavar="SECONDS", default=1.0, help="watch: seconds between folder scans (default: 1)")
    stream.add_argument("--settle", type=_positive_float, metavar="SECONDS", default=2.0, help="watch: seconds a non-gzip file's size must stay unchanged (default: 2)")
    stream.set_defaults(run=cmd_stream)
    return stream


def cmd_stream(args: argparse.Namespace) -> None:
    from arcscan.ops.stream import StreamConfig, load_token, run_stream

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = args.token if args.token or args.token_file else os.environ.get(TOKEN_ENV)
    config = StreamConfig(
        url=args.url,
        token=load_token(token, args.token_file),
        token_file=Path(args.token_file) if args.token_file else None,
        renew_url=args.renew_url,
        output=Path(args.output),
        concurrency=args.concurrency,
        retries=args.retries,
        timeout=args.timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        max_frames=args.max_frames,
        poll=args.poll,
        settle=args.settle,
        drift_reference=Path(args.drift_reference) if args.drift_reference else None,
    )
    speed = args.speed if args.replay else None  # pacing is for replays; watched files go out as they come
    summary = run_stream(config, replay=args.replay or (), watch=args.watch, speed=speed, stop_after=args.stop_after)
    print(
        f"sent {summary.sent}, succeeded {summary.succeeded}, failed {summary.failed}, "
        f"skipped (already done) {summary.skipped_already_done}, abandoned {summary.abandoned} "
        f"in {summary.duration:.1f} s; ledger in {config.output}"
    )
    if summary.failed:
        raise SystemExit(1)


def _speed(text: str) -> float | None:
    """``realtime`` -> 1.0, ``fast`` -> None (no pacing), else a positive factor."""
    if text == "realtime":
        return 1.0
    if text == "fast":
        return None
    return _positive_float(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value
