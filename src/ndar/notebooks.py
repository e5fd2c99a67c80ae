"""`python -m ndar notebooks`: execute the parameterised notebooks with papermill.

`python -m ndar notebooks --notebook notebooks/20_actionformer.ipynb --out runs/nb -p folds 3 -p overrides '["actionformer.epochs=5"]'`
Each notebook runs in a fresh kernel (the same Python as this command) with the repository as working
directory; its executed copy is saved as `<out>/<notebook stem>/<notebook name>`, beside whatever the
notebook writes. If the notebook declares an `out_dir` parameter, it is set to that same folder unless
given with -p, so the run's outputs and the executed notebook stay together. Values given with -p are
parsed as YAML (numbers, lists, booleans), like the dotted overrides of the other commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from ndar.utils.io import write_json
from ndar.utils.logging import setup_logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notebook",
        action="append",
        default=None,
        help="notebook to run (repeatable; default: every notebooks/*.ipynb)",
    )
    parser.add_argument("--out", required=True, help="output folder; each notebook gets <out>/<stem>/")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter (value parsed as YAML), repeatable",
    )
    parser.add_argument(
        "--kernel", default=None, help="Jupyter kernel name (default: the notebook's, i.e. python3)"
    )
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: none)")


def parse_parameters(pairs: list[list[str]]) -> dict[str, Any]:
    """[['folds', '3'], ['sets', '[a/rear]']] -> {'folds': 3, 'sets': ['a/rear']}."""
    return {name: yaml.safe_load(value) if value.strip() else "" for name, value in pairs}


def run_notebook(
    notebook: str | Path,
    out: str | Path,
    parameters: dict[str, Any] | None = None,
    kernel: str | None = None,
    timeout: int | None = None,
    cwd: str | Path | None = None,
) -> Path:
    """Execute one notebook with papermill; returns the path of the executed copy."""
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    folder = Path(out) / notebook.stem
    folder.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {})
    declared = inspect_parameters(notebook)
    if "out_dir" in declared and "out_dir" not in params:
        params["out_dir"] = str(folder.resolve())
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameter(s) {unknown}; declared: {sorted(declared)}")
    executed = folder / notebook.name
    log.info("running %s -> %s with %s", notebook, executed, params)
    papermill.execute_notebook(
        str(notebook),
        str(executed),
        parameters=params,
        kernel_name=kernel,
        execution_timeout=timeout,
        cwd=str(cwd or Path.cwd()),
        progress_bar=sys.stderr.isatty(),
    )
    write_json(folder / "notebook_run.json", {"notebook": str(notebook), "parameters": params})
    return executed


def main(args: argparse.Namespace) -> int:
    setup_logging()
    notebooks = args.notebook or sorted(str(p) for p in Path("notebooks").glob("*.ipynb"))
    if not notebooks:
        log.error("no notebooks given and none found in notebooks/")
        return 2
    parameters = parse_parameters(args.parameter)
    declared = {nb: set(inspect_parameters(nb)) for nb in notebooks}
    unused = sorted(set(parameters) - set().union(*declared.values()))
    if unused:
        log.error("parameter(s) %s are declared by none of %s", unused, notebooks)
        return 2
    for notebook in notebooks:
        # several notebooks share one command line: each gets the parameters it declares
        mine = {k: v for k, v in parameters.items() if k in declared[notebook]}
        executed = run_notebook(notebook, args.out, mine, args.kernel, args.timeout)
        print(executed)
    return 0


def inspect_parameters(notebook: str | Path) -> dict:
    """The parameters a notebook declares in its `parameters` cell (name -> papermill's description)."""
    import papermill

    if not Path(notebook).is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    return papermill.inspect_notebook(str(notebook))
