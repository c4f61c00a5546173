"""Totals, ranks, stars and grades, derived set-wise from the ledger in the database.

Everything here is SQL that runs on PostgreSQL and SQLite (window functions, CTEs, upsert).
For every member of a set of branches a recompute sums the year's ledger per quarter in one
pass (what capped entries count is kept in ``CapClip``, derived again only where the ledger
changed), computes the quarter and year totals from those sums, ranks them in branch and
committee with flags, star and grade, and upserts the rows that changed. ``totals_sql()``
derives the same rows from the ledger alone in one statement: the reference that
``verify_ledger`` checks the stored rows against. Committee ranks alone can be refreshed by
one UPDATE that writes only ranks that moved. No Python loop issues a query per member.

Semantics (domain.md, "Scoring"):
- quarter net = counted points of the entries dated in the quarter; year-to-date total after
  quarter q = base + nets of quarters 1..q; annual total = base + the four nets.
- caps: a rule's ``max_times_per_quarter`` counts its entries per member, code and quarter in
  date order; later ones count 0. ``max_points_per_year`` (bonus rules) clips the running
  sum per member, code and year. Entries stay in the ledger; only what counts is derived.
- a reversal counts minus what the entry it reverses counted (in the reversal's own period).
- a confirmed veto (not reversed) in the year: with effect ``zero_and_fail`` the totals from
  the veto's quarter on are 0 and the annual grade is the failing grade; with
  ``lose_excellent`` the member cannot be graded excellent.
- ranks: per branch and per committee (the root of the tree), party members and
  activists/development targets separately; exempt and transferred-out members unranked;
  ties share a rank (RANK). Quarters rank by year-to-date total, the year by annual total.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from members.models import Member, Organization

from .models import PeriodScore, RankingState, StaleTotals
from .schemes import effective_schemes


def _scope_rows_sql(alias: str) -> str:
    """A (branch_id, scheme_id) table from a JSON parameter."""
    if connection.vendor == "postgresql":
        return (
            f"SELECT (x->>0)::bigint AS branch_id, (x->>1)::bigint AS scheme_id "
            f"FROM jsonb_array_elements(%({alias})s::jsonb) AS x"
        )
    return (
        f"SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS branch_id, "
        f"CAST(json_extract(value, '$[1]') AS INTEGER) AS scheme_id FROM json_each(%({alias})s)"
    )


def _greatest(a: str, b: str) -> str:
    return f"GREATEST({a}, {b})" if connection.vendor == "postgresql" else f"MAX({a}, {b})"


def _least(a: str, b: str) -> str:
    return f"LEAST({a}, {b})" if connection.vendor == "postgresql" else f"MIN({a}, {b})"


def _in_list(column: str, name: str, negate: bool = False) -> str:
    """``column`` in (or not in) the id list bound as parameter ``name``."""
    if connection.vendor == "postgresql":
        return f"{column} <> ALL(%({name})s)" if negate else f"{column} = ANY(%({name})s)"
    operator = "NOT IN" if negate else "IN"
    return f"{column} {operator} (SELECT value FROM json_each(%({name})s))"


def _id_list(ids: Iterable[int]) -> object:
    ids = sorted(set(ids))
    return ids if connection.vendor == "postgresql" else json.dumps(ids)


def _bytewise(column: str) -> str:
    """A text column compared byte by byte, where only equality matters (a partition): the
    database's collation (C.UTF-8, en_US…) compares through the C library, ten times slower
    in a sort of 1.5 million rows. SQLite compares bytes already."""
    return f'{column} COLLATE "C"' if connection.vendor == "postgresql" else column


def _distinct(a: str, b: str) -> str:
    return f"{a} IS DISTINCT FROM {b}" if connection.vendor == "postgresql" else f"{a} IS NOT {b}"


def _scope_ctes(*, members: str | None = None) -> str:
    """``scope`` (branch → scheme), ``m`` (the scoped members) and the capped pipeline:
    ``capped_counted`` (what each entry of a capped rule counts) and ``reversals`` (what
    each reversal dated in the year takes away).

    A recompute reads its scope from the analysed ``recompute_scope`` table (the planner
    must know a city's size); a page asking for a few members (``members``: the name of
    their id-list parameter) reads it straight from the JSON parameter, with no table to
    create and drop on every view. Caps and reversals are each member's own, so the
    members' figures are the same either way."""
    clip = _greatest("0", _least("after_times", "max_points_per_year - before_sum"))
    return (
        _member_ctes(members=members)
        + f""",
-- Years other than this one whose entries are reversed in this year: a reversal takes
-- away what its entry counted, so a capped entry's year is computed alongside.
cross_years AS (
    SELECT DISTINCT rv.member_id, o.year
    FROM scoring_entry rv
    JOIN m ON m.member_id = rv.member_id
    JOIN scoring_entry o ON o.id = rv.reverses_id
    WHERE rv.year = %(year)s AND rv.reverses_id IS NOT NULL AND o.year <> %(year)s
      AND {_in_list("o.rule_id", "capped_rules")}
),
capped_e AS (
    SELECT e.id, e.member_id, e.year, e.quarter, e.kind, e.points, e.occurred_on,
           r.code, r.max_times_per_quarter, r.max_points_per_year
    FROM scoring_entry e
    JOIN m ON m.member_id = e.member_id
    JOIN scoring_rule r ON r.id = e.rule_id
    WHERE e.year = %(year)s AND e.reverses_id IS NULL AND {_in_list("e.rule_id", "capped_rules")}
    UNION ALL
    SELECT e.id, e.member_id, e.year, e.quarter, e.kind, e.points, e.occurred_on,
           r.code, r.max_times_per_quarter, r.max_points_per_year
    FROM scoring_entry e
    JOIN cross_years cy ON cy.member_id = e.member_id AND cy.year = e.year
    JOIN scoring_rule r ON r.id = e.rule_id
    WHERE e.reverses_id IS NULL AND {_in_list("e.rule_id", "capped_rules")}
),
capped_times AS (
    SELECT capped_e.*,
           CASE WHEN max_times_per_quarter IS NOT NULL
                     AND ROW_NUMBER() OVER (PARTITION BY member_id, code, year, quarter
                                            ORDER BY occurred_on, id) > max_times_per_quarter
                THEN 0 ELSE points END AS after_times
    FROM capped_e
),
-- Ordered by quarter first: the same order as occurred_on (a quarter follows from the date),
-- written so that both windows share one sort of the capped entries instead of two.
capped AS (
    SELECT capped_times.*,
           SUM(after_times) OVER (PARTITION BY member_id, code, year
                                  ORDER BY quarter, occurred_on, id
                                  ROWS UNBOUNDED PRECEDING) - after_times AS before_sum
    FROM capped_times
),
capped_counted AS (
    SELECT id, member_id, year, quarter, kind, points,
           CASE WHEN max_points_per_year IS NULL THEN after_times ELSE {clip} END AS counted
    FROM capped
),
reversals AS (
    SELECT rv.id, rv.member_id, rv.quarter, rv.kind, rv.points,
           COALESCE(-cc.counted, rv.points) AS counted
    FROM scoring_entry rv
    JOIN m ON m.member_id = rv.member_id
    LEFT JOIN capped_counted cc ON cc.id = rv.reverses_id
    WHERE rv.year = %(year)s AND rv.reverses_id IS NOT NULL
)"""
    )


def _member_ctes(*, members: str | None = None) -> str:
    """``scope`` (branch → scheme) and ``m`` (the scoped members with their scheme, base
    score and ranking group), from the ``recompute_scope`` table or, for a few members
    (``members``: the name of their id-list parameter), from the JSON parameter."""
    scope = (
        f"SELECT branch_id, scheme_id FROM ({_scope_rows_sql('scope')}) AS scope_rows"
        if members
        else "SELECT branch_id, scheme_id FROM recompute_scope"
    )
    only_members = f"WHERE {_in_list('mm.id', members)}" if members else ""
    return f"""
WITH scope AS ({scope}),
m AS (
    SELECT mm.id AS member_id, mm.organization_id AS branch_id, scope.scheme_id,
           SUBSTR(o.path, 1, {Organization.steplen}) AS committee_path,
           sc.base_score, sc.veto_effect,
           CASE WHEN mm.status IN ('exempt', 'transferred_out') THEN 'unranked'
                WHEN mm.category IN ('full', 'probationary') THEN 'party'
                ELSE 'candidate' END AS ranking_group
    FROM members_member mm
    JOIN scope ON scope.branch_id = mm.organization_id
    JOIN members_organization o ON o.id = mm.organization_id
    JOIN scoring_scheme sc ON sc.id = scope.scheme_id
    {only_members}
)"""


# The working tables of a recompute, as its SQL names them: recompute_<name>.
SCRATCH = ("scope", "sums", "totals", "committee", "ranks", "groups", "rows")
_SCRATCH_NAME = re.compile(r"\brecompute_(?:" + "|".join(SCRATCH) + r")\b")


class _Scratch:
    """The working tables of one recompute, and the cursor that runs its SQL.

    They are temporary tables, except on PostgreSQL at city scale (``shared``): there they
    are unlogged tables named for this session (``recompute_sums_<backend pid>``), because
    PostgreSQL reads a temporary table in the leader process only, never in parallel
    workers, and joining millions of period rows on one core took seconds that a second
    core halves. Created inside the recompute's transaction, they are seen by no other
    session, vanish if it rolls back and are dropped before it commits.

    With ``analyze`` each is analysed on PostgreSQL after it is filled, so the next
    statements are planned for its real size (at city scale, without it, a plan for a few
    rows took 35 s instead of 3); for a branch or a few, the planner's guess from the
    table's pages is right and analysing costs more than the statements it plans."""

    def __init__(self, cursor, *, shared: bool = False, analyze: bool = True):
        self.cursor = cursor
        self.kind, self.suffix = "TEMPORARY", ""
        self.shared = shared and connection.vendor == "postgresql"
        if self.shared:
            cursor.execute("SELECT pg_backend_pid()")
            self.kind, self.suffix = "UNLOGGED", f"_{cursor.fetchone()[0]}"
        self.analyze = analyze and connection.vendor == "postgresql"
        # Whether the sums read the year's whole ledger (see SUMS_WHOLE_LEDGER_SHARE).
        self.whole_ledger = False
        self.created: list[str] = []

    def sql(self, text: str) -> str:
        """``text`` with the working tables' names of this recompute."""
        if not self.suffix:
            return text
        return _SCRATCH_NAME.sub(lambda match: match.group(0) + self.suffix, text)

    def execute(self, sql: str, params: dict | None = None) -> None:
        self.cursor.execute(self.sql(sql), params)

    def fetchall(self) -> list[tuple]:
        return self.cursor.fetchall()

    def create(self, name: str, select: str, params: dict, *, analyze: bool = True) -> None:
        """Working table ``recompute_<name>`` from a SELECT (again if it exists: the sums
        after their clips were derived again). CREATE TABLE AS is planned in parallel on
        PostgreSQL, an INSERT … SELECT never."""
        table = self.sql(f"recompute_{name}")
        if table in self.created:
            self.cursor.execute(f"DROP TABLE {table}")
            self.created.remove(table)
        self.cursor.execute(f"CREATE {self.kind} TABLE {table} AS {self.sql(select)}", params)
        self.created.append(table)
        if analyze and self.analyze:
            self.cursor.execute(f"ANALYZE {table}")

    def load_scope(self, params: dict) -> None:
        """The (branch, scheme) pairs of this recompute as a table with statistics, so the
        planner knows how many members and entries are coming (a JSON function it cannot
        see into made it choose nested loops at city scale)."""
        table = self.sql("recompute_scope")
        self.cursor.execute(
            f"CREATE {self.kind} TABLE {table} (branch_id bigint PRIMARY KEY, scheme_id bigint)"
        )
        self.created.append(table)
        self.cursor.execute(
            f"INSERT INTO {table} (branch_id, scheme_id) {_scope_rows_sql('scope')}", params
        )
        if self.analyze:
            self.cursor.execute(f"ANALYZE {table}")

    def drop(self) -> None:
        while self.created:
            self.cursor.execute(f"DROP TABLE {self.created.pop()}")


def _plain_filter() -> str:
    """Entries of the year that count exactly their points: no cap, not a reversal."""
    return (
        f"e.year = %(year)s AND e.reverses_id IS NULL AND "
        f"{_in_list('e.rule_id', 'capped_rules', negate=True)}"
    )


def _rating(column: str) -> str:
    """An appraisal on the totals' scale (优秀 100, 合格 80, 基本合格 60, 不合格 40)."""
    return (
        f"(CASE {column} WHEN 'excellent' THEN 100 WHEN 'competent' THEN 80 "
        f"WHEN 'basic' THEN 60 ELSE 40 END)"
    )


def _ranking_sql() -> str:
    """From a ``totals`` CTE (one row per member and period with its total and ranking
    group): ranks in branch and committee, flags, star and grade — the final SELECT."""
    group = "branch_id, quarter, ranking_group"
    is_bottom = "(bottom_n_flag > 0 AND rank_bottom <= bottom_n_flag AND total < group_max)"
    loses_excellent = (
        f"(is_vetoed OR {is_bottom} OR (excellent_share_cap IS NOT NULL "
        "AND at_or_above > FLOOR(excellent_share_cap * group_size)))"
    )
    return f""",
ranked AS (
    SELECT totals.*,
           CASE WHEN ranking_group = 'unranked' THEN NULL
                ELSE RANK() OVER (PARTITION BY {group} ORDER BY total DESC) END AS rank_in_branch,
           CASE WHEN ranking_group = 'unranked' THEN NULL
                ELSE RANK() OVER (PARTITION BY committee_path, quarter, ranking_group
                                  ORDER BY total DESC) END AS rank_in_committee,
           COUNT(*) OVER (PARTITION BY {group} ORDER BY total DESC
                          RANGE UNBOUNDED PRECEDING) AS at_or_above,
           COUNT(*) OVER (PARTITION BY {group}) AS group_size,
           MAX(total) OVER (PARTITION BY {group}) AS group_max,
           MIN(total) OVER (PARTITION BY {group}) AS group_min
    FROM totals
),
bands AS ({_bands_sql()}),
outcomes AS (
    SELECT ranked.*, sc.top_n_flag, sc.bottom_n_flag, sc.excellent_share_cap,
           -- The rank from the bottom (ties share it) from the windows above, not another
           -- sort: 1 + the members below = 1 + group_size - those at or above.
           ranked.group_size - ranked.at_or_above + 1 AS rank_bottom,
           sc.excellent_grade, sc.failing_grade, sc.veto_effect,
           star.label AS star_label, grade.label AS grade_label,
           grade.lower_label AS grade_lower_label
    FROM ranked
    JOIN scoring_scheme sc ON sc.id = ranked.scheme_id
    LEFT JOIN bands star ON star.scheme_id = ranked.scheme_id AND star.dimension = 'star'
         AND ranked.total >= star.low AND (star.high IS NULL OR ranked.total < star.high)
    LEFT JOIN bands grade ON grade.scheme_id = ranked.scheme_id AND grade.dimension = 'grade'
         AND ranked.total >= grade.low AND (grade.high IS NULL OR ranked.total < grade.high)
)
SELECT member_id, branch_id AS organization_id, scheme_id, quarter, base_score, bonus,
       deduction, net, year_to_date_total, total, uncounted AS uncounted_points, is_vetoed,
       ranking_group, rank_in_branch, rank_in_committee,
       CASE WHEN ranking_group = 'unranked' THEN '' ELSE COALESCE(star_label, '') END AS star,
       CASE WHEN ranking_group = 'unranked' OR quarter <> 0 THEN ''
            WHEN is_vetoed AND veto_effect = 'zero_and_fail' THEN failing_grade
            WHEN grade_label = excellent_grade AND {loses_excellent}
                 THEN COALESCE(grade_lower_label, '')
            ELSE COALESCE(grade_label, '') END AS grade,
       (ranking_group <> 'unranked' AND top_n_flag > 0 AND rank_in_branch <= top_n_flag
        AND total > group_min) AS is_top_flagged,
       (ranking_group <> 'unranked' AND {is_bottom}) AS is_bottom_flagged
FROM outcomes
"""


def totals_sql() -> str:
    """SELECT of every period row (quarters 1–4, and 0 for the year) of the scoped members,
    with ranks in branch and committee, flags, star and grade.

    Parameters: ``scope`` (JSON list of [branch_id, scheme_id]), ``year``, ``capped_rules``
    (ids of rules with a cap). Ranks in the committee are right only when the scope holds
    the whole committee."""

    return (
        _scope_ctes()
        + f""",
plain AS (
    SELECT e.member_id, e.quarter,
           SUM(CASE WHEN e.kind = 'bonus' THEN e.points ELSE 0 END) AS bonus,
           SUM(CASE WHEN e.kind = 'deduction' THEN -e.points ELSE 0 END) AS deduction,
           SUM(CASE WHEN e.kind = 'veto' THEN 1 ELSE 0 END) AS veto_delta
    FROM scoring_entry e
    JOIN m ON m.member_id = e.member_id
    WHERE {_plain_filter()}
    GROUP BY e.member_id, e.quarter
),
agg AS (
    SELECT member_id, quarter, SUM(bonus) AS bonus, SUM(deduction) AS deduction,
           SUM(uncounted) AS uncounted, SUM(veto_delta) AS veto_delta
    FROM (
        SELECT member_id, quarter, bonus, deduction, 0 AS uncounted, veto_delta FROM plain
        UNION ALL
        SELECT member_id, quarter,
               CASE WHEN kind = 'bonus' THEN counted ELSE 0 END,
               CASE WHEN kind = 'deduction' THEN -counted ELSE 0 END,
               points - counted,
               CASE WHEN kind = 'veto' THEN 1 ELSE 0 END
        FROM capped_counted WHERE year = %(year)s
        UNION ALL
        SELECT member_id, quarter,
               CASE WHEN kind = 'bonus' THEN counted ELSE 0 END,
               CASE WHEN kind = 'deduction' THEN -counted ELSE 0 END,
               0,
               CASE WHEN kind = 'veto' THEN -1 ELSE 0 END
        FROM reversals
    ) parts
    GROUP BY member_id, quarter
),
periods AS (
    SELECT 1 AS quarter UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
),
grid AS (
    SELECT m.member_id, m.branch_id, m.committee_path, m.scheme_id, m.base_score,
           m.veto_effect, m.ranking_group, periods.quarter,
           COALESCE(agg.bonus, 0) AS bonus, COALESCE(agg.deduction, 0) AS deduction,
           COALESCE(agg.uncounted, 0) AS uncounted, COALESCE(agg.veto_delta, 0) AS veto_delta
    FROM m CROSS JOIN periods
    LEFT JOIN agg ON agg.member_id = m.member_id AND agg.quarter = periods.quarter
),
running AS (
    SELECT grid.*,
           bonus - deduction AS net,
           base_score + SUM(bonus - deduction) OVER w AS year_to_date_total,
           SUM(veto_delta) OVER w AS vetoes
    FROM grid
    WINDOW w AS (PARTITION BY member_id ORDER BY quarter ROWS UNBOUNDED PRECEDING)
),
quarters AS (
    SELECT member_id, branch_id, committee_path, scheme_id, quarter, base_score, bonus,
           deduction, net, year_to_date_total,
           CASE WHEN vetoes > 0 AND veto_effect = 'zero_and_fail' THEN 0
                ELSE year_to_date_total END AS total,
           uncounted, vetoes > 0 AS is_vetoed, ranking_group
    FROM running
),
years AS (
    SELECT member_id, branch_id, committee_path, scheme_id, 0 AS quarter, base_score,
           SUM(bonus) AS bonus, SUM(deduction) AS deduction, SUM(net) AS net,
           base_score + SUM(net) AS year_to_date_total,
           CASE WHEN SUM(veto_delta) > 0 AND veto_effect = 'zero_and_fail' THEN 0
                ELSE base_score + SUM(net) END AS total,
           SUM(uncounted) AS uncounted, SUM(veto_delta) > 0 AS is_vetoed, ranking_group,
           SUM(veto_delta) > 0 AND veto_effect = 'zero_and_fail' AS is_zeroed
    FROM running
    GROUP BY member_id, branch_id, committee_path, scheme_id, base_score, veto_effect,
             ranking_group
),
-- Annual review: a scheme may weight the points with the democratic and mass appraisals
-- (优秀 100, 合格 80, 基本合格 60, 不合格 40 on the totals' scale).
weighted AS (
    SELECT y.member_id, y.branch_id, y.committee_path, y.scheme_id, y.quarter, y.base_score,
           y.bonus, y.deduction, y.net, y.year_to_date_total,
           CASE WHEN sc.points_weight IS NULL OR a.id IS NULL OR y.is_zeroed THEN y.total
                ELSE sc.points_weight * y.total
                     + sc.democratic_weight * {_rating("a.democratic")}
                     + sc.mass_weight * {_rating("a.mass")} END AS total,
           y.uncounted, y.is_vetoed, y.ranking_group
    FROM years y
    JOIN scoring_scheme sc ON sc.id = y.scheme_id
    LEFT JOIN reviews_reviewcycle c
           ON c.organization_id = y.branch_id AND c.year = %(year)s AND c.quarter = 0
    LEFT JOIN reviews_appraisal a ON a.cycle_id = c.id AND a.member_id = y.member_id
),
totals AS (
    SELECT member_id, branch_id, committee_path, scheme_id, quarter, base_score,
           ROUND(bonus, 2) AS bonus, ROUND(deduction, 2) AS deduction, ROUND(net, 2) AS net,
           ROUND(year_to_date_total, 2) AS year_to_date_total, ROUND(total, 2) AS total,
           ROUND(uncounted, 2) AS uncounted, is_vetoed, ranking_group
    FROM quarters
    UNION ALL
    SELECT member_id, branch_id, committee_path, scheme_id, quarter, base_score,
           ROUND(bonus, 2), ROUND(deduction, 2), ROUND(net, 2), ROUND(year_to_date_total, 2),
           ROUND(total, 2), ROUND(uncounted, 2), is_vetoed, ranking_group
    FROM weighted
)
"""
        + _ranking_sql()
    )


QUARTERS = (1, 2, 3, 4)


def _cents(points: str) -> str:
    """Points (two decimal places) as whole cents: summed as integers, a sum's state is one
    machine word where a decimal sum's is an allocated accumulator (see ``_sums_sql``).
    SQLite's points are floating point (0.29 * 100 = 28.999…): rounded before the cast."""
    if connection.vendor == "postgresql":
        return f"CAST(({points}) * 100 AS INTEGER)"
    return f"CAST(ROUND(({points}) * 100) AS INTEGER)"


def _sums_sql(*, only: str | None = None, whole_ledger: bool = False) -> str:
    """One row per scoped member with an entry in the year: per quarter the bonus, the
    deduction, the points over caps and the vetoes, as counted; and how many capped entries
    the member has, to check the clips against (``CapState``).

    One pass over the year's ledger with no window and no temporary table, so PostgreSQL
    can spread it over parallel workers like the floor's GROUP BY. Grouped by member alone,
    each worker folds its entries into about as many rows as there are members (grouped by
    member and quarter too, it passed on three rows for each one and the leader merged them
    alone). What a capped entry counts comes from its ``CapClip`` row (none: all its
    points); a reversal counts minus what its entry counted. ``only``: the name of an
    id-list parameter of members to sum. ``whole_ledger``: every member's entries of the
    year, with no join to find the scope's (the rows of other members are left unread by
    the next statements; see ``SUMS_WHOLE_LEDGER_SHARE``).

    Summed in whole cents and turned back into points (``* 0.01``, two decimal places):
    ``numeric(9, 2)`` points and their differences fit an integer."""
    counted = _cents(
        "COALESCE(CASE WHEN e.reverses_id IS NULL THEN c.counted ELSE -c.counted END, e.points)"
    )
    over = _cents("e.points - c.counted")
    columns = []
    for q in QUARTERS:
        columns += [
            f"SUM({counted}) FILTER (WHERE e.quarter = {q} AND e.kind = 'bonus') * 0.01 "
            f"AS bonus_{q}",
            f"-SUM({counted}) FILTER (WHERE e.quarter = {q} AND e.kind = 'deduction') * 0.01 "
            f"AS deduction_{q}",
            f"SUM({over}) FILTER (WHERE e.quarter = {q} AND e.reverses_id IS NULL) * 0.01 "
            f"AS uncounted_{q}",
            f"SUM(CASE WHEN e.reverses_id IS NULL THEN 1 ELSE -1 END) "
            f"FILTER (WHERE e.quarter = {q} AND e.kind = 'veto') AS vetoes_{q}",
        ]
    capped = _in_list("e.rule_id", "capped_rules")
    columns.append(f"COUNT(*) FILTER (WHERE e.reverses_id IS NULL AND {capped}) AS capped_entries")
    only_members = f"AND {_in_list('e.member_id', only)}" if only else ""
    scoped = (
        ""
        if whole_ledger
        else "JOIN members_member mm ON mm.id = e.member_id "
        f"AND {_in_list('mm.organization_id', 'branches')}"
    )
    return f"""
SELECT e.member_id, {", ".join(columns)}
FROM scoring_entry e
{scoped}
LEFT JOIN scoring_capclip c ON c.entry_id = COALESCE(e.reverses_id, e.id)
WHERE e.year = %(year)s {only_members}
GROUP BY e.member_id
"""


def _pick(name: str) -> str:
    """The column ``name_<period>`` of the row's period (1–4, 0 for the year)."""
    arms = " ".join(f"WHEN {q} THEN {name}_{q}" for q in QUARTERS)
    return f"(CASE quarter {arms} ELSE {name}_0 END)"


def _rows_sql() -> str:
    """The ``totals`` of ``totals_sql()`` (each member's periods with their totals, before
    ranking) computed from each member's sums per quarter in ``recompute_sums`` (see
    ``_sums_sql``) instead of from the ledger: 300,000 rows read instead of 10 million at
    city scale.

    A member's four quarters are one row, so the running totals need no window; each
    member's figures for the four quarters and the year are worked out once in that row,
    and each period row only picks its own (the arithmetic on 1.5 million rows took seconds
    at city scale)."""
    sums = ", ".join(
        f"COALESCE(s.{name}_{q}, 0) AS {name}_{q}"
        for q in QUARTERS
        for name in ("bonus", "deduction", "uncounted", "vetoes")
    )

    def year(name: str) -> str:
        return " + ".join(f"{name}_{q}" for q in QUARTERS)

    nets = ", ".join(f"bonus_{q} - deduction_{q} AS net_{q}" for q in QUARTERS)
    vetoes = ", ".join(
        f"{' + '.join(f'vetoes_{p}' for p in QUARTERS if p <= q)} > 0 AS is_vetoed_{q}"
        for q in QUARTERS
    )
    running = ", ".join(
        f"ROUND(base_score + {' + '.join(f'net_{p}' for p in QUARTERS if p <= q)}, 2) "
        f"AS year_to_date_total_{q}"
        for q in QUARTERS
    )
    flags = ", ".join(f"is_vetoed_{q}" for q in QUARTERS)
    rounded = ", ".join(
        f"ROUND({name}_{q}, 2) AS {name}_{q}"
        for q in (0, *QUARTERS)
        for name in ("bonus", "deduction", "net", "uncounted")
    )
    return (
        _member_ctes()
        + f""",
periods AS (
    SELECT 0 AS quarter UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3
    UNION ALL SELECT 4
),
member_sums AS (
    SELECT m.*, {sums}
    FROM m LEFT JOIN recompute_sums s ON s.member_id = m.member_id
),
member_nets AS (
    SELECT member_sums.*, {nets}, {year("bonus")} AS bonus_0,
           {year("deduction")} AS deduction_0, {year("uncounted")} AS uncounted_0, {vetoes}
    FROM member_sums
),
-- Materialized: worked out once per member, not again in each of its five period rows.
member_periods AS MATERIALIZED (
    SELECT member_id, branch_id, committee_path, scheme_id, base_score, veto_effect,
           ranking_group, {rounded}, {running}, {flags},
           ROUND(base_score + net_0, 2) AS year_to_date_total_0, is_vetoed_4 AS is_vetoed_0
    FROM (SELECT member_nets.*, {year("net")} AS net_0 FROM member_nets) member_nets
),
grid AS (
    SELECT member_id, branch_id, committee_path, scheme_id, periods.quarter, base_score,
           veto_effect, ranking_group,
           {_pick("bonus")} AS bonus, {_pick("deduction")} AS deduction, {_pick("net")} AS net,
           {_pick("year_to_date_total")} AS year_to_date_total,
           {_pick("uncounted")} AS uncounted, {_pick("is_vetoed")} AS is_vetoed
    FROM member_periods CROSS JOIN periods
),
totals AS (
    SELECT g.member_id, g.branch_id, g.committee_path, g.scheme_id, g.quarter, g.base_score,
           g.bonus, g.deduction, g.net, g.year_to_date_total,
           CASE WHEN g.is_vetoed AND g.veto_effect = 'zero_and_fail' THEN 0
                WHEN sc.points_weight IS NULL OR a.id IS NULL THEN g.year_to_date_total
                ELSE ROUND(sc.points_weight * g.year_to_date_total
                           + sc.democratic_weight * {_rating("a.democratic")}
                           + sc.mass_weight * {_rating("a.mass")}, 2) END AS total,
           g.uncounted, g.is_vetoed, g.ranking_group
    FROM grid g
    JOIN scoring_scheme sc ON sc.id = g.scheme_id
    -- Annual review: a scheme may weight the year's points with the appraisals.
    LEFT JOIN reviews_reviewcycle c
           ON g.quarter = 0 AND c.organization_id = g.branch_id AND c.year = %(year)s
              AND c.quarter = 0
    LEFT JOIN reviews_appraisal a ON a.cycle_id = c.id AND a.member_id = g.member_id
)
SELECT * FROM totals"""
    )


def _band_cases(scheme_ids: Iterable[int], params: dict) -> dict[str, str]:
    """SQL expressions of ``total`` and ``scheme_id`` for the star, the grade and the grade
    below it, built from the schemes' bands (a few per scheme) instead of a range join over
    every row. The labels are added to ``params``."""
    from .models import OutcomeBand

    bands: dict[tuple[int, str], list[OutcomeBand]] = {}
    for band in OutcomeBand.objects.filter(scheme_id__in=scheme_ids).order_by(
        "scheme_id", "dimension", F("min_total").desc(nulls_last=True)
    ):
        bands.setdefault((band.scheme_id, band.dimension), []).append(band)

    def label(band: OutcomeBand) -> str:
        name = f"band_{len(params)}"
        params[name] = band.label
        return f"%({name})s"

    def case(dimension: str, *, lower: bool = False) -> str:
        arms = []
        for (scheme_id, kind), ordered in sorted(bands.items()):
            if kind != dimension:
                continue
            inner = []
            for index, band in enumerate(ordered):
                if lower and index + 1 == len(ordered):
                    break  # the lowest band has none below it
                result = label(ordered[index + 1] if lower else band)
                if band.min_total is None:
                    inner.append(f"ELSE {result}")
                    break
                inner.append(f"WHEN total >= {Decimal(band.min_total)} THEN {result}")
            if inner:
                body = " ".join(inner)
                arms.append(f"WHEN {int(scheme_id)} THEN CASE {body} END")
        return f"(CASE scheme_id {' '.join(arms)} END)" if arms else "NULL"

    return {
        "star": case("star"),
        "grade": case("grade"),
        "grade_lower": case("grade", lower=True),
    }


def _committee_ranks_sql(bands: dict[str, str]) -> str:
    """Each distinct total of a committee's period and ranking group once, from
    ``recompute_totals`` (``_rows_sql``): its rank (1 + how many are above it; ties share
    it) and its star and grade bands. A few thousand values at city scale instead of a sort
    of 1.5 million rows; the bands are CASEs of the scheme's bands (``_band_cases``)."""
    return f"""
SELECT committee_path, quarter, ranking_group, scheme_id, total,
       CAST(SUM(n) OVER (PARTITION BY committee_path, quarter, ranking_group
                         ORDER BY total DESC)
            - SUM(n) OVER (PARTITION BY committee_path, quarter, ranking_group, total)
            + 1 AS INTEGER) AS rank_in_committee,
       {bands["star"]} AS star_label, {bands["grade"]} AS grade_label,
       {bands["grade_lower"]} AS grade_lower_label
FROM (SELECT committee_path, quarter, ranking_group, scheme_id, total, COUNT(*) AS n
      FROM recompute_totals
      GROUP BY committee_path, quarter, ranking_group, scheme_id, total) histogram
"""


def _branch_ranks_sql() -> str:
    """Each member's rank in the branch per period and ranking group, and how many share or
    beat that total, from ``recompute_totals``: the one window of the recompute, over a
    narrow projection (a sort of small rows, in memory)."""
    return f"""
SELECT member_id, quarter, RANK() OVER w AS rank_in_branch, COUNT(*) OVER w AS at_or_above
FROM (SELECT member_id, branch_id, quarter, ranking_group, total FROM recompute_totals) narrow
WINDOW w AS (PARTITION BY branch_id, quarter, {_bytewise("ranking_group")} ORDER BY total DESC)
"""


def _groups_sql() -> str:
    """Each ranking group of a branch and period: its size, highest and lowest total."""
    return """
SELECT branch_id, quarter, ranking_group, COUNT(*) AS group_size, MAX(total) AS group_max,
       MIN(total) AS group_min
FROM recompute_totals
GROUP BY branch_id, quarter, ranking_group
"""


def _ranked_rows_sql(changed: str, inline: dict[str, str] | None = None) -> str:
    """The rows to write: ``recompute_totals`` with their ranks and groups
    (``recompute_ranks``, ``recompute_groups``, ``recompute_committee``), flags, star and
    grade — as ``_ranking_sql`` gives them — and only the rows that differ from the stored
    ones (``changed``, over ``final_rows`` and ``ps``). Joins and aggregates only, no window: PostgreSQL runs it in parallel on the
    shared working tables (``_Scratch``). ``inline``: SELECTs of those tables to read as
    CTEs instead (a branch: one statement costs less than three tables)."""
    is_bottom = (
        "(sc.bottom_n_flag > 0 AND g.group_size - r.at_or_above + 1 <= sc.bottom_n_flag "
        "AND t.total < g.group_max)"
    )
    loses_excellent = (
        f"(t.is_vetoed OR {is_bottom} OR (sc.excellent_share_cap IS NOT NULL "
        "AND r.at_or_above > FLOOR(sc.excellent_share_cap * g.group_size)))"
    )
    ranked = "t.ranking_group <> 'unranked'"
    # The stored rows: of a city, all of them; of a few branches, those of these branches,
    # found through the branch index (the joins are hash joins: no lookup per row). A member
    # who moved in has none there, and his row is rewritten with its new branch.
    where = "year = %(year)s"
    if inline is not None:
        where += f" AND {_in_list('organization_id', 'branches')}"
    stored = f"(SELECT * FROM scoring_periodscore WHERE {where})"
    # Materialized: each computed once, however the planner joins them.
    parts = "".join(
        f"recompute_{name} AS MATERIALIZED ({select}), " for name, select in (inline or {}).items()
    )
    return f"""
WITH {parts}final_rows AS (
    SELECT t.member_id, t.branch_id AS organization_id, t.scheme_id, t.quarter, t.base_score,
           t.bonus, t.deduction, t.net, t.year_to_date_total, t.total,
           t.uncounted AS uncounted_points, t.is_vetoed, t.ranking_group,
           CASE WHEN {ranked} THEN r.rank_in_branch END AS rank_in_branch,
           CASE WHEN {ranked} THEN cr.rank_in_committee END AS rank_in_committee,
           CASE WHEN {ranked} THEN COALESCE(cr.star_label, '') ELSE '' END AS star,
           CASE WHEN NOT {ranked} OR t.quarter <> 0 THEN ''
                WHEN t.is_vetoed AND sc.veto_effect = 'zero_and_fail' THEN sc.failing_grade
                WHEN cr.grade_label = sc.excellent_grade AND {loses_excellent}
                     THEN COALESCE(cr.grade_lower_label, '')
                ELSE COALESCE(cr.grade_label, '') END AS grade,
           ({ranked} AND sc.top_n_flag > 0 AND r.rank_in_branch <= sc.top_n_flag
            AND t.total > g.group_min) AS is_top_flagged,
           ({ranked} AND {is_bottom}) AS is_bottom_flagged
    FROM recompute_totals t
    JOIN recompute_ranks r ON r.member_id = t.member_id AND r.quarter = t.quarter
    JOIN recompute_groups g ON g.branch_id = t.branch_id AND g.quarter = t.quarter
         AND g.ranking_group = t.ranking_group
    JOIN recompute_committee cr ON cr.committee_path = t.committee_path
         AND cr.quarter = t.quarter AND cr.ranking_group = t.ranking_group
         AND cr.scheme_id = t.scheme_id AND cr.total = t.total
    JOIN scoring_scheme sc ON sc.id = t.scheme_id
)
SELECT final_rows.* FROM final_rows
LEFT JOIN {stored} ps
       ON ps.member_id = final_rows.member_id AND ps.quarter = final_rows.quarter
WHERE ps.id IS NULL OR {changed}
"""


def _refresh_clips(
    scratch: _Scratch, params: dict, year: int, member_ids: list[int] | None
) -> None:
    """Derive the ``CapClip`` and ``CapState`` rows of ``year`` again for these members (None:
    every member of the scope) from the ledger, with the windows of ``_scope_ctes``.

    The inserts overwrite on conflict: recomputes of one committee-year are serialized, but
    one of the next year may derive the same member's clips of this year at the same time
    (its reversals reach into this year), and both derive the same rows."""
    params = dict(params, year=year)
    if member_ids is None:
        members = None
        where = (
            "member_id IN (SELECT mm.id FROM members_member mm "
            f"WHERE {_in_list('mm.organization_id', 'branches')})"
        )
    else:
        params["clip_members"] = _id_list(member_ids)
        members = "clip_members"
        where = _in_list("member_id", "clip_members")
    capped = _in_list("e.rule_id", "capped_rules")
    scratch.execute(f"DELETE FROM scoring_capclip WHERE year = %(year)s AND {where}", params)
    scratch.execute(f"DELETE FROM scoring_capstate WHERE year = %(year)s AND {where}", params)
    scratch.execute(
        _scope_ctes(members=members)
        + """
INSERT INTO scoring_capclip (entry_id, member_id, year, counted)
SELECT id, member_id, year, counted FROM capped_counted
WHERE year = %(year)s AND counted <> points
ON CONFLICT (entry_id) DO UPDATE SET counted = excluded.counted""",
        params,
    )
    scratch.execute(
        _member_ctes(members=members)
        + f"""
INSERT INTO scoring_capstate (member_id, year, entries)
SELECT e.member_id, e.year, COUNT(*)
FROM scoring_entry e
JOIN m ON m.member_id = e.member_id
WHERE e.year = %(year)s AND e.reverses_id IS NULL AND {capped}
GROUP BY e.member_id, e.year
ON CONFLICT (member_id, year) DO UPDATE SET entries = excluded.entries""",
        params,
    )


# The columns the recompute writes, in the order totals_sql() selects them.
COLUMNS = (
    "member_id",
    "organization_id",
    "scheme_id",
    "quarter",
    "base_score",
    "bonus",
    "deduction",
    "net",
    "year_to_date_total",
    "total",
    "uncounted_points",
    "is_vetoed",
    "ranking_group",
    "rank_in_branch",
    "rank_in_committee",
    "star",
    "grade",
    "is_top_flagged",
    "is_bottom_flagged",
)


def _capped_rule_ids() -> list[int]:
    """Every rule with a cap, of any scheme and year (a reversal may reach into last year)."""
    from .models import Rule

    return list(
        Rule.objects.filter(
            Q(max_times_per_quarter__isnull=False) | Q(max_points_per_year__isnull=False)
        ).values_list("id", flat=True)
    )


def _params(year: int, branch_ids: list[int]) -> dict | None:
    schemes = effective_schemes(branch_ids, year)
    if not schemes:
        return None
    return {
        "scope": json.dumps([[branch_id, scheme.pk] for branch_id, scheme in schemes.items()]),
        "year": year,
        "capped_rules": _id_list(_capped_rule_ids()),
        "branches": _id_list(schemes),
        "now": timezone.now(),
    }


# Above this many members with changed capped entries, the clips of the whole scope are
# derived again in one statement instead of member by member.
CLIPS_REBUILD_MEMBERS = 5000

# From this many branches the working tables are analysed (see _Scratch).
ANALYZE_FROM_BRANCHES = 50

# A recompute that wrote more period rows than this many plus this share of the table
# analyses it, as autovacuum would (its analyze threshold and scale factor) but at once.
TABLE_ANALYZE_ROWS = 50
TABLE_ANALYZE_SHARE = 0.1

# From this many branches the ranking joins every stored row: by hashing, not by an index
# lookup per row (PostgreSQL's estimate for the temporary tables picks lookups).
CITY_SCALE_BRANCHES = 1000


@contextmanager
def _planner_settings(cursor, chosen: dict[str, str]) -> Iterator[None]:
    """PostgreSQL settings for the statements inside, restored after them."""
    if connection.vendor != "postgresql" or not chosen:
        yield
        return
    names = sorted(chosen)
    cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names), [])
    before = dict(zip(names, cursor.fetchone(), strict=True))
    for name in names:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, chosen[name]])
    try:
        yield
    finally:
        for name in names:
            cursor.execute("SELECT set_config(%s, %s, true)", [name, before[name]])


def _sums_settings() -> dict[str, str]:
    """For the sums at city scale: hashed by member in each worker, in memory
    (``settings.RECOMPUTE_WORK_MEM``). Summed in whole cents (``_cents``), 300,000 members'
    thirteen sums take 184 MB per process; summed as decimals they took several times that
    and spilled to disk, and sorting the entries by member instead took 11.6 s where hashing
    the cents takes 9.5 s."""
    return {"work_mem": settings.RECOMPUTE_WORK_MEM}


# From this share of all members in scope, the sums read the year's whole ledger and the
# period rows leave the other members' sums unread: a join to pick the scope's entries out
# of 10 million cost 4 s at city scale, more than summing a few others' entries.
SUMS_WHOLE_LEDGER_SHARE = 0.5


def _holds_most_members(scratch: _Scratch) -> bool:
    """Whether the scope holds at least ``SUMS_WHOLE_LEDGER_SHARE`` of all members."""
    scratch.execute(
        """SELECT COUNT(*), COUNT(recompute_scope.branch_id) FROM members_member mm
           LEFT JOIN recompute_scope ON recompute_scope.branch_id = mm.organization_id"""
    )
    everyone, scoped = scratch.fetchall()[0]
    return scoped >= SUMS_WHOLE_LEDGER_SHARE * everyone


def _ranking_settings(*, city_scale: bool) -> dict[str, str]:
    """For the period rows and the ranking: sorts in memory, no JIT (compiling costs more
    than it saves here), and hash joins — a merge join of the totals with the committee
    ranks rescanned duplicates for 100 s at city scale."""
    chosen = {"work_mem": settings.RECOMPUTE_WORK_MEM, "jit": "off", "enable_mergejoin": "off"}
    if city_scale:
        chosen["enable_nestloop"] = "off"
    return chosen


def _create_sums(scratch: _Scratch, params: dict) -> None:
    with _planner_settings(scratch.cursor, _sums_settings() if scratch.shared else {}):
        scratch.create("sums", _sums_sql(whole_ledger=scratch.whole_ledger), params)


def _refresh_stale_clips(scratch: _Scratch, params: dict, year: int) -> None:
    """Derive again the clips that no longer match the ledger, and the sums that read them.

    Clips of other years first: a reversal dated this year of an entry of another year
    counts minus what that entry counted. Then this year's: ``recompute_sums`` carries each
    member's capped entries as the ledger has them now, which ``CapState`` must match."""
    scratch.execute(
        f"""SELECT DISTINCT rv.member_id, o.year FROM scoring_entry rv
            JOIN members_member mm ON mm.id = rv.member_id
            JOIN scoring_entry o ON o.id = rv.reverses_id
            WHERE rv.year = %(year)s AND rv.reverses_id IS NOT NULL AND o.year <> %(year)s
              AND {_in_list("o.rule_id", "capped_rules")}
              AND {_in_list("mm.organization_id", "branches")}""",
        params,
    )
    other_years: dict[int, list[int]] = {}
    for member_id, other_year in scratch.fetchall():
        other_years.setdefault(other_year, []).append(member_id)
    for other_year, member_ids in sorted(other_years.items()):
        _refresh_clips(scratch, params, other_year, member_ids)
    scratch.execute(
        """SELECT s.member_id FROM recompute_sums s
           JOIN members_member mm ON mm.id = s.member_id
           JOIN recompute_scope ON recompute_scope.branch_id = mm.organization_id
           LEFT JOIN scoring_capstate cs ON cs.member_id = s.member_id AND cs.year = %(year)s
           WHERE COALESCE(cs.entries, 0) <> s.capped_entries""",
        params,
    )
    stale = [member_id for (member_id,) in scratch.fetchall()]
    if other_years:
        # Their reversals read the clips just derived: sum those members again too.
        stale = sorted(set(stale).union(*other_years.values()))
    if not stale:
        return
    if len(stale) > CLIPS_REBUILD_MEMBERS:
        _refresh_clips(scratch, params, year, None)
        _create_sums(scratch, params)
        return
    _refresh_clips(scratch, params, year, stale)
    params = dict(params, stale=_id_list(stale))
    scratch.execute(f"DELETE FROM recompute_sums WHERE {_in_list('member_id', 'stale')}", params)
    scratch.execute(f"INSERT INTO recompute_sums {_sums_sql(only='stale')}", params)


def _leavers_sql(*, shared: bool) -> str:
    """DELETE the year's rows in the scope's branches of members who are no longer in them.

    Of a city on PostgreSQL (``shared`` working tables), found from the members outside
    the scope (an anti join with the scope table), then their rows by the member index:
    0.1 s where checking 1.5 million stored rows took 0.9 s. Of a few branches, from those
    branches' rows (the branch index)."""
    if shared:
        return """DELETE FROM scoring_periodscore ps USING recompute_scope, members_member mm
            WHERE ps.year = %(year)s AND ps.organization_id = recompute_scope.branch_id
              AND mm.id = ps.member_id
              AND NOT EXISTS (SELECT FROM recompute_scope s
                              WHERE s.branch_id = mm.organization_id)"""
    return f"""DELETE FROM scoring_periodscore WHERE year = %(year)s
        AND {_in_list("organization_id", "branches")}
        AND member_id NOT IN (SELECT id FROM members_member
                              WHERE {_in_list("organization_id", "branches")})"""


def _write(year: int, branch_ids: list[int], *, whole_committee: bool) -> int:
    """Upsert the period rows of every member of these branches, writing only rows that
    changed; remove rows of members who are no longer in these branches' scope.

    Four steps: the members' sums per quarter in one pass over the ledger (parallel on
    PostgreSQL), with the cap clips derived again where the ledger changed under them; the
    period rows from those sums; their ranks (committee ranks per distinct total, the branch
    window, each ranking group's range), flags, stars and grades, keeping only the rows that
    differ from the stored ones; the upsert of those. At city scale each step is a working
    table that the next reads in parallel (``_Scratch``); for a few branches the ranking is
    one statement.

    With ``whole_committee`` the committee ranks are written too; otherwise the stored
    committee ranks are kept until the committee is re-ranked."""
    params = _params(year, branch_ids)
    if params is None:
        return 0
    columns = ", ".join(COLUMNS)
    updated = [column for column in COLUMNS if column not in ("member_id", "quarter")]
    if not whole_committee:
        updated.remove("rank_in_committee")
    assignments = ", ".join(f"{column} = excluded.{column}" for column in updated)
    changed = " OR ".join(_distinct(f"scoring_periodscore.{c}", f"excluded.{c}") for c in updated)
    city_scale = len(branch_ids) > CITY_SCALE_BRANCHES
    with connection.cursor() as cursor:
        scratch = _Scratch(
            cursor, shared=city_scale, analyze=len(branch_ids) > ANALYZE_FROM_BRANCHES
        )
        scratch.load_scope(params)
        # Members who left these branches: their rows move with them (upsert below) unless
        # they left the scope entirely, in which case they go.
        scratch.execute(_leavers_sql(shared=scratch.shared), params)
        scratch.whole_ledger = city_scale and _holds_most_members(scratch)
        _create_sums(scratch, params)
        _refresh_stale_clips(scratch, params, year)
        bands = _band_cases({scheme for _b, scheme in json.loads(params["scope"])}, params)
        differs = " OR ".join(_distinct(f"ps.{c}", f"final_rows.{c}") for c in updated)
        parts = {
            "committee": _committee_ranks_sql(bands),
            "ranks": _branch_ranks_sql(),
            "groups": _groups_sql(),
        }
        with _planner_settings(cursor, _ranking_settings(city_scale=city_scale)):
            scratch.create("totals", _rows_sql(), params)
            if scratch.shared:
                for name, select in parts.items():
                    scratch.create(name, select, params)
                rows = _ranked_rows_sql(differs)
            else:
                rows = _ranked_rows_sql(differs, inline=parts)
            # Hash joins only: the joins on several columns are estimated at one row, and a
            # nested loop over a "single row" that is thousands grows with their square.
            with _planner_settings(cursor, {"enable_nestloop": "off"}):
                scratch.create("rows", rows, params, analyze=False)
        scratch.execute(
            f"""INSERT INTO scoring_periodscore ({columns}, year, computed_at)
                SELECT {columns}, %(year)s, %(now)s FROM recompute_rows WHERE 1 = 1
                ON CONFLICT (member_id, year, quarter) DO UPDATE SET {assignments},
                    computed_at = excluded.computed_at
                WHERE {changed}""",
            params,
        )
        written = cursor.rowcount
        scratch.drop()
        _keep_statistics(cursor, written)
    return written


def _keep_statistics(cursor, written: int) -> None:
    """ANALYZE the period table when this recompute rewrote much of it.

    The pages read it by member, branch and period, and the planner picks those indexes
    from its statistics. After the year's first recompute wrote 1.5 million rows into a
    table analysed when it was empty, the publicity board's scores took 220 ms by a bitmap
    scan of the whole period instead of 1 ms by the member index, until autovacuum came by
    (never, where it is off). 0.5 s at that size; a recompute that wrote a few rows or
    none, as most do, skips it."""
    if connection.vendor != "postgresql" or written <= TABLE_ANALYZE_ROWS:
        return
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'scoring_periodscore'::regclass")
    (estimated,) = cursor.fetchone()
    if written > TABLE_ANALYZE_ROWS + TABLE_ANALYZE_SHARE * max(estimated, 0):
        cursor.execute("ANALYZE scoring_periodscore")


def _bands_sql() -> str:
    """Each band with the bound above it and the next lower band's label."""
    low = "COALESCE(b.min_total, -1000000000)"
    return f"""
SELECT b.scheme_id, b.dimension, b.label, {low} AS low,
       LAG({low}) OVER (PARTITION BY b.scheme_id, b.dimension ORDER BY {low} DESC) AS high,
       LEAD(b.label) OVER (PARTITION BY b.scheme_id, b.dimension ORDER BY {low} DESC) AS lower_label
FROM scoring_outcomeband b
"""


def rank_committee(committee: Organization, year: int) -> int:
    """Ranks across every branch of a committee, per period and ranking group; only rows
    whose rank changed are written."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
UPDATE scoring_periodscore AS ps SET rank_in_committee = r.rank_top
FROM (
    SELECT ps.id,
           CASE WHEN ps.ranking_group = 'unranked' THEN NULL ELSE
             RANK() OVER (PARTITION BY ps.quarter, ps.ranking_group ORDER BY ps.total DESC)
           END AS rank_top
    FROM scoring_periodscore ps
    JOIN members_organization o ON o.id = ps.organization_id
    WHERE ps.year = %(year)s AND o.path LIKE %(prefix)s
) r
WHERE r.id = ps.id AND {_distinct("ps.rank_in_committee", "r.rank_top")}
""",
            {"year": year, "prefix": committee.path + "%"},
        )
        return cursor.rowcount


def _committee_of(organization: Organization) -> Organization:
    if organization.depth == 1:
        return organization
    return Organization.objects.get(path=organization.path[: Organization.steplen])


def _claim_stale(branch_ids: list[int], year: int) -> None:
    """Take the branches' "totals wait for a recompute" marks in this transaction, before the
    ledger is read: a change committed after this point marks its branch again (and waits on
    this row until we commit), so no change is left without either its mark or its totals;
    if this recompute fails, the rollback restores the marks."""
    StaleTotals.objects.filter(organization_id__in=branch_ids, year=year).delete()


def _lock_state(committee: Organization, year: int) -> RankingState:
    """Serialize recomputes of one committee-year: the row lock is held to commit."""
    RankingState.objects.get_or_create(committee=committee, year=year)
    return RankingState.objects.select_for_update().get(committee=committee, year=year)


def _count_version(state: RankingState, written: int) -> list[str]:
    """Move the committee's totals version on when period rows changed (the overview's
    cache is keyed by it); the fields to save."""
    if not written:
        return []
    state.totals_version += 1
    return ["totals_version"]


@transaction.atomic
def recompute_organization(organization: Organization, year: int) -> int:
    """Recompute every member's periods below ``organization`` with all their ranks.
    Returns how many period rows changed."""
    committee = _committee_of(organization)
    state = _lock_state(committee, year)
    branch_ids = list(
        Organization.objects.filter(
            path__startswith=organization.path, kind=Organization.Kind.BRANCH
        ).values_list("id", flat=True)
    )
    whole_committee = organization.pk == committee.pk
    _claim_stale(branch_ids, year)
    written = _write(year, branch_ids, whole_committee=whole_committee)
    if not whole_committee:
        rank_committee(committee, year)
    state.recomputed_at = state.ranked_at = timezone.now()
    state.ranks_dirty_since = None
    state.recompute_count += 1
    state.save(
        update_fields=["recomputed_at", "ranked_at", "ranks_dirty_since", "recompute_count"]
        + _count_version(state, written)
    )
    return written


@transaction.atomic
def recompute_members(member_ids: list[int], year: int) -> list[int]:
    """Recompute the periods of the branches these members belong to (set-wise, so members
    without entries get their rows too) and of any branch a member has left, with their
    branch ranks, and mark the committees' ranks stale. Returns the committees' ids."""
    members = list(Member.objects.filter(id__in=member_ids).values_list("id", "organization_id"))
    if not members:
        return []
    branch_ids = {branch_id for _member, branch_id in members}
    left_branches = set(
        PeriodScore.objects.filter(member_id__in=[member for member, _branch in members], year=year)
        .exclude(organization_id__in=branch_ids)
        .values_list("organization_id", flat=True)
    )
    return recompute_branches(sorted(branch_ids | left_branches), year)


@transaction.atomic
def recompute_branches(branch_ids: list[int], year: int) -> list[int]:
    """Recompute these branches' periods with their branch ranks and mark their committees'
    ranks stale (the committee ranks follow in ``refresh_committee_ranks``). Returns the
    committees' ids."""
    branches = list(Organization.objects.filter(id__in=branch_ids))
    if not branches:
        return []
    committees = {_committee_of(branch) for branch in branches}
    states = [_lock_state(committee, year) for committee in sorted(committees, key=lambda c: c.pk)]
    ids = sorted(branch.pk for branch in branches)
    _claim_stale(ids, year)
    written = _write(year, ids, whole_committee=False)
    now = timezone.now()
    for state in states:
        fields = _count_version(state, written)
        if state.ranks_dirty_since is None:
            state.ranks_dirty_since = now
            fields.append("ranks_dirty_since")
        if fields:
            state.save(update_fields=fields)
    return [state.committee_id for state in states]


def refresh_committee_ranks(
    committee: Organization, year: int, *, unless_ranked_within: float = 0
) -> bool:
    """Re-rank a committee if its ranks are stale; only one caller does the work.

    ``unless_ranked_within`` (seconds) coalesces a burst: while a meeting's worth of
    recordings arrives, each schedules a refresh, but a committee re-ranked that recently is
    left for a later one. The refresh scheduled after the last change still re-ranks: it
    runs ``COMMITTEE_RANK_DELAY_SECONDS`` after that change, so the last re-rank was either
    after the change (nothing is stale any more) or longer ago than this interval (when it
    is shorter than the delay)."""
    stale = RankingState.objects.filter(
        committee=committee, year=year, ranks_dirty_since__isnull=False
    )
    if unless_ranked_within:
        recently = timezone.now() - timedelta(seconds=unless_ranked_within)
        stale = stale.filter(Q(ranked_at__isnull=True) | Q(ranked_at__lte=recently))
    with transaction.atomic():
        claimed = stale.update(ranks_dirty_since=None)
        if not claimed:
            return False
        state = _lock_state(committee, year)
        rank_committee(committee, year)
        state.ranked_at = timezone.now()
        state.save(update_fields=["ranked_at"])
    return True


def stored_totals_mismatches(year: int, organization: Organization | None = None) -> list[dict]:
    """PeriodScore rows that differ from what the ledger gives, or are missing or extra."""
    roots = [organization] if organization else list(Organization.objects.filter(depth=1))
    mismatches: list[dict] = []
    for root in roots:
        branch_ids = list(
            Organization.objects.filter(
                path__startswith=root.path, kind=Organization.Kind.BRANCH
            ).values_list("id", flat=True)
        )
        params = _params(year, branch_ids)
        if params is None:
            continue
        expected = {}
        with connection.cursor() as cursor:
            scratch = _Scratch(cursor)
            scratch.load_scope(params)
            cursor.execute(totals_sql(), params)
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(columns, row, strict=True))
                expected[(values["member_id"], values["quarter"])] = values
            scratch.drop()
        stored = {
            (score.member_id, score.quarter): score
            for score in PeriodScore.objects.filter(
                year=year, organization_id__in=effective_schemes(branch_ids, year)
            )
        }
        for key in sorted(set(expected) | set(stored)):
            want, have = expected.get(key), stored.get(key)
            if want is None or have is None:
                mismatches.append({"member_id": key[0], "quarter": key[1], "field": "row"})
                continue
            for field in ("bonus", "deduction", "net", "year_to_date_total", "total"):
                if _decimal(want[field]) != getattr(have, field):
                    mismatches.append(
                        {
                            "member_id": key[0],
                            "quarter": key[1],
                            "field": field,
                            "stored": getattr(have, field),
                            "ledger": _decimal(want[field]),
                        }
                    )
            if bool(want["is_vetoed"]) != have.is_vetoed:
                mismatches.append({"member_id": key[0], "quarter": key[1], "field": "is_vetoed"})
    return mismatches


def _decimal(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def counted_points(member_ids: list[int], year: int) -> dict[int, Decimal]:
    """{entry id: points it counts} for these members' entries of ``year``, after caps and
    reversals — what the ledger pages show beside each entry."""
    branch_ids = sorted(
        set(Member.objects.filter(id__in=member_ids).values_list("organization_id", flat=True))
    )
    params = _params(year, branch_ids)
    if params is None:
        return {}
    params["members"] = _id_list(member_ids)
    sql = (
        _scope_ctes(members="members")
        + f"""
SELECT e.id, e.points AS counted FROM scoring_entry e
WHERE {_plain_filter()} AND {_in_list("e.member_id", "members")}
UNION ALL
SELECT id, counted FROM capped_counted
WHERE year = %(year)s AND {_in_list("member_id", "members")}
UNION ALL
SELECT id, counted FROM reversals WHERE {_in_list("member_id", "members")}
"""
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counted = {entry_id: _decimal(value) for entry_id, value in cursor.fetchall()}
    return counted
