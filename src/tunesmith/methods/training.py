"""What the methods that train through the model's forward (full, lora) share: the optional head warm start,
then fit(); and the plain Hugging Face export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.methods.base import Job
from tunesmith.methods.head import train_head
from tunesmith.train.loop import fit
from tunesmith.train.result import FitResult


def fine_tune(job: Job, warm_start_head: bool | None, wrap: Callable[[Any], Any] | None = None) -> FitResult:
    """Fit the head on cached frozen features first where the task has them (the frozen encoder with a trained
    head: the candidate fine-tuning must beat), start fine-tuning from it (``warm_start_head``) or from the fresh
    head, ``wrap`` the model (adapters), run fit() at the resolved ``train.learning_rate``, then keep the better
    of the two on the selection split (``classifier.keep_better``)."""
    frozen_head = None
    if job.features is not None:
        head = job.task.feature_head(job.model)
        fresh = None if warm_start_head is not False else copy_state(head.state_dict())  # None: on by default
        # The warm start keeps the head with the lowest selection loss: fine-tuning from a calibrated head moves the
        # encoder least (linear probing, then fine-tuning). Its record names that metric.
        job.warm_start = train_head(
            job, job.cfg.head.learning_rate, job.cfg.head.epochs, None, metric="loss", desc="warm start"
        )
        frozen_head = copy_state(head.state_dict())
        if fresh is not None:
            head.load_state_dict(fresh)
    if wrap is not None:
        job.model = wrap(job.model)
    result = _fit(job)
    result.warm_start = job.warm_start.best if job.warm_start is not None else None
    if frozen_head is not None and job.warm_start is not None:
        keep_better(job, result, frozen_head)
    elif job.untouched is not None:
        keep_untouched(job, result)
    return result


UNTOUCHED = ("pre-trained model", "the pre-trained model as it is")
FROZEN = ("frozen encoder + head", "the frozen encoder with a trained head")


def keep_untouched(job: Job, tuned: FitResult) -> None:
    """Tasks without a head (embedding, causal LM): the pre-trained model itself is the candidate fine-tuning must
    beat on the selection split, on the evaluator's metric or on the task's ``job.judge`` (a causal LM's written
    answers); when it wins and ``classifier.keep_better`` is on, the run keeps it."""
    assert job.untouched is not None
    judged, metric = tuned, None
    if job.judge is not None:
        judged, metric = FitResult(best={**(tuned.best or {}), **job.judge.score(job.model)}), job.judge.metric
    candidate = FitResult(best=job.untouched)
    if choose_kept(job, judged, candidate, UNTOUCHED, metric) and job.cfg.classifier.keep_better:
        assert job.rebuild is not None
        job.model = job.rebuild()
    tuned.kept = job.kept


def keep_better(job: Job, tuned: FitResult, frozen_head: dict[str, Any]) -> None:
    """Compare the tuned model with the frozen encoder + head (``job.warm_start``) on the selection split; when the
    latter wins and ``classifier.keep_better`` is on, ``job.model`` becomes the pre-trained model with that head.
    The record goes into ``job.kept`` and ``tuned.kept``."""
    assert job.warm_start is not None
    if choose_kept(job, tuned, job.warm_start) and job.cfg.classifier.keep_better and job.rebuild is not None:
        job.model = job.rebuild()
        job.task.feature_head(job.model).load_state_dict(frozen_head)
    tuned.kept = job.kept


def train_everything(job: Job) -> list[str]:
    """Every weight trains, but the token-embedding matrix where ``train.freeze_embeddings`` keeps it as
    pre-trained: MiniLM's is 11.7M of its 22.7M weights, and its optimizer update over the whole matrix each step
    was about a quarter of a step on 2 CPU cores, while few of its rows meet a small data set. Returns what stays
    as pre-trained, for the run's record (``FitResult.frozen``)."""
    for p in job.model.parameters():
        p.requires_grad_(True)
    if not job.cfg.train.freeze_embeddings:
        return []
    embeddings = getattr(job.model, "get_input_embeddings", lambda: None)()
    if embeddings is None:
        raise ConfigError(
            f"train.freeze_embeddings: the model {job.cfg.model!r} has no token-embedding matrix; set it false"
        )
    count = 0
    for p in embeddings.parameters():
        p.requires_grad_(False)
        count += p.numel()
    shown = f"{count / 1e6:.1f}M" if count >= 100_000 else f"{count:,}"
    return [f"token embeddings ({shown} weights)"]


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in state.items()}


def choose_kept(
    job: Job, tuned: FitResult, frozen: FitResult, names: tuple[str, str] = FROZEN, metric: str | None = None
) -> bool:
    """Records in ``job.kept`` which model is better on the selection split: the fine-tuned one must beat the
    candidate (``names``: the frozen encoder with its trained head, or the untouched pre-trained model) on
    ``metric`` (the selection metric, ``train.metric``, unless given; ties go to the loss). True: keep the
    candidate."""
    short, long = names
    if job.no_choice:
        job.kept = {"model": "fine-tuned", "why": job.no_choice, "no_choice": True}
        return False
    metric = metric or job.cfg.train.metric
    t, f = tuned.best, frozen.best
    if t is None or f is None or metric not in t or metric not in f:
        job.kept = {"model": "fine-tuned", "why": "no selection figures to compare"}
        return False
    key = (lambda r: (-r[metric],)) if metric == "loss" else (lambda r: (r[metric], -r["loss"]))
    better = key(t) > key(f)
    figures = f"{metric} {_fmt(t[metric], metric)} fine-tuned against {_fmt(f[metric], metric)} {short}"
    if (
        metric != "loss"
        and t[metric] != f[metric]
        and logistic_heads(t, f)
        and one_example_apart(t, f, n := len(job.val_items))
    ):
        better = t["loss"] < f["loss"]
        figures += (
            f"; the two differ by at most one of the {n} selection examples, a tie, so the selection loss decided: "
            f"{t['loss']:.4f} against {f['loss']:.4f}"
        )
    elif t[metric] == f[metric] and metric != "loss":
        figures += f"; tied, so the selection loss decided: {t['loss']:.4f} against {f['loss']:.4f}"
    if better:
        job.kept = {
            "model": "fine-tuned",
            "why": f"fine-tuning beat {long} ({figures})",
        }
        return False
    keep = job.cfg.classifier.keep_better
    job.kept = {
        "model": short if keep else "fine-tuned",
        "why": f"fine-tuning did not beat {long} on the selection split ({figures})"
        + ("" if keep else "; kept the fine-tuned model as classifier.keep_better is false"),
        "fine_tuned_selection": {k: t[k] for k in t if isinstance(t[k], float)},
        "frozen_selection": {k: f[k] for k in f if isinstance(f[k], float)},
    }
    return True


def logistic_heads(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Both selection records are logistic heads' (they carry the ``C`` they were fitted with: the contrastive
    method's two candidates), with the accuracy and loss ``one_example_apart`` reads."""
    return all(k in r for r in (a, b) for k in ("accuracy", "loss", "C"))


def one_example_apart(a: dict[str, Any], b: dict[str, Any], n: int) -> bool:
    """True when two logistic heads' selection records (``logistic_heads``) differ by at most one correctly
    classified example. On a few-shot
    selection split (18 examples for 17 classes) that is 6 accuracy points and more of macro-F1, noise that the
    selection loss, a continuous score of every example, reads better: on 8 intents examples per class the
    contrastive encoder had 12 right against 13 with loss 1.20 against 1.63, and scored 78.3% against the frozen
    head's 76.9% on the validation data.

    Only between heads fitted the same way: a fine-tuned network's probabilities are sharper than a logistic
    head's, so its loss is higher at the same accuracy. On Fashion-MNIST the fine-tuned model led by one of 150
    selection examples (macro-F1 90.8% against 90.0%) with loss 0.363 against 0.317; the loss would have kept the
    frozen head, 82.2% on the validation data against the fine-tuned model's 85.6%."""
    return n > 0 and round(abs(a["accuracy"] - b["accuracy"]) * n) <= 1


def _fmt(value: float, metric: str) -> str:
    return f"{value:.4f}" if metric == "loss" else f"{100 * value:.1f}%"


def _fit(job: Job) -> FitResult:
    return fit(
        job.model,
        job.train_items,
        collate=job.collate,
        loss_fn=job.task.loss,
        cfg=job.cfg.train,
        evaluate=job.evaluate,
        run_dir=job.run_dir,
        resume=job.resume,
        lengths=job.lengths,
        accelerator=job.accelerator,
        on_eval=job.on_eval,
        mmap_threshold=job.task.mmap_threshold,
    )
