"""Pixel agreement and arc-level detection against reference masks with ignored pixels."""

import numpy as np
import pytest

from arcscan.core.metrics import ArcDetection, MaskAgreement, RealFrameScores


def bands(shape=(64, 64)):
    arcs = np.zeros(shape, np.int16)
    arcs[10:14, 5:60] = 1  # reference arc 1
    arcs[40:44, 5:60] = 2  # reference arc 2
    return arcs


def test_pixel_agreement_leaves_ignored_pixels_out():
    truth = bands() > 0
    predicted = truth.copy()
    predicted[20:30, 20:30] = True  # a false region ...
    scored = np.ones_like(truth)
    agreement = MaskAgreement()
    agreement.add(predicted, truth, scored)
    assert agreement.iou() == pytest.approx(truth.sum() / predicted.sum())
    scored[20:30, 20:30] = False  # ... inside an ignored region does not count
    agreement = MaskAgreement()
    agreement.add(predicted, truth, scored)
    assert agreement.iou() == 1.0 and agreement.f1() == 1.0


def test_arcs_found_and_predicted_arcs_real():
    arcs, ignore = bands(), np.zeros((64, 64), bool)
    predicted = np.zeros((64, 64), bool)
    predicted[10:14, 5:30] = True  # covers 25/55 of arc 1 (over 30%): found
    predicted[40:44, 5:15] = True  # covers 10/55 of arc 2 (under 30%): missed, but a real prediction
    predicted[25:30, 25:35] = True  # 50 px of sky: a false arc
    predicted[55, 55] = True  # a speck under min_area: not an arc
    detection = ArcDetection(overlap=0.3)
    detection.add(predicted, arcs, ignore, min_area=20)
    assert (detection.reference, detection.found) == (2, 1) and detection.found_share() == 0.5
    assert (detection.predicted, detection.real) == (3, 2) and detection.real_share() == pytest.approx(2 / 3)
    ignore[25:30, 25:35] = True  # the false region is ambiguous sky: not scored
    again = ArcDetection(overlap=0.3)
    again.add(predicted, arcs, ignore, min_area=20)
    assert (again.predicted, again.real) == (2, 2)


def test_a_predicted_arc_across_an_ignore_band_is_one_arc():
    arcs, ignore = bands(), np.zeros((64, 64), bool)
    ignore[8:16, 5:60] = True  # an ambiguous boundary around arc 1 ...
    ignore[10:14, 5:60] = False  # ... the arc itself scored
    predicted = np.zeros((64, 64), bool)
    predicted[6:18, 5:60] = True  # arc 1 drawn wider: its wings cross the band into the sky
    detection = ArcDetection(overlap=0.3)
    detection.add(predicted, arcs, ignore, min_area=20)
    # one region: 55 x 4 px on the arc of 55 x 4 + 2 x 55 x 2 scored px (over 30%): one real arc, not three
    assert (detection.found, detection.predicted, detection.real) == (1, 1, 1)
    predicted[:] = False
    predicted[30:36, 20:40] = True  # a region entirely in ignored sky is not judged
    ignore[28:38, 18:42] = True
    detection = ArcDetection(overlap=0.3)
    detection.add(predicted, arcs, ignore, min_area=20)
    assert detection.predicted == 0


def test_nothing_to_find_and_nothing_claimed_score_one():
    detection = ArcDetection()
    detection.add(np.zeros((8, 8), bool), np.zeros((8, 8), np.int16), np.zeros((8, 8), bool))
    assert detection.found_share() == detection.real_share() == 1.0


def test_real_frame_scores_pool_arc_frames_and_arc_free_frames():
    arcs, none, sky = bands(), np.zeros((64, 64), np.int16), np.ones((64, 64), bool)
    elevation = np.tile(np.linspace(0.0, 90.0, 64, dtype=np.float32), (64, 1))  # 0 deg at x = 0, 90 at x = 63
    scores = RealFrameScores(near_horizon_elevation=45.0)
    row = scores.add(arcs > 0, arcs == 1, sky, arcs, np.zeros_like(sky), min_area=20)
    assert row["iou"] == 1.0 and (row["found"], row["predicted"], row["real"]) == (2, 2, 2)
    claim = np.zeros_like(sky)
    claim[:, :8] = True  # 8 of 64 columns claimed on an arc-free frame, all of them low in the sky
    row = scores.add(claim, claim, sky, none, np.zeros_like(sky), min_area=20, elevation=elevation)
    assert row["claimed"] == pytest.approx(8 / 64) and row["claimed_above_near_horizon"] == 0.0
    metrics = scores.metrics()
    assert metrics["real_pixel_iou"] == 1.0 and metrics["real_pixel_iou_scan"] == pytest.approx(0.5)
    assert (metrics["real_arc_frames"], metrics["real_arcfree_frames"]) == (1, 1)
    assert metrics["real_arcfree_sky_claimed"] == pytest.approx(8 / 64) and metrics["real_arcfree_sky_claimed_above_near_horizon"] == 0.0
