"""python -m bench [--scale 0.01] [--database-url URL] [--keep] [--reuse] [--experiments]
(``python -m bench exports …``: the export benchmark, see bench/exports.py)

Creates (or recreates) the benchmark database, migrates it, generates the dataset with
COPY, measures the floor, the full recompute and the incremental recompute, prints a
table and writes the figures into docs/benchmarks.md. Drops the database unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pp_bench"
GOAL_RATIO = 3.0
GOAL_INCREMENTAL_MS = 50.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 300k members, 10M entries")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the database if it already holds this scale's dataset (from --keep)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured runs after a warm-up")
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also EXPLAIN ANALYZE the recompute's statements and time rewritten variants",
    )
    parser.add_argument(
        "--skip-fk-checks",
        action="store_true",
        help="load the ledger with the foreign-key triggers off (checked set-wise afterwards)",
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="generate (implies --keep), measure nothing"
    )
    parser.add_argument(
        "--only-experiments",
        action="store_true",
        help="with --reuse: run only the experiments (they need the dataset measured before)",
    )
    parser.add_argument(
        "--variants", help="letters of the experiments to run, e.g. ADEF (default: all)"
    )
    parser.add_argument(
        "--explain",
        metavar="FILE",
        help="write EXPLAIN (ANALYZE, BUFFERS) of the full recompute's statements to FILE",
    )
    parser.add_argument("--doc", default=str(DOC), help="the Markdown file to write the figures to")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--json", help="also write the results to this JSON file (bench all)")
    return parser.parse_args(argv)


def admin_connection(url: str):
    parts = urlsplit(url)
    conn = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
    )
    conn.autocommit = True
    return conn, parts.path.lstrip("/")


def marker(scale: float, seed: int) -> str:
    return f"party-points bench scale={scale} seed={seed}"


def prepare_database(url: str, scale: float, seed: int, reuse: bool) -> dict | None:
    """Create the database; when a kept dataset of this scale is reused instead, the
    generation figures of the run that made it (kept in the database's comment)."""
    conn, name = admin_connection(url)
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        )
        row = cursor.fetchone()
        comment = (row[0] or "") if row else ""
        if reuse and comment.split("\n")[0] == marker(scale, seed):
            conn.close()
            kept = json.loads(comment.split("\n", 1)[1]) if "\n" in comment else {}
            return {"generation": {"total": float("nan")}, **kept}
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return None


def finish_database(url: str, scale: float, seed: int, keep: bool, kept: dict | None = None):
    """Drop the database, or mark it with the scale (and generation figures) for --reuse."""
    conn, name = admin_connection(url)
    with conn.cursor() as cursor:
        if keep:
            comment = marker(scale, seed) + "\n" + json.dumps(kept or {})
            cursor.execute(f'COMMENT ON DATABASE "{name}" IS %s', [comment])
        else:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def code_version() -> str:
    """The commit measured, and whether the recompute differs from it in the work tree."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    if os.environ.get("BENCH_CODE"):  # e.g. when run from an exported tree without .git
        return os.environ["BENCH_CODE"]
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "scoring/recompute.py", "scoring/schemes.py")
    return f"commit {head}" + (" + uncommitted changes to the recompute" if dirty else "")


def machine(connection) -> dict[str, str]:
    mem_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        settings = {}
        for name in (
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "max_parallel_workers_per_gather",
            "jit",
        ):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "PostgreSQL": version.split()[0],
        "server settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
        "Python": platform.python_version(),
    }


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def build_table(result: dict) -> list[tuple[str, str]]:
    from bench.recompute import WORKING_TABLES

    floor = result["floor"]
    full = result["full"]
    inc = result["incremental"]
    label = "generation (COPY + ANALYZE)"
    if result.get("generation_command"):
        label += f", by the run that kept the dataset: {result['generation_command']}"
    rows = [(label, seconds(result["generation"]["total"]))]
    rows += [(f"  {k}", seconds(v)) for k, v in result["generation"].items() if k != "total"]
    rows += [(k, seconds(v)) for k, v in floor.items()]
    rows.append(("full recompute: recompute_organization (wall)", seconds(full["wall"])))
    order = [
        "totals (all statements)",
        "totals: delete",
        "caps: clips checked and derived again",
        *WORKING_TABLES.values(),
        "totals: compute into a temp table",
        "totals: insert",
        "totals: upsert",
        "branch ranking",
        "committee ranking",
        "other (ORM, locks, temp tables)",
        "commit (deferred FK checks) + Python",
    ]
    for kind in order:
        if kind in full["parts"]:
            rows.append((f"  {kind}", seconds(full["parts"][kind])))
    cold = result.get("cold")
    if cold:
        rows.append(
            (
                "full recompute with no cap clips kept (every member's derived first), one run",
                seconds(cold["wall"]),
            )
        )
    temp = floor["floor: CREATE TEMP TABLE AS"]
    fetched = floor["floor: SELECT fully fetched"]
    pairs = ", ".join(f"{wall:.1f} s / {floor:.2f} s" for floor, wall in full["pairs"])
    rows.append(
        (
            f"ratio recompute / floor run just before it, median of the pairs ({pairs})",
            f"{full['paired_ratio']:.2f}×",
        )
    )
    rows.append(("ratio recompute / floor (temp table)", f"{full['wall'] / temp:.1f}×"))
    rows.append(("ratio recompute / floor (fetched)", f"{full['wall'] / fetched:.1f}×"))
    rows.append(
        (
            "ratio totals only / floor (temp table)",
            f"{full['parts']['totals (all statements)'] / temp:.1f}×",
        )
    )
    rows.append(
        ("incremental: recompute_members([1 member]) DB time", f"{inc['db_median'] * 1000:.1f} ms")
    )
    rows.append(("  max over 5 members × runs", f"{inc['db_max'] * 1000:.1f} ms"))
    rows.append(("  wall (incl. Python)", f"{inc['wall_median'] * 1000:.1f} ms"))
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _v in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value:>12}")


def markdown_block(result: dict, rows: list[tuple[str, str]]) -> str:
    c = result["counts"]
    full = result["full"]
    ratio = full["paired_ratio"]
    inc_ms = result["incremental"]["db_median"] * 1000
    lines = [
        f"### Scale {result['scale']:g}: {c['members']:,} members, {c['branches']:,} branches, "
        f"{result['entry_rows']:,} entries",
        "",
        f"Measured {result['date']} on {result['code']}, `{result['command']}`; "
        f"medians of {result['repeat']} runs "
        f"after one warm-up; load average (1 min) before / after measuring: {result['load']} "
        f"on {os.cpu_count()} cores.",
        "",
        "| measurement | value |",
        "|---|---:|",
    ]
    lines += [
        f"| {k.strip() if not k.startswith('  ') else '… ' + k.strip()} | {v} |" for k, v in rows
    ]
    verdict_full = "met" if ratio <= GOAL_RATIO else "**not met**"
    verdict_inc = "met" if inc_ms <= GOAL_INCREMENTAL_MS else "**not met**"
    lines += [
        "",
        f"Goal full recompute ≤ {GOAL_RATIO:g}× the floor (temp-table variant, each run of the "
        f"recompute against the floor run just before it, median): {ratio:.2f}× — "
        f"{verdict_full}. Goal incremental < {GOAL_INCREMENTAL_MS:g} ms: {inc_ms:.1f} ms — "
        f"{verdict_inc}.",
        "",
        "Dataset after the recompute: "
        + "; ".join(
            f"{k}: {v}" for k, v in result["sanity"].items() if k not in ("grades", "stars")
        )
        + "; grades "
        + ", ".join(f"{k or '—'} {v:,}" for k, v in result["sanity"]["grades"].items())
        + "; stars "
        + ", ".join(f"{k or '—'} {v:,}" for k, v in result["sanity"]["stars"].items())
        + ".",
        "",
    ]
    if result.get("experiments"):
        lines.append(experiments_block(result["scale"], result["experiments"], result))
    return "\n".join(lines)


def experiments_block(scale: float, rows: list[tuple[str, str]], result: dict) -> str:
    lines = [
        f"<!-- bench experiments scale={scale:g} -->",
        f"Experiments at scale {scale:g} (`{result['command']}`, {result['date']}, "
        f"{result.get('code', '')}; copies of the "
        f"recompute's statements in bench/recompute.py, each run in a rolled-back transaction; "
        f"median of {result['repeat']}; load average (1 min) before / after: "
        f"{result.get('load', '?')}):",
        "",
        "| variant | time |",
        "|---|---:|",
    ]
    lines += [
        f"| {k.strip() if not k.startswith('  ') else '… ' + k.strip()} | {v} |" for k, v in rows
    ]
    lines += ["", f"<!-- /bench experiments scale={scale:g} -->", ""]
    return "\n".join(lines)


def update_experiments(scale: float, rows: list[tuple[str, str]], result: dict) -> None:
    """Replace (or add) one scale's experiments inside its block of docs/benchmarks.md."""
    text = DOC.read_text()
    block = experiments_block(scale, rows, result)
    pattern = re.compile(
        rf"<!-- bench experiments scale={re.escape(f'{scale:g}')} -->.*?"
        rf"<!-- /bench experiments scale={re.escape(f'{scale:g}')} -->\n",
        re.S,
    )
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        end = f"<!-- /bench scale={scale:g} -->"
        if end not in text:
            raise SystemExit(f"no results of scale {scale:g} in {DOC} to add experiments to")
        text = text.replace(end, block + end)
    DOC.write_text(text)


DOC_HEAD = """# Benchmarks

## Recompute at city scale

`python -m bench` (see bench/README.md) generates a city-scale committee in PostgreSQL —
1 committee, 150 general branches, 15,000 branches, 300,000 members, 10,000,000 ledger
entries over one year at `--scale 1` — and measures, on the same data:

- **the floor**: `SELECT member_id, quarter, SUM(points) FROM scoring_entry WHERE year = Y
  GROUP BY member_id, quarter`, fully fetched by the client, and written with
  `CREATE TEMP TABLE … AS` (the recompute writes rows too, so the temp-table figure is the
  fair one; a variant without parallel workers is shown because `INSERT … SELECT` never
  gets a parallel plan on PostgreSQL 15);
- **the full annual recompute**: `scoring.recompute.recompute_organization(committee, year)`,
  wall time, split by statement (every statement is timed with `connection.execute_wrapper`);
- **the incremental recompute**: `recompute_members([one member], year)`, the time spent in
  the database (sum of the cursor executes), for five members across the id range.

Goals: full recompute within 3× the floor; incremental under 50 ms.

"""


def update_doc(scale: float, block: str, machine_info: dict, command: str) -> None:
    text = DOC.read_text() if DOC.exists() else DOC_HEAD + "<!-- bench:end -->\n"
    blocks = dict(
        (float(m.group(1)), m.group(0))
        for m in re.finditer(r"<!-- bench scale=(\S+) -->.*?<!-- /bench scale=\1 -->", text, re.S)
    )
    blocks[scale] = f"<!-- bench scale={scale:g} -->\n{block}<!-- /bench scale={scale:g} -->"
    machine_block = (
        "<!-- bench:machine -->\nMachine of the last run: "
        + "; ".join(f"{k} {v}" for k, v in machine_info.items())
        + f". Command: `{command}`.\n<!-- /bench:machine -->"
    )
    # Strip the old generated parts, then put them back in scale order before the end marker.
    text = re.sub(r"<!-- bench scale=(\S+) -->.*?<!-- /bench scale=\1 -->\n*", "", text, flags=re.S)
    text = re.sub(r"<!-- bench:machine -->.*?<!-- /bench:machine -->\n*", "", text, flags=re.S)
    generated = (
        machine_block + "\n\n" + "\n\n".join(blocks[s] for s in sorted(blocks, reverse=True))
    )
    text = text.replace("<!-- bench:end -->", generated + "\n\n<!-- bench:end -->")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


def main(argv: list[str]) -> int:
    global DOC
    if argv[:1] == ["exports"]:
        from bench import exports

        return exports.main(argv[1:])
    if argv[:1] == ["all"]:
        from bench import all as everything

        return everything.main(argv[1:])
    if argv[:1] == ["load"]:
        from bench import load

        return load.main(argv[1:])
    args = parse_args(argv)
    DOC = Path(args.doc).resolve()
    from bench import generate

    command = "python -m bench " + " ".join(shlex.quote(a) for a in argv)
    reused = prepare_database(args.database_url, args.scale, generate.SEED, args.reuse)
    kept = {}
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench import recompute as measure
    from members.models import Organization

    if connection.vendor != "postgresql":
        raise SystemExit("the benchmark needs PostgreSQL")
    counts = generate.Counts.at(args.scale)
    print(
        f"scale {args.scale:g}: {counts.general_branches} general branches, {counts.branches:,} "
        f"branches, {counts.members:,} members, {counts.entries:,} entries"
    )
    result: dict = {
        "scale": args.scale,
        "repeat": args.repeat,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "code": code_version(),
    }
    if reused:
        print("reusing the kept dataset (migrating it to the current schema)")
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM scoring_entry")
            result["entry_rows"] = cursor.fetchone()[0]
            cursor.execute("SELECT id FROM members_member ORDER BY id")
            member_ids = [row[0] for row in cursor.fetchall()]
        # Generated by an earlier run (--keep), which left its figures in the database comment.
        kept = {"generation": reused["generation"], "command": reused.get("command")}
        result["generation"] = reused["generation"]
        result["generation_command"] = reused.get("command")
        year = generate.YEAR
    else:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        migrate_time = time.perf_counter() - started
        print(f"migrated in {migrate_time:.1f} s; generating …")
        data = generate.generate(connection, args.scale, skip_fk_checks=args.skip_fk_checks)
        result["generation"] = data.timings
        kept = {"generation": data.timings, "command": command}
        result["entry_rows"] = data.entry_rows
        member_ids = data.member_ids
        year = data.year
        print(f"generated in {data.timings['total']:.1f} s")
        for key, value in data.timings.items():
            print(f"  {key}: {value:.1f} s")
    result["counts"] = vars(counts)
    if args.generate_only:
        connection.close()
        finish_database(args.database_url, args.scale, generate.SEED, True, kept)
        print("kept the database (--generate-only)")
        return 0
    info = machine(connection)
    committee = Organization.objects.get(depth=1)

    load_before = os.getloadavg()[0]
    if load_before > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load_before:.1f} on {os.cpu_count()} cores before measuring")
    result["load"] = f"{load_before:.1f} / ?"
    if args.explain:
        print("EXPLAIN ANALYZE of the full recompute …")
        plans = measure.explain_full(committee, year, Path(args.explain))
        for kind, value in plans.items():
            print(f"  {kind}: {seconds(value)} (with EXPLAIN ANALYZE overhead)")
    if args.only_experiments:
        print("experiments …")
        experiments = measure.experiments(committee, year, args.repeat, args.variants)
        result["load"] = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
        print()
        print_table(experiments)
        if not args.no_docs:
            update_experiments(args.scale, experiments, result)
            print(f"\nwrote {DOC}")
        connection.close()
        finish_database(args.database_url, args.scale, generate.SEED, args.keep, kept)
        return 0
    print("measuring the floor …")
    result["floor"] = measure.measure_floor(year, args.repeat)
    print("measuring the full recompute …")
    result["full"] = measure.measure_full(committee, year, args.repeat)
    print("measuring the full recompute with no cap clips kept …")
    result["cold"] = measure.measure_cold(committee, year)
    result["sanity"] = measure.sanity(year)
    print("measuring the incremental recompute …")
    result["incremental"] = measure.measure_incremental(member_ids, year, args.repeat)
    if args.experiments:
        print("experiments …")
        result["experiments"] = measure.experiments(committee, year, args.repeat, args.variants)
    result["load"] = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"

    rows = build_table(result)
    print()
    print_table(rows)
    print()
    for key, value in result["sanity"].items():
        print(f"{key}: {value}")
    for key, value in info.items():
        print(f"{key}: {value}")
    print(f"load average (1 min) before / after measuring: {result['load']}")
    print(f"code: {result['code']}")
    if result.get("experiments"):
        print()
        print_table(result["experiments"])
    if not args.no_docs:
        update_doc(args.scale, markdown_block(result, rows), info, command)
        print(f"\nwrote {DOC}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({**result, "machine": info, "table": rows}, indent=1, default=str)
        )

    connection.close()
    finish_database(args.database_url, args.scale, generate.SEED, args.keep, kept)
    if not args.keep:
        print("dropped the benchmark database")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
