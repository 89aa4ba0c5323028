"""Helping users spend labels well: training examples whose labels look wrong (check.py)."""
