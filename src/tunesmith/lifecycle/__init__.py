"""Keeping a registered model current: the promotion gate (each predictor scores its examples), updates on new data."""
