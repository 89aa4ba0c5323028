"""Registered model versions: ``name@v3``, ``name@prod``; see store.py for the layout."""

from tunesmith.store.names import Ref, parse_ref
from tunesmith.store.objects import ArtifactError
from tunesmith.store.store import ModelStore, default_store_root, resolve_run

__all__ = ["ArtifactError", "ModelStore", "Ref", "default_store_root", "parse_ref", "resolve_run"]
