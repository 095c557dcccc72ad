"""The archive job on Ray Data: files -> read (tasks) -> segment and write (an actor pool).

Ray's batch-inference shape: :class:`SegmentFiles` is a callable class that loads the model
once per actor in ``__init__`` (the fast batch path, :class:`arcscan.core.fastscan.FastSegmenter`,
around the same :class:`~arcscan.core.segment.Segmenter` the TorchServe handler uses) and maps
a batch of files to a batch of summaries. One row is one archive file, so each file's frames
are segmented together and committed together (:class:`arcscan.archive.manifest.Catalog`) by
the actor that segmented them, as soon as it has (a separate write stage of tasks waited for
CPUs until the actors were done here, so nothing was committed before the end).

Without an address Ray starts inside the process (a local cluster, nothing to install); with
``address`` (or ``RAY_ADDRESS``) the same job runs on a Ray cluster, whose workers must see the
archive and the catalog folder at the same paths (the RayJob in ``k8s/`` mounts one volume).
Actors request a GPU each when the cluster has GPUs (then torch scores the patches there).
A killed actor is restarted and its files redone by Ray Data; a killed job is rerun: commits
are atomic and idempotent, so either way every frame ends up in the catalog exactly once.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from arcscan.archive.catalog import catalog_rows
from arcscan.archive.manifest import Catalog, FileResult
from arcscan.archive.walk import ArchiveFile, Selection, walk
from arcscan.config import settings_from

IO_TASK_CPUS = 0.1  # read tasks: mostly I/O; actors leave this much room for them


@dataclass(frozen=True)
class Model:
    """The model every actor loads: checkpoint bytes and the version name the catalog records."""

    checkpoint: bytes
    version: str

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Model":
        """A checkpoint file, versioned by its name and content digest."""
        data = Path(path).read_bytes()
        return cls(data, f"checkpoint:{Path(path).name}@sha256:{hashlib.sha256(data).hexdigest()[:12]}")


@dataclass
class Summary:
    """What a run did: files by outcome, frames, arcs, errors, seconds."""

    files: int = 0
    skipped: int = 0
    stale: int = 0  # committed by another model version and left as they are (no --redo)
    done: int = 0
    errors: int = 0
    frames: int = 0
    arcs: int = 0
    seconds: float = 0.0
    recovered: int = 0  # parts of uncommitted files a killed run left, removed
    error_messages: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.files} files ({self.done} done, {self.skipped} skipped, {self.stale} by another model version, {self.errors} errors), "
                f"{self.frames} frames, {self.arcs} arcs in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")


def read_file(row: dict, selection: Selection) -> dict:
    """Read task: the file's selected frames, pickled (or the reason it cannot be read)."""
    from arcscan.io.frames import read_frames

    try:
        frames = [frame for frame in read_frames(row["path"]) if selection.keeps(frame)]
        return {**row, "frames": pickle.dumps(frames), "error": ""}
    except Exception as err:  # noqa: BLE001  (a corrupt file becomes an errors row; the job goes on)
        return {**row, "frames": b"", "error": f"{type(err).__name__}: {err}"}


class SegmentFiles:
    """Actor: the model loaded once; each call segments a batch of files' frames."""

    def __init__(self, model: Model, params: dict, base_dir: str, output: str, masks: bool, threads: int) -> None:
        import ray
        import torch

        from arcscan.core.fastscan import FastSegmenter
        from arcscan.core.model import load_checkpoint, pick_device

        gpu = bool(ray.get_runtime_context().get_assigned_resources().get("GPU"))
        torch.set_num_threads(threads)
        settings = settings_from(params, base_dir)
        with tempfile.TemporaryDirectory(prefix="arcscan-actor-") as folder:
            path = Path(folder) / "model.pt"
            path.write_bytes(model.checkpoint)
            checkpoint = load_checkpoint(path, pick_device("cuda" if gpu else "cpu"))
        self.segmenter = FastSegmenter(settings.segmenter(checkpoint), settings.archive, threads=threads)
        self.version, self.masks, self.catalog = model.version, masks, Catalog(output)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        summaries: dict[str, list] = {"relative": [], "frames": [], "arcs": [], "error": []}
        for path, relative, size, mtime_ns, frames, error in zip(batch["path"], batch["relative"], batch["size"], batch["mtime_ns"], batch["frames"], batch["error"]):
            result = self._segment(str(relative), frames, str(error))
            self.catalog.commit(ArchiveFile(Path(str(path)), str(relative)), int(size), int(mtime_ns), self.version, result)
            for key, value in (("relative", str(relative)), ("frames", len(result.frames)), ("arcs", len(result.arcs)), ("error", result.error or "")):
                summaries[key].append(value)
        return {key: np.array(values) for key, values in summaries.items()}

    def _segment(self, relative: str, frames: bytes, error: str) -> FileResult:
        if error:
            return FileResult([], [], {}, error)
        try:
            frames = pickle.loads(frames)
            frame_rows, arc_rows, masks = [], [], {}
            for frame, result in zip(frames, self.segmenter.segment_batch(frames)):
                frame_row, arcs = catalog_rows(relative, frame, result, self.version)
                frame_rows.append(frame_row)
                arc_rows.extend(arcs)
                if self.masks:
                    masks[frame.index] = result.mask
            return FileResult(frame_rows, arc_rows, masks)
        except Exception as err:  # noqa: BLE001  (a frame the method refuses: an errors row, the job goes on)
            return FileResult([], [], {}, f"{type(err).__name__}: {err}")


def plan(archive: str | Path, catalog: Catalog, version: str, selection: Selection, redo: bool) -> tuple[list[ArchiveFile], Summary]:
    """The files this run processes (new ones; stale ones too with ``redo``) and the counts of the others."""
    summary = Summary()
    todo = []
    for file in walk(archive, selection):
        summary.files += 1
        status = catalog.status(file, version)
        if status == "new" or (status == "stale" and redo):
            todo.append(file)
        elif status == "stale":
            summary.stale += 1
        else:
            summary.skipped += 1
    return todo, summary


def cluster_workers(workers: int | None, threads: int) -> tuple[int, float, float]:
    """Actors, CPUs and GPUs per actor on the running Ray cluster: ``workers`` actors (default:
    as many as its CPUs hold at ``threads`` each), each asking ``threads`` CPUs less a tenth
    (room for the read tasks) and, where the cluster has GPUs, one GPU."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    count = workers or max(1, gpus or int(resources.get("CPU", 1) // threads))
    return count, 0.9 * threads, 1.0 if gpus else 0.0


def run(archive: str | Path, output: str | Path, model: Model, params_path: str | Path, selection: Selection = Selection(),
        workers: int | None = None, threads: int = 1, masks: bool = False, redo: bool = False, address: str | None = None,
        show_progress: bool = True) -> Summary:
    """Reprocess an archive into a catalog (see module doc); Ray is started (embedded, or
    connected to ``address``) unless the caller already did."""
    import ray

    from arcscan.config import load_params
    from arcscan.core.progress import progress

    params_path = Path(params_path).absolute()
    params = load_params(params_path)
    settings_from(params, params_path.parent)  # bad params fail here, not in every actor
    catalog = Catalog(output)
    start = time.perf_counter()
    recovered = catalog.recover()
    todo, summary = plan(archive, catalog, model.version, selection, redo)
    summary.recovered = recovered
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, logging_level="WARNING")
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        count, cpus, gpus = cluster_workers(workers, threads)
        rows = [{"path": str(f.path), "relative": f.relative, "size": f.path.stat().st_size, "mtime_ns": f.path.stat().st_mtime_ns} for f in todo]
        dataset = (
            ray.data.from_items(rows, override_num_blocks=len(rows))
            .map(partial(read_file, selection=selection), num_cpus=IO_TASK_CPUS)
            .map_batches(
                SegmentFiles, batch_size=1, compute=ray.data.ActorPoolStrategy(size=count), num_cpus=cpus, num_gpus=gpus,
                fn_constructor_kwargs={"model": model, "params": params, "base_dir": str(params_path.parent), "output": str(Path(output).absolute()),
                                       "masks": masks, "threads": threads},
            )
        )
        bar = progress(total=len(rows), desc="reprocess", unit="file", enabled=show_progress)
        for row in dataset.iter_rows():
            summary.frames += row["frames"]
            summary.arcs += row["arcs"]
            if row["error"]:
                summary.errors += 1
                summary.error_messages.append(f"{row['relative']}: {row['error']}")
            else:
                summary.done += 1
            bar.set_postfix_str(f"{summary.frames / (time.perf_counter() - start):.1f} frames/s", refresh=False)
            bar.update(1)
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
