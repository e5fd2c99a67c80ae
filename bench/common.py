"""What every benchmark script shares: the machine it ran on, a timing loop, result writing, and
how a script starts itself again in a fresh process.

The scripts are modules of the `bench` package, run from the repository root as
`python -m bench.<script>` (e.g. `.venv/bin/python -m bench.bench_backbones`), so they import this
module and each other without editing `sys.path`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from ndar.utils.io import atomic_write_text


def machine() -> str:
    """One line naming the machine, for the header of every result ("2-core x86_64 CPU, ...").

    A number means little without it: the project's CPU VM has 2 cores shared by several jobs,
    while the lent GPU machines have 16 cores and an H100 or H200."""
    import torch

    cpu = platform.processor() or platform.machine()
    line = f"{os.cpu_count()}-core {cpu} CPU, Python {platform.python_version()}, torch {torch.__version__}"
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    return line


def load_average() -> str:
    """The 1/5/15-minute load average: on a shared machine, how much other jobs inflated wall times."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def time_per_call(
    fn: Callable[[], Any],
    min_reps: int = 3,
    budget_s: float = 1.0,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """(wall, process CPU) seconds per call of `fn` after `warmup` calls: at least `min_reps` calls,
    and more until `budget_s` wall seconds have passed. `sync` (e.g. torch.cuda.synchronize) runs
    before the clock starts and stops, so asynchronous GPU work is counted in full. CPU seconds are
    what a one-thread step costs on a shared machine (wall seconds also count other jobs' time)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    reps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while reps < min_reps or time.perf_counter() - start < budget_s:
        fn()
        reps += 1
    if sync:
        sync()
    return (time.perf_counter() - start) / reps, (time.process_time() - cpu_start) / reps


def write_text(path: str | Path, text: str) -> Path:
    """Write a result file atomically (a reader never sees half a table), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)


def write_json(path: str | Path, data: Any) -> Path:
    """A JSON result file, written like `write_text`; values JSON cannot hold are written as text."""
    return write_text(path, json.dumps(data, indent=2, default=str))


def self_command(spec: ModuleSpec | None) -> list[str]:
    """The command that runs a bench script again in a new process; pass the script's `__spec__`.

    Scripts measure some cases in a child process so its peak memory and allocator are its own; the
    child must import `bench.common` too, so it is started as a module (`python -m bench.X`), never
    as a file path."""
    if spec is None:
        raise RuntimeError(
            "run the bench scripts as modules from the repository root: python -m bench.<script>"
        )
    return [sys.executable, "-m", spec.name]


def cuda_time(fn: Callable[[], Any], warmup: int = 3, min_reps: int = 10, budget_s: float = 4.0) -> float:
    """Seconds per call (wall, the GPU synchronised) after `warmup` calls."""
    import torch

    wall, _ = time_per_call(fn, min_reps, budget_s, warmup=warmup, sync=torch.cuda.synchronize)
    return wall


def analyse_seeds(
    doc: str, name: str, analyse_seed: Callable[[str, int], dict], render: Callable[[list[dict]], str]
) -> None:
    """The command line of the scripts that read the finished multi-seed runs (`--seeds`, `--prefix`):
    one `analyse_seed(prefix, seed)` per seed, the results kept in bench/out/<name>.json, the
    markdown of `render(results)` printed."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prefix", default="acc_s")
    args = parser.parse_args()
    results = [analyse_seed(args.prefix, s) for s in args.seeds]
    write_json(Path(__file__).resolve().parent / "out" / f"{name}.json", results)
    print(render(results))
