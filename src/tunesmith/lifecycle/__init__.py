"""Keeping a registered model current: per-example scoring, the promotion gate, updates on new data."""
