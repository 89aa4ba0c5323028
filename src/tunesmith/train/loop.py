"""fit(): the one training loop, on Hugging Face Accelerate (CPU, one GPU or several processes alike).

Read it top to bottom: ``fit`` sets up (``_Loop``), resumes, then runs named steps until the run ends:
``step`` (micro-batches -> finite check -> backward -> clip -> optimizer), ``evaluate`` (early stopping,
best-keeping), ``checkpoint``, ``stop`` (signals); ``finish`` puts the best weights back. The state that a
checkpoint saves and resume restores is one small dataclass, ``FitState``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tunesmith.config import TrainConfig
from tunesmith.errors import TrainingDiverged, TunesmithError
from tunesmith.train.batching import epoch_batches, shard
from tunesmith.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, save_weights
from tunesmith.train.fast_cpu import (
    cpu_has_fast_bf16,
    restore_standard_modules,
    return_freed_memory_to_the_system,
    speed_up_for_cpu_training,
)
from tunesmith.train.logging import RunLogger
from tunesmith.train.optim import make_optimizer, make_scheduler
from tunesmith.train.result import FitResult


class Interrupted(TunesmithError):
    """SIGINT or SIGTERM arrived; a checkpoint was saved and the run can be resumed."""

    exit_code = 1


def make_accelerator() -> Any:
    from accelerate import Accelerator

    # Mixed precision is applied by fit() around the training forward only: Accelerate's own would also wrap
    # model.forward for evaluation, and reported metrics must come from the fp32 model that is exported.
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")


def resolve_precision(setting: str, cuda: bool) -> str:
    """auto: bf16 where the hardware computes it natively (bf16 GPUs; CPUs with AVX512-BF16 or AMX), else fp32."""
    if setting == "fp32":
        return "no"
    if setting == "bf16":
        return "bf16"
    fast = torch.cuda.is_bf16_supported() if cuda else cpu_has_fast_bf16()
    return "bf16" if fast else "no"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: the parameters that get gradients, plus the persistent buffers (batch-norm
    running statistics move in train mode; without them a restored "best" model would pair one step's weights
    with another step's statistics)."""
    state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    persistent = model.state_dict(keep_vars=True).keys()
    state.update({n: b for n, b in model.named_buffers() if n in persistent})
    return state


def _batch_norm_eval(model: torch.nn.Module) -> None:
    """Batch-norm layers normalise with their running statistics and leave them as they are."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _better(metric: str, new: float, old: float | None, new_loss: float | None, old_loss: float | None) -> bool:
    """train.metric decides; a tie on it (accuracy and F1 move in steps on small data) goes to the lower loss."""
    if old is None:
        return True
    if metric == "loss" or new != old:
        return new < old if metric == "loss" else new > old
    return new_loss is not None and old_loss is not None and new_loss < old_loss


@contextlib.contextmanager
def _stop_on_signals(flag: dict[str, Any]):
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves a checkpoint and stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


CHECKPOINT_SECONDS = 300.0  # train.checkpoint_every 0: at the first evaluation after this much training


@dataclass
class FitState:
    """Where training is: what a checkpoint saves and resume restores."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    best_loss: float | None = None


class _Loop:
    """The parts of one fit() call: the prepared model and optimizer, the schedule, the logger."""

    def __init__(self, model: torch.nn.Module, n: int, cfg: TrainConfig, accelerator: Any, run_dir: Path | None,
                 desc: str, mmap_threshold: int) -> None:  # fmt: skip
        open_keys = [
            k for k in ("epochs", "batch_size", "learning_rate", "gradient_accumulation") if getattr(cfg, k) is None
        ]
        if open_keys:
            raise ValueError(f"fit() takes a resolved config (pipeline.resolve); open: {', '.join(open_keys)}")
        acc = accelerator or make_accelerator()
        self.acc, self.cfg = acc, cfg
        self.world, self.rank, self.main = acc.num_processes, acc.process_index, acc.is_main_process
        self.epochs = cfg.epochs
        self.steps_per_epoch = math.ceil(n / cfg.batch_size)
        planned = self.steps_per_epoch * self.epochs
        self.total = planned if cfg.max_steps is None else min(cfg.max_steps, planned)
        self.eval_every = cfg.eval_every if cfg.eval_every > 0 else self.steps_per_epoch  # 0: once an epoch
        self.ckpt_every = cfg.checkpoint_every if cfg.checkpoint_every > 0 else self.eval_every  # 0: at evaluations
        # With checkpoint_every 0, an evaluation writes a checkpoint only once CHECKPOINT_SECONDS of training passed
        # since the last one: a crash loses at most that much, and a short run spends no time writing state.
        self.ckpt_seconds = 0.0 if cfg.checkpoint_every > 0 else CHECKPOINT_SECONDS
        self.last_ckpt = time.perf_counter()
        self.ckpt_root = run_dir / "checkpoints" if run_dir is not None else None
        self.on_cpu = acc.device.type == "cpu"
        self.bf16 = resolve_precision(cfg.precision, not self.on_cpu) == "bf16"
        if self.on_cpu:
            speed_up_for_cpu_training(model)  # undone at the end, so what is saved is a standard model
            return_freed_memory_to_the_system(mmap_threshold)
        optimizer = make_optimizer(model, cfg.learning_rate, cfg.weight_decay)
        self.scheduler = make_scheduler(optimizer, cfg.scheduler, int(cfg.warmup_ratio * self.total), self.total)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.inner = acc.unwrap_model(self.model)
        params = {k: v for k, v in dataclasses.asdict(cfg).items() if isinstance(v, int | float | str | bool)}
        folder = run_dir / "logs" if run_dir is not None and self.main else None
        self.logger = RunLogger(folder, desc, cfg.report_to, params)
        self.best_weights: dict[str, torch.Tensor] | None = None

    def resume(self, st: FitState, res: FitResult) -> FitState:
        ckpt = latest_checkpoint(self.ckpt_root) if self.ckpt_root is not None else None
        if ckpt is None:
            return st
        weights, state, meta = load_checkpoint(ckpt)
        self.inner.load_state_dict(weights, strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        res.history = meta["history"]
        res.resumed_from = str(ckpt)
        restored = FitState(**meta["state"])
        self.logger.rewind(restored.step)
        self.logger.event("resume", checkpoint=str(ckpt), step=restored.step)
        return restored

    def checkpoint_due(self, st: FitState) -> bool:
        return st.step % self.ckpt_every == 0 and time.perf_counter() - self.last_ckpt >= self.ckpt_seconds

    def checkpoint(self, st: FitState, res: FitResult) -> None:
        self.last_ckpt = time.perf_counter()
        if self.ckpt_root is None:
            return
        if self.main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
            }
            meta = {"state": asdict(st), "history": res.history}
            save_checkpoint(
                self.ckpt_root, st.step, trainable_state(self.inner), state, meta, self.cfg.keep_checkpoints
            )
        self.acc.wait_for_everyone()

    def last_good(self) -> str:
        found = latest_checkpoint(self.ckpt_root) if self.ckpt_root is not None else None
        return str(found) if found else "none (no checkpoint had been written yet)"

    def diverged(self, what: str, value: float, st: FitState, extra: str = "") -> TrainingDiverged:
        self.optimizer.zero_grad(set_to_none=True)
        return TrainingDiverged(
            f"the {what} became {value} at step {st.step + 1}{extra}; no update was applied. "
            f"Last good checkpoint: {self.last_good()}."
        )

    def step(self, st: FitState, res: FitResult, batch: list[int], items: list, collate: Callable, loss_fn: Callable,
             n_batches: int, t0: float) -> float:  # fmt: skip
        """One optimizer step over ``batch`` (micro-batches, each process its shard); returns the mean loss."""
        acc, cfg, model = self.acc, self.cfg, self.model
        t_step = time.perf_counter()
        model.train()
        if cfg.freeze_batch_norm:
            _batch_norm_eval(model)
        accumulation = cfg.gradient_accumulation
        micro = [m for m in (batch[i::accumulation] for i in range(accumulation)) if m]
        loss_total = 0.0
        samples_before, positions_before = res.samples, res.positions
        for j, mb in enumerate(micro):
            local = shard(mb, self.rank, self.world)
            inputs = {k: v.to(acc.device) for k, v in collate([items[i] for i in local]).items()}
            _count(inputs, res, len(local))
            sync = contextlib.nullcontext() if j == len(micro) - 1 else acc.no_sync(model)
            with sync, torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = loss_fn(model, inputs)
            bad = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0], device=acc.device)
            if self.world > 1:
                bad = acc.reduce(bad, "sum")
            if bad.item() > 0:
                epoch = f" (epoch {st.epoch + 1})"
                raise self.diverged(
                    "loss", loss.item(), st, epoch + "; try a lower train.learning_rate or check the data"
                )
            # Each process's mean loss, weighted so that DDP's average equals the global-batch mean.
            acc.backward(loss * (len(local) * self.world / len(batch)))
            loss_total += loss.item() * len(local) / len(batch)
        if cfg.max_grad_norm > 0:
            norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            if not torch.isfinite(torch.as_tensor(norm)):
                raise self.diverged("gradient norm", float(norm), st)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        step_time = time.perf_counter() - t_step
        res.step_seconds += step_time
        st.step += 1
        st.batch += 1
        if self.world > 1:
            loss_total = acc.reduce(torch.tensor([loss_total], device=acc.device), "sum").item()
        rate = res.samples * self.world / max(time.perf_counter() - t0, 1e-9)
        self.logger.step(
            st.step, st.epoch + st.batch / n_batches, loss_total, self.scheduler.get_last_lr()[0], rate,
            seconds=round(step_time, 4), samples=res.samples - samples_before,
            positions=res.positions - positions_before,
        )  # fmt: skip
        return loss_total

    def evaluate(self, st: FitState, res: FitResult, evaluate: Callable, on_eval: Callable | None, n_batches: int):
        """Evaluate, keep the best weights (on disk with a run directory), count evaluations without gain."""
        metrics = {k: float(v) for k, v in evaluate(self.inner).items()}
        record = {"step": st.step, "epoch": round(st.epoch + st.batch / n_batches, 3), **metrics}
        res.history.append(record)
        self.logger.eval(record)
        metric = self.cfg.metric
        if metric is None:
            raise ValueError("fit() with an evaluation needs train.metric (pipeline.resolve sets the task's)")
        if _better(metric, metrics[metric], st.best, metrics.get("loss"), st.best_loss):
            st.best, st.best_step, st.bad_evals = metrics[metric], st.step, 0
            st.best_loss = metrics.get("loss")
            if self.ckpt_root is None:
                self.best_weights = {k: v.detach().clone() for k, v in trainable_state(self.inner).items()}
            elif self.main:
                save_weights(self.ckpt_root / "best.safetensors", trainable_state(self.inner))
        else:
            st.bad_evals += 1
        if self.cfg.early_stopping_patience and st.bad_evals >= self.cfg.early_stopping_patience:
            res.stopped = "early_stopping"
        if on_eval is not None and on_eval(record):
            res.stopped = "stopped_by_hook"

    def finish(self, st: FitState, res: FitResult, t0: float) -> FitResult:
        """The best weights go back into the model; the figures are summed over processes."""
        if self.on_cpu:
            restore_standard_modules(self.inner)
        if st.best_step and st.best_step != st.step:
            self.acc.wait_for_everyone()
            if self.best_weights is None and self.ckpt_root is not None:
                from safetensors.torch import load_file

                self.best_weights = load_file(str(self.ckpt_root / "best.safetensors"))
            if self.best_weights is not None:
                self.inner.load_state_dict(self.best_weights, strict=False)
        res.train_seconds = time.perf_counter() - t0
        res.samples *= self.world  # each process counted its own share
        if self.world > 1:
            both = torch.tensor([res.tokens, res.positions], dtype=torch.float64, device=self.acc.device)
            counts = self.acc.reduce(both, "sum")
            res.tokens, res.positions = int(counts[0].item()), int(counts[1].item())
        res.steps, res.best_step = st.step, st.best_step
        res.best = next((h for h in res.history if h["step"] == st.best_step), None)
        res.epochs_run = round(st.step / self.steps_per_epoch, 3)
        if st.step >= self.total and res.stopped == "completed" and self.cfg.max_steps is not None:
            res.stopped = "max_steps"
        self.logger.close()
        return res


def _count(inputs: dict[str, Any], res: FitResult, items: int) -> None:
    """Examples, tokens and positions of one micro-batch (``items`` of the training list), taking out the counts a
    collate may add: ``examples`` where an item holds several (a contrastive group of texts), ``real_tokens`` and
    ``positions`` where rows are packed."""
    examples = inputs.pop("examples", None)
    res.samples += int(examples) if examples is not None else items
    real = inputs.pop("real_tokens", None)
    positions = inputs.pop("positions", None)
    if real is not None:  # packed rows (and pairs of inputs) say how many of their positions are real tokens
        res.tokens += int(real)
        res.positions += int(positions if positions is not None else inputs["input_ids"].numel())
    elif "attention_mask" in inputs:
        res.tokens += int(inputs["attention_mask"].sum())
        res.positions += int(inputs["attention_mask"].numel())


def fit(
    model: torch.nn.Module,
    train_items: list[dict[str, Any]],
    *,
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    cfg: TrainConfig,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    lengths: list[int] | None = None,
    accelerator: Any = None,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    desc: str = "train",
    mmap_threshold: int = 1 << 20,
) -> FitResult:
    """Train ``model`` in place at ``cfg.learning_rate`` (a resolved config); returns the history and leaves the
    best weights in the model."""
    loop = _Loop(model, len(train_items), cfg, accelerator, run_dir, desc, mmap_threshold)
    res = FitResult(precision="bf16" if loop.bf16 else "fp32", metric=cfg.metric if evaluate is not None else None)
    st = loop.resume(FitState(), res) if resume else FitState()
    stop_flag: dict[str, Any] = {}
    progress = loop.logger.progress(loop.total, st.step, disable=not loop.main)
    loop.logger.event("start", step=st.step, total_steps=loop.total, epochs=loop.epochs)  # progress and ETA readers
    t0 = time.perf_counter()
    with _stop_on_signals(stop_flag):
        while st.epoch < loop.epochs and st.step < loop.total and res.stopped == "completed":
            batches = epoch_batches(lengths, len(train_items), cfg.batch_size, cfg.seed, st.epoch, cfg.group_by_length)
            while st.batch < len(batches) and st.step < loop.total:
                loss = loop.step(st, res, batches[st.batch], train_items, collate, loss_fn, len(batches), t0)
                progress.update(loss, res.samples * loop.world / max(time.perf_counter() - t0, 1e-9))
                end_of_run = st.step >= loop.total
                if evaluate is not None and (st.step % loop.eval_every == 0 or end_of_run):
                    loop.evaluate(st, res, evaluate, on_eval, len(batches))
                epoch_done = st.batch >= len(batches)
                if epoch_done:
                    st.epoch, st.batch = st.epoch + 1, 0
                finished = end_of_run or res.stopped != "completed"
                if stop_flag or (loop.checkpoint_due(st) and not finished):
                    loop.checkpoint(st, res)  # a finished run is exported instead; resuming it would redo the steps
                if stop_flag:
                    progress.close()
                    raise Interrupted(
                        f"stopped by {stop_flag['signal']} at step {st.step}; checkpoint saved in "
                        f"{loop.last_good()}. Continue with --resume."
                    )
                if epoch_done or res.stopped != "completed":
                    break
    progress.close(_stop_reason(res, st, loop.total, desc))
    return loop.finish(st, res, t0)


def _stop_reason(res: FitResult, st: FitState, total: int, desc: str) -> str:
    """What a bar that ends before its total says (nothing when it ran to the end)."""
    if st.step >= total:
        return f"{desc} done" if desc == "warm start" else ""
    if res.stopped == "early_stopping":
        return f"early stop at epoch {st.epoch}: no gain on the selection split; best step {st.best_step}"
    if res.stopped == "stopped_by_hook":
        return "stopped by the search (pruned)"
    return res.stopped.replace("_", " ")
