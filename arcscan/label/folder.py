"""The folder of frames the page labels: which files it may serve, their frames, patch boxes.

Only regular files found by walking FRAMES_DIR are served (hidden names skipped, symbolic
links followed only where they stay inside the folder); a name from a client is looked up
among them, never opened as given, so absolute paths, ``..`` and links out of the folder get
an error, not a file. Files that no reader accepts are listed as skipped with the reader's
reason. Names are relative to FRAMES_DIR with ``/`` separators: the ``file`` column of the
labels CSV, as ``arcscan patches --frames FRAMES_DIR`` resolves it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from arcscan.core.geometry import SkyFinder
from arcscan.core.preprocess import PreprocessConfig
from arcscan.errors import InputError
from arcscan.io.frames import Frame, read_frames

MAX_NAME = 1024


class NotFound(InputError):
    """A file or frame that the folder does not have."""

    status = 404


@dataclass(frozen=True)
class FrameInfo:
    index: int
    timestamp: str | None
    width: int
    height: int


@dataclass(frozen=True)
class FileInfo:
    file: str
    frames: tuple[FrameInfo, ...]


class FrameFolder:
    """The frame files under ``root`` (see the module docstring), their decoded frames (the
    last few files kept in memory) and the size of a patch in each frame's pixels."""

    def __init__(self, root: str | Path, find_sky: SkyFinder, preprocess: PreprocessConfig, patch_size: int, cached_files: int = 4) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InputError(f"{root}: not a folder of frames")
        self.find_sky, self.preprocess, self.patch_size = find_sky, preprocess, patch_size
        self._cached_files = cached_files
        self._lock = threading.Lock()
        self._infos: dict[tuple[str, int, int], FileInfo | str] = {}  # (name, mtime_ns, size) -> info or reader error
        self._frames: OrderedDict[tuple[str, int, int], list[Frame]] = OrderedDict()
        self._boxes: dict[tuple[str, int, int, int], int] = {}

    def listing(self) -> tuple[list[FileInfo], list[dict]]:
        """The frame files (sorted by name) and the skipped ones with the reason."""
        files, skipped = [], []
        for name, stamp in self._walk():
            info = self._info(name, stamp)
            if isinstance(info, FileInfo):
                files.append(info)
            else:
                skipped.append({"file": name, "error": info})
        return files, skipped

    def frame(self, name: str, index: int) -> Frame:
        """Frame ``index`` of file ``name``; NotFound (404) or InputError (400) otherwise."""
        frames = self.frames(name)
        if not 0 <= index < len(frames):
            raise NotFound(f"{name} has {len(frames)} frames, no frame {index}")
        return frames[index]

    def frames(self, name: str) -> list[Frame]:
        path, key = self._lookup(name)
        with self._lock:
            if key in self._frames:
                self._frames.move_to_end(key)
                return self._frames[key]
        frames = read_frames(path)
        with self._lock:
            self._frames[key] = frames
            while len(self._frames) > self._cached_files:
                self._frames.popitem(last=False)
        return frames

    def version(self, name: str) -> tuple[str, int, int]:
        """(name, mtime_ns, size) of a file: what caches of its frames are keyed on."""
        return self._lookup(name)[1]

    def box(self, name: str, index: int) -> int:
        """The side of a patch in the frame's own pixels (the patch is cut at the model's scale)."""
        frame = self.frame(name, index)
        key = (*self.version(name), index)
        if key not in self._boxes:
            sky = self.find_sky(frame.image, frame.site, frame.imager, f"{name}: frame {index}")
            self._boxes[key] = max(1, int(round(self.patch_size / sky.scale(self.preprocess.sky_radius))))
        return self._boxes[key]

    def check_centre(self, name: str, index: int, x: int, y: int) -> None:
        """InputError unless (x, y) is a pixel of the frame (what ``arcscan patches`` accepts)."""
        height, width = self.frame(name, index).image.shape
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"centre ({x}, {y}) is outside {name} frame {index} ({width}x{height})")

    def _lookup(self, name: str) -> tuple[Path, tuple[str, int, int]]:
        """The path and cache key of a client-given name, only if the walk finds that file."""
        check_name(name)
        for found, stamp in self._walk():
            if found == name:
                path = self.root / name
                if not path.resolve().is_relative_to(self.root):  # a link swapped since the walk
                    break
                return path, (name, *stamp)
        raise NotFound(f"{name!r} is not a frame file in the folder")

    def _info(self, name: str, stamp: tuple[int, int]) -> FileInfo | str:
        key = (name, *stamp)
        if key not in self._infos:
            try:
                frames = read_frames(self.root / name)
            except InputError as err:
                self._infos[key] = str(err)
            else:
                self._infos[key] = FileInfo(name, tuple(
                    FrameInfo(f.index, f.timestamp.isoformat() if f.timestamp else None, f.image.shape[1], f.image.shape[0]) for f in frames
                ))
        return self._infos[key]

    def _walk(self) -> list[tuple[str, tuple[int, int]]]:
        """(name, (mtime_ns, size)) of every servable file, sorted; symbolic links to folders
        are not descended, links to files only kept when they resolve inside the root."""
        found = []
        for folder, subfolders, names in os.walk(self.root, followlinks=False):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for file in names:
                path = Path(folder) / file
                if file.startswith(".") or not path.resolve().is_relative_to(self.root) or not path.is_file():
                    continue
                stat = path.stat()
                found.append((path.relative_to(self.root).as_posix(), (stat.st_mtime_ns, stat.st_size)))
        return sorted(found)


def check_name(name: str) -> None:
    """InputError (400) for names that can never be a file of the folder: empty, too long,
    absolute, with ``..``, backslashes or control characters."""
    if not name or len(name) > MAX_NAME:
        raise InputError(f"file name of {len(name)} characters (1..{MAX_NAME})")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name) or "\\" in name:
        raise InputError("file name with control characters or backslashes")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name != path.as_posix():
        raise InputError("file name must be relative to the frames folder, without '..' (absolute paths and traversal are refused)")
