"""See task.py (the Task) and predictor.py (the Predictor)."""
