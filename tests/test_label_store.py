"""The labels CSV store of the labelling page: what the pipeline reads, saved atomically,
edits serialised (threads and processes), corrupt or foreign files refused and left alone."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from arcscan.core.patches import NEGATIVE, POSITIVE, read_label_csv
from arcscan.label.store import FIELDS, LabelFileError, LabelStore

REAL_LABELS = Path("data/real/labels.csv")

# A child process that puts labels one after another, saying so after each one.
WRITER = """
import sys
from arcscan.label.store import LabelStore
store = LabelStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.put(sys.argv[2], 0, i, 7, i % 2, "writer")
    print(i, flush=True)
"""


def test_labels_are_saved_at_once_in_the_pipeline_format(tmp_path):
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    assert not path.exists()  # nothing written before the first change
    store.put("night/a.pgm.gz", 3, 10, 20, POSITIVE, "ana")
    store.put("b.png", 0, 5, 6, NEGATIVE, "ben")
    assert path.read_text().splitlines()[0] == ",".join(FIELDS)
    assert read_label_csv(path) == [
        {"file": "night/a.pgm.gz", "frame": 3, "x": 10, "y": 20, "label": POSITIVE},
        {"file": "b.png", "frame": 0, "x": 5, "y": 6, "label": NEGATIVE},
    ]
    first = LabelStore(path).labels()[0]  # a new store (a restarted server) reads the same
    assert (first.who, first.label) == ("ana", POSITIVE) and first.when.endswith("+00:00")


def test_a_centre_holds_one_label_relabelled_in_place_and_deletes_are_idempotent(tmp_path):
    store = LabelStore(tmp_path / "labels.csv")
    for x in (1, 2, 3):
        store.put("f.png", 0, x, 1, POSITIVE)
    store.put("f.png", 0, 2, 1, POSITIVE)  # the same again (a retried request): no second row
    store.put("f.png", 0, 2, 1, NEGATIVE)  # relabelled where it was
    assert [(label.x, label.label) for label in store.labels()] == [(1, 1), (2, 0), (3, 1)]
    assert store.delete("f.png", 0, 2, 1) is True
    assert store.delete("f.png", 0, 2, 1) is False  # a second tab deleting the same label
    assert [label.x for label in store.labels()] == [1, 3]


def test_the_real_hand_labels_are_kept_row_for_row(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(REAL_LABELS.read_bytes())
    before = read_label_csv(path)
    store = LabelStore(path)
    store.put("00053.png", 0, 1, 2, NEGATIVE, "test")
    assert read_label_csv(path) == before + [{"file": "00053.png", "frame": 0, "x": 1, "y": 2, "label": NEGATIVE}]


def test_threads_editing_at_once_lose_nothing(tmp_path):
    store = LabelStore(tmp_path / "labels.csv")

    def label_row(y: int) -> None:
        for x in range(25):
            store.put("f.png", 0, x, y, (x + y) % 2)

    threads = [threading.Thread(target=label_row, args=(y,)) for y in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = LabelStore(tmp_path / "labels.csv").labels()
    assert sorted(label.key for label in labels) == sorted(("f.png", 0, x, y) for x in range(25) for y in range(8))


def test_two_processes_on_one_file_lose_nothing(tmp_path):
    path = tmp_path / "labels.csv"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "40"], stdout=subprocess.DEVNULL) for name in ("a.png", "b.png")]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    labels = LabelStore(path).labels()
    assert sorted(label.key for label in labels) == sorted((name, 0, i, 7) for name in ("a.png", "b.png") for i in range(40))


def test_a_writer_killed_mid_stream_leaves_a_whole_file(tmp_path):
    """SIGKILL at some moment of a stream of changes: the file parses and holds an unbroken run
    of the changes, every acknowledged one included (the writer may have gone further before
    the signal landed); no temporary file survives the next start."""
    path = tmp_path / "labels.csv"
    for stop_after in (3, 11, 24):
        path.unlink(missing_ok=True)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "k.png", "1000"], stdout=subprocess.PIPE, text=True)
        acknowledged = [int(writer.stdout.readline()) for _ in range(stop_after)]
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        xs = [label.x for label in LabelStore(path).labels()]
        assert xs == list(range(len(xs))) and len(xs) >= len(acknowledged) == stop_after
        assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]


CORRUPT = {
    "binary": bytes(range(256)) * 4,
    "nul bytes": b"file,frame,x,y,label\nf.png,0,1,2,arc\0\n",
    "not utf-8": "file,frame,x,y,label\nnächt.png,0,1,2,arc\n".encode("latin-1"),
    "foreign columns": b"name,age,city\nana,31,Oslo\n",
    "an unknown column": b"file,frame,x,y,label,comment\nf.png,0,1,2,arc,fine\n",
    "a missing column": b"file,frame,x,label\nf.png,0,1,arc\n",
    "a repeated column": b"file,frame,x,y,label,label\nf.png,0,1,2,arc,arc\n",
    "a bad label": b"file,frame,x,y,label\nf.png,0,1,2,maybe\n",
    "a bad number": b"file,frame,x,y,label\nf.png,zero,1,2,arc\n",
    "too few fields": b"file,frame,x,y,label\nf.png,0,1\n",
    "too many fields": b"file,frame,x,y,label\nf.png,0,1,2,arc,extra,more,fields\n",
    "a duplicate centre": b"file,frame,x,y,label\nf.png,0,1,2,arc\nf.png,0,1,2,other\n",
    "a broken quote": b'file,frame,x,y,label\n"f.png,0,1,2,arc\n',
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_or_foreign_file_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    with pytest.raises(LabelFileError, match="labels.csv"):
        LabelStore(path)
    assert path.read_bytes() == content


def test_a_file_spoilt_on_disk_while_serving_is_not_overwritten(tmp_path):
    path = tmp_path / "labels.csv"
    store = LabelStore(path)
    store.put("f.png", 0, 1, 2, POSITIVE)
    spoilt = path.read_bytes() + b"f.png,0,1,2,arc,,,,\n"
    path.write_bytes(spoilt)
    with pytest.raises(LabelFileError, match="more fields than columns"):
        store.put("f.png", 0, 3, 4, NEGATIVE)
    with pytest.raises(LabelFileError):
        store.delete("f.png", 0, 1, 2)
    assert path.read_bytes() == spoilt


def test_an_empty_file_is_an_empty_label_set_and_the_mode_is_kept(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("")
    os.chmod(path, 0o640)
    store = LabelStore(path)
    assert store.labels() == []
    store.put("f.png", 0, 1, 2, POSITIVE)
    assert len(store.labels()) == 1 and path.stat().st_mode & 0o777 == 0o640


def test_a_folder_is_not_a_labels_file(tmp_path):
    with pytest.raises(LabelFileError, match="is a folder"):
        LabelStore(tmp_path)
    with pytest.raises(LabelFileError, match="no such folder"):
        LabelStore(tmp_path / "missing" / "labels.csv")
