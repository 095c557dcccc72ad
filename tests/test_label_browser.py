"""The labelling page in a real headless Chromium (Debian's, driven by Playwright) against the
real ``arcscan label`` command on real frames: move through frames, place, relabel, delete and
undo patches, reload, a second tab, suggestions from a real checkpoint; the CSV on disk is what
the page shows and goes through ``arcscan patches`` into a labelled set. Writes the README's
screenshot (docs/label_page.png) when the trained model (models/model.pt) is there."""

import csv
import importlib.util
import io
import re
import select
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from arcscan.core.patches import PatchSet
from arcscan.label.store import LabelStore
from tests.servers import _stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real" / "train"
OATH, GILLAM = "00053.png", "20140310_0600_gill_themis19_full.pgm.gz"
TRAINED = ROOT / "models" / "model.pt"
SCREENSHOT = ROOT / "docs" / "label_page.png"
CHROMIUM = Path("/usr/bin/chromium")
# Without these Chromium's connections to the closed network slow every start (FIELD-NOTES §12).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"Debian's chromium is not installed at {CHROMIUM} (make browser: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (make venv installs it from the [test] extra)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def label_command(*args: str):
    """``arcscan label ...`` as a user starts it; yields the address it prints."""
    process = subprocess.Popen([sys.executable, "-m", "arcscan", "label", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 240, []
        while True:
            assert process.poll() is None, "arcscan label exited:\n" + "".join(seen) + process.stderr.read()
            assert time.monotonic() < deadline, "arcscan label printed no address:\n" + "".join(seen)
            if select.select([process.stderr], [], [], 1.0)[0]:
                line = process.stderr.readline()
                seen.append(line)
                found = re.search(r"http://127\.0\.0\.1:\d+/", line)
                if found:
                    yield found.group(0)
                    return
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """frames/ (a real OATH frame, a real THEMIS Gillam minute), labels.csv seeded with the real
    hand labels of the OATH frame (pipeline format, no who/when), and a checkpoint: the trained
    one when the pipeline has run here (models/ is not in a fresh clone), else an untrained
    network saved the same way, its output layer scaled so that its probabilities spread over
    0..1 (unscaled they lie within 0.497..0.510); the suggestion checks do not depend on how
    good the model is."""
    base = tmp_path_factory.mktemp("label-browser")
    frames = base / "frames"
    frames.mkdir()
    for name in (OATH, GILLAM):
        shutil.copy(REAL / name, frames / name)
    real = (ROOT / "data" / "real" / "labels.csv").read_text().splitlines()
    (base / "labels.csv").write_text("\n".join([real[0]] + [row for row in real[1:] if row.startswith(OATH + ",")]) + "\n")
    if TRAINED.is_file():
        checkpoint = TRAINED
    else:
        import torch

        from arcscan.core.model import ModelConfig, build_model, save_checkpoint

        torch.manual_seed(0)
        model = build_model(ModelConfig())
        with torch.no_grad():
            model.fc.weight *= 400
            model.fc.bias.zero_()
        checkpoint = save_checkpoint(base / "untrained.pt", model, ModelConfig())
    return base, frames, base / "labels.csv", checkpoint


@pytest.fixture(scope="module")
def server(workspace):
    _, frames, labels, checkpoint = workspace
    with label_command(str(frames), "--labels", str(labels), "--checkpoint", str(checkpoint)) as url:
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    tab.goto(server)
    tab.wait_for_selector("#where:has-text('frame')")
    yield tab
    context.close()
    assert errors == []


# ---- what the page shows, what the file holds ----------------------------------------------------
def shown(tab) -> list[tuple]:
    boxes = tab.eval_on_selector_all("g.label", "gs => gs.map(g => [g.dataset.file, +g.dataset.frame, +g.dataset.x, +g.dataset.y, g.dataset.label])")
    return sorted(map(tuple, boxes))


def on_disk(labels: Path, file: str | None = None, frame: int | None = None) -> list[tuple]:
    rows = [(r.file, r.frame, r.x, r.y, "arc" if r.label == 1 else "other") for r in LabelStore(labels).labels()]
    return sorted(r for r in rows if file is None or (r[0], r[1]) == (file, frame))


def wait_shown(tab, count: int) -> None:
    tab.wait_for_function("n => document.querySelectorAll('g.label').length === n", arg=count, timeout=30_000)


def click_pixel(tab, x: int, y: int, shift: bool = False) -> None:
    """Click the centre of frame pixel (x, y) at the page's zoom (shift: an "other" patch)."""
    zoom = float(tab.input_value("#zoom"))
    tab.click("#boxes", position={"x": (x + 0.5) * zoom, "y": (y + 0.5) * zoom}, modifiers=["Shift"] if shift else [])


def select_box(tab, x: int, y: int, kind: str = "label") -> None:
    tab.click(f"g.{kind}[data-x='{x}'][data-y='{y}'] rect.handle")
    tab.wait_for_selector("#menu:not([hidden])")


def go_to(tab, file: str, frame: int) -> None:
    tab.click(f"#files button:has-text('{file}')")
    tab.wait_for_selector(f"#where:has-text('{file} · frame 0')")
    tab.click(f"#frames li:nth-child({frame + 1}) button")
    tab.wait_for_selector(f"#where:has-text('{file} · frame {frame}')")


def counts(tab) -> tuple[str, str]:
    return tab.text_content("#count-arc"), tab.text_content("#count-other")


def test_label_move_relabel_delete_undo_reload_and_a_second_tab(page, server, workspace):
    base, frames, labels, _ = workspace
    tab = page
    seeded = on_disk(labels)
    # frames in order, with their timestamps: keys, buttons
    go_to(tab, OATH, 0)
    tab.keyboard.press("n")
    tab.wait_for_selector(f"#where:has-text('{GILLAM} · frame 0 · 2014-03-10 06:00:00')")
    tab.keyboard.press("n")
    tab.keyboard.press("ArrowRight")
    tab.wait_for_selector("#where:has-text('frame 2 · 2014-03-10 06:00:06')")
    tab.keyboard.press("p")
    tab.wait_for_selector("#where:has-text('frame 1 · 2014-03-10 06:00:03')")
    assert tab.text_content("#frames button.current").startswith("1 · 06:00:03")

    # place: click an arc, shift-click an other
    for x, y, shift in ((60, 60, False), (150, 200, True), (200, 100, False)):
        click_pixel(tab, x, y, shift)
    wait_shown(tab, 3)
    assert shown(tab) == on_disk(labels, GILLAM, 1) == sorted([
        (GILLAM, 1, 60, 60, "arc"), (GILLAM, 1, 150, 200, "other"), (GILLAM, 1, 200, 100, "arc")])
    n_arc = sum(r[4] == "arc" for r in seeded) + 2
    assert counts(tab) == (f"arc {n_arc}/100", f"other {len(seeded) - n_arc + 2 + 1}/100")

    # relabel (a box's menu, key o), delete (key x), undo both (u, ctrl-z)
    select_box(tab, 200, 100)
    tab.keyboard.press("o")
    tab.wait_for_selector("g.label.other[data-x='200'][data-y='100']")
    select_box(tab, 60, 60)
    tab.click("#menu button[data-act=delete]")
    wait_shown(tab, 2)
    assert on_disk(labels, GILLAM, 1) == sorted([(GILLAM, 1, 150, 200, "other"), (GILLAM, 1, 200, 100, "other")])
    tab.keyboard.press("u")
    wait_shown(tab, 3)
    tab.keyboard.press("Control+z")
    tab.wait_for_selector("g.label.arc[data-x='200'][data-y='100']")
    assert shown(tab) == on_disk(labels, GILLAM, 1) == sorted([
        (GILLAM, 1, 60, 60, "arc"), (GILLAM, 1, 150, 200, "other"), (GILLAM, 1, 200, 100, "arc")])

    # undo of a new label removes it, on whatever frame is shown
    tab.keyboard.press("n")
    tab.wait_for_selector("#where:has-text('frame 2')")
    click_pixel(tab, 128, 128, shift=True)
    wait_shown(tab, 1)
    tab.keyboard.press("p")
    tab.wait_for_selector("#where:has-text('frame 1')")
    tab.keyboard.press("u")
    tab.wait_for_selector("#where:has-text('frame 2')")
    wait_shown(tab, 0)
    assert on_disk(labels, GILLAM, 2) == []
    click_pixel(tab, 90, 170)
    wait_shown(tab, 1)

    # a reload comes back to the same frame with the same labels, from the file
    tab.reload()
    tab.wait_for_selector("#where:has-text('frame 2')")
    wait_shown(tab, 1)
    assert shown(tab) == on_disk(labels, GILLAM, 2) == [(GILLAM, 2, 90, 170, "arc")]

    # a second tab: its label appears in the first; the same label from both is one row
    second = tab.context.new_page()
    second.goto(server)
    second.wait_for_selector("#where:has-text('frame 2')")
    click_pixel(second, 40, 200, shift=True)
    wait_shown(second, 2)
    wait_shown(tab, 2)  # the first tab polls the file's revision
    click_pixel(tab, 180, 60)
    click_pixel(second, 180, 60)
    wait_shown(tab, 3)
    wait_shown(second, 3)
    assert shown(tab) == shown(second) == on_disk(labels, GILLAM, 2)
    assert on_disk(labels, GILLAM, 2) == sorted([(GILLAM, 2, 90, 170, "arc"), (GILLAM, 2, 40, 200, "other"), (GILLAM, 2, 180, 60, "arc")])
    assert on_disk(labels, OATH, 0) == seeded  # the real hand labels are untouched
    rows = list(csv.DictReader(io.StringIO(labels.read_text())))
    assert {r["who"] for r in rows if r["file"] == GILLAM} == {requests.get(f"{server}api/state", timeout=30).json()["who"]}

    # the same CSV makes a labelled patch set
    made = subprocess.run([sys.executable, "-m", "arcscan", "patches", str(labels), "--frames", str(frames), "-o", str(base / "set.npz")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    patches = PatchSet.load(base / "set.npz")
    disk = on_disk(labels)
    assert sorted(zip(patches.files.tolist(), patches.frames.tolist(), patches.xs.tolist(), patches.ys.tolist(),
                      ["arc" if v == 1 else "other" for v in patches.labels])) == disk
    assert f"{sum(r[4] == 'arc' for r in disk)} arc and {sum(r[4] == 'other' for r in disk)} other patches" in made.stdout


def test_suggestions_from_a_real_checkpoint_and_the_screenshot(page, server, workspace, tmp_path):
    _, _, labels, checkpoint = workspace
    tab = page
    go_to(tab, OATH, 0)
    tab.wait_for_selector("#status:has-text('arc probability shown')", timeout=120_000)
    frame = requests.get(f"{server}api/frame", params={"file": OATH, "frame": 0}, timeout=30).json()
    png = requests.get(f"{server}api/probability", params={"file": OATH, "frame": 0}, timeout=120)
    probability = np.asarray(Image.open(io.BytesIO(png.content)), float) / 255
    assert probability.shape == (frame["height"], frame["width"])

    # the labels the model contradicts (margin > 0), by the overlay's probability (steps of 1/255)
    def margin(label: str, p: float) -> float:
        return 0.5 - p if label == "arc" else p - 0.5

    step = 1 / 255 + 1e-6
    margins = [margin(label, probability[y, x]) for _, _, x, y, label in on_disk(labels, OATH, 0)]
    if max(margins) <= step:  # nothing clearly contradicted yet: an arc where the model is surest there is none
        y, x = np.unravel_index(np.argmin(np.where(probability > 0, probability, 2)), probability.shape)
        click_pixel(tab, int(x), int(y))
        wait_shown(tab, len(margins) + 1)
        margins.append(margin("arc", probability[y, x]))
    tab.keyboard.press("s")
    tab.wait_for_function(  # the suggestions' summary, or an error the page reports in the same place
        "() => { const s = document.querySelector('#status'); return s.textContent.includes('the model disagrees with') || s.className === 'error'; }",
        timeout=120_000)
    assert "the model disagrees with" in tab.text_content("#status"), tab.text_content("#status")
    suggestions = tab.eval_on_selector_all(
        "g.suggestion", "gs => gs.map(g => ({kind: g.dataset.kind, x: +g.dataset.x, y: +g.dataset.y, p: +g.dataset.probability}))")
    for s in suggestions:
        assert abs(s["p"] - probability[s["y"], s["x"]]) <= step  # what the overlay shows
    disagree = [s for s in suggestions if s["kind"] == "disagree"]
    uncertain = [s for s in suggestions if s["kind"] == "uncertain"]
    labelled = {(x, y): label for _, _, x, y, label in on_disk(labels, OATH, 0)}
    found = [margin(labelled[s["x"], s["y"]], s["p"]) for s in disagree]
    assert all(m > 0 for m in found) and found == sorted(found, reverse=True)  # most confident first
    assert min(8, sum(m > step for m in margins)) <= len(disagree) <= min(8, sum(m > -step for m in margins))
    assert found[0] >= max(margins) - step  # none more strongly contradicted is left out
    uncertainty = [abs(s["p"] - 0.5) for s in uncertain]
    assert uncertainty == sorted(uncertainty) and all(u < 0.45 for u in uncertainty)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    target = SCREENSHOT if checkpoint == TRAINED else tmp_path / "label_page.png"
    tab.screenshot(path=str(target))  # the README's picture: labels, overlay, suggestions
    assert Image.open(target).size == (1400, 900)
    box = frame["box"]
    for i, a in enumerate(uncertain):  # no two overlap, none within half a patch of a label
        assert all(max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) >= box for b in uncertain[i + 1:])
        assert all(max(abs(a["x"] - x), abs(a["y"] - y)) >= box / 2 for x, y in labelled)
    if uncertain:  # accept the most uncertain patch as an arc: it is saved like any label
        first = uncertain[0]
        select_box(tab, first["x"], first["y"], "suggestion")
        tab.keyboard.press("a")
        tab.wait_for_selector(f"g.label.arc[data-x='{first['x']}'][data-y='{first['y']}']")
        assert (OATH, 0, first["x"], first["y"], "arc") in on_disk(labels, OATH, 0)
    assert shown(tab) == on_disk(labels, OATH, 0)
