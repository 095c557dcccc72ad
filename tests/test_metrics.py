"""Pixel agreement and arc-level detection against reference masks with ignored pixels."""

import numpy as np
import pytest

from arcscan.core.metrics import ArcDetection, MaskAgreement


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


def test_nothing_to_find_and_nothing_claimed_score_one():
    detection = ArcDetection()
    detection.add(np.zeros((8, 8), bool), np.zeros((8, 8), np.int16), np.zeros((8, 8), bool))
    assert detection.found_share() == detection.real_share() == 1.0
