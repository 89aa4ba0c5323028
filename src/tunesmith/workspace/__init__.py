"""The workspace behind the dashboard (and any other front end): the folders it may read, the runs under them
with their status and headline figures, live progress, comparisons, background jobs and the labelling queue.
Everything here calls the same pipeline, store and labelling code as the command line."""

from tunesmith.workspace.workspace import Workspace

__all__ = ["Workspace"]
