"""python -m bench all [--scale 1] [--database-url URL] [--duration 20] [--repeat 3]

Every benchmark of docs/performance.md, one after another, each in a process of its own, and
one table of the figures at the end:

1. the dataset: generated once (``--generate-only --skip-fk-checks``) and kept for the steps
   below, unless the database already holds this scale's dataset;
2. the recompute: the floor (one GROUP BY over the entries), the full annual recompute and
   the incremental one (``python -m bench --reuse --keep``; writes docs/benchmarks.md);
3. pages under load and scaling out (``python -m bench load``): it records into the dataset,
   so it runs after the recompute;
4. the exports: the annual ranking workbook at 30,000 / 100,000 / 300,000 members (times
   ``--scale``; ``python -m bench exports``, a database of its own).

The figures of each step are kept as JSON in bench/out/ and the table is printed from them;
``--summary-only`` prints it again from those files without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.__main__ import DEFAULT_URL, GOAL_INCREMENTAL_MS, GOAL_RATIO, ROOT, seconds

OUT = ROOT / "bench" / "out"
EXPORT_SIZES = (30_000, 100_000, 300_000)
EXPORTS_URL = "postgres://postgres@127.0.0.1:5432/pp_bench_exports"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench all", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 300k members, 10M entries")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--exports-database-url", default=EXPORTS_URL)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of the recompute")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per page")
    parser.add_argument("--skip", default="", help="steps to leave out: recompute,load,exports")
    parser.add_argument(
        "--summary-only", action="store_true", help="print the table from bench/out/ only"
    )
    return parser.parse_args(argv)


def _files(scale: float) -> dict[str, Path]:
    return {
        "recompute": OUT / f"recompute-{scale:g}.json",
        "load": OUT / f"load-{scale:g}.json",
        "exports": OUT / f"exports-{scale:g}.json",
    }


def _run(step: str, arguments: list[str]) -> float:
    command = [sys.executable, "-m", "bench", *arguments]
    print(f"\n=== {step}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)  # noqa: S603 (our own module)
    return time.perf_counter() - started


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def summary(scale: float) -> list[tuple[str, str, str]]:
    """(measurement, figure, goal) rows from the JSON files the steps wrote."""
    files = _files(scale)
    rows: list[tuple[str, str, str]] = []
    recompute = _read(files["recompute"])
    if recompute:
        floor = recompute["floor"]["floor: CREATE TEMP TABLE AS"]
        full = recompute["full"]["wall"]
        ratio = recompute["full"]["paired_ratio"]
        incremental = recompute["incremental"]["db_median"] * 1000
        rows += [
            ("floor: one GROUP BY over the entries (temp table)", seconds(floor), ""),
            (
                "full annual recompute (ratio: each run to the floor run just before it)",
                f"{seconds(full)} = {ratio:.2f}× the floor",
                f"≤ {GOAL_RATIO:g}× — {'met' if ratio <= GOAL_RATIO else 'not met'}",
            ),
            (
                "incremental recompute after one entry, DB time",
                f"{incremental:.1f} ms",
                f"< {GOAL_INCREMENTAL_MS:g} ms — "
                f"{'met' if incremental < GOAL_INCREMENTAL_MS else 'not met'}",
            ),
        ]
    load = _read(files["load"])
    if load:
        single = load["one_instance"]["pages"]
        trivial = single["trivial"]
        for page in load["pages"]:
            measured = single.get(page["key"])
            if not measured:
                continue
            latency = measured["latency_ms"]
            ratio = trivial["throughput"] / measured["throughput"]
            rows.append(
                (
                    f"{page['title']}: p50 / p95, throughput",
                    f"{latency['p50']:.0f} / {latency['p95']:.0f} ms, "
                    f"{measured['throughput']:.1f}/s (floor ÷ page {ratio:.1f}×)",
                    "",
                )
            )
        for goal in load["goals"]:
            rows.append(
                (f"goal: {goal['goal']}", goal["value"], "met" if goal["met"] else "not met")
            )
        scaled = load.get("scale_out", {}).get("pages", {})
        for key, measured in scaled.items():
            if key in single:
                gain = measured["throughput"] / single[key]["throughput"]
                rows.append(
                    (
                        f"scale out ×2: {key} throughput",
                        f"{measured['throughput']:.1f}/s",
                        f"{gain:.2f}×",
                    )
                )
        drain_one = load["one_instance"].get("recompute_drain")
        drain_two = load.get("scale_out", {}).get("recompute_drain")
        if drain_one and drain_two:
            rows.append(
                (
                    f"recompute drain, {drain_one['tasks']} branch recomputes: 1 / 2 workers",
                    f"{drain_one['wall_s']:.1f} / {drain_two['wall_s']:.1f} s",
                    f"{drain_one['wall_s'] / drain_two['wall_s']:.2f}×",
                )
            )
    exports = _read(files["exports"])
    if exports:
        for result in exports["results"]:
            job = result["job"]
            rows.append(
                (
                    f"ranking workbook, {result['size']:,} members",
                    f"{job['wall']:.1f} s, {job['peak_mb']:.0f} MB peak",
                    "",
                )
            )
    return rows


def print_summary(scale: float) -> None:
    rows = summary(scale)
    if not rows:
        print(f"no figures in {OUT} for scale {scale:g}")
        return
    width = max(len(name) for name, _figure, _goal in rows)
    figure_width = max(len(figure) for _name, figure, _goal in rows)
    print(f"\nscale {scale:g} — figures from {OUT}")
    for name, figure, goal in rows:
        print(f"{name:<{width}}  {figure:>{figure_width}}  {goal}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.summary_only:
        print_summary(args.scale)
        return 0
    skip = {step.strip() for step in args.skip.split(",") if step.strip()}
    files = _files(args.scale)
    common = ["--scale", f"{args.scale:g}", "--database-url", args.database_url]
    spent: dict[str, float] = {}
    if "recompute" not in skip:
        # --reuse generates the dataset when the database does not hold it yet, and --keep
        # leaves it for the load step.
        spent["recompute"] = _run(
            "recompute",
            [
                *common,
                "--reuse",
                "--keep",
                "--skip-fk-checks",
                "--repeat",
                str(args.repeat),
                "--json",
                str(files["recompute"]),
            ],
        )
    if "load" not in skip:
        spent["load"] = _run(
            "load",
            ["load", *common, "--generate", "--duration", str(args.duration)]
            + ["--out", str(files["load"])],
        )
    if "exports" not in skip:
        sizes = ",".join(str(max(1000, round(size * args.scale))) for size in EXPORT_SIZES)
        spent["exports"] = _run(
            "exports",
            [
                "exports",
                "--rows",
                sizes,
                "--database-url",
                args.exports_database_url,
                "--json",
                str(files["exports"]),
            ],
        )
    print_summary(args.scale)
    print("\n" + ", ".join(f"{step} {seconds(value)}" for step, value in spent.items()))
    return 0
