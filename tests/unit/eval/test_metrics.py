import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from tunesmith.eval.compare import majority_predictions, paired_bootstrap
from tunesmith.eval.metrics import classification_metrics, expected_calibration_error, slice_metrics


def _random_case(seed: int, n: int = 300, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed: int):
    y, probs = _random_case(seed)
    labels = ["a", "b", "c", "d"]
    m = classification_metrics(y, probs, labels)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=range(4)).tolist()
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    for i, lab in enumerate(labels):
        assert m["per_class"][lab]["precision"] == pytest.approx(p[i])
        assert m["per_class"][lab]["recall"] == pytest.approx(r[i])
        assert m["per_class"][lab]["f1"] == pytest.approx(f[i])
        assert m["per_class"][lab]["support"] == s[i]


def test_ece_known_values():
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(y, perfect) == pytest.approx(0.0)
    # always 90% sure, right half the time -> gap 0.4
    sure = np.array([[0.9, 0.1]] * 4)
    assert expected_calibration_error(y, sure) == pytest.approx(0.4)


def test_paired_bootstrap_identical_models_gives_zero_interval():
    y, probs = _random_case(3)
    res = paired_bootstrap(y, probs.argmax(1), probs.argmax(1), 4, 300, 0.95)
    assert res["accuracy"]["difference"] == 0 and res["accuracy"]["ci_low"] == 0 and res["accuracy"]["ci_high"] == 0
    assert res["accuracy"]["significant"] is False


def test_paired_bootstrap_detects_a_real_gap_and_covers_it():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    good = np.where(rng.random(1000) < 0.85, y, 1 - y)
    weak = np.where(rng.random(1000) < 0.65, y, 1 - y)
    res = paired_bootstrap(y, good, weak, 2, 1000, 0.95, seed=1)
    diff = (good == y).mean() - (weak == y).mean()
    assert res["accuracy"]["difference"] == pytest.approx(diff)
    assert 0 < res["accuracy"]["ci_low"] < diff < res["accuracy"]["ci_high"]
    assert res["macro_f1"]["ci_low"] > 0 and res["accuracy"]["significant"]


def test_majority_and_slices():
    assert majority_predictions(np.array([1, 1, 0, 2, 1]), 3).tolist() == [1, 1, 1]
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])
    s = slice_metrics(y, probs, ["n", "p"], {"group": ["a", "a", "b", "b"]})
    assert s["group"]["values"]["a"]["accuracy"] == 0.5 and s["group"]["values"]["b"]["accuracy"] == 1.0
    assert s["group"]["accuracy_gap"] == 0.5 and s["group"]["worst"] == "a"
