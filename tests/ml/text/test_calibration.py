import numpy as np
import pytest

from ml.text import calibration as cal


def _miscalibrated(n: int, seed: int):
    """Raw scores that are over-confident logits: the true probability is sigmoid(0.4 * s - 1)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 4, n)
    p_true = 1 / (1 + np.exp(-(0.4 * s - 1)))
    y = (rng.random(n) < p_true).astype(float)
    return s, y


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_ece_on_fresh_data(method):
    s_fit, y_fit = _miscalibrated(4000, 0)
    s_test, y_test = _miscalibrated(4000, 1)
    raw = 1 / (1 + np.exp(-s_test))
    calibrator = cal.fit_calibrator(s_fit, y_fit, method)
    calibrated = calibrator.transform(s_test)
    before = cal.expected_calibration_error(raw, y_test)
    after = cal.expected_calibration_error(calibrated, y_test)
    assert before > 0.08
    assert after < 0.03 and after < before / 3
    assert calibrated.min() >= 0 and calibrated.max() <= 1


def test_platt_recovers_the_generating_sigmoid():
    s, y = _miscalibrated(20_000, 2)
    c = cal.PlattCalibrator().fit(s, y)
    assert c.a == pytest.approx(0.4, abs=0.05) and c.b == pytest.approx(-1.0, abs=0.1)


def test_platt_stays_finite_on_separable_data():
    s = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    p = cal.PlattCalibrator().fit(s, y).transform(s)
    assert np.isfinite(p).all() and p[0] > 0.0 and p[-1] < 1.0 and p[-1] > 0.5


def test_auto_uses_platt_for_few_positives_and_isotonic_for_many():
    assert cal.resolve_method(np.r_[np.ones(10), np.zeros(500)]) == "platt"
    assert cal.resolve_method(np.r_[np.ones(60), np.zeros(500)]) == "isotonic"
    assert cal.resolve_method(np.ones(3), "isotonic") == "isotonic"
    with pytest.raises(ValueError):
        cal.fit_calibrator([0.1, 0.2], [0, 1], "beta")


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_round_trip_through_dict(method):
    s, y = _miscalibrated(1000, 3)
    c = cal.fit_calibrator(s, y, method)
    again = cal.calibrator_from_dict(c.to_dict())
    np.testing.assert_allclose(again.transform(s), c.transform(s))


def test_reliability_curve_bins():
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 0, 1, 1])
    curve = cal.reliability_curve(p, y, n_bins=10)
    assert [b["n"] for b in curve] == [2, 2]
    assert cal.expected_calibration_error(p, y) == pytest.approx(0.05)
    assert np.isnan(cal.expected_calibration_error([], []))
