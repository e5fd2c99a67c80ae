"""`python -m ndar notebooks`: execute the parameterised notebooks with papermill.

`python -m ndar notebooks --notebook notebooks/20_actionformer.ipynb --out runs/nb -p folds 3 -p overrides '["actionformer.epochs=5"]'`
Each notebook runs in a fresh kernel (the same Python as this command) with the repository as working
directory; its executed copy is saved as `<out>/<notebook stem>/<notebook name>`, beside whatever the
notebook writes. If the notebook declares an `out_dir` parameter, it is set to that same folder unless
given with -p, so the run's outputs and the executed notebook stay together. Values given with -p are
parsed as YAML (numbers, lists, booleans), like the dotted overrides of the other commands.

`--executed PATH` (one notebook) saves the executed copy exactly there and leaves `out_dir` to the
notebook's config: that is how the main job runs the heads and the ensemble through the notebooks,
writing to its own folders and keeping the executed copies in `runs/<name>/notebooks/`.

The parameters are one vocabulary across the notebooks; each overrides only the config key it names,
and its empty default ("", [], 0) keeps the config's value (`named_overrides`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from ndar.config import ConfigError
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
    parser.add_argument(
        "--out",
        default="runs/notebooks",
        help="output folder; each notebook gets <out>/<stem>/ (default: runs/notebooks)",
    )
    parser.add_argument(
        "--executed",
        default=None,
        help="save the executed copy of the one --notebook here (out_dir is left to the notebook's config)",
    )
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
        "--kernel",
        default=None,
        help="Jupyter kernel name (default: the notebook's, python3, which runs this command's Python)",
    )
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: none)")


def parse_parameters(pairs: list[list[str]]) -> dict[str, Any]:
    """[['folds', '3'], ['sets', '[a/rear]']] -> {'folds': 3, 'sets': ['a/rear']}."""
    return {name: yaml.safe_load(value) if value.strip() else "" for name, value in pairs}


def named_overrides(**values: Any) -> list[str]:
    """Dotted overrides for the parameters that were given: ("", [], 0, None) keep the config's value.

    named_overrides(out="runs/x", folds=0, feature_sets=["a/rear"]) -> ['out=runs/x', 'feature_sets=["a/rear"]']
    """
    return [
        f"{key}={json.dumps(value) if isinstance(value, list) else value}"
        for key, value in values.items()
        if value not in ("", [], 0, None)
    ]


def check_kernel(name: str) -> None:
    """Refuse a kernel that would not run this Python: the notebook would not import this ndar.

    jupyter_client starts a kernel spec whose command is a bare `python` / `python3` with
    `sys.executable`, so the shipped `python3` spec runs the project's venv; a spec naming another
    interpreter (a system-wide `python3` kernel, say) is refused here with one clear line."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as err:
        raise ConfigError(f"Jupyter kernel {name!r} is not installed (`jupyter kernelspec list`)") from err
    program = spec.argv[0] if spec.argv else ""
    bare = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if program in bare or Path(program).resolve() == Path(sys.executable).resolve():
        return
    raise ConfigError(
        f"Jupyter kernel {name!r} runs {program}, not this Python ({sys.executable}): the notebook would "
        "not see this ndar; pass --kernel with a kernel of this environment"
    )


def run_notebook(
    notebook: str | Path,
    out: str | Path,
    parameters: dict[str, Any] | None = None,
    kernel: str | None = None,
    timeout: int | None = None,
    cwd: str | Path | None = None,
) -> Path:
    """Execute one notebook into `<out>/<stem>/` (its `out_dir` there too); returns the executed copy."""
    notebook = Path(notebook)
    folder = Path(out) / notebook.stem
    params = dict(parameters or {})
    if "out_dir" in inspect_parameters(notebook) and "out_dir" not in params:
        params["out_dir"] = str(folder.resolve())
    return execute(notebook, folder / notebook.name, params, kernel, timeout, cwd)


def execute(
    notebook: str | Path,
    executed: str | Path,
    parameters: dict[str, Any] | None = None,
    kernel: str | None = None,
    timeout: int | None = None,
    cwd: str | Path | None = None,
) -> Path:
    """Execute `notebook` with papermill, saving the executed copy as `executed` (written to a temporary
    name, then renamed: a failed run leaves no executed copy that looks complete)."""
    import papermill

    notebook, executed = Path(notebook), Path(executed)
    params = dict(parameters or {})
    declared = inspect_parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(f"{notebook}: unknown parameter(s) {unknown}; declared: {sorted(declared)}")
    kernel = kernel or "python3"
    check_kernel(kernel)
    executed.parent.mkdir(parents=True, exist_ok=True)
    partial = executed.with_name(executed.stem + ".partial.ipynb")
    log.info("running %s -> %s with %s", notebook, executed, params)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(partial),
            parameters=params,
            kernel_name=kernel,
            execution_timeout=timeout,
            cwd=str(cwd or Path.cwd()),
            progress_bar=sys.stderr.isatty(),
            log_output=True,  # the cells' output reaches this command's log as it comes
        )
    except papermill.PapermillExecutionError as err:
        raise _user_error_in_cell(notebook, partial, err) or err from None
    partial.replace(executed)
    write_json(
        executed.with_name(executed.stem + ".run.json"), {"notebook": str(notebook), "parameters": params}
    )
    return executed


def _user_error_in_cell(notebook: Path, partial: Path, err: Exception) -> ConfigError | None:
    """A cell that failed on the user's input (a wrong parameter, config or path: the exceptions the
    command line reports as one line) as one ConfigError naming the notebook, the cell and the
    message; None for any other error, whose notebook traceback then stays."""
    from ndar.cli import user_errors

    if err.ename not in {cls.__name__ for cls in user_errors()}:
        return None
    message = " ".join(str(err.evalue).split())
    return ConfigError(
        f"{notebook} cell [{err.exec_count}]: {err.ename}: {message} (executed cells: {partial})"
    )


def main(args: argparse.Namespace) -> int:
    setup_logging()
    notebooks = args.notebook or sorted(str(p) for p in Path("notebooks").glob("*.ipynb"))
    if not notebooks:
        log.error("no notebooks given and none found in notebooks/")
        return 2
    parameters = parse_parameters(args.parameter)
    if args.executed is not None:
        if len(notebooks) != 1:
            log.error("--executed names the copy of one notebook; got %d notebooks", len(notebooks))
            return 2
        print(execute(notebooks[0], args.executed, parameters, args.kernel, args.timeout))
        return 0
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
