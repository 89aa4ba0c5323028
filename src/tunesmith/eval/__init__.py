"""Honest evaluation: metrics, base-vs-tuned comparisons with confidence intervals, reports."""
