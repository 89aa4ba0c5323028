"""What a run says while it trains: a progress bar, a JSON-lines log, TensorBoard when installed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tunesmith.files import atomic_write_text


class Progress:
    """tqdm bar with step, loss, throughput and ETA on stderr (stdout stays for results)."""

    def __init__(self, total: int, initial: int, desc: str, disable: bool):
        from tqdm.auto import tqdm

        quiet = disable or os.environ.get("TUNESMITH_NO_PROGRESS") == "1"
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            disable=quiet,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def update(self, loss: float, samples_per_s: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:.1f}", refresh=False)
        self.bar.update(1)

    def close(self, why: str = "") -> None:
        """Close the bar; a bar that stops short says why ("early stop at epoch 3") rather than resting at 80/400."""
        if why:
            self.bar.set_postfix_str(why, refresh=True)
        self.bar.close()


class RunLogger:
    """The run's JSON-lines log, plus the experiment trackers the config names (train/trackers.py)."""

    def __init__(self, folder: Path | None, desc: str, report_to: list[str] | None = None,
                 params: dict[str, Any] | None = None):  # fmt: skip
        from tunesmith.train.trackers import chosen, open_trackers

        self.desc = desc
        self.fh = None
        self.trackers: list[Any] = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.fh = open(folder / "train.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.trackers = open_trackers(chosen(report_to), folder, desc, params or {})

    def progress(self, total: int, initial: int, disable: bool) -> Progress:
        return Progress(total, initial, self.desc, disable)

    def _write(self, record: dict[str, Any]) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps({"time": round(time.time(), 3), "phase": self.desc, **record}) + "\n")
            self.fh.flush()

    def step(self, step: int, epoch: float, loss: float, lr: float, samples_per_s: float, **work: Any) -> None:
        """One optimizer step; ``work``: its seconds, samples and token positions (this process's share)."""
        self._write(
            {
                "kind": "step",
                "step": step,
                "epoch": round(epoch, 4),
                "loss": loss,
                "lr": lr,
                "samples_per_s": round(samples_per_s, 2),
                **work,
            }
        )
        self._track({f"{self.desc}/loss": loss, f"{self.desc}/lr": lr}, step)

    def eval(self, record: dict[str, Any]) -> None:
        self._write({"kind": "eval", **record})
        values = {f"{self.desc}/eval_{k}": v for k, v in record.items()
                  if k not in ("step", "epoch") and isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip
        self._track(values, record["step"])

    def _track(self, values: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def rewind(self, step: int) -> None:
        """Resuming from the checkpoint of ``step``: this phase's records after it are dropped from the log, so the
        replayed steps are logged once (the log reads as one uninterrupted run)."""
        if self.fh is None:
            return
        path = Path(self.fh.name)
        self.fh.close()
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
            later = record.get("phase") == self.desc and isinstance(record.get("step"), int) and record["step"] > step
            if not later:
                kept.append(line if line.endswith("\n") else line + "\n")
        atomic_write_text(path, "".join(kept))
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def event(self, name: str, **fields: Any) -> None:
        self._write({"kind": name, **fields})

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []
