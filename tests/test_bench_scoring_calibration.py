"""The calibration figures bench.scoring reports: expected calibration error and review share."""

from __future__ import annotations

import numpy as np

from bench.scoring import REVIEW_BELOW, calibration, expected_calibration_error


def test_calibrated_confidence_has_no_calibration_error():
    # In the 0.7-0.8 bin 3 of 4 are right at confidence 0.75; in the 0.9-1.0 bin all are right.
    confidence = np.array([0.75] * 4 + [1.0] * 4)
    correct = np.array([True, True, True, False] + [True] * 4)
    assert expected_calibration_error(confidence, correct) == 0.0


def test_overconfidence_is_the_gap_weighted_by_bin_share():
    confidence = np.array([0.95] * 10 + [0.55] * 10)
    correct = np.array([True] * 5 + [False] * 5 + [True] * 10)
    # |0.5 - 0.95| * 0.5 + |1.0 - 0.55| * 0.5
    assert abs(expected_calibration_error(confidence, correct) - 0.45) < 1e-12


def test_review_share_is_the_share_below_the_configured_threshold():
    figures = calibration("digit_accuracy", [REVIEW_BELOW - 0.01, REVIEW_BELOW, 0.99], [1, 1, 1])
    assert figures["digit_review_share"] == round(1 / 3, 4)
    assert set(figures) == {"digit_ece", "digit_review_share"}
