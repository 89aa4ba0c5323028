"""The linear probe and the run's logistic head are one fit: same rows in, same strength and weights out,
whatever float type the features come in (the probe's cached features are float32; fit_logistic fits on float64)."""

from __future__ import annotations

import numpy as np

from tunesmith.eval.compare import fit_logistic, linear_probe


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 32)) * 0.6
    y = np.repeat(np.arange(6), 8)
    x = (centres[y] + rng.normal(size=(len(y), 32))).astype(np.float32)
    test = (centres[np.arange(60) % 6] + rng.normal(size=(60, 32))).astype(np.float32)
    return x, y, test


def test_probe_on_float32_features_is_the_heads_float64_fit():
    for seed in range(6):
        x, y, test = _data(seed)
        head = fit_logistic(x.astype(np.float64), y, seed=0, classes=6)
        probs, c = linear_probe(x, y, test, seed=0)
        assert c == head.C
        np.testing.assert_allclose(probs, head.probabilities(test.astype(np.float64)), rtol=1e-9, atol=1e-12)


def test_the_strength_comes_from_cross_validation_on_the_training_rows():
    x, y, _ = _data(1)
    noisy = fit_logistic(x.astype(np.float64), y, seed=0)
    assert noisy.C in (0.01, 0.1, 1.0)
    separable = fit_logistic(np.eye(6)[y] * 5.0 + 0.01 * x[:, :6], y, seed=0)
    assert (separable.probabilities(np.eye(6) * 5.0).argmax(1) == np.arange(6)).all()
