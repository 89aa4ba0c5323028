"""Choosing before training: hardware facts, data-driven defaults, timed probes, predictions and a plan."""
