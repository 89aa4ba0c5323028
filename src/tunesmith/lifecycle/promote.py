"""Moving an alias through the gate: the candidate may not be worse than the alias's current version on any
evaluation set the current version has been measured on (sets the candidate lacks are measured first)."""

from __future__ import annotations

from typing import Any

from tunesmith.errors import TunesmithError
from tunesmith.lifecycle.gate import (
    DEFAULT_MAX_REGRESSION,
    SetComparison,
    compare_scores,
    regression_amount,
    verdict,
)
from tunesmith.store import ModelStore, Ref, parse_ref
from tunesmith.store.names import check_alias
from tunesmith.tasks import get_task


class GateRefused(TunesmithError):
    """The gate found a regression; nothing was moved."""

    exit_code = 3


def promote_checked(
    store: ModelStore,
    ref: str,
    alias: str,
    max_regression: float = DEFAULT_MAX_REGRESSION,
    force: bool = False,
) -> dict[str, Any]:
    with store.lock("aliases"):  # the gate and the move as one step: concurrent promotions queue here
        return _promote(store, ref, alias, max_regression, force)


def gate_check(
    store: ModelStore, ref: str, alias: str, max_regression: float = DEFAULT_MAX_REGRESSION
) -> dict[str, Any]:
    """What the gate would say of moving ``alias`` to ``ref``, without moving it (sets the candidate lacks are
    measured and recorded): ``current`` version, ``passed``, ``reasons`` and the ``comparisons`` per set."""
    check_alias(alias)
    cand = store.version(ref)
    name = cand["name"]
    current_version = store.aliases(name).get(alias)
    comparisons: list[SetComparison] = []
    if current_version is not None and current_version != cand["version"]:
        comparisons = _compare(store, Ref(name, version=current_version), Ref(name, version=cand["version"]))
    passed, reasons = verdict(comparisons, max_regression) if comparisons else (True, [])
    return {"name": name, "alias": alias, "version": cand["version"], "current": current_version, "passed": passed,
            "reasons": reasons, "comparisons": comparisons, "max_regression": max_regression}  # fmt: skip


def _promote(store: ModelStore, ref: str, alias: str, max_regression: float, force: bool) -> dict[str, Any]:
    gate = gate_check(store, ref, alias, max_regression)
    name, passed, reasons = gate["name"], gate["passed"], gate["reasons"]
    if not passed and not force:
        raise GateRefused(
            f"{name}@{alias} stays at v{gate['current']}: " + "; ".join(reasons) + " (--force overrides the gate)"
        )
    moved = store.promote(Ref(name, version=gate["version"]), alias)
    moved["gate"] = {"passed": passed, "forced": force and not passed, "reasons": reasons}
    moved["comparisons"] = [c.to_dict() for c in gate["comparisons"]]
    return moved


def _compare(store: ModelStore, old: Ref, new: Ref) -> list[SetComparison]:
    """Recorded figures where both versions have them; the sets only the old one has are measured now."""
    from tunesmith.inference import load
    from tunesmith.lifecycle.update import evaluation_examples

    task = store.version(old)["task"]
    metric = get_task(task).gate_metric
    e_old, e_new = store.evaluations(old), store.evaluations(new)
    out, models = [], {}
    for eval_set, m_old in e_old.items():
        if metric not in m_old:
            continue
        if metric in e_new.get(eval_set, {}):
            o, n = m_old[metric], e_new[eval_set][metric]
            count = int(m_old.get("n", 0))
            out.append(_recorded(eval_set, metric, o, n, count))
            continue
        examples = evaluation_examples(store, parse_ref(eval_set))
        for ref in (old, new):
            models.setdefault(str(ref), load(store.run_dir(ref)))
        so = models[str(old)].example_scores(examples)
        sn = models[str(new)].example_scores(examples)
        comp = compare_scores(eval_set, metric, so, sn, DEFAULT_MAX_REGRESSION, gated=True)
        store.add_evaluation(new, eval_set, {"n": comp.n, metric: comp.new})
        out.append(comp)
    return out


def _recorded(eval_set: str, metric: str, old: float, new: float, n: int) -> SetComparison:
    regression = regression_amount(metric, old, new)
    return SetComparison(eval_set, metric, n, old, new, new - old, float("nan"), float("nan"), regression, True, True)
