"""The labelling app served by a real uvicorn on 127.0.0.1: hostile input (traversal,
symbolic links out of the folder, absolute paths, wrong types, huge bodies, bad hosts, bad
CSVs) gets a 4xx with a message and leaves the labels CSV as it was; good input is saved."""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import requests

from arcscan.config import load_settings
from arcscan.core.patches import read_label_csv
from arcscan.io.frames import read_frames
from arcscan.label.app import create_app
from arcscan.label.folder import FrameFolder
from arcscan.label.store import LabelFileError, LabelStore
from tests.servers import asgi_server

REAL = Path("data/real/train")
OATH, GILLAM = "00053.png", "20140310_0600_gill_themis19_full.pgm.gz"
SETTINGS = load_settings("params.yaml")
TARGET = {"arc": SETTINGS.patches.n_positive, "other": SETTINGS.patches.n_negative}
START_LABELS = f"file,frame,x,y,label\n{OATH},0,100,150,arc\nnight/{GILLAM},4,60,60,other\n"


def frame_folder(root: Path) -> FrameFolder:
    return FrameFolder(root, SETTINGS.sky_finder(), SETTINGS.preprocess, SETTINGS.patches.size)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """frames/ (a real OATH frame, a real Gillam minute in night/, a text file, a hidden file,
    a link to a file outside, a link to a folder outside) and outside/ with a secret."""
    base = tmp_path_factory.mktemp("label-app")
    frames, outside = base / "frames", base / "outside"
    (frames / "night").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(REAL / OATH, frames / OATH)
    shutil.copy(REAL / GILLAM, frames / "night" / GILLAM)
    (frames / "notes.txt").write_text("not a frame\n")
    shutil.copy(REAL / OATH, frames / ".hidden.png")
    shutil.copy(REAL / OATH, outside / "secret.png")
    os.symlink(outside / "secret.png", frames / "escape.png")
    os.symlink(outside, frames / "elsewhere")
    os.symlink(frames / OATH, frames / "inside-link.png")  # a link that stays inside is fine
    return base


@pytest.fixture(scope="module")
def served(layout):
    """(url, labels path) of the app without a model."""
    labels = layout / "labels.csv"
    labels.write_text(START_LABELS)
    app = create_app(frame_folder(layout / "frames"), LabelStore(labels), TARGET)
    with asgi_server(app) as url:
        yield url, labels


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_request(url: str, method: str, target: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    """A request sent as given (no client-side normalisation of the path)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        if body and "Transfer-Encoding" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if body:
            connection.send(body)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_the_listing_holds_only_frame_files_inside_the_folder(served):
    url, _ = served
    listing = requests.get(f"{url}/api/files", timeout=30).json()
    names = [f["file"] for f in listing["files"]]
    assert names == ["00053.png", "inside-link.png", f"night/{GILLAM}"]
    gillam = listing["files"][2]["frames"]
    assert len(gillam) == 20 and gillam[3]["timestamp"].startswith("2014-03-10T06:00:09")
    assert [s["file"] for s in listing["skipped"]] == ["notes.txt"]
    assert "not a recognised frame format" in listing["skipped"][0]["error"]


def test_frames_metadata_and_raw_counts_are_served(served):
    url, _ = served
    meta = requests.get(f"{url}/api/frame", params={"file": f"night/{GILLAM}", "frame": 2}, timeout=30).json()
    assert (meta["width"], meta["height"], meta["site"], meta["box"]) == (256, 256, "gill", SETTINGS.patches.size)
    answer = requests.get(f"{url}/api/pixels", params={"file": f"night/{GILLAM}", "frame": 2}, timeout=30)
    counts = np.frombuffer(answer.content, "<u2").reshape(int(answer.headers["X-Height"]), int(answer.headers["X-Width"]))
    assert np.array_equal(counts, read_frames(REAL / GILLAM)[2].image)
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'")
    page = requests.get(f"{url}/", timeout=30)
    assert page.status_code == 200 and "/static/label.js" in page.text


def test_a_label_is_saved_relabelled_and_deleted(served):
    url, labels = served
    label = {"file": OATH, "frame": 0, "x": 30, "y": 40, "label": "arc", "who": "tester"}
    answer = requests.put(f"{url}/api/labels", json=label, timeout=30)
    assert answer.status_code == 200 and answer.json()["counts"] == {"arc": 2, "other": 1}
    requests.put(f"{url}/api/labels", json={**label, "label": "other"}, timeout=30)
    rows = read_label_csv(labels)
    assert rows[-1] == {"file": OATH, "frame": 0, "x": 30, "y": 40, "label": 0} and len(rows) == 3
    revision = requests.get(f"{url}/api/labels", timeout=30).json()["revision"]
    assert requests.get(f"{url}/api/labels", params={"since": revision}, timeout=30).json() == {"revision": revision, "unchanged": True}
    gone = requests.delete(f"{url}/api/labels", params={"file": OATH, "frame": 0, "x": 30, "y": 40}, timeout=30)
    assert gone.status_code == 200 and len(read_label_csv(labels)) == 2
    assert labels.read_text().startswith("file,frame,x,y,label,who,when\n")


LABEL = {"file": OATH, "frame": 0, "x": 30, "y": 40, "label": "arc"}
BAD_READS = [
    ({"file": "../labels.csv", "frame": 0}, 400),
    ({"file": "night/../../labels.csv", "frame": 0}, 400),
    ({"file": "/etc/passwd", "frame": 0}, 400),
    ({"file": str(Path(REAL / OATH).resolve()), "frame": 0}, 400),
    ({"file": "..\\labels.csv", "frame": 0}, 400),
    ({"file": "00053.png\x00.txt", "frame": 0}, 400),
    ({"file": "./00053.png", "frame": 0}, 400),
    ({"file": "escape.png", "frame": 0}, 404),
    ({"file": "elsewhere/secret.png", "frame": 0}, 404),
    ({"file": ".hidden.png", "frame": 0}, 404),
    ({"file": "notes.txt", "frame": 0}, 415),
    ({"file": "missing.png", "frame": 0}, 404),
    ({"file": OATH, "frame": 1}, 404),
    ({"file": OATH, "frame": -1}, 422),
    ({"file": OATH, "frame": "one"}, 422),
    ({"file": OATH}, 422),
    ({"file": "x" * 5000, "frame": 0}, 422),
]


@pytest.mark.parametrize(("params", "status"), BAD_READS, ids=[f"{p.get('file', '')[:30]!r}-{p.get('frame')}" for p, _ in BAD_READS])
@pytest.mark.parametrize("route", ["frame", "pixels", "probability", "suggest"])
def test_reads_outside_the_folder_or_of_wrong_types_are_refused(served, route, params, status):
    url, labels = served
    before = digest(labels)
    answer = requests.get(f"{url}/api/{route}", params=params, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json" and answer.json()["error"]
    assert digest(labels) == before


def test_the_model_routes_without_a_model_say_so(served):
    url, _ = served
    answer = requests.get(f"{url}/api/suggest", params={"file": OATH, "frame": 0}, timeout=30)
    assert answer.status_code == 400 and "--checkpoint" in answer.json()["error"]


BAD_WRITES = [
    ({**LABEL, "x": "30"}, 422),
    ({**LABEL, "x": 30.5}, 422),
    ({**LABEL, "x": True}, 422),
    ({**LABEL, "x": -1}, 422),
    ({**LABEL, "x": 10**30}, 422),
    ({**LABEL, "label": "maybe"}, 422),
    ({**LABEL, "label": 1}, 422),
    ({**LABEL, "who": "a\nb"}, 422),
    ({**LABEL, "who": "w" * 65}, 422),
    ({**LABEL, "extra": 1}, 422),
    ({k: v for k, v in LABEL.items() if k != "y"}, 422),
    ([LABEL], 422),
    ("arc", 422),
    ({**LABEL, "x": 256}, 400),
    ({**LABEL, "y": 999}, 400),
    ({**LABEL, "frame": 3}, 404),
    ({**LABEL, "file": "../labels.csv"}, 400),
    ({**LABEL, "file": "/tmp/x.png"}, 400),
    ({**LABEL, "file": "escape.png"}, 404),
    ({**LABEL, "file": "notes.txt"}, 415),
]


@pytest.mark.parametrize(("body", "status"), BAD_WRITES, ids=[str(i) for i in range(len(BAD_WRITES))])
def test_bad_labels_are_refused_and_the_csv_is_intact(served, body, status):
    url, labels = served
    before = digest(labels)
    answer = requests.put(f"{url}/api/labels", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] and digest(labels) == before


@pytest.mark.parametrize(("body", "headers", "status"), [
    (json.dumps(LABEL).encode(), {"Content-Type": "text/plain"}, 422),  # a cross-site "simple" request
    (json.dumps(LABEL).encode(), {"Content-Type": "application/x-www-form-urlencoded"}, 422),
    (b"{not json", {"Content-Type": "application/json"}, 422),
    (b"\xff\xfe" * 100, {"Content-Type": "application/json"}, 422),
    (b'{"a":' * 2000 + b"1" + b"}" * 2000, {"Content-Type": "application/json"}, 413),
    (b"x" * 2**20, {"Content-Type": "application/json"}, 413),
    (b"x" * 2**20, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, 413),
])
def test_bodies_that_are_not_one_small_json_label_are_refused(served, body, headers, status):
    url, labels = served
    before = digest(labels)
    if headers.get("Transfer-Encoding") == "chunked":
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]) for i in range(0, len(body), 65536))
        body = chunks + b"0\r\n\r\n"
    code, _ = raw_request(url, "PUT", "/api/labels", body, headers)
    assert code == status and digest(labels) == before


@pytest.mark.parametrize(("params", "status"), [
    ({"file": OATH, "frame": 0, "x": "a", "y": 1}, 422),
    ({"file": OATH, "frame": 0, "x": 1}, 422),
    ({"file": "../labels.csv", "frame": 0, "x": 100, "y": 150}, 400),
    ({"file": "/abs/00053.png", "frame": 0, "x": 100, "y": 150}, 400),
])
def test_bad_deletes_are_refused_and_the_csv_is_intact(served, params, status):
    url, labels = served
    before = digest(labels)
    answer = requests.delete(f"{url}/api/labels", params=params, timeout=30)
    assert answer.status_code == status and digest(labels) == before


@pytest.mark.parametrize("target", ["/static/../../labels.csv", "/static/%2e%2e/%2e%2e/labels.csv", "/static/..%2f..%2flabels.csv", "/static//etc/passwd"])
def test_static_files_do_not_reach_outside_their_folder(served, target):
    url, labels = served
    code, body = raw_request(url, "GET", target)
    assert code in (400, 404) and b"file,frame" not in body and b"root:" not in body


def test_requests_for_another_host_are_refused(served):
    url, _ = served
    code, _ = raw_request(url, "GET", "/api/state", headers={"Host": "attacker.example"})
    assert code == 400  # DNS rebinding: a page elsewhere cannot read or write through the browser


def test_with_a_token_every_api_request_needs_it(layout):
    labels = layout / "token-labels.csv"
    app = create_app(frame_folder(layout / "frames"), LabelStore(labels), TARGET, token="s3cret-token")
    with asgi_server(app) as url:
        assert requests.get(f"{url}/", timeout=30).status_code == 200  # the page itself holds nothing
        assert requests.get(f"{url}/api/labels", timeout=30).status_code == 401
        assert requests.put(f"{url}/api/labels", json=LABEL, headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
        assert not labels.exists()
        good = requests.put(f"{url}/api/labels", json=LABEL, headers={"Authorization": "Bearer s3cret-token"}, timeout=30)
        assert good.status_code == 200 and len(read_label_csv(labels)) == 1


def test_a_csv_for_other_frames_is_refused_and_left_alone(layout):
    labels = layout / "foreign.csv"
    labels.write_text(f"file,frame,x,y,label\n{OATH},0,10,10,arc\nsomewhere_else.png,0,1,1,other\n")
    before = digest(labels)
    with pytest.raises(LabelFileError, match="does not fit the frames.*somewhere_else.png"):
        create_app(frame_folder(layout / "frames"), LabelStore(labels), TARGET)
    labels.write_text(f"file,frame,x,y,label\n{OATH},0,300,10,arc\n")
    with pytest.raises(LabelFileError, match="outside"):
        create_app(frame_folder(layout / "frames"), LabelStore(labels), TARGET)
    assert digest(labels) != before  # (rewritten by the test itself)


@pytest.mark.slow
def test_the_command_refuses_a_corrupt_csv_with_one_line_and_exit_2(layout):
    labels = layout / "corrupt.csv"
    labels.write_bytes(b"name,age\nana,31\n")
    run = subprocess.run([sys.executable, "-m", "arcscan", "label", str(layout / "frames"), "--labels", str(labels)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "not a labels CSV" in run.stderr and "Traceback" not in run.stderr
    assert labels.read_bytes() == b"name,age\nana,31\n"


def test_a_csv_spoilt_on_disk_while_serving_gets_409_and_is_not_overwritten(layout):
    labels = layout / "spoilt.csv"
    labels.write_text(START_LABELS)
    app = create_app(frame_folder(layout / "frames"), LabelStore(labels), TARGET)
    with asgi_server(app) as url:
        spoilt = START_LABELS + f"{OATH},0,1,2\n"  # someone's editor leaves a short row
        labels.write_text(spoilt)
        answer = requests.put(f"{url}/api/labels", json=LABEL, timeout=30)
        assert answer.status_code == 409 and "spoilt.csv line 4" in answer.json()["error"]
        assert requests.get(f"{url}/api/labels", timeout=30).status_code == 409
        assert labels.read_text() == spoilt
