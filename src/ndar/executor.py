"""Runs a main-job plan (`ndar.plan`): each stage as its own `python -m ndar` process.

A stage whose command and config are unchanged since it last finished, its outputs still there
and nothing before it re-run in this invocation, is not even started (`skipped (done)`, its
recorded time kept): that is how re-running the main job resumes. Progress is one `[k/N]` line per
stage with the elapsed time and an ETA from this run's and earlier runs' stage times.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ndar.plan import Plan, Stage, StageGroup
from ndar.utils.io import atomic_write_text, read_json, write_json
from ndar.utils.progress import format_seconds

log = logging.getLogger("ndar.pipeline")  # the main job's own log


class StageError(RuntimeError):
    """A stage of the main job failed; the message names the stage, the command and its log."""


@dataclass(frozen=True)
class StageRun:
    """What running a stage measured: wall seconds and the peak resident memory of its process tree
    (the stage process and its descendants, e.g. loader or pool workers, summed; sampled)."""

    seconds: float
    peak_rss_mib: float | None = None

    def __float__(self) -> float:
        return self.seconds


def run_stage(stage: Stage, nproc: int = 1) -> StageRun:
    """Run one stage as a subprocess, its output appended to its log file."""
    launcher = stage.launcher(nproc)
    cmd = [sys.executable, *launcher[1:], *stage.argv]  # this interpreter, not the first `python` on PATH
    stage.log_file.parent.mkdir(parents=True, exist_ok=True)
    log.debug("stage %s: %s", stage.name, shlex.join(cmd))
    with open(stage.log_file, "a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        code, run = run_measured(cmd, fh)
    if code != 0:
        tail = _tail(stage.log_file, 25)
        raise StageError(
            f"stage '{stage.name}' failed with exit code {code} after {run.seconds:.0f} s\n"
            f"command: {shlex.join(cmd)}\nlog: {stage.log_file}\n--- last lines ---\n{tail}"
        )
    return run


def run_measured(cmd: list[str], out, every_s: float = 0.2) -> tuple[int, StageRun]:
    """Run `cmd` (output to the open file `out`); (exit code, its time and peak RSS).

    The peak is sampled from /proc every `every_s` over the child and its descendants (None where
    /proc cannot list children). Not `ru_maxrss`: a child's high-water mark starts at its parent's size at
    fork, so every stage would report at least the main job's own memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_stage_env())
    peak_kib = 0
    sampling = can_sample_trees()
    try:
        while proc.poll() is None:
            if sampling:
                peak_kib = max(peak_kib, tree_rss_kib(proc.pid))
            time.sleep(every_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    seconds = time.perf_counter() - start
    return proc.returncode, StageRun(seconds, round(peak_kib / 1024, 1) if sampling else None)


def can_sample_trees() -> bool:
    """Whether /proc lists each task's children (Linux with CONFIG_PROC_CHILDREN): without it a
    stage's workers could not be found, so no peak is recorded rather than the parent's alone."""
    pid = os.getpid()
    return Path(f"/proc/{pid}/task/{pid}/children").is_file()


def tree_rss_kib(pid: int) -> int:
    """Summed VmRSS (KiB) of `pid` and its descendants, read from /proc. A process that exits while
    it is read counts 0 (it no longer holds memory); kernel threads have no VmRSS line."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between listing and reading
    return total


# Rendezvous variables of a process group this process may belong to: a stage must not inherit
# them (it would try to join or re-bind that group's port); torchrun sets fresh ones when needed.
_DIST_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _stage_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _tail(path: Path, n: int) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


class Executor:
    """Runs the groups of a plan in order, skipping finished stages; keeps their times."""

    def __init__(self, plan: Plan, nproc: int = 1, jobs: int = 1, runner=run_stage) -> None:
        self.plan, self.nproc, self.jobs, self.runner = plan, nproc, jobs, runner
        self.planned = plan.names
        self.timings: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}  # stages whose runner measured it
        self.skipped: list[str] = []
        self.started = 0
        self.clock = time.perf_counter()
        self.lock = threading.Lock()
        # a stage is skipped only while nothing before it has run in this invocation: whatever ran
        # may have changed its inputs. Independent stages of one group see the state before the group.
        self.upstream_ran = False
        self.group_ran = False

    def run(self) -> None:
        self.clock = time.perf_counter()
        for group in self.plan.groups:
            self.run_group(group)

    def run_group(self, group: StageGroup) -> None:
        """Run a group's stages, `jobs` at a time when they are independent, in the order given.

        Every stage runs to its end even when another fails (its work is kept for the resume); then
        the first failure is raised, naming its stage.
        """
        calls = [lambda s=s: self.run_one(s) for s in group.stages]
        if group.together:
            self.run_together(calls)
        else:
            for call in calls:
                self.run_together([call])

    def run_together(self, calls: list) -> None:
        """Run independent calls, `jobs` at a time; the first failure is raised after all ended."""
        self.group_ran = False
        try:
            if self.jobs <= 1 or len(calls) == 1:
                for call in calls:
                    call()
                return
            with ThreadPoolExecutor(self.jobs, thread_name_prefix="ndar-stage") as pool:
                futures = [pool.submit(call) for call in calls]
                errors = [f.exception() for f in futures]  # waits for every stage
            failed = [e for e in errors if e is not None]
            if failed:
                raise failed[0]
        finally:
            self.upstream_ran = self.upstream_ran or self.group_ran

    def run_one(self, stage: Stage) -> None:
        """Run one stage (or skip it when it is done), printing `[k/N]` lines with the overall ETA."""
        for config in stage.configs:  # the stage's resolved input: what a notebook or a user re-runs
            atomic_write_text(config.path, config.text())
        with self.lock:
            self.started += 1
            k = self.started
        n = len(self.planned)
        done = self.finished_record(stage)
        if done is not None and not self.upstream_ran:
            with self.lock:
                self.timings[stage.name] = done["seconds"]
                if done.get("peak_rss_mib") is not None:
                    self.peak_rss_mib[stage.name] = done["peak_rss_mib"]
                self.skipped.append(stage.name)
            log.info("[%d/%d] %s: skipped (done, took %s)", k, n, stage.name, format_seconds(done["seconds"]))
            return
        log.info("[%d/%d] %s ... (log: %s)", k, n, stage.name, stage.log_file)
        if stage.outputs:
            with self.lock:
                self.group_ran = True
        # a stage re-run because something before it ran may fail: its old record must not then let
        # the next invocation skip it as finished, over outputs made from the old inputs
        self.plan.layout.stage_record(stage.name).unlink(missing_ok=True)
        result = self.runner(stage, self.stage_nproc(stage))
        seconds, peak = float(result), getattr(result, "peak_rss_mib", None)
        with self.lock:
            if peak is not None:
                self.peak_rss_mib[stage.name] = peak
            if done is None:
                self.record_finished(stage, seconds, peak)
            else:  # put the record back as it was: its time is still the time the work took
                write_json(self.plan.layout.stage_record(stage.name), done)
            # a finished stage re-run only because something before it ran mostly resumes: its
            # recorded time is still the time its work took
            self.timings[stage.name] = seconds if done is None else done["seconds"]
            eta = self.eta()
        elapsed = format_seconds(time.perf_counter() - self.clock)
        log.info(
            "[%d/%d] %s: done in %s; elapsed %s, ETA %s",
            k,
            n,
            stage.name,
            format_seconds(seconds),
            elapsed,
            eta,
        )

    def stage_nproc(self, stage: Stage) -> int:
        """The stage's own process count, else the job's."""
        return stage.nproc or self.nproc

    # ------------------------------------------------------------------ resume records
    def fingerprint(self, stage: Stage) -> dict:
        """What makes a stage's work: its command and the text of the config it reads."""
        config = "".join(c.text() for c in stage.configs)
        return {"argv": stage.argv, "config": config, "nproc": self.stage_nproc(stage)}

    def finished_record(self, stage: Stage) -> dict | None:
        """The record of this stage's last finish with the same command and config, its outputs still
        there; None if there is none (the stage has work to do)."""
        path = self.plan.layout.stage_record(stage.name)
        if not stage.outputs or not path.is_file():
            return None
        record = read_json(path)
        if record.get("fingerprint") != self.fingerprint(stage):
            return None
        if not all(Path(p).exists() for p in stage.outputs):
            return None
        return record

    def record_finished(self, stage: Stage, seconds: float, peak_rss_mib: float | None = None) -> None:
        if stage.outputs:
            record = {
                "stage": stage.name,
                "seconds": round(seconds, 1),
                "peak_rss_mib": peak_rss_mib,
                "fingerprint": self.fingerprint(stage),
            }
            write_json(self.plan.layout.stage_record(stage.name), record)

    def known_seconds(self) -> dict[str, float]:
        """Stage times measured by earlier runs of this job (their records), by stage name."""
        stages = self.plan.layout.stages
        known = {}
        for path in sorted(stages.glob("*.json")) if stages.is_dir() else []:
            record = read_json(path)
            known[record["stage"]] = float(record["seconds"])
        return known

    def eta(self) -> str:
        """Time left: each stage not yet finished at its earlier recorded time, else at the mean time of
        this run's stages of its kind (`heads`, `finetune`, ...), else of all measured stages; the
        stages of a group run together (fine-tunes, heads runs), `jobs` at a time, count 1/jobs."""
        remaining = [n for n in self.planned if n not in self.timings]
        if not remaining:
            return "0s"
        known = self.known_seconds()
        measured = {n: v for n, v in self.timings.items() if n not in self.skipped} or known
        shared = {s.name for g in self.plan.groups if g.together for s in g.stages}

        def mean(values: list[float]) -> float:
            return sum(values) / max(1, len(values))

        total = 0.0
        for name in remaining:
            kind = name.split(" ")[0]
            same_kind = [v for n, v in measured.items() if n.split(" ")[0] == kind]
            guess = known.get(name, mean(same_kind) if same_kind else mean(list(measured.values())))
            total += guess / (self.jobs if name in shared else 1)
        return "~" + format_seconds(total)
