"""Hyperparameter search: a search space written in the config, Optuna studies, pruning, reports, seeds."""
