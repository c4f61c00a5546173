"""Measurements: the database floor, the full annual recompute, the incremental recompute.

Every figure is the median of ``repeat`` runs after one warm-up run. Before each run the
period table is vacuumed and a checkpoint taken (outside the timing), so one run's dead
rows and dirty pages are not charged to the next.
"""

from __future__ import annotations

import re
import statistics
import time
from contextlib import contextmanager

from django.db import connection

FLOOR_SQL = (
    "SELECT member_id, quarter, SUM(points) FROM scoring_entry WHERE year = %s "
    "GROUP BY member_id, quarter"
)


# What each of the recompute's working tables holds (scoring.recompute.SCRATCH).
WORKING_TABLES = {
    "sums": "totals: sums per member (one pass over the ledger)",
    "totals": "totals: period rows from the sums",
    "committee": "totals: committee ranks, stars and grades per distinct total",
    "ranks": "totals: branch ranks (the window)",
    "groups": "totals: branch ranking groups (size, highest, lowest)",
    "rows": "totals: ranks, stars and grades; the rows that changed",
}


def statement_kind(sql: str) -> str:
    """Which part of the recompute a statement belongs to. Covers both shapes the recompute
    has had: totals INSERT then two ranking UPDATEs, and totals with ranks computed into a
    temporary table then one upsert."""
    text = " ".join(sql.split())
    # A working table of the recompute: temporary, or at city scale unlogged and named for
    # the session (recompute_sums_<pid>).
    table = re.match(r"CREATE (?:TEMPORARY|UNLOGGED) TABLE recompute_([a-z]+)(?:_\d+)? AS ", text)
    if table and table.group(1) in WORKING_TABLES:
        return WORKING_TABLES[table.group(1)]
    if text.startswith("DELETE FROM scoring_periodscore"):
        return "totals: delete"
    if text.startswith(("CREATE TEMPORARY TABLE", "CREATE TEMP TABLE")):
        return "totals: compute into a temp table"
    if "scoring_capclip" in text or "scoring_capstate" in text:
        return "caps: clips checked and derived again"
    if text.startswith("INSERT INTO scoring_periodscore"):
        return "totals: insert" if "ON CONFLICT" not in text else "totals: upsert"
    if text.startswith("UPDATE scoring_periodscore AS ps SET rank_in_branch"):
        return "branch ranking"
    if text.startswith("UPDATE scoring_periodscore AS ps SET rank_in_committee"):
        return "committee ranking"
    return "other (ORM, locks, temp tables)"


TOTALS_KINDS = (
    "totals: delete",
    "caps: clips checked and derived again",
    *WORKING_TABLES.values(),
    "totals: compute into a temp table",
    "totals: insert",
    "totals: upsert",
)


class StatementLog:
    """An execute_wrapper that times every statement (and keeps its SQL and parameters)."""

    def __init__(self):
        self.calls: list[tuple[str, object, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.calls.append((sql, params, time.perf_counter() - started))

    @property
    def total(self) -> float:
        return sum(seconds for _sql, _params, seconds in self.calls)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for sql, _params, seconds in self.calls:
            kind = statement_kind(sql)
            out[kind] = out.get(kind, 0.0) + seconds
        return out


@contextmanager
def logged():
    log = StatementLog()
    with connection.execute_wrapper(log):
        yield log


def settle() -> None:
    """Outside any timing: clear dead period rows and flush dirty pages."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE scoring_periodscore")
        cursor.execute("CHECKPOINT")


def median_runs(run, repeat: int) -> list:
    """One warm-up, then ``repeat`` measured results of ``run()``."""
    settle()
    run()
    results = []
    for _ in range(repeat):
        settle()
        results.append(run())
    return results


def floor_fetch(year: int) -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, [year])
        rows = cursor.fetchall()
    assert rows
    return time.perf_counter() - started


def floor_temp_table(year: int) -> float:
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        started = time.perf_counter()
        cursor.execute("CREATE TEMP TABLE bench_floor AS " + FLOOR_SQL, [year])
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_floor")
    return elapsed


@contextmanager
def session_setting(name: str, value: str):
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        old = cursor.fetchone()[0]
        cursor.execute(f"SET {name} = %s", [value])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SET {name} = %s", [old])


def measure_floor(year: int, repeat: int) -> dict[str, float]:
    out = {
        "floor: SELECT fully fetched": statistics.median(
            median_runs(lambda: floor_fetch(year), repeat)
        ),
        "floor: CREATE TEMP TABLE AS": statistics.median(
            median_runs(lambda: floor_temp_table(year), repeat)
        ),
    }
    # The INSERT … SELECT of the recompute cannot use a parallel plan; the floor can.
    with session_setting("max_parallel_workers_per_gather", "0"):
        out["floor: CREATE TEMP TABLE AS, no parallel workers"] = statistics.median(
            median_runs(lambda: floor_temp_table(year), repeat)
        )
    return out


def measure_full(committee, year: int, repeat: int) -> dict:
    """The full recompute, each run just after a run of the floor (its temp-table variant):
    the ratio of each pair is taken on the machine as it was at that moment, so a neighbour
    slowing the machine down for a minute moves both figures of a pair, not the ratio."""
    from scoring.recompute import recompute_organization

    pairs: list[tuple[float, float]] = []

    def run():
        floor = floor_temp_table(year)
        settle()
        with logged() as log:
            started = time.perf_counter()
            written = recompute_organization(committee, year)
            wall = time.perf_counter() - started
        pairs.append((floor, wall))
        return wall, log.by_kind(), written

    results = median_runs(run, repeat)
    measured = pairs[1:]  # the first pair is the warm-up
    kinds = sorted({kind for _w, by_kind, _n in results for kind in by_kind})
    out = {
        "wall": statistics.median(w for w, _b, _n in results),
        "pairs": measured,
        "paired_ratio": statistics.median(wall / floor for floor, wall in measured),
        "rows": results[-1][2],
        "parts": {
            kind: statistics.median(by_kind.get(kind, 0.0) for _w, by_kind, _n in results)
            for kind in kinds
        },
    }
    parts = out["parts"]
    # Not inside any execute: the commit, which runs the deferred foreign-key checks of every
    # period row inserted or updated, and the Python around the statements.
    parts["commit (deferred FK checks) + Python"] = out["wall"] - sum(parts.values())
    parts["totals (all statements)"] = sum(parts.get(kind, 0.0) for kind in TOTALS_KINDS)
    return out


def measure_cold(committee, year: int) -> dict:
    """One full recompute with no cap clips kept (as after a bulk load that bypassed the
    services): every member's clips are derived from the ledger first."""
    from scoring.models import CapClip, CapState
    from scoring.recompute import recompute_organization

    CapClip.objects.all().delete()
    CapState.objects.all().delete()
    settle()
    with logged() as log:
        started = time.perf_counter()
        recompute_organization(committee, year)
        wall = time.perf_counter() - started
    return {"wall": wall, "parts": log.by_kind()}


def capture_full(committee, year: int) -> list[tuple[str, object]]:
    """The exact statements (SQL and parameters) one full recompute runs."""
    from scoring.recompute import recompute_organization

    with logged() as log:
        recompute_organization(committee, year)
    return [(sql, params) for sql, params, _s in log.calls]


def measure_incremental(member_ids: list[int], year: int, repeat: int) -> dict:
    """recompute_members([one member]) for a few members spread over the id range."""
    from scoring.recompute import recompute_members

    picks = [member_ids[int(len(member_ids) * f)] for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
    db, wall, parts = [], [], []
    for member_id in picks:
        recompute_members([member_id], year)  # warm-up
        for _ in range(repeat):
            with logged() as log:
                started = time.perf_counter()
                recompute_members([member_id], year)
                wall.append(time.perf_counter() - started)
            db.append(log.total)
            parts.append(log.by_kind())
    kinds = sorted({kind for p in parts for kind in p})
    return {
        "members": picks,
        "db_median": statistics.median(db),
        "db_max": max(db),
        "wall_median": statistics.median(wall),
        "statements": len(log.calls),
        "parts": {kind: statistics.median(p.get(kind, 0.0) for p in parts) for kind in kinds},
    }


def sanity(year: int) -> dict:
    """What the recompute produced: rows, vetoed members, the star and grade spread."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE quarter = 0 AND is_vetoed), "
            "ROUND(AVG(total) FILTER (WHERE quarter = 0), 1), "
            "MIN(total) FILTER (WHERE quarter = 0), MAX(total) FILTER (WHERE quarter = 0), "
            "SUM(uncounted_points) FILTER (WHERE quarter = 0) "
            "FROM scoring_periodscore WHERE year = %s",
            [year],
        )
        rows, vetoed, avg, low, high, uncounted = cursor.fetchone()
        cursor.execute(
            "SELECT grade, COUNT(*) FROM scoring_periodscore WHERE year = %s AND quarter = 0 "
            "GROUP BY grade ORDER BY 2 DESC",
            [year],
        )
        grades = dict(cursor.fetchall())
        cursor.execute(
            "SELECT star, COUNT(*) FROM scoring_periodscore WHERE year = %s AND quarter = 0 "
            "GROUP BY star ORDER BY 2 DESC",
            [year],
        )
        stars = dict(cursor.fetchall())
    return {
        "period rows": rows,
        "vetoed members": vetoed,
        "annual total avg/min/max": f"{avg} / {low} / {high}",
        "points over caps (uncounted)": str(uncounted),
        "grades": grades,
        "stars": stars,
    }


# ---------------------------------------------------------------------------------------
# Experiments: the recompute's own statements, captured from a real run, then copies of
# them with one change each. Every variant runs in a transaction that is rolled back, so
# the stored periods stay those of the app's recompute; "SET CONSTRAINTS ALL IMMEDIATE"
# at the end runs the deferred foreign-key checks the commit would run.

SCOPE_JSON = (
    "SELECT (x->>0)::bigint AS branch_id, (x->>1)::bigint AS scheme_id "
    "FROM jsonb_array_elements(%(scope)s::jsonb) AS x"
)
SCOPE_TABLE = "SELECT branch_id, scheme_id FROM bench_scope"

# The branch and committee ranking of recompute._rank_branches / rank_committee, computed
# over the fresh totals (``bench_totals``) instead of over rows already written, so the
# period rows are written once, complete.
RANKED_SQL = """
SELECT t.*,
       CASE WHEN t.ranking_group = 'unranked' THEN NULL ELSE
         RANK() OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group
                      ORDER BY t.total DESC) END AS rank_top,
       RANK() OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group
                    ORDER BY t.total ASC) AS rank_bottom,
       COUNT(*) OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group
                      ORDER BY t.total DESC RANGE UNBOUNDED PRECEDING) AS at_or_above,
       COUNT(*) OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group) AS group_size,
       MAX(t.total) OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group) AS group_max,
       MIN(t.total) OVER (PARTITION BY t.branch_id, t.quarter, t.ranking_group) AS group_min,
       CASE WHEN t.ranking_group = 'unranked' THEN NULL ELSE
         RANK() OVER (PARTITION BY t.quarter, t.ranking_group ORDER BY t.total DESC)
       END AS rank_committee,
       star.label AS star_label,
       grade.label AS grade_label, grade.lower_label AS grade_lower_label,
       sc.top_n_flag, sc.bottom_n_flag, sc.excellent_share_cap, sc.excellent_grade,
       sc.failing_grade, sc.veto_effect
FROM bench_totals t
JOIN scoring_scheme sc ON sc.id = t.scheme_id
LEFT JOIN ({bands}) star ON star.scheme_id = t.scheme_id AND star.dimension = 'star'
     AND t.total >= star.low AND (star.high IS NULL OR t.total < star.high)
LEFT JOIN ({bands}) grade ON grade.scheme_id = t.scheme_id AND grade.dimension = 'grade'
     AND t.total >= grade.low AND (grade.high IS NULL OR t.total < grade.high)
"""
IS_BOTTOM = "(r.bottom_n_flag > 0 AND r.rank_bottom <= r.bottom_n_flag AND r.total < r.group_max)"
LOSES_EXCELLENT = (
    f"(r.is_vetoed OR {IS_BOTTOM} OR (r.excellent_share_cap IS NOT NULL "
    "AND r.at_or_above > FLOOR(r.excellent_share_cap * r.group_size)))"
)
FINAL_SQL = f"""
SELECT r.member_id, r.branch_id AS organization_id, r.scheme_id, r.quarter, r.base_score,
       r.bonus, r.deduction, r.net, r.year_to_date_total, r.total,
       r.uncounted AS uncounted_points, r.is_vetoed, r.ranking_group,
       %(year)s::smallint AS year, r.rank_top AS rank_in_branch,
       r.rank_committee AS rank_in_committee,
       CASE WHEN r.ranking_group = 'unranked' THEN '' ELSE COALESCE(r.star_label, '') END
           AS star,
       CASE WHEN r.ranking_group = 'unranked' OR r.quarter <> 0 THEN ''
            WHEN r.is_vetoed AND r.veto_effect = 'zero_and_fail' THEN r.failing_grade
            WHEN r.grade_label = r.excellent_grade AND {LOSES_EXCELLENT}
                 THEN COALESCE(r.grade_lower_label, '')
            ELSE COALESCE(r.grade_label, '') END AS grade,
       (r.ranking_group <> 'unranked' AND r.top_n_flag > 0
        AND r.rank_top <= r.top_n_flag AND r.total > r.group_min) AS is_top_flagged,
       (r.ranking_group <> 'unranked' AND {IS_BOTTOM}) AS is_bottom_flagged,
       %(now)s::timestamptz AS computed_at
FROM ({{ranked}}) r
"""
PERIOD_COLUMNS = (
    "member_id, organization_id, scheme_id, quarter, base_score, bonus, deduction, net, "
    "year_to_date_total, total, uncounted_points, is_vetoed, ranking_group, year, "
    "rank_in_branch, rank_in_committee, star, grade, is_top_flagged, is_bottom_flagged"
)


WINDOW_BEFORE = "SUM(after_times) OVER (PARTITION BY member_id, code ORDER BY occurred_on, id"
# quarter follows occurred_on within a year, so ordering by (quarter, occurred_on, id) is the
# same order; written so, both cap windows share one sort (member, code, quarter, date, id).
WINDOW_AFTER = (
    "SUM(after_times) OVER (PARTITION BY member_id, code ORDER BY quarter, occurred_on, id"
)


def _with_one_sort(sql: str) -> str:
    if "after_times" in sql and WINDOW_BEFORE not in sql:
        raise RuntimeError("the recompute's cap window changed; update bench/recompute.py")
    return sql.replace(WINDOW_BEFORE, WINDOW_AFTER)


def _with_table_scope(sql: str) -> str:
    """The statement reading its scope from ``bench_scope`` (see _make_scope_table)."""
    return sql.replace(SCOPE_JSON, SCOPE_TABLE)


def _make_scope_table(cursor, params: dict) -> float:
    """The (branch, scheme) scope as an analyzed temp table: the planner then knows it has
    15,000 rows of one scheme, where jsonb_array_elements() is guessed at 100 rows and its
    join with the scheme at 1."""
    started = time.perf_counter()
    cursor.execute("DROP TABLE IF EXISTS bench_scope")
    cursor.execute(
        f"CREATE TEMP TABLE bench_scope ON COMMIT DROP AS {SCOPE_JSON}", {"scope": params["scope"]}
    )
    cursor.execute("ANALYZE bench_scope")
    return time.perf_counter() - started


def _timed(cursor, sql: str, params=None) -> float:
    started = time.perf_counter()
    cursor.execute(sql, params)
    return time.perf_counter() - started


def _run_rolled_back(body) -> dict[str, float]:
    from django.db import transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            times = body(cursor)
            times["deferred FK checks"] = _timed(cursor, "SET CONSTRAINTS ALL IMMEDIATE")
        transaction.set_rollback(True)
    times["total"] = sum(times.values())
    return times


class ShapeChanged(Exception):
    """The recompute no longer runs the statements the experiments rewrite."""


def _app_statements(statements) -> dict[str, tuple[str, dict]]:
    out = {}
    for sql, params in statements:
        kind = statement_kind(sql)
        if not kind.startswith("other"):
            out[kind] = (sql, params)
    wanted = {"totals: delete", "totals: insert", "branch ranking", "committee ranking"}
    if set(out) != wanted or SCOPE_JSON not in out["totals: insert"][0]:
        raise ShapeChanged(
            f"the recompute now runs {sorted(out)}; the experiments rewrite {sorted(wanted)}"
        )
    return out


def variant_app(
    statements, work_mem: str | None = None, table_scope: bool = False, one_sort: bool = False
):
    """The app's four statements as captured, optionally with one change or more."""
    stmts = _app_statements(statements)

    def body(cursor):
        times = {}
        if work_mem:
            cursor.execute("SET LOCAL work_mem = %s", [work_mem])
        if table_scope:
            times["scope → temp table"] = _make_scope_table(cursor, stmts["totals: insert"][1])
        for kind in ("totals: delete", "totals: insert", "branch ranking", "committee ranking"):
            sql, params = stmts[kind]
            if table_scope:
                sql = _with_table_scope(sql)
            if one_sort:
                sql = _with_one_sort(sql)
            times[kind] = _timed(cursor, sql, params)
        return times

    return body


def _totals_select(statements) -> tuple[str, dict]:
    """The SELECT inside the app's INSERT (everything after "FROM (" … ") t")."""
    sql, params = _app_statements(statements)["totals: insert"]
    start = sql.index("FROM (") + len("FROM (")
    end = sql.rindex(") t")
    return sql[start:end], params


def variant_single_pass(statements, work_mem: str | None, diff: bool):
    """Totals into a temp table, ranks computed in one SELECT over them, and the period rows
    written once: replace-all (DELETE + INSERT) or, with ``diff``, only rows that change."""
    from scoring.recompute import _bands_sql

    select, params = _totals_select(statements)
    select = _with_table_scope(_with_one_sort(select))
    final = FINAL_SQL.format(ranked=RANKED_SQL.format(bands=_bands_sql()))
    delete_sql, delete_params = _app_statements(statements)["totals: delete"]
    delete_sql = _with_table_scope(delete_sql)

    def body(cursor):
        times = {}
        if work_mem:
            cursor.execute("SET LOCAL work_mem = %s", [work_mem])
        times["scope → temp table"] = _make_scope_table(cursor, params)
        cursor.execute("DROP TABLE IF EXISTS bench_totals")
        cursor.execute("DROP TABLE IF EXISTS bench_final")
        times["totals → temp table"] = _timed(
            cursor, f"CREATE TEMP TABLE bench_totals ON COMMIT DROP AS {select}", params
        )
        times["ranks → temp table"] = _timed(
            cursor, f"CREATE TEMP TABLE bench_final ON COMMIT DROP AS {final}", params
        )
        if not diff:
            times["delete"] = _timed(cursor, delete_sql, delete_params)
            times["insert"] = _timed(
                cursor,
                f"INSERT INTO scoring_periodscore ({PERIOD_COLUMNS}, computed_at) "
                f"SELECT {PERIOD_COLUMNS}, computed_at FROM bench_final",
            )
            return times
        times["index temp table"] = _timed(
            cursor, "CREATE INDEX ON bench_final (member_id, quarter); ANALYZE bench_final"
        )
        cols = [c.strip() for c in PERIOD_COLUMNS.split(",")]
        assign = ", ".join(f"{c} = f.{c}" for c in cols + ["computed_at"])
        differs = " OR ".join(f"p.{c} IS DISTINCT FROM f.{c}" for c in cols)
        times["update changed rows"] = _timed(
            cursor,
            f"UPDATE scoring_periodscore AS p SET {assign} FROM bench_final f "
            "WHERE p.member_id = f.member_id AND p.year = f.year AND p.quarter = f.quarter "
            f"AND ({differs})",
        )
        times["insert new rows"] = _timed(
            cursor,
            f"INSERT INTO scoring_periodscore ({PERIOD_COLUMNS}, computed_at) "
            f"SELECT {PERIOD_COLUMNS}, computed_at FROM bench_final f WHERE NOT EXISTS "
            "(SELECT 1 FROM scoring_periodscore p WHERE p.member_id = f.member_id "
            "AND p.year = f.year AND p.quarter = f.quarter)",
        )
        times["delete rows out of scope"] = _timed(
            cursor,
            "DELETE FROM scoring_periodscore p WHERE p.year = %(year)s "
            "AND p.member_id IN (SELECT member_id FROM bench_final) AND NOT EXISTS "
            "(SELECT 1 FROM bench_final f WHERE f.member_id = p.member_id "
            "AND f.quarter = p.quarter)",
            {"year": params["year"]},
        )
        return times

    return body


def verify_single_pass(statements, work_mem: str | None) -> tuple[int, int]:
    """Rows of the single-pass result that differ from what the app stored (both ways),
    comparing every column but the id and computed_at."""
    from django.db import transaction

    from scoring.recompute import _bands_sql

    select, params = _totals_select(statements)
    select = _with_table_scope(_with_one_sort(select))
    final = FINAL_SQL.format(ranked=RANKED_SQL.format(bands=_bands_sql()))
    cols = PERIOD_COLUMNS
    counts = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            if work_mem:
                cursor.execute("SET LOCAL work_mem = %s", [work_mem])
            _make_scope_table(cursor, params)
            cursor.execute(f"CREATE TEMP TABLE bench_totals ON COMMIT DROP AS {select}", params)
            cursor.execute(f"CREATE TEMP TABLE bench_final ON COMMIT DROP AS {final}", params)
            stored = f"SELECT {cols} FROM scoring_periodscore WHERE year = %(year)s"
            computed = f"SELECT {cols} FROM bench_final"
            for first, second in ((computed, stored), (stored, computed)):
                cursor.execute(
                    f"SELECT COUNT(*) FROM ({first} EXCEPT ALL {second}) x",
                    {"year": params["year"]},
                )
                counts.append(cursor.fetchone()[0])
        transaction.set_rollback(True)
    return counts[0], counts[1]


def _redundant_period_indexes() -> list[str]:
    """Single-column indexes of the period table that a wider index already starts with
    (Django's automatic foreign-key indexes on member and organization)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = 'scoring_periodscore'::regclass AND i.indnatts = 1
  AND a.attname IN ('member_id', 'organization_id')
  AND EXISTS (SELECT 1 FROM pg_index j WHERE j.indrelid = i.indrelid
              AND j.indnatts > 1 AND j.indkey[0] = i.indkey[0])
ORDER BY 1
"""
        )
        return [row[0] for row in cursor.fetchall()]


def _without_indexes(body, names: list[str]):
    """``body`` with some indexes dropped first (inside the rolled-back transaction)."""

    def wrapped(cursor):
        for name in names:
            cursor.execute(f'DROP INDEX "{name}"')
        return body(cursor)

    return wrapped


def experiments(
    committee, year: int, repeat: int, only: str | None = None, log=print
) -> list[tuple[str, str]]:
    """Time the app's statements and rewritten copies on the same data; returns table rows.
    ``only``: the letters of the variants to run (all by default). The data is warm from the
    measurements before; with repeat > 1 one more run of the first variant warms up."""
    statements = capture_full(committee, year)  # a real recompute: stored = the app's result
    try:
        _app_statements(statements)
    except ShapeChanged as error:
        log(f"  experiments skipped: {error}")
        return [("experiments skipped", str(error))]
    redundant = _redundant_period_indexes()
    variants = [
        ("A. app statements as they are", variant_app(statements)),
        ("B. A + SET LOCAL work_mem = '256MB'", variant_app(statements, work_mem="256MB")),
        ("C. A + scope from an analyzed temp table", variant_app(statements, table_scope=True)),
        ("D. A + B + C", variant_app(statements, work_mem="256MB", table_scope=True)),
        (
            "H. D + both cap windows on one sort (ORDER BY quarter, occurred_on, id)",
            variant_app(statements, work_mem="256MB", table_scope=True, one_sort=True),
        ),
        (
            f"G. A without the {len(redundant)} redundant single-column period indexes",
            _without_indexes(variant_app(statements), redundant),
        ),
        (
            "E. single pass: totals and ranks computed once, DELETE + INSERT (with B, C, H)",
            variant_single_pass(statements, "256MB", diff=False),
        ),
        (
            "F. single pass, writing only the rows that change (with B, C, H)",
            variant_single_pass(statements, "256MB", diff=True),
        ),
    ]
    if only:
        variants = [v for v in variants if v[0][0] in only.upper()]
    if repeat > 1:
        settle()
        _run_rolled_back(variants[0][1])  # warm-up
    # Round-robin (A B C … A B C …), so a change of load on the machine falls on every
    # variant alike rather than on the ones that happened to run then.
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _body in variants}
    for _ in range(repeat):
        for name, body in variants:
            settle()
            results[name].append(_run_rolled_back(body))
    rows: list[tuple[str, str]] = []
    for name, _body in variants:
        parts = sorted({k for r in results[name] for k in r})
        med = {k: statistics.median(r.get(k, 0.0) for r in results[name]) for k in parts}
        log(f"  {name}: {_fmt(med['total'])}")
        rows.append((name, _fmt(med["total"])))
        for key in parts:
            if key != "total":
                rows.append((f"  {key}", _fmt(med[key])))
    if any(name.startswith("G") for name, _b in variants):
        rows.append((f"G dropped: {', '.join(redundant)}", ""))
    extra, missing = verify_single_pass(statements, "256MB")
    rows.append(
        ("single-pass rows differing from the app's (extra / missing)", f"{extra} / {missing}")
    )
    return rows


def _fmt(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def explain_full(committee, year: int, path) -> dict[str, float]:
    """EXPLAIN (ANALYZE, BUFFERS) of the four statements of one full recompute, run in order
    in a rolled-back transaction; the plans go to ``path``. Returns each execution time."""
    from django.db import transaction

    statements = capture_full(committee, year)
    out, times = [], {}
    with transaction.atomic():
        with connection.cursor() as cursor:
            for sql, params in statements:
                kind = statement_kind(sql)
                head = sql.lstrip().upper()
                explainable = (
                    head.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"))
                    or (
                        head.startswith(("CREATE TEMP", "CREATE UNLOGGED"))
                        and " AS " in head.split("\n", 1)[0]
                    )
                ) and "FOR UPDATE" not in head
                if 'INSERT INTO "scoring_rankingstate"' in sql:
                    continue  # the capture made the committee's state row: it is there now
                if kind.startswith("other") or not explainable:
                    cursor.execute(sql, params)  # keep the statements' effects in order
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                out.append(f"===== {kind}\n{plan}\n")
                times[kind] = (
                    times.get(kind, 0.0)
                    + float(plan.rsplit("Execution Time:", 1)[1].split()[0]) / 1000
                )
        transaction.set_rollback(True)
    path.write_text("\n".join(out))
    return times
