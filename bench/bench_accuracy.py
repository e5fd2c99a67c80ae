"""Multi-seed accuracy benchmark: the main job on several generator seeds, scored per seed and as mean ± sd.

python -m bench.bench_accuracy                       # run the main job on seeds 0 1 2, then report
python -m bench.bench_accuracy --report-only         # re-collect the tables from finished runs
python -m bench.bench_accuracy --ensemble-only TAG [key=value ...]
                                                     # re-run only the ensemble stage on the finished
                                                     # runs with changed settings, as variant TAG
python -m bench.bench_accuracy --heads-only TAG [key=value ...] [--heads tim]
                                                     # re-train the heads with changed settings (the
                                                     # fine-tunes and features are kept), then the
                                                     # ensemble on them, as variant TAG
python -m bench.bench_accuracy --prefix mamba_s --data-prefix acc_s tracks=[videomamba_m] baseline=false
python -m bench.bench_accuracy --ensemble-only with_mamba --add-run mamba_s
                                                     # an extra track run on the same data, then the
                                                     # ensemble with its heads and feature sets added
python -m bench.bench_accuracy --ensemble-only two --only-sources tim_a actionformer_a "feature_sets=[a/rear]"
                                                     # the ensemble of a subset of the sources

Why: one synthetic dataset with four A2 sessions is too small to choose settings on; a setting is
chosen on the MEAN A1 out-of-fold mOS over the seeds and A2 is read after (bench/results/accuracy.md).
Each seed S is its own run: `runs/<prefix>S`, data in `data/<prefix>S`, generator seed S and training
seed S, 8 A1 drivers and 4 A2 drivers. Nothing is recomputed here: the tables come from the files each
run already writes (the ensemble's report.json and metrics.json, the baseline's metrics.json, the
pipeline's pipeline.json).

An ensemble-only variant reads the stage config the main job derived (`runs/<run>/configs/ensemble.yaml`),
writes to `submissions/<run>_<TAG>/` (the main run's own ensemble stays as it was), and copies the
feature-set sources the main run already built, so only fusion, tuning and the report run again.
With `--add-run PREFIX` the variant also fuses the heads and the feature-set sources of the finished
runs `<PREFIX>S`, which must have been run on the same data (`--data-prefix`): that measures the
ensemble with and without an extra track without re-running the tracks both share.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = "main"  # the variant name of the main job's own ensemble


def run_dir(prefix: str, seed: int) -> Path:
    return REPO / "runs" / f"{prefix}{seed}"


def ensemble_dir(prefix: str, seed: int, variant: str) -> Path:
    suffix = "" if variant == BASE else f"_{variant}"
    return REPO / "submissions" / f"{prefix}{seed}{suffix}"


def run_main_job(args, seed: int) -> None:
    """One seed's main job (resumes: finished stages are skipped)."""
    name = f"{args.prefix}{seed}"
    cmd = [
        sys.executable,
        "-m",
        "ndar",
        "run",
        "--config",
        args.config,
        f"name={name}",
        f"synth.out=data/{args.data_prefix or args.prefix}{seed}",
        f"synth.seed={seed}",
        f"synth.drivers={args.drivers}",
        f"synth.test_drivers={args.test_drivers}",
        f"seed={seed}",
        *args.overrides,
    ]
    log = REPO / "bench" / "out" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"seed {seed}: {' '.join(cmd[2:])} (log {log})", flush=True)
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: the main job failed (exit {proc.returncode}); see {log}")


def run_ensemble_variant(args, seed: int) -> None:
    """Re-run only the ensemble stage of one finished seed with extra overrides, as variant args.ensemble_only."""
    config = run_dir(args.prefix, seed) / "configs" / "ensemble.yaml"
    if not config.is_file():
        raise SystemExit(f"seed {seed}: {config} not found: run the main job on this seed first")
    out = ensemble_dir(args.prefix, seed, args.ensemble_only)
    if args.add_run:
        config = add_run_sources(
            config, out, run_dir(args.add_run, seed), ensemble_dir(args.add_run, seed, BASE)
        )
    if args.only_sources:
        config = keep_sources(config, out, args.only_sources)
    run_ensemble(args.prefix, seed, config, out, args.ensemble_only, args.overrides)


def only_sources(sources: list[dict], names: list[str], config: Path) -> list[dict]:
    """The sources named in `names`; every name must be a source of `config`."""
    missing = set(names) - {s["name"] for s in sources}
    if missing:
        raise SystemExit(f"--only-sources: {sorted(missing)} are not sources of {config}")
    return [s for s in sources if s["name"] in names]


def keep_sources(config: Path, out: Path, names: list[str]) -> Path:
    """The ensemble config `config` with only the head sources `names`, written beside the variant's
    outputs (e.g. the heads of two tracks out of three, with `feature_sets=[...]` as an override)."""
    import yaml

    cfg = yaml.safe_load(config.read_text())
    cfg["sources"] = only_sources(cfg["sources"], names, config)
    path = out.parent / f"{out.name}.config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_ensemble(
    prefix: str,
    seed: int,
    config: Path,
    out: Path,
    tag: str,
    overrides: list[str],
    copy_sources: bool = True,
) -> None:
    """The ensemble stage with `config` into `out`, reusing the feature-set sources the main run
    built unless `copy_sources` is off (the variant reads other features)."""
    built = ensemble_dir(prefix, seed, BASE) / "sources"
    if copy_sources and built.is_dir() and not (out / "sources").is_dir():
        shutil.copytree(built, out / "sources")
    cmd = [
        sys.executable,
        "-m",
        "ndar",
        "ensemble",
        "--config",
        str(config),
        f"run_name={out.name}",
        *overrides,
    ]
    log = REPO / "bench" / "out" / f"{out.name}.log"
    print(f"seed {seed}: ensemble variant {tag} (log {log})", flush=True)
    start = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed}: the ensemble variant failed (exit {proc.returncode}); see {log}")
    print(f"seed {seed}: done in {time.perf_counter() - start:.0f} s", flush=True)


def add_run_sources(config: Path, out: Path, extra_run: Path, extra_ensemble: Path) -> Path:
    """The ensemble config `config` with the heads and built feature-set sources of another finished
    run added (same data); written beside the variant's outputs, its path returned."""
    import yaml

    extra_config = extra_run / "configs" / "ensemble.yaml"
    built = extra_ensemble / "sources"
    if not extra_config.is_file() or not built.is_dir():
        raise SystemExit(f"--add-run: {extra_config} or {built} not found: run that job first")
    cfg = yaml.safe_load(config.read_text())
    extra = yaml.safe_load(extra_config.read_text())
    if extra["data_root"] != cfg["data_root"]:
        raise SystemExit(f"--add-run: {extra_run} used data {extra['data_root']}, not {cfg['data_root']}")
    names = {s["name"] for s in cfg["sources"]} | {
        Path(f).as_posix().replace("/", "_") for f in cfg["feature_sets"]
    }
    added = list(extra["sources"]) + [
        {"name": folder.name, "path": str(folder.relative_to(REPO)), "kind": "feature_set"}
        for folder in sorted(built.iterdir())
        if (folder / "source.json").is_file()
    ]
    clash = sorted(names & {s["name"] for s in added})
    if clash:
        raise SystemExit(f"--add-run: source names {clash} are in both runs")
    cfg["sources"] = list(cfg["sources"]) + added
    path = out.parent / f"{out.name}.config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_heads_variant(args, seed: int) -> None:
    """Re-train the heads of one finished seed with `args.overrides` into `runs/<run>/heads_<TAG>/`
    (two at a time, as the main job's `jobs: 2`), then its ensemble on them as variant TAG."""
    import yaml

    run = run_dir(args.prefix, seed)
    tag = args.heads_only
    # "{run}" in an override is this seed's run folder, e.g. features_root={run}/features_em
    overrides = [o.replace("{run}", str(run.relative_to(REPO))) for o in args.overrides]
    config = run / "configs" / "ensemble.yaml"
    if not config.is_file():
        raise SystemExit(f"seed {seed}: {config} not found: run the main job on this seed first")
    cfg = yaml.safe_load(config.read_text())
    features = [o.split("=", 1)[1] for o in overrides if o.startswith("features_root=")]
    if features:  # the feature-set sources are rebuilt from these features too
        cfg["features_root"] = features[-1]
    if args.only_sources:  # the variant keeps just these heads (e.g. one head over every track)
        cfg["sources"] = only_sources(cfg["sources"], args.only_sources, config)
    jobs = []
    for source in cfg["sources"]:
        head_config = run / "configs" / f"heads_{source['name']}.yaml"
        head = yaml.safe_load(head_config.read_text())["head"] if head_config.is_file() else None
        if head is None or (args.heads and head not in args.heads):
            continue
        out = run / f"heads_{tag}" / source["name"]
        source["path"] = str(out.relative_to(REPO))
        if not (out / "metrics.json").is_file():
            cmd = [sys.executable, "-m", "ndar", "heads", "train", "--config", str(head_config)]
            jobs.append(cmd + [f"out={source['path']}", "overwrite=true", *overrides])
    log = REPO / "bench" / "out" / f"{run.name}_heads_{tag}.log"
    print(f"seed {seed}: heads variant {tag}: {len(jobs)} heads to train (log {log})", flush=True)
    start = time.perf_counter()
    with open(log, "a") as fh, ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(lambda c: subprocess.run(c, cwd=REPO, stdout=fh, stderr=fh).returncode, jobs))
    if any(codes):
        raise SystemExit(f"seed {seed}: a head of variant {tag} failed; see {log}")
    out = ensemble_dir(args.prefix, seed, tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    variant_config = out.parent / f"{out.name}.config.yaml"
    variant_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"seed {seed}: heads trained in {time.perf_counter() - start:.0f} s", flush=True)
    run_ensemble(args.prefix, seed, variant_config, out, tag, [], copy_sources=not features)


# ------------------------------------------------------------------------------------------ collection
def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect_seed(prefix: str, seed: int, variants: list[str]) -> dict:
    """Every score of one seed: {row label: {"A1": oof mOS, "A2": test mOS}}, per variant, + wall time."""
    out: dict = {"seed": seed, "rows": {}, "variants": {}}
    pipeline = read_json(run_dir(prefix, seed) / "pipeline.json") or {}
    out["seconds"] = pipeline.get("seconds")
    out["reused"] = len(pipeline.get("skipped") or [])  # stages a resumed invocation took as done
    baseline = read_json(run_dir(prefix, seed) / "baseline" / "metrics.json")
    if baseline:
        out["rows"]["baseline"] = {"A1": (baseline.get("oof") or {}).get("mOS"), "A2": baseline.get("mOS")}
    report = read_json(ensemble_dir(prefix, seed, BASE) / "report.json") or []
    for row in report:
        if row["kind"] in ("head", "feature_set"):
            method = "own segments" if row["method"] == "own segments" else "curve, tuned priors"
            out["rows"][f"{row['kind']} {row['name']} ({method})"] = {
                "A1": row["oof_mOS"],
                "A2": row["test_mOS"],
            }
    for variant in variants:
        folder = ensemble_dir(prefix, seed, variant)
        report = read_json(folder / "report.json")
        if report is None:
            continue
        metrics = read_json(folder / "metrics.json") or {}
        rows = {
            r["name"]: {"A1": r["oof_mOS"], "A2": r["test_mOS"]} for r in report if r["kind"] == "ensemble"
        }
        for r in report:  # a heads variant's own heads (the main table shows the main run's)
            if variant != BASE and r["kind"] == "head" and r["method"] == "own segments":
                rows[f"head {r['name']} (own segments)"] = {"A1": r["oof_mOS"], "A2": r["test_mOS"]}
        nested = metrics.get("nested") or {}
        for key, label in (
            ("tuned_mOS", "ensemble nested (tuned)"),
            ("untuned_mOS", "ensemble nested (untuned)"),
        ):
            if nested.get(key) is not None:
                rows[label] = {"A1": nested[key], "A2": None}
        rows["ensemble seconds"] = {"A1": sum((metrics.get("timings") or {}).values()) or None, "A2": None}
        out["variants"][variant] = rows
    return out


def mean_sd(values: list) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, sd


def fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def table(label_rows: list[str], per_seed: list[dict], get) -> list[str]:
    """Markdown table: one row per label, A1/A2 per seed, then mean ± sd of A1 and A2."""
    seeds = [s["seed"] for s in per_seed]
    head = "| | " + " | ".join(f"s{s} A1 | s{s} A2" for s in seeds) + " | mean A1 | mean A2 |"
    lines = [head, "|---" * (2 * len(seeds) + 3) + "|"]
    for label in label_rows:
        cells, a1, a2 = [], [], []
        for s in per_seed:
            row = get(s, label) or {}
            cells += [fmt(row.get("A1")), fmt(row.get("A2"))]
            a1.append(row.get("A1"))
            a2.append(row.get("A2"))
        (m1, s1), (m2, s2) = mean_sd(a1), mean_sd(a2)
        means = [
            f"{fmt(m1)} ± {fmt(s1)}" if m1 is not None else "-",
            f"{fmt(m2)} ± {fmt(s2)}" if m2 is not None else "-",
        ]
        lines.append(f"| {label} | " + " | ".join(cells + means) + " |")
    return lines


def render(per_seed: list[dict], variants: list[str], command: str) -> str:
    labels = []
    for s in per_seed:
        labels += [k for k in s["rows"] if k not in labels]
    lines = [
        f"command: `{command}`",
        "",
        "mOS per seed (A1 = out of fold, A2 = test) and mean ± sd over the seeds.",
        "",
        *table(labels, per_seed, lambda s, label: s["rows"].get(label)),
        "",
        "wall time of the main job's last invocation (s): "
        + ", ".join(
            f"seed {s['seed']}: {s['seconds']:.0f}"
            + (f" ({s['reused']} stages reused from an earlier run)" if s.get("reused") else "")
            if s["seconds"]
            else f"seed {s['seed']}: -"
            for s in per_seed
        ),
    ]
    for variant in variants:
        present = [s for s in per_seed if variant in s["variants"]]
        if not present:
            continue
        vlabels = []
        for s in present:
            vlabels += [k for k in s["variants"][variant] if k not in vlabels]
        lines += ["", f"### ensemble variant `{variant}`", ""]
        lines += table(vlabels, present, lambda s, label, v=variant: s["variants"][v].get(label))
    return "\n".join(lines) + "\n"


def variants_found(prefix: str, seeds: list[int]) -> list[str]:
    found = [BASE]
    for seed in seeds:
        for folder in sorted((REPO / "submissions").glob(f"{prefix}{seed}_*")):
            tag = folder.name[len(f"{prefix}{seed}_") :]
            if tag not in found and (folder / "report.json").is_file():
                found.append(tag)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prefix", default="acc_s", help="run names are <prefix><seed>")
    parser.add_argument("--data-prefix", help="data in data/<data-prefix><seed> (default: the run prefix)")
    parser.add_argument(
        "--add-run",
        metavar="PREFIX",
        help="with --ensemble-only: also fuse the sources of runs <PREFIX><seed>",
    )
    parser.add_argument(
        "--heads-only", metavar="TAG", help="re-train the heads with the overrides, then the ensemble, as TAG"
    )
    parser.add_argument("--heads", nargs="+", help="with --heads-only: only these heads (default: all)")
    parser.add_argument(
        "--only-sources",
        nargs="+",
        metavar="NAME",
        help="with --heads-only or --ensemble-only: the variant's ensemble keeps only these head sources",
    )
    parser.add_argument("--config", default="configs/main/synthetic.yaml")
    parser.add_argument("--drivers", type=int, default=8)
    parser.add_argument("--test-drivers", type=int, default=4)
    parser.add_argument("--report-only", action="store_true", help="only re-collect the tables")
    parser.add_argument(
        "--ensemble-only", metavar="TAG", help="re-run only the ensemble stage, as variant TAG"
    )
    parser.add_argument("--out", default="bench/results/accuracy", help="writes <out>.md and <out>.json")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides of the main job (or of the ensemble)"
    )
    args = parser.parse_args()
    for option in ("heads", "only_sources"):  # nargs="+" also takes the key=value overrides after it
        swallowed = [item for item in getattr(args, option) or [] if "=" in item]
        if swallowed:
            parser.error(f"--{option.replace('_', '-')} got {swallowed}: put key=value overrides before it")
    if not args.report_only:
        for seed in args.seeds:
            if args.heads_only:
                run_heads_variant(args, seed)
            elif args.ensemble_only:
                run_ensemble_variant(args, seed)
            else:
                run_main_job(args, seed)
    variants = variants_found(args.prefix, args.seeds)
    per_seed = [collect_seed(args.prefix, seed, variants) for seed in args.seeds]
    command = "python -m bench.bench_accuracy " + " ".join(sys.argv[1:])
    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": command, "seeds": per_seed}, indent=1))
    tmp.replace(out.with_suffix(".json"))
    text = render(per_seed, variants, command)
    write_tables(out.with_suffix(".md"), text)
    print(text)


BEGIN, END = "<!-- tables: generated by bench/bench_accuracy.py -->", "<!-- tables end -->"


def write_tables(path: Path, text: str) -> None:
    """Replace the generated block of `path` (the analysis around it is kept); atomic."""
    block = f"{BEGIN}\n{text}{END}\n"
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        new = old + ("\n" if old else "") + block
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(path)


if __name__ == "__main__":
    main()
