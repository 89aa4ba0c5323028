"""The model store: named, numbered versions of finished runs, aliases that move, evaluations per data set.

Layout under the store root (``TUNESMITH_STORE``, default ``~/.local/share/tunesmith/store``)::

    index.sqlite          versions, aliases, evaluations, events (see index.py)
    objects/ab/cdef...    every artifact once, by SHA-256, read-only
    views/NAME/vN/        a version's files laid out as registered (hard links to the objects), checked on use

Names are validated before any path is built from them, so nothing a user types can point outside the store."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError, InputError
from tunesmith.rundir import read_manifest
from tunesmith.store.capture import data_files, run_files
from tunesmith.store.index import Index, event
from tunesmith.store.names import Ref, check_alias, check_name, parse_ref
from tunesmith.store.objects import ArtifactError, ObjectStore

# Scalar metrics worth keeping per evaluation set and showing side by side.
KNOWLEDGE_BASE = "knowledge-base"  # the task name a registered knowledge base is stored under
METRIC_KEYS = ("n", "accuracy", "macro_f1", "ece", "loss", "perplexity", "token_f1", "rouge_l", "exact_match")


def default_store_root() -> Path:
    if os.environ.get("TUNESMITH_STORE"):
        return Path(os.environ["TUNESMITH_STORE"])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "tunesmith" / "store"


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: metrics[k] for k in METRIC_KEYS if isinstance(metrics.get(k), int | float)}


class ModelStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_store_root()
        self.index = Index(self.root / "index.sqlite")
        self.objects = ObjectStore(self.root / "objects")

    # --- writing ------------------------------------------------------------------------------
    def register(self, run_dir: str | Path, name: str, parent: str | None = None) -> dict[str, Any]:
        """Copy a finished run (and its data) into the store as the next version of ``name``."""
        check_name(name)
        run = Path(run_dir)
        manifest = read_manifest(run)
        if manifest.get("status") != "complete":
            raise InputError(f"{run}: the run did not finish; only finished runs can be registered")
        files, data = self._capture(run, manifest)
        stored = {rel: dict(zip(("sha256", "size"), self.objects.put(src))) for src, rel in files}
        metrics = scalar_metrics(manifest.get("metrics", {}))
        with self.index.transaction() as con:
            row = con.execute("SELECT task FROM versions WHERE name = ? LIMIT 1", (name,)).fetchone()
            if row is not None and row["task"] != manifest["task"]:
                raise InputError(f"{name} holds {row['task']} models; this run is {manifest['task']}")
            (last,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)).fetchone()
            version = last + 1
            con.execute(
                "INSERT INTO versions (name, version, task, method, created_at, source, parent, files, data, manifest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name, version, manifest["task"], manifest["method"], time.time(), str(run.resolve()), parent,
                    json.dumps(stored), json.dumps(data), json.dumps(manifest, default=str),
                ),
            )  # fmt: skip
            if data.get("validation_set"):
                self._put_evaluation(con, name, version, f"{name}@v{version}", metrics)
            event(con, name, "register", version=version, source=str(run.resolve()), parent=parent)
        return self.version(Ref(name, version=version))

    def register_knowledge_base(self, folder: Path, name: str) -> dict[str, Any]:
        """A knowledge base's current build (knowledge.json, index.sqlite) as the next version of ``name``, a
        name that holds knowledge bases only. A model trained with it records the same fingerprint."""
        check_name(name)
        meta = json.loads((folder / "knowledge.json").read_text(encoding="utf-8"))
        last = meta["versions"][-1]
        files = [(folder / f, f"run/{f}") for f in ("knowledge.json", "index.sqlite")]
        stored = {rel: dict(zip(("sha256", "size"), self.objects.put(src))) for src, rel in files}
        manifest = {"task": KNOWLEDGE_BASE, "method": "index", "status": "complete", "knowledge_base": {
            "name": meta["name"], "build": last["version"], "fingerprint": last["fingerprint"],
            "encoder": meta["encoder"], "chunks": last["chunks"]}}  # fmt: skip
        with self.index.transaction() as con:
            row = con.execute("SELECT task FROM versions WHERE name = ? LIMIT 1", (name,)).fetchone()
            if row is not None and row["task"] != KNOWLEDGE_BASE:
                raise InputError(f"{name} holds {row['task']} models; choose another name for a knowledge base")
            (last_version,) = con.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)
            ).fetchone()
            version = last_version + 1
            con.execute(
                "INSERT INTO versions (name, version, task, method, created_at, source, parent, files, data, manifest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, KNOWLEDGE_BASE, "index", time.time(), str(folder.resolve()), None,
                 json.dumps(stored), json.dumps({}), json.dumps(manifest)),
            )  # fmt: skip
            event(con, name, "register", version=version, source=str(folder.resolve()))
        return self.version(Ref(name, version=version))

    def _capture(self, run: Path, manifest: dict[str, Any]) -> tuple[list[tuple[Path, str]], dict[str, Any]]:
        import yaml

        from tunesmith import config as cfgmod
        from tunesmith.tasks import get_task

        files = run_files(run)
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        d = cfg.get("data", {})
        task = get_task(manifest["task"])(cfgmod.from_dict(cfg))
        data: dict[str, Any] = {"missing": []}
        for split in ("train", "validation"):
            given = d.get(split)
            if not given:
                continue
            path = Path(given)
            if not path.exists():
                data["missing"].append(given)
                continue
            split_files = data_files(path, split, task.data_files(path) if path.is_file() else [])
            files += split_files
            data[split] = split_files[0][1] if path.is_file() else f"data/{split}/{path.name}"
        if data["missing"]:  # what is here cannot be checked against the run without the rest: none of it is kept
            given = [d[split] for split in ("train", "validation") if d.get(split)]
            return run_files(run), {"missing": given}
        if data.get("train"):
            self._check_data(run, task, manifest)
        # The version's own validation set is usable later when it can be read again from the stored files.
        if "train" in data and (d.get("validation") is None or "validation" in data):
            data["validation_set"] = True
        return files, data

    @staticmethod
    def _check_data(run: Path, task: Any, manifest: dict[str, Any]) -> None:
        """The data files at the config's paths must be the ones the run was trained on (its data fingerprint):
        later gates and replay use them as that run's data."""
        want = manifest.get("data", {}).get("fingerprint")
        if not want:
            return
        try:
            got = task.read().fingerprint
        except DataError as exc:
            first = next((str(p) for p in exc.problems if p.severity == "error"), "")
            raise InputError(f"{run}: its data no longer reads as it did at training ({first}); refused") from None
        if got != want:
            paths = ", ".join(str(x) for x in (task.cfg.data.train, task.cfg.data.validation) if x)
            raise InputError(
                f"{run}: the data at {paths} is not what this run was trained on (fingerprint {got}, recorded "
                f"{want}); register from the folder the run was trained in, with its data unchanged"
            )

    def _put_evaluation(self, con: Any, name: str, version: int, eval_set: str, metrics: dict[str, Any]) -> None:
        con.execute(
            "INSERT OR REPLACE INTO evaluations (name, version, eval_set, metrics, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, version, eval_set, json.dumps(scalar_metrics(metrics)), time.time()),
        )

    def add_evaluation(self, ref: str | Ref, eval_set: str, metrics: dict[str, Any]) -> None:
        row = self.version(ref)
        with self.index.transaction() as con:
            self._put_evaluation(con, row["name"], row["version"], eval_set, metrics)

    def promote(self, ref: str | Ref, alias: str) -> dict[str, Any]:
        """Point ``name@alias`` at the version; returns the version it pointed at before (or None)."""
        check_alias(alias)
        row = self.version(ref)
        with self.index.transaction() as con:
            old = con.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?", (row["name"], alias)
            ).fetchone()
            con.execute(
                "INSERT OR REPLACE INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                (row["name"], alias, row["version"], time.time()),
            )
            event(con, row["name"], "promote", alias=alias, version=row["version"], previous=old and old[0])
        return {"name": row["name"], "alias": alias, "version": row["version"], "previous": old and old[0]}

    def remove(self, ref: str | Ref) -> dict[str, Any]:
        """Soft delete: the version disappears from lists and cannot be loaded until restored; files are kept."""
        row = self.version(ref)
        held = [a for a, v in self.aliases(row["name"]).items() if v == row["version"]]
        if held:
            raise InputError(f"{row['name']}@v{row['version']} is @{', @'.join(held)}; promote another version first")
        with self.index.transaction() as con:
            con.execute(
                "UPDATE versions SET deleted_at = ? WHERE name = ? AND version = ?",
                (time.time(), row["name"], row["version"]),
            )
            event(con, row["name"], "remove", version=row["version"])
        return row

    def restore(self, ref: str | Ref) -> dict[str, Any]:
        row = self.version(ref, deleted=True)
        with self.index.transaction() as con:
            con.execute(
                "UPDATE versions SET deleted_at = NULL WHERE name = ? AND version = ?", (row["name"], row["version"])
            )
            event(con, row["name"], "restore", version=row["version"])
        return self.version(Ref(row["name"], version=row["version"]))

    # --- reading ------------------------------------------------------------------------------
    def version(self, ref: str | Ref, deleted: bool = False) -> dict[str, Any]:
        """The index row of a reference; a deleted version only when ``deleted`` (for restore)."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        version = ref.version
        if ref.alias:
            rows = self.index.rows("SELECT version FROM aliases WHERE name = ? AND alias = ?", (ref.name, ref.alias))
            if not rows:
                raise InputError(f"{ref}: no such alias (aliases of {ref.name}: {self._alias_text(ref.name)})")
            version = rows[0]["version"]
        if version is None:
            rows = self.index.rows(
                "SELECT * FROM versions WHERE name = ? AND deleted_at IS NULL ORDER BY version DESC LIMIT 1",
                (ref.name,),
            )
        else:
            rows = self.index.rows("SELECT * FROM versions WHERE name = ? AND version = ?", (ref.name, version))
        if not rows:
            raise InputError(f"{ref}: not a registered model version (see `tunesmith models list`)")
        row = rows[0]
        if row["deleted_at"] is not None and not deleted:
            raise InputError(f"{ref}: version {row['version']} was removed; `tunesmith models restore {ref}`")
        if deleted and row["deleted_at"] is None:
            raise InputError(f"{ref}: version {row['version']} is not removed")
        row["aliases"] = [a for a, v in self.aliases(row["name"]).items() if v == row["version"]]
        return row

    def _alias_text(self, name: str) -> str:
        return ", ".join(f"@{a}" for a in self.aliases(name)) or "none"

    def aliases(self, name: str) -> dict[str, int]:
        rows = self.index.rows("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
        return {r["alias"]: r["version"] for r in rows}

    def list(self, name: str | None = None, deleted: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT name, version, task, method, created_at, parent, deleted_at, source, data FROM versions"
        args: tuple = ()
        where = [] if deleted else ["deleted_at IS NULL"]
        if name is not None:
            where.append("name = ?")
            args = (check_name(name),)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.index.rows(sql + " ORDER BY name, version", args)
        for r in rows:
            r["aliases"] = [a for a, v in self.aliases(r["name"]).items() if v == r["version"]]
        return rows

    def evaluations(self, ref: str | Ref) -> dict[str, dict[str, float]]:
        row = self.version(ref)
        rows = self.index.rows(
            "SELECT eval_set, metrics FROM evaluations WHERE name = ? AND version = ? ORDER BY eval_set",
            (row["name"], row["version"]),
        )
        return {r["eval_set"]: r["metrics"] for r in rows}

    def history(self, name: str) -> list[dict[str, Any]]:
        return self.index.rows("SELECT action, detail, at FROM events WHERE name = ? ORDER BY id", (check_name(name),))

    def lineage(self, ref: str | Ref) -> list[str]:
        """This version and its ancestors, newest first (removed ancestors included: lineage is history)."""
        row = self.version(ref)
        chain = [f"{row['name']}@v{row['version']}"]
        while row.get("parent"):
            parent = parse_ref(row["parent"])
            found = self.index.rows(
                "SELECT * FROM versions WHERE name = ? AND version = ?", (parent.name, parent.version)
            )
            if not found:
                break
            row = found[0]
            chain.append(f"{row['name']}@v{row['version']}")
        return chain

    def diff(self, a: str | Ref, b: str | Ref) -> list[dict[str, Any]]:
        """Metrics side by side on every evaluation set either version has been measured on."""
        ea, eb = self.evaluations(a), self.evaluations(b)
        out = []
        for eval_set in sorted(set(ea) | set(eb)):
            ma, mb = ea.get(eval_set, {}), eb.get(eval_set, {})
            for key in METRIC_KEYS:
                if key in ma or key in mb:
                    va, vb = ma.get(key), mb.get(key)
                    delta = vb - va if va is not None and vb is not None else None
                    out.append({"eval_set": eval_set, "metric": key, "a": va, "b": vb, "b_minus_a": delta})
        return out

    # --- artifacts ------------------------------------------------------------------------------
    def checkout(self, ref: str | Ref, only: tuple[str, ...] = ("",)) -> Path:
        """The version's folder (run/ and data/). Every file the caller will read (all of them, or those whose
        stored path starts with one of ``only``) is checked against its registered checksum first."""
        row = self.version(ref)
        view = self.root / "views" / row["name"] / f"v{row['version']}"
        if not view.is_dir():
            self._build_view(row, view)
        for rel, meta in row["files"].items():
            if rel.startswith(only):
                what = f"{row['name']}@v{row['version']}: {rel}"
                try:
                    self.objects.verify(view / rel, meta["sha256"], meta["size"], what)
                except ArtifactError:  # the view's copy is damaged: relink it from the object, if that is intact
                    self.objects.verify(self.objects.path(meta["sha256"]), meta["sha256"], meta["size"], what)
                    self.objects.link(meta["sha256"], view / rel)
                    self.objects.verify(view / rel, meta["sha256"], meta["size"], what)
        return view

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """An exclusive lock across processes (``flock`` on a file in the store): moving aliases is serialized,
        so two promotions cannot both pass a gate against the same current version."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{what}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _build_view(self, row: dict[str, Any], view: Path) -> None:
        tmp = view.with_name(f".{view.name}.{os.getpid()}.{os.urandom(3).hex()}")
        try:
            for rel, meta in row["files"].items():
                target = (tmp / rel).resolve()
                if not target.is_relative_to(tmp.resolve()):
                    raise InputError(f"{rel}: a stored path outside its version folder; refused")
                self.objects.verify(
                    self.objects.path(meta["sha256"]), meta["sha256"], meta["size"], f"{row['name']}: {rel}"
                )
                self.objects.link(meta["sha256"], target)
            try:
                tmp.rename(view)
            except OSError:  # another process built it first
                if not view.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run_dir(self, ref: str | Ref) -> Path:
        return self.checkout(ref) / "run"

    def data_path(self, ref: str | Ref, split: str) -> Path | None:
        row = self.version(ref)
        rel = row["data"].get(split)
        return self.checkout(ref, only=(f"data/{split}/",)) / rel if rel else None


def resolve_run(ref: str | Path, store: ModelStore | str | Path | None = None) -> Path:
    """A run directory for what a user typed: an existing folder as it is, else a registered reference
    (``name``, ``name@v2``, ``name@prod``) checked out of the store with its checksums verified."""
    path = Path(ref)
    if path.is_dir():
        return path
    text = str(ref)
    if "/" in text or os.sep in text:
        raise InputError(f"{text}: no such run directory")
    try:
        parsed = parse_ref(text)
    except InputError as exc:
        raise InputError(f"{text}: not a run directory, and not a registered model reference ({exc})") from None
    st = store if isinstance(store, ModelStore) else ModelStore(store)
    return st.run_dir(parsed)
