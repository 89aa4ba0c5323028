"""``tunesmith update NAME@REF --data new.csv``: fine-tune the current version on new data with replay of the old,
check it on every earlier evaluation set, register it, and move the alias only when nothing regressed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunesmith.data.validate import Examples
from tunesmith.errors import InputError
from tunesmith.inference.weights import base_model_path, inside_run
from tunesmith.lifecycle.gate import DEFAULT_MAX_REGRESSION, SetComparison, compare_scores, verdict
from tunesmith.lifecycle.report import write_update_report
from tunesmith.rundir import read_manifest
from tunesmith.store import ModelStore, Ref, parse_ref
from tunesmith.tasks import get_task
from tunesmith.tasks.classification import label_list


@dataclass
class UpdateResult:
    parent: str
    version: str
    run: Path
    metric: str
    max_regression: float
    comparisons: list[SetComparison]
    passed: bool
    reasons: list[str]
    alias: str | None
    promoted: bool
    forced: bool
    replay: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "comparisons"}
        d["run"] = str(self.run)
        d["comparisons"] = [c.to_dict() for c in self.comparisons]
        return d


def version_config(store: ModelStore, ref: str | Ref) -> dict[str, Any]:
    """A version's resolved config with its data paths pointing at the stored copies (what it was trained on)."""
    row = store.version(ref)
    view = store.checkout(ref, only=("run/config.yaml", "data/"))
    cfg = yaml.safe_load((view / "run" / "config.yaml").read_text(encoding="utf-8"))
    for split in ("train", "validation"):
        rel = row["data"].get(split)
        cfg["data"][split] = str(view / rel) if rel else None
    cfg["data"]["replay"], cfg["data"]["replay_exclude"] = [], None
    return cfg


def evaluation_examples(store: ModelStore, ref: str | Ref) -> Examples:
    """The validation examples a version was checked on, read again from the stored data (same split, seed)."""
    from tunesmith import config as cfgmod

    row = store.version(ref)
    if not row["data"].get("validation_set"):
        missing = ", ".join(row["data"].get("missing", [])) or "no data recorded"
        raise InputError(f"{row['name']}@v{row['version']}: its evaluation data was not stored ({missing})")
    cfg = cfgmod.from_dict(version_config(store, ref))
    return get_task(cfg.task)(cfg).read().val


def update(
    ref: str,
    data: str | Path,
    validation: str | Path | None = None,
    replay_ratio: float | None = None,
    max_regression: float = DEFAULT_MAX_REGRESSION,
    alias: str | None = None,
    force: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    store: ModelStore | str | Path | None = None,
) -> UpdateResult:
    """Fine-tune the version ``ref`` on new data (with replay of every earlier version's training data), compare
    old and new on every earlier evaluation set and the new data, register the child, move ``alias`` if the
    gate passes (or ``force``)."""
    from tunesmith.inference import load
    from tunesmith.pipeline.finetune import finetune

    st = store if isinstance(store, ModelStore) else ModelStore(store)
    parsed = parse_ref(ref)
    parent = st.version(parsed)
    name = parent["name"]
    alias = alias or parsed.alias
    parent_ref = Ref(name, version=parent["version"])
    parent_run = st.run_dir(parent_ref)
    manifest = read_manifest(parent_run)
    if not Path(data).exists():
        raise InputError(f"--data {data}: no such file or folder")
    sets, exclude_file = _earlier_sets(st, name)
    cfg = _child_config(st, parent_ref, parent_run, manifest, data, validation, replay_ratio, exclude_file, overrides)
    new_val = _read_new_data(cfg, manifest)
    child = finetune(cfg)

    metric = get_task(manifest["task"]).gate_metric
    old_model, new_model = load(parent_run), load(child.path)
    comparisons = [
        compare_scores(eval_set, metric, old_model.example_scores(ex), new_model.example_scores(ex), max_regression,
                       gated=True)
        for eval_set, ex in sets.items()
    ]  # fmt: skip
    new_old, new_new = old_model.example_scores(new_val), new_model.example_scores(new_val)
    comparisons.append(compare_scores("new data", metric, new_old, new_new, max_regression, gated=False))
    passed, reasons = verdict(comparisons, max_regression)
    result = UpdateResult(
        parent=str(parent_ref),
        version="",
        run=child.path,
        metric=metric,
        max_regression=max_regression,
        comparisons=comparisons,
        passed=passed,
        reasons=reasons,
        alias=alias,
        promoted=alias is not None and (passed or force),
        forced=force and not passed,
        replay=json.loads((child.path / "data_report.json").read_text())["stats"].get("replay", "no replay"),
    )
    write_update_report(child.path, result)
    _register(st, name, parent_ref, result)
    return result


def _earlier_sets(st: ModelStore, name: str) -> tuple[dict[str, Examples], Path]:
    """Every registered version's validation data, and a file of their example fingerprints (left out of replay,
    so no held-out example is trained on)."""
    earlier = [r for r in st.list(name) if r["data"].get("validation_set")]
    sets = {f"{name}@v{r['version']}": evaluation_examples(st, Ref(name, version=r["version"])) for r in earlier}
    exclude = sorted({f for ex in sets.values() for f in ex.fingerprints()})
    exclude_file = st.root / "replay" / f"{hashlib.sha256(json.dumps(exclude).encode()).hexdigest()[:24]}.json"
    exclude_file.parent.mkdir(parents=True, exist_ok=True)
    exclude_file.write_text(json.dumps(exclude), encoding="utf-8")
    return sets, exclude_file


def _child_config(
    st: ModelStore,
    parent_ref: Ref,
    parent_run: Path,
    manifest: dict[str, Any],
    data: str | Path,
    validation: str | Path | None,
    replay_ratio: float | None,
    exclude_file: Path,
    overrides: list[str] | tuple[str, ...],
) -> Any:
    """The parent's config, on the new data with replay, starting from the parent's weights (or adapter)."""
    from tunesmith import config as cfgmod

    cfg = yaml.safe_load((parent_run / "config.yaml").read_text(encoding="utf-8"))
    replay = [str(p) for v in st.lineage(parent_ref) if (p := st.data_path(v, "train")) is not None]
    cfg["data"].update(
        train=str(data),
        validation=str(validation) if validation else None,
        replay=replay,
        replay_exclude=str(exclude_file),
        max_train_examples=None,
    )
    if replay_ratio is not None:
        cfg["data"]["replay_ratio"] = replay_ratio
    if "label_map" in manifest:  # the new version keeps the parent's class ids, whatever order the new rows have
        cfg["data"]["label_names"] = label_list(manifest["label_map"])
    export = manifest["export"]
    if export.get("adapter"):
        cfg["model"] = base_model_path(manifest)
        cfg["lora"]["init_adapter"] = str(inside_run(parent_run, export["adapter"], "export.adapter"))
    else:
        cfg["model"] = str(inside_run(parent_run, export.get("path"), "export.path"))
    return cfgmod.from_dict(cfg, list(overrides))


def _register(st: ModelStore, name: str, parent_ref: Ref, result: UpdateResult) -> None:
    """The child as the next version with its parent, both sides' figures per evaluation set, the alias if due."""
    row = st.register(result.run, name, parent=str(parent_ref))
    result.version = f"{name}@v{row['version']}"
    for c in result.comparisons:
        eval_set = result.version if c.eval_set == "new data" else c.eval_set
        st.add_evaluation(result.version, eval_set, {"n": c.n, result.metric: c.new})
        st.add_evaluation(parent_ref, eval_set, {"n": c.n, result.metric: c.old})
    if result.promoted:
        with st.lock("aliases"):  # the gate compared against the parent: move only if the alias still points there
            now = st.aliases(name).get(result.alias)
            if now is None or now == st.version(parent_ref)["version"]:
                st.promote(result.version, result.alias)
            else:
                result.promoted = False
                result.notes.append(f"{name}@{result.alias} moved to v{now} while this update ran; it was left there")


def _read_new_data(cfg: Any, manifest: dict[str, Any]) -> Examples:
    """Read and check the update's data before anything is written; returns its validation examples. A classifier
    keeps its label set: the new training data (with replay) must hold exactly its classes."""
    data = get_task(cfg.task)(cfg).read()
    if "label_map" not in manifest:
        return data.val
    before = label_list(manifest["label_map"])
    if data.labels != before:
        missing = sorted(set(before) - set(data.labels))
        extra = sorted(set(data.labels) - set(before))
        raise InputError(
            f"{cfg.data.train}: an update keeps the model's classes ({', '.join(before)}); the training data "
            f"with replay has {', '.join(data.labels)}"
            + (f"; missing {', '.join(missing)} (raise --replay or add examples)" if missing else "")
            + (f"; new {', '.join(extra)} (train a new model for new classes)" if extra else "")
        )
    return data.val
