"""Long work (training, planning, exports, promotion, picking what to label) as background processes of the
command line itself, so a page reload or a restarted dashboard loses nothing: each job is a record and a log under
``.tunesmith/jobs/``, and the process writes its exit code beside them when it ends."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import InputError
from tunesmith.files import write_json
from tunesmith.rundir import process_alive

# The shell runs the command with its arguments as "$@" (never parsed from a string) and writes its exit code.
WRAPPER = '"$@"; echo $? > "$TUNESMITH_JOB_RC"'
LOG_TAIL = 64 << 10


@dataclass
class Job:
    id: str
    kind: str  # train, resume, plan, export, register, promote, update, label-next
    title: str
    argv: list[str]
    pid: int
    started: float
    run: str | None = None  # the run directory it writes, when it trains
    output: str | None = None  # the file it writes (a plan, a labelling queue)
    status: str = "running"  # running, done, failed, stopped
    returncode: int | None = None
    ended: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Jobs:
    def __init__(self, folder: Path, cwd: Path):
        self.folder, self.cwd = folder, cwd  # the folder is made by the first job
        self._children: dict[str, subprocess.Popen] = {}

    def start(self, kind: str, title: str, args: list[str], run: Path | None = None, output: Path | None = None) -> Job:
        """Start ``tunesmith ARGS`` in the background; returns its record at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        log, out = self.folder / f"{job_id}.log", self.folder / f"{job_id}.out"
        argv = [sys.executable, "-m", "tunesmith.cli", *args]
        env = {**os.environ, "TUNESMITH_JOB_RC": str(self.folder / f"{job_id}.rc"), "TUNESMITH_NO_PROGRESS": "1",
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        with open(log, "wb") as err, open(out, "wb") as said:
            child = subprocess.Popen(
                ["/bin/sh", "-c", WRAPPER, "tunesmith-job", *argv],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=said,
                stderr=err,
                env=env,
                start_new_session=True,  # its own process group: stopped as one, and it outlives the dashboard
            )
        self._children[job_id] = child
        job = Job(job_id, kind, title, args, child.pid, time.time(), str(run) if run else None,
                  str(output) if output else None)  # fmt: skip
        write_json(self.folder / f"{job_id}.json", job.to_dict())
        return job

    def get(self, job_id: str) -> Job:
        if not job_id.replace("-", "").isalnum():
            raise InputError(f"job {job_id!r}: no such job")
        path = self.folder / f"{job_id}.json"
        if not path.is_file():
            raise InputError(f"job {job_id!r}: no such job")
        job = Job(**json.loads(path.read_text(encoding="utf-8")))
        return self._refresh(job)

    def _refresh(self, job: Job) -> Job:
        if job.status != "running":
            return job
        child = self._children.get(job.id)
        if child is not None:
            child.poll()  # reaps it when it has ended, so it is not left a zombie
        rc_file = self.folder / f"{job.id}.rc"
        if rc_file.is_file():
            text = rc_file.read_text(encoding="ascii").strip()
            job.returncode = int(text) if text.lstrip("-").isdigit() else None
        elif process_alive(job.pid):
            return job
        if job.status == "running":
            job.status = "done" if job.returncode == 0 else "failed"
        job.ended = time.time()
        write_json(self.folder / f"{job.id}.json", job.to_dict())
        return job

    def list(self) -> list[Job]:
        jobs = []
        for path in sorted(self.folder.glob("*.json"), reverse=True):
            try:
                jobs.append(self._refresh(Job(**json.loads(path.read_text(encoding="utf-8")))))
            except (ValueError, TypeError, OSError):
                continue
        return jobs

    def log(self, job_id: str, limit: int = LOG_TAIL) -> str:
        """The end of what the job said on stderr (progress bars' carriage returns folded to their last state)."""
        return self._tail(job_id, "log", limit)

    def output(self, job_id: str, limit: int = 4 << 20) -> str:
        """What the job printed on stdout (its result: a summary, a plan as JSON)."""
        return self._tail(job_id, "out", limit)

    def _tail(self, job_id: str, suffix: str, limit: int) -> str:
        self.get(job_id)
        path = self.folder / f"{job_id}.{suffix}"
        if not path.is_file():
            return ""
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            text = fh.read().decode("utf-8", errors="replace")
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))

    def stop(self, job_id: str) -> Job:
        """SIGTERM to the job's process group: training saves a checkpoint and the run can be resumed."""
        job = self.get(job_id)
        if job.status == "running":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGTERM)
            job.status = "stopped"
            write_json(self.folder / f"{job.id}.json", job.to_dict())
        return job

    def for_run(self, run: Path) -> Job | None:
        return next((j for j in self.list() if j.run and Path(j.run) == run), None)
