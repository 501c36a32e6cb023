import math

from corpuslab.report.stats import data_equivalent_factor, mean_ci, paired_difference


def test_mean_ci_matches_student_t():
    out = mean_ci([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert out["mean"] == 2.0 and out["n"] == 3
    assert math.isclose(out["ci95"][0], 2.0 - half) and math.isclose(out["ci95"][1], 2.0 + half)
    assert mean_ci([5.0])["ci95"] is None
    assert mean_ci([])["mean"] is None


def test_paired_difference_is_by_seed():
    arm = {0: 1.0, 1: 2.0, 2: 3.0}
    ref = {0: 1.5, 1: 2.5, 2: 3.6}
    out = paired_difference(arm, ref)
    assert math.isclose(out["mean"], -0.5333333, rel_tol=1e-6)
    assert out["significant"] is True  # the paired differences barely vary
    same = paired_difference({0: 1.0, 1: 2.0}, {0: 1.5, 1: 1.5})
    assert same["significant"] is False


CURVE = [{"tokens": t, "val_loss": 4.0 * t ** -0.1} for t in (1000, 2000, 4000, 8000, 16000)]


def test_data_equivalent_factor_interpolates_and_extrapolates():
    inside = data_equivalent_factor(CURVE, 4.0 * 4000 ** -0.1, arm_tokens=2000)
    assert inside["method"] == "interpolated" and math.isclose(inside["factor"], 2.0, rel_tol=1e-6)
    beyond = data_equivalent_factor(CURVE, 4.0 * 64000 ** -0.1, arm_tokens=16000)
    assert beyond["method"].startswith("extrapolated") and math.isclose(beyond["factor"], 4.0, rel_tol=1e-3)
    assert data_equivalent_factor(CURVE, 10.0, arm_tokens=1000)["factor"] is None


def test_reports_match_is_exact_except_for_float_noise():
    from corpuslab.report.build import reports_match

    a = {"x": [1.0, 2], "name": "near", "n": 3}
    assert reports_match(a, {"x": [1.0 + 1e-9, 2], "name": "near", "n": 3}) == []
    assert reports_match({"d": -0.0253921}, {"d": -0.0253918}) == []  # a difference of two noisy losses
    assert reports_match(a, {"x": [1.001, 2], "name": "near", "n": 3}) == [".x[0]: 1.0 != 1.001"]
    assert reports_match(a, {"x": [1.0, 3], "name": "near", "n": 3}) == [".x[1]: 2 != 3"]
    assert reports_match(a, {"x": [1.0, 2], "name": "exact", "n": 3})
