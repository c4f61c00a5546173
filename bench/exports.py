"""python -m bench exports [--rows 30000,100000,300000] [--database-url URL] [--keep] [--reuse]

The ranking workbook at scale: time and peak memory of exporting a committee's annual
ranking (总排名 + 支部汇总 + 统计) as the background job does it
(``scoring.exports.export_job_run``: claim, count, write the workbook to a temporary file
with progress updates, store it), for committees of 30,000, 100,000 and 300,000 members.

The dataset is one committee per size (20 members a branch, 100 branches a general branch),
each with its scheme (the five-star preset) and five ``PeriodScore`` rows per member (the
four quarters and the year) with ranks, stars, grades and flags computed here in Python and
loaded with COPY — no ledger: the export reads only the computed rows. Members are the
generator's mix (bench/generate.py): about 5% candidates and 5% not ranked.

Each measurement runs in a fresh Python process, which reports its own peak resident
memory (``VmHWM`` of /proc/self/status) at the end. Three kinds of process per size:
``baseline`` (Django set up, connected, one query: what any process costs), ``fetch`` (the
rows read from the database as the export reads them, nothing written) and ``job`` (the
whole export). Goal: 300,000 rows within 30 s, peak memory under 300 MB and not growing
with the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pp_bench_exports"
DEFAULT_ROWS = (30_000, 100_000, 300_000)
SEED = 20260105
YEAR = 2025
MEMBERS_PER_BRANCH = 20
BRANCHES_PER_GENERAL_BRANCH = 100
GOAL_SECONDS = 30.0
GOAL_MEGABYTES = 300.0
MARKER = "party-points exports bench"
STARS = [("五星", 120), ("四星", 110), ("三星", 100), ("二星", 90), ("一星", None)]
GRADES = [("优秀", 120), ("合格", 90), ("不合格", None)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench exports", description=__doc__)
    parser.add_argument(
        "--rows",
        default=",".join(str(n) for n in DEFAULT_ROWS),
        help="committee sizes (members), comma-separated",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept database of the same sizes"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement")
    parser.add_argument("--doc", default=str(DOC))
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--json", help="also write the results to this JSON file (bench all)")
    # Internal: one measurement in this (fresh) process.
    parser.add_argument(
        "--compare-openpyxl",
        action="store_true",
        help="also write 总排名 alone with openpyxl's own write-only cell writer (once a size)",
    )
    parser.add_argument(
        "--child", choices=["baseline", "fetch", "job", "openpyxl"], help=argparse.SUPPRESS
    )
    parser.add_argument("--organization", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- the dataset -----------------------------------------------------------------------------


def _rating(total: Decimal, bands) -> str:
    for label, low in bands:
        if low is None or total >= low:
            return label
    return ""


def _ranks(items: list[tuple[Decimal, int]]) -> dict[int, int]:
    """RANK() over totals, highest first: {key: rank}, ties sharing a rank."""
    ordered = sorted(items, key=lambda item: item[0], reverse=True)
    ranks: dict[int, int] = {}
    previous = None
    rank = 0
    for position, (total, key) in enumerate(ordered, start=1):
        if total != previous:
            rank, previous = position, total
        ranks[key] = rank
    return ranks


def generate(connection, sizes: list[int], log=print) -> dict[int, int]:
    """One committee per size; returns {size: committee id}."""
    from bench.generate import _copy, _member_profile, _rows, path_segment
    from members.models import Organization
    from scoring.schemes import scheme_adopt, scheme_create_from_preset

    rng = random.Random(SEED)
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("INSERT INTO auth_user (id, password, is_superuser, username, first_name, "
                       "last_name, email, is_staff, is_active, date_joined) VALUES (1, '!', true, "
                       "'bench_admin', '', '', '', true, true, now())")  # fmt: skip
    committees: dict[int, int] = {}
    next_org, next_member, next_score = 1, 1, 1
    now = "2026-01-05 09:00:00+08"
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
    given = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华建国红梅志文斌海燕玉春"
    for number, size in enumerate(sizes, start=1):
        started = time.perf_counter()
        branches = max(1, size // MEMBERS_PER_BRANCH)
        generals = max(1, -(-branches // BRANCHES_PER_GENERAL_BRANCH))
        committee_id = next_org
        committee_path = path_segment(number)
        org_rows = [
            (committee_id, committee_path, 1, generals, f"第{number}测试党委", "committee", now)
        ]
        next_org += 1
        branch_ids: list[int] = []
        for g in range(generals):
            in_general = min(
                BRANCHES_PER_GENERAL_BRANCH, branches - g * BRANCHES_PER_GENERAL_BRANCH
            )
            general_path = committee_path + path_segment(g + 1)
            org_rows.append(
                (next_org, general_path, 2, in_general, f"第{g + 1}党总支", "general_branch", now)
            )
            next_org += 1
            for b in range(in_general):
                org_rows.append(
                    (
                        next_org,
                        general_path + path_segment(b + 1),
                        3,
                        0,
                        f"第{g + 1}党总支第{b + 1}党支部",
                        "branch",
                        now,
                    )
                )
                branch_ids.append(next_org)
                next_org += 1
        _copy(
            raw,
            "members_organization",
            "id, path, depth, numchild, name, kind, created_at",
            _rows(org_rows),
        )
        committee = Organization.objects.get(pk=committee_id)
        scheme = scheme_create_from_preset(
            owner=committee, year=YEAR, name="五星积分细则", preset="five_stars_base_100"
        )
        scheme_adopt(organization=committee, scheme=scheme)

        # Members and their totals: quarter nets with a little spread, a few vetoes.
        members = []  # (id, branch, ranking group, bonus by quarter, deduction by quarter, vetoed)
        member_rows = []
        for index in range(size):
            member_id = next_member
            next_member += 1
            branch = branch_ids[index % len(branch_ids)]
            category, status, reason, _activity = _member_profile(rng)
            if status in ("exempt", "transferred_out"):
                group = "unranked"
            elif category in ("full", "probationary"):
                group = "party"
            else:
                group = "candidate"
            bonus = [Decimal(rng.randrange(0, 1200)) / 100 for _ in range(4)]
            deduction = [Decimal(rng.choice((0, 0, 0, 100, 200, 500))) / 100 for _ in range(4)]
            vetoed = rng.random() < 0.0002
            member_rows.append(
                (
                    member_id,
                    branch,
                    rng.choice(surnames) + "".join(rng.choices(given, k=rng.choice((1, 2)))),
                    "",
                    "",
                    category,
                    status,
                    "f",
                    reason,
                    now,
                    now,
                )
            )
            members.append((member_id, branch, group, bonus, deduction, vetoed))
        _copy(
            raw,
            "members_member",
            "id, organization_id, name, gender, phone, category, status, is_cadre, "
            "exempt_reason, created_at, updated_at",
            _rows(member_rows),
        )

        _copy(
            raw,
            "scoring_periodscore",
            "id, member_id, organization_id, scheme_id, year, quarter, base_score, bonus, "
            "deduction, net, year_to_date_total, total, uncounted_points, is_vetoed, "
            "ranking_group, rank_in_branch, rank_in_committee, star, grade, is_top_flagged, "
            "is_bottom_flagged, computed_at",
            _rows(_score_rows(members, scheme.pk, next_score, now)),
        )
        next_score += 5 * len(members)
        raw.commit()
        committees[size] = committee_id
        log(
            f"  committee {committee_id}: {size:,} members, {branches:,} branches, "
            f"{generals} general branches, {size * 5:,} period rows "
            f"({time.perf_counter() - started:.1f} s)"
        )
    with connection.cursor() as cursor:
        for table in ("auth_user", "members_organization", "members_member", "scoring_periodscore"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}"
            )
        cursor.execute("ANALYZE")
    return committees


def _score_rows(members: list[tuple], scheme_id: int, first_id: int, now: str):
    """Five PeriodScore rows per member (quarters 1–4, then the year), ranked as the
    recompute ranks them: RANK() by total per group, in the committee and in the branch."""
    next_id = first_id
    base = Decimal("100.00")
    for quarter in (1, 2, 3, 4, 0):
        totals: dict[int, tuple] = {}
        by_committee: dict[str, list] = {}
        by_branch: dict[tuple, list] = {}
        for member_id, branch, group, bonus, deduction, vetoed in members:
            quarters = range(4) if quarter == 0 else range(quarter)
            plus = sum(bonus[q] for q in quarters) if quarter == 0 else bonus[quarter - 1]
            minus = sum(deduction[q] for q in quarters) if quarter == 0 else deduction[quarter - 1]
            ytd = base + sum(bonus[q] - deduction[q] for q in quarters)
            total = Decimal("0.00") if vetoed and quarter in (0, 3, 4) else ytd
            totals[member_id] = (branch, group, plus, minus, plus - minus, ytd, total)
            if group != "unranked":
                by_committee.setdefault(group, []).append((total, member_id))
                by_branch.setdefault((branch, group), []).append((total, member_id))
        committee_rank: dict[int, int] = {}
        for items in by_committee.values():
            committee_rank.update(_ranks(items))
        branch_rank: dict[int, int] = {}
        branch_size: dict[int, int] = {}
        for items in by_branch.values():
            ranks = _ranks(items)
            branch_rank.update(ranks)
            for key in ranks:
                branch_size[key] = len(items)
        for member_id, (branch, group, plus, minus, net, ytd, total) in totals.items():
            ranked = group != "unranked"
            rank_b = branch_rank.get(member_id)
            vetoed = total == 0 and ytd != 0
            yield (
                next_id,
                member_id,
                branch,
                scheme_id,
                YEAR,
                quarter,
                base,
                plus,
                minus,
                net,
                ytd,
                total,
                Decimal("0.00"),
                "t" if vetoed else "f",
                group,
                rank_b,
                committee_rank.get(member_id),
                _rating(total, STARS) if ranked else "",
                ("不合格" if vetoed else _rating(total, GRADES)) if ranked and quarter == 0 else "",
                "t" if ranked and rank_b <= 5 else "f",
                "t" if ranked and rank_b > branch_size[member_id] - 3 else "f",
                now,
            )
            next_id += 1


# --- one measurement (in its own process) ----------------------------------------------------


def child(kind: str, organization_id: int) -> dict:
    """Run one measurement here; returns what the parent prints."""
    from django.conf import settings
    from django.db import connection

    from members.models import Organization
    from scoring import exports
    from scoring.models import ExportJob

    organization = Organization.objects.get(pk=organization_id)
    started = time.perf_counter()
    result: dict = {"kind": kind}
    if kind == "baseline":
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM members_organization")
            cursor.fetchone()
    elif kind == "openpyxl":
        # The same rows into a plain write-only sheet: openpyxl builds a cell per value.
        from openpyxl import Workbook

        from members.excel import neutralize

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("总排名")
        rows = 0
        for row in exports.ranking_rows(organization=organization, year=YEAR):
            sheet.append([neutralize(value) for value in row])
            rows += 1
        with tempfile.NamedTemporaryFile(suffix=".xlsx") as target:
            workbook.save(target.name)
            result["bytes"] = os.path.getsize(target.name)
        result["rows"] = rows
    elif kind == "fetch":
        rows = sum(1 for _row in exports.ranking_rows(organization=organization, year=YEAR))
        result["rows"] = rows
    else:
        media = tempfile.mkdtemp(prefix="bench-export-")
        settings.MEDIA_ROOT = media
        job = ExportJob.objects.create(
            kind=ExportJob.Kind.ANNUAL_RANKING,
            organization=organization,
            year=YEAR,
            requested_by_id=1,
            filename="bench.xlsx",
        )
        status = exports.export_job_run(job_id=job.pk)
        job.refresh_from_db()
        result.update(
            status=status,
            error=job.error,
            rows=job.rows_written,
            bytes=job.file.size if job.file else 0,
        )
        if job.file:
            job.file.delete(save=False)
        os.rmdir(os.path.join(media, "exports", str(organization.pk)))
        os.rmdir(os.path.join(media, "exports"))
        os.rmdir(media)
        ExportJob.objects.filter(pk=job.pk).delete()
    result["wall"] = time.perf_counter() - started
    result["peak_mb"] = _peak_rss_mb()
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss`` from the parent's
    ``wait4``: Linux carries the forking parent's peak over into the child's across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(kind: str, organization_id: int, url: str) -> dict:
    """A fresh interpreter for one measurement: its result, with its peak RSS (MB)."""
    command = [
        sys.executable,
        "-m",
        "bench",
        "exports",
        "--child",
        kind,
        "--organization",
        str(organization_id),
        "--database-url",
        url,
    ]
    process = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if process.returncode != 0:
        raise SystemExit(f"the {kind} measurement failed (exit {process.returncode})")
    return json.loads(process.stdout.strip().splitlines()[-1])


# --- the report ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    from django.db import connection

    mem_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    import openpyxl
    from openpyxl import LXML

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "PostgreSQL": version.split()[0],
        "Python": platform.python_version(),
        "openpyxl": f"{openpyxl.__version__} ({'lxml' if LXML else 'no lxml'})",
    }


def markdown(
    results: list[dict], info: dict, command: str, load: str, code: str, generation: str
) -> str:
    compare = all("openpyxl" in r for r in results)
    lines = [
        "<!-- bench exports -->",
        "## Exports: the ranking workbook at scale",
        "",
        "`python -m bench exports` (bench/exports.py) loads one committee per size — 20 members "
        "a branch, five computed `PeriodScore` rows per member, the generator's mix of members "
        "(about 5% candidates, 5% not ranked) — and exports each committee's annual ranking "
        "workbook (总排名 + 支部汇总 + 统计) the way the background job does "
        "(`scoring.exports.export_job_run`: claim, count, write to a temporary file with "
        "progress updates, store). Every measurement runs in a fresh process; peak memory is "
        "the process's peak resident set size (`VmHWM` in /proc/self/status). *baseline* is "
        "a process that only sets up Django and runs one query; *fetch* reads the ranking rows "
        "as the export does and writes nothing.",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {code}, `{command}`; load average (1 min) "
        f"before / after: {load}; {generation}. Machine: "
        + "; ".join(f"{k} {v}" for k, v in info.items())
        + ".",
        "",
        "| members (rows of 总排名) | branches (rows of 支部汇总) | export job: wall "
        f"(median of {results[0]['runs']}) | fetch only: wall | workbook | peak memory: job "
        "| fetch | baseline |" + (" 总排名 alone, openpyxl's cell writer |" if compare else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if compare else ""),
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['branches']:,} | {r['job']['wall']:.1f} s | "
            f"{r['fetch']['wall']:.1f} s | {r['job']['bytes'] / 1024 / 1024:.1f} MB | "
            f"{r['job']['peak_mb']:.0f} MB | {r['fetch']['peak_mb']:.0f} MB | "
            f"{r['baseline']['peak_mb']:.0f} MB |"
            + (
                f" {r['openpyxl']['wall']:.1f} s, {r['openpyxl']['peak_mb']:.0f} MB |"
                if compare
                else ""
            )
        )
    biggest = max(results, key=lambda r: r["size"])
    smallest = min(results, key=lambda r: r["size"])
    wall_ok = biggest["job"]["wall"] <= GOAL_SECONDS
    memory_ok = max(r["job"]["peak_mb"] for r in results) <= GOAL_MEGABYTES
    growth = biggest["job"]["peak_mb"] - smallest["job"]["peak_mb"]
    lines += [
        "",
        f"Goal: {biggest['size']:,} rows within {GOAL_SECONDS:g} s — "
        f"{biggest['job']['wall']:.1f} s, {'met' if wall_ok else '**not met**'}; peak memory "
        f"under {GOAL_MEGABYTES:g} MB and flat — {biggest['job']['peak_mb']:.0f} MB at "
        f"{biggest['size']:,} rows against {smallest['job']['peak_mb']:.0f} MB at "
        f"{smallest['size']:,} ({growth:+.0f} MB for {biggest['size'] / smallest['size']:.0f}× "
        f"the rows), {'met' if memory_ok else '**not met**'}.",
        "",
        "How: the rows come from `values_list(...).iterator(chunk_size=5000)` (a server-side "
        "cursor: no model instance, no full result in the client) and are written by "
        "`members.excel.TableSheet`, a write-only openpyxl sheet whose plain rows (text, "
        "numbers) go into the stream as one XML string per row instead of one cell object "
        "per value"
        + (
            " (the last column: the same 总排名 rows, alone, through openpyxl's own writer)"
            if compare
            else ""
        )
        + ", with lxml installed (openpyxl's `xmlfile` then is lxml's). Every sheet streams "
        "to a temporary file, so memory does not depend on the rows.",
        "<!-- /bench exports -->",
        "",
    ]
    return "\n".join(lines)


def update_doc(doc: Path, block: str) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"<!-- bench exports -->.*?<!-- /bench exports -->\n", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text)


def _code_version() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "scoring/exports.py", "members/excel.py")
    return f"commit {head}" + (" + uncommitted changes to the exports" if dirty else "")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        _setup_django(args.database_url)
        print(json.dumps(child(args.child, args.organization)))
        return 0

    from bench.__main__ import admin_connection

    sizes = sorted({int(n.replace("_", "")) for n in args.rows.split(",") if n.strip()})
    command = "python -m bench exports " + " ".join(shlex.quote(a) for a in argv)
    wanted = f"{MARKER} sizes={','.join(map(str, sizes))} seed={SEED}"
    conn, name = admin_connection(args.database_url)
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        )
        row = cursor.fetchone()
        reuse = bool(args.reuse and row and (row[0] or "").split("\n")[0] == wanted)
        if not reuse:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    _setup_django(args.database_url)
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the benchmark needs PostgreSQL")
    call_command("migrate", verbosity=0)
    if reuse:
        committees = json.loads(row[0].split("\n", 1)[1])
        committees = {int(k): v for k, v in committees.items()}
        print("reusing the kept dataset")
        generation = "dataset kept from an earlier run (--keep)"
    else:
        print(f"generating committees of {', '.join(f'{n:,}' for n in sizes)} members …")
        started = time.perf_counter()
        committees = generate(connection, sizes)
        seconds = time.perf_counter() - started
        generation = f"dataset generated (COPY) in {seconds:.0f} s by this run"
        print(f"generated in {seconds:.1f} s")
    info = machine()
    from members.models import Organization

    branches = {}
    for size, committee_id in committees.items():
        committee = Organization.objects.get(pk=committee_id)
        branches[size] = Organization.objects.filter(
            path__startswith=committee.path, kind=Organization.Kind.BRANCH
        ).count()
    connection.close()

    load_before = os.getloadavg()[0]
    results = []
    for size in sizes:
        committee_id = committees[size]
        runs = {kind: [] for kind in ("baseline", "fetch", "job")}
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(run_child(kind, committee_id, args.database_url))
        result = {"size": size, "branches": branches[size], "runs": args.repeat}
        if args.compare_openpyxl:
            result["openpyxl"] = run_child("openpyxl", committee_id, args.database_url)
        for kind, measured in runs.items():
            middle = sorted(measured, key=lambda r: r["wall"])[len(measured) // 2]
            middle["peak_mb"] = max(r["peak_mb"] for r in measured)
            middle["wall_all"] = [round(r["wall"], 2) for r in measured]
            result[kind] = middle
        job = result["job"]
        if job["status"] != "done":
            raise SystemExit(f"the export of {size:,} failed: {job['error']}")
        print(
            f"{size:>9,} members {branches[size]:>6,} branches: job {job['wall']:6.1f} s "
            f"(runs {job['wall_all']}), {job['peak_mb']:5.0f} MB peak, "
            f"{job['bytes'] / 1024 / 1024:5.1f} MB file, {job['rows']:,} rows | fetch "
            f"{result['fetch']['wall']:5.1f} s {result['fetch']['peak_mb']:4.0f} MB | baseline "
            f"{result['baseline']['peak_mb']:4.0f} MB"
        )
        results.append(result)
    load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    print(f"load average (1 min) before / after: {load}")
    for key, value in info.items():
        print(f"{key}: {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"command": command, "load": load, "machine": info, "results": results},
                indent=1,
                default=str,
            )
        )
    if not args.no_docs:
        update_doc(
            Path(args.doc), markdown(results, info, command, load, _code_version(), generation)
        )
        print(f"wrote {args.doc}")

    conn, name = admin_connection(args.database_url)
    with conn.cursor() as cursor:
        if args.keep:
            comment = wanted + "\n" + json.dumps(committees)
            cursor.execute(f'COMMENT ON DATABASE "{name}" IS %s', [comment])
        else:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
