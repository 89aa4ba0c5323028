"""fit(): the one training loop, on Hugging Face Accelerate (CPU, one GPU or several processes alike).

Read it top to bottom: setup, resume, the epoch loop (micro-batches -> finite check -> backward ->
clip -> step), evaluation with early stopping and best-keeping, checkpoints, signals.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


class Interrupted(TunesmithError):
    """SIGINT or SIGTERM arrived; a checkpoint was saved and the run can be resumed."""

    exit_code = 1


@dataclass
class FitResult:
    steps: int = 0
    epochs_run: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    best_step: int = 0
    stopped: str = "completed"
    train_seconds: float = 0.0
    step_seconds: float = 0.0  # forward, backward and optimizer only: what throughput is measured on
    samples: int = 0
    tokens: int = 0  # real (non-padding) tokens trained on
    positions: int = 0  # token positions computed, padding included
    resumed_from: str | None = None
    precision: str = "fp32"

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.step_seconds if self.step_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.step_seconds if self.step_seconds else 0.0

    @property
    def padding_share(self) -> float:
        """Share of computed positions that were padding."""
        return 1.0 - self.tokens / self.positions if self.positions else 0.0


def make_accelerator(cfg: TrainConfig) -> Any:
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


def _better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new < old if metric == "loss" else new > old


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


def fit(
    model: torch.nn.Module,
    train_items: list[dict[str, Any]],
    *,
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    loss_fn: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    cfg: TrainConfig,
    lr: float,
    epochs: int | None = None,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    lengths: list[int] | None = None,
    accelerator: Any = None,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    desc: str = "train",
    mmap_threshold: int = 1 << 20,
) -> FitResult:
    """Train ``model`` in place; returns the history and leaves the best weights in the model."""
    # --- setup ------------------------------------------------------------------------------
    acc = accelerator or make_accelerator(cfg)
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    epochs = epochs or cfg.epochs or 1
    n = len(train_items)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * epochs if cfg.max_steps is None else min(cfg.max_steps, steps_per_epoch * epochs)
    eval_every = cfg.eval_every or steps_per_epoch
    ckpt_every = cfg.checkpoint_every or eval_every
    ckpt_root = run_dir / "checkpoints" if run_dir is not None else None

    on_cpu = acc.device.type == "cpu"
    bf16 = resolve_precision(cfg.precision, not on_cpu) == "bf16"
    if on_cpu:
        speed_up_for_cpu_training(model)  # undone at the end, so what is saved is a standard model
        return_freed_memory_to_the_system(mmap_threshold)
    optimizer = make_optimizer(model, lr, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.scheduler, int(cfg.warmup_ratio * total), total)
    model, optimizer = acc.prepare(model, optimizer)
    inner = acc.unwrap_model(model)
    logger = RunLogger(run_dir / "logs" if run_dir is not None and main else None, desc)
    res = FitResult(precision="bf16" if bf16 else "fp32")
    st: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None, "best_step": 0, "bad_evals": 0}
    best_weights: dict[str, torch.Tensor] | None = None

    # --- resume -----------------------------------------------------------------------------
    if resume and ckpt_root is not None:
        ckpt = latest_checkpoint(ckpt_root)
        if ckpt is not None:
            weights, state, meta = load_checkpoint(ckpt)
            inner.load_state_dict(weights, strict=False)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            st, res.history = meta["state"], meta["history"]
            res.resumed_from = str(ckpt)
            logger.event("resume", checkpoint=str(ckpt), step=st["step"])

    def checkpoint() -> Path | None:
        if ckpt_root is None:
            return None
        path = None
        if main:
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
            }
            meta = {"state": st, "history": res.history}
            path = save_checkpoint(ckpt_root, st["step"], trainable_state(inner), state, meta, cfg.keep_checkpoints)
        acc.wait_for_everyone()
        return path

    def last_good() -> str:
        found = latest_checkpoint(ckpt_root) if ckpt_root is not None else None
        return str(found) if found else "none (no checkpoint had been written yet)"

    # --- the loop ---------------------------------------------------------------------------
    stop_flag: dict[str, Any] = {}
    progress = logger.progress(total, st["step"], disable=not main)
    t0 = time.perf_counter()
    with _stop_on_signals(stop_flag):
        while st["epoch"] < epochs and st["step"] < total and res.stopped == "completed":
            batches = epoch_batches(lengths, n, cfg.batch_size, cfg.seed, st["epoch"], cfg.group_by_length)
            while st["batch"] < len(batches) and st["step"] < total:
                batch = batches[st["batch"]]
                t_step = time.perf_counter()
                model.train()
                if cfg.freeze_batch_norm:
                    _batch_norm_eval(model)
                accumulation = cfg.gradient_accumulation or 1
                micro = [batch[i::accumulation] for i in range(accumulation)]
                micro = [m for m in micro if m]
                loss_total = 0.0
                samples_before, positions_before = res.samples, res.positions
                for j, mb in enumerate(micro):
                    local = shard(mb, rank, world)
                    inputs = {k: v.to(acc.device) for k, v in collate([train_items[i] for i in local]).items()}
                    real = inputs.pop("real_tokens", None)
                    if real is not None:  # packed rows say how many of their positions are real tokens
                        res.tokens += int(real)
                        res.positions += int(inputs["input_ids"].numel())
                    elif "attention_mask" in inputs:
                        res.tokens += int(inputs["attention_mask"].sum())
                        res.positions += int(inputs["attention_mask"].numel())
                    sync = contextlib.nullcontext() if j == len(micro) - 1 else acc.no_sync(model)
                    with sync, torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=bf16):
                        loss = loss_fn(model, inputs)
                    bad = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0], device=acc.device)
                    if world > 1:
                        bad = acc.reduce(bad, "sum")
                    if bad.item() > 0:
                        optimizer.zero_grad(set_to_none=True)
                        raise TrainingDiverged(
                            f"the loss became {loss.item()} at step {st['step'] + 1} (epoch {st['epoch'] + 1}); "
                            f"no update was applied. Last good checkpoint: {last_good()}. Try a lower "
                            "train.learning_rate or check the data."
                        )
                    # Each process's mean loss, weighted so that DDP's average equals the global-batch mean.
                    acc.backward(loss * (len(local) * world / len(batch)))
                    loss_total += loss.item() * len(local) / len(batch)
                    res.samples += len(local)
                if cfg.max_grad_norm > 0:
                    norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    if not torch.isfinite(torch.as_tensor(norm)):
                        optimizer.zero_grad(set_to_none=True)
                        raise TrainingDiverged(
                            f"the gradient norm became {float(norm)} at step {st['step'] + 1}; no update was applied. "
                            f"Last good checkpoint: {last_good()}."
                        )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step_time = time.perf_counter() - t_step
                res.step_seconds += step_time
                st["step"] += 1
                st["batch"] += 1
                if world > 1:
                    loss_total = acc.reduce(torch.tensor([loss_total], device=acc.device), "sum").item()
                lr_now = scheduler.get_last_lr()[0]
                elapsed = time.perf_counter() - t0
                logger.step(
                    st["step"],
                    st["epoch"] + st["batch"] / len(batches),
                    loss_total,
                    lr_now,
                    res.samples * world / max(elapsed, 1e-9),
                    seconds=round(step_time, 4),
                    samples=res.samples - samples_before,
                    positions=res.positions - positions_before,
                )
                progress.update(loss_total, res.samples * world / max(elapsed, 1e-9))

                # --- evaluation, early stopping, keeping the best --------------------------------
                end_of_run = st["step"] >= total
                if evaluate is not None and (st["step"] % eval_every == 0 or end_of_run):
                    metrics = {k: float(v) for k, v in evaluate(inner).items()}
                    record = {
                        "step": st["step"],
                        "epoch": round(st["epoch"] + st["batch"] / len(batches), 3),
                        **metrics,
                    }
                    res.history.append(record)
                    logger.eval(record)
                    metric = cfg.metric or "loss"  # a bare TrainConfig has no task to pick it
                    value = metrics[metric]
                    if _better(metric, value, st["best"]):
                        st.update(best=value, best_step=st["step"], bad_evals=0)
                        # The best weights wait on disk when there is a run directory, not as a copy in memory.
                        if ckpt_root is None:
                            best_weights = {k: v.detach().clone() for k, v in trainable_state(inner).items()}
                        elif main:
                            save_weights(ckpt_root / "best.safetensors", trainable_state(inner))
                    else:
                        st["bad_evals"] += 1
                    if cfg.early_stopping_patience and st["bad_evals"] >= cfg.early_stopping_patience:
                        res.stopped = "early_stopping"
                    if on_eval is not None and on_eval(record):
                        res.stopped = "stopped_by_hook"
                epoch_done = st["batch"] >= len(batches)
                if epoch_done:
                    st["epoch"], st["batch"] = st["epoch"] + 1, 0
                finished = end_of_run or res.stopped != "completed"
                if stop_flag or (st["step"] % ckpt_every == 0 and not finished):
                    checkpoint()  # a finished run is exported instead; resuming it would redo the same steps
                if stop_flag:
                    progress.close()
                    raise Interrupted(
                        f"stopped by {stop_flag['signal']} at step {st['step']}; checkpoint saved in "
                        f"{last_good()}. Continue with --resume."
                    )
                if epoch_done or res.stopped != "completed":
                    break
    progress.close()

    # --- finish: the best weights go back into the model ------------------------------------------
    if on_cpu:
        restore_standard_modules(inner)
    if st["best_step"] and st["best_step"] != st["step"]:
        acc.wait_for_everyone()
        if best_weights is None and ckpt_root is not None:
            from safetensors.torch import load_file

            best_weights = load_file(str(ckpt_root / "best.safetensors"))
        if best_weights is not None:
            inner.load_state_dict(best_weights, strict=False)
    res.train_seconds = time.perf_counter() - t0
    res.samples *= world  # each process counted its own share
    if world > 1:
        counts = acc.reduce(torch.tensor([res.tokens, res.positions], dtype=torch.float64, device=acc.device), "sum")
        res.tokens, res.positions = int(counts[0].item()), int(counts[1].item())
    res.steps, res.best, res.best_step = (
        st["step"],
        (next((h for h in res.history if h["step"] == st["best_step"]), None)),
        st["best_step"],
    )
    res.epochs_run = round(st["step"] / steps_per_epoch, 3)
    if st["step"] >= total and res.stopped == "completed" and cfg.max_steps is not None:
        res.stopped = "max_steps"
    logger.close()
    return res
