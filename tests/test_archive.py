"""The archive job through a real local Ray: a small synthetic archive in the THEMIS layout
(and a corrupt file) reprocessed end to end, a rerun that skips everything, a redo on a new
model version, a Ray worker SIGKILLed mid-job, the whole job SIGKILLed and restarted: every
frame in the catalog exactly once each time. The walk's filters and the catalog's recovery
without Ray."""

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
import torch

from arcscan.archive.manifest import Catalog, FileResult, file_key
from arcscan.archive.pipeline import Model, run
from arcscan.archive.walk import ArchiveFile, Selection, describe, parse_time, walk
from arcscan.config import load_params, settings_from
from arcscan.core.model import ModelConfig, build_model, save_checkpoint
from arcscan.core.synth import write_minute
from arcscan.errors import InputError
from arcscan.io.frames import read_frames

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
FRAMES_PER_FILE = 2
START = datetime(2014, 3, 10, 6, tzinfo=timezone.utc)


def _minutes(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` synthetic stream0 minutes in the THEMIS layout under ``folder``."""
    files = []
    for minute in range(count):
        start = START + timedelta(minutes=minute)
        place = folder / f"{start:%Y/%m/%d}/synt_themis99/ut{start:%H}"
        frames, masks = write_minute(place, seed + minute, start, FRAMES_PER_FILE)
        masks.unlink()
        files.append(frames)
    return files


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Model:
    torch.manual_seed(0)
    settings = settings_from(load_params(PARAMS))
    path = save_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", build_model(ModelConfig()), ModelConfig(), settings.preprocess)
    return Model.from_checkpoint(path)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's in-process jobs."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _exactly_once(catalog: Catalog, files: list[Path], archive: Path) -> None:
    """Every frame of every readable file is in the frames table once, arcs agree with it."""
    frames = catalog.table("frames").to_pylist()
    keys = [(row["file"], row["frame"]) for row in frames]
    expected = [(path.relative_to(archive).as_posix(), frame.index) for path in files for frame in read_frames(path)]
    assert sorted(keys) == sorted(expected)
    arcs = catalog.table("arcs").to_pylist()
    assert len(arcs) == sum(row["arcs"] for row in frames)
    assert len({(row["file"], row["frame"], row["arc"]) for row in arcs}) == len(arcs)


def test_the_walk_reads_the_layout_and_names_and_filters_files(tmp_path):
    files = _minutes(tmp_path / "themis", 3)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a frame")
    (tmp_path / "plain" / "PKR_DASC_0558_20150213_El.FIT").write_bytes(b"calibration")
    (tmp_path / "plain" / "frame.npy").write_bytes(b"")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.pgm").write_bytes(b"")
    found = walk(tmp_path)
    assert [f.relative for f in found] == sorted([p.relative_to(tmp_path).as_posix() for p in files] + ["plain/frame.npy"])
    assert found[1].site == "synt" and found[1].imager == "themis99" and found[1].start == START
    assert describe("2014/03/10/gill_themis19/ut06/anything.pgm")[:3] == ("gill", "themis19", START)
    assert describe("thg_l1_asf_gako_2011010617_v01.cdf")[:3] == ("gako", "themis", datetime(2011, 1, 6, 17, tzinfo=timezone.utc))
    late = Selection(start=START + timedelta(minutes=1, seconds=30))
    assert [f.start for f in walk(tmp_path, late) if f.start] == [START + timedelta(minutes=m) for m in (1, 2)]
    assert len(walk(tmp_path, Selection(sites=("gill",)))) == 1  # the file it cannot place stays in
    assert len(walk(tmp_path, Selection(imagers=("themis99",), end=START + timedelta(minutes=1)))) == 2
    frame = read_frames(files[0])[0]
    assert Selection(sites=("synt",)).keeps(frame) and not Selection(sites=("gill",)).keeps(frame)
    with pytest.raises(InputError, match="not after"):
        Selection(start=START, end=START)
    with pytest.raises(InputError, match="ISO 8601"):
        parse_time("10/03/2014")
    with pytest.raises(InputError, match="not a folder"):
        walk(tmp_path / "missing")


def test_recovery_removes_what_a_killed_commit_left_and_keeps_committed_parts(tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    source = tmp_path / "a.pgm"
    source.write_bytes(b"x")
    file = ArchiveFile(source, "a.pgm")
    row = {"file": "a.pgm", "frame": 0, "timestamp": START, "site": "synt", "imager": "themis99", "model_version": "v1", "arc_fraction": 0.0, "arcs": 0, "sky": "disc"}
    entry = catalog.commit(file, 1, source.stat().st_mtime_ns, "v1", FileResult([row], [], {}))
    assert (catalog.status(file, "v1"), catalog.status(file, "v2")) == ("done", "stale")
    stray = catalog.root / "frames/site=synt/date=2014-03-10" / f"{file_key('b.pgm')}.parquet"
    stray.write_bytes(b"half a part")
    temporary = catalog.root / "manifest" / ".x.json.123.tmp"
    temporary.write_text("{")
    assert catalog.recover() == 2 and not stray.exists() and not temporary.exists()
    assert all((catalog.root / part).is_file() for part in entry["parts"])
    assert catalog.table("frames").num_rows == 1
    source.write_bytes(b"xy")
    assert catalog.status(file, "v1") == "new"  # the file changed since its commit


@pytest.mark.slow
def test_an_archive_is_reprocessed_once_a_rerun_skips_it_and_a_new_model_version_redoes_it(tmp_path, local_ray, model):
    archive = tmp_path / "archive"
    files = _minutes(archive, 3)
    corrupt = archive / "20140310_0700_synt_themis99_full.pgm.gz"
    corrupt.write_bytes(gzip.compress(files[0].read_bytes())[:2000])
    output = tmp_path / "catalog"
    summary = run(archive, output, model, PARAMS, masks=True, workers=2, show_progress=False)
    assert (summary.files, summary.done, summary.errors, summary.frames) == (4, 3, 1, 3 * FRAMES_PER_FILE)
    catalog = Catalog(output)
    _exactly_once(catalog, files, archive)
    errors = catalog.table("errors").to_pylist()
    assert [e["file"] for e in errors] == [corrupt.name] and "gzip" in errors[0]["error"]
    assert {row["model_version"] for row in catalog.table("frames").to_pylist()} == {model.version}
    assert sorted(p.relative_to(output / "frames").parts[:2] for p in (output / "frames").rglob("*.parquet"))[0] == ("site=synt", "date=2014-03-10")
    masks = catalog.masks(file_key(files[0].relative_to(archive).as_posix()))
    assert sorted(masks) == list(range(FRAMES_PER_FILE)) and masks[0].shape == (256, 256)

    again = run(archive, output, model, PARAMS, workers=2, show_progress=False)
    assert (again.skipped, again.done, again.errors, again.frames) == (4, 0, 0, 0)

    newer = Model(model.checkpoint, "test-model/2")
    stale = run(archive, output, newer, PARAMS, workers=2, show_progress=False)
    assert (stale.stale, stale.done) == (4, 0)
    redone = run(archive, output, newer, PARAMS, workers=2, redo=True, show_progress=False)
    assert (redone.done, redone.errors) == (3, 1)
    _exactly_once(catalog, files, archive)
    assert {row["model_version"] for row in catalog.table("frames").to_pylist()} == {"test-model/2"}
    assert len(catalog.table("errors")) == 1


def _segmenting_actors() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if any("SegmentFiles" in part for part in p.info["cmdline"] or ())]


def _wait_for_commits(output: Path, count: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while len(list((output / "manifest").glob("*.json"))) < count:
        assert time.monotonic() < deadline, f"no {count} commits in {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_ray_worker_killed_mid_job_is_replaced_and_every_frame_is_catalogued_once(tmp_path, local_ray, model):
    archive = tmp_path / "archive"
    files = _minutes(archive, 4, seed=10)
    output = tmp_path / "catalog"
    killed = []

    def kill_an_actor() -> None:
        _wait_for_commits(output, 1)
        actors = _segmenting_actors()
        if actors:
            actors[0].send_signal(signal.SIGKILL)
            killed.append(actors[0].pid)

    killer = threading.Thread(target=kill_an_actor)
    killer.start()
    summary = run(archive, output, model, PARAMS, workers=2, show_progress=False)
    killer.join()
    assert killed, "no segmenting actor was running after the first commit"
    assert (summary.done, summary.errors) == (4, 0)
    _exactly_once(Catalog(output), files, archive)


@pytest.mark.slow
def test_the_whole_job_killed_and_restarted_ends_with_every_frame_once(tmp_path, model):
    archive = tmp_path / "archive"
    files = _minutes(archive, 4, seed=20)
    output = tmp_path / "catalog"
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(model.checkpoint)
    command = [sys.executable, "-m", "arcscan", "--params", str(PARAMS), "reprocess", str(archive), "-o", str(output), "--checkpoint", str(checkpoint), "--workers", "1"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    job = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_commits(output, 1)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    first = len(list((output / "manifest").glob("*.json")))
    assert 1 <= first < 4
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(sorted((output / "runs").glob("*.json"))[-1].read_text())
    assert summary["skipped"] >= first and summary["done"] == 4 - summary["skipped"]
    _exactly_once(Catalog(output), files, archive)
    assert "arcscan_reprocess_frames" in (output / "metrics.prom").read_text()


def test_a_bad_time_range_is_a_clear_cli_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "arcscan", "reprocess", str(tmp_path), "-o", str(tmp_path / "c"), "--start", "yesterday"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "arcscan reprocess: time 'yesterday' is not ISO 8601" in result.stderr
