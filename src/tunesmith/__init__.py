"""tunesmith: turn a general pre-trained model into a specialist for your task.

run = tunesmith.finetune("my.yaml")
predictor = tunesmith.load(run.path)
predictor.predict(["a fine film"])
"""

from tunesmith.api import evaluate, finetune, load, predict, validate
from tunesmith.config import Config
from tunesmith.rundir import Run

__version__ = "0.1.0"
__all__ = ["Config", "Run", "evaluate", "finetune", "load", "predict", "validate", "__version__"]
