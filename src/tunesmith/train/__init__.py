"""The one explicit training loop and what it needs: optimiser, schedule, batching, checkpoints."""
