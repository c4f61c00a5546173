"""Totals, ranks, stars and grades, derived set-wise from the ledger in the database.

Everything here is SQL that runs unchanged on PostgreSQL and SQLite (window functions,
CTEs, UPDATE … FROM): one statement computes every member's quarter and year totals for a
scope and replaces their ``PeriodScore`` rows; one statement ranks a set of branches; one
ranks a whole committee. No Python loop issues a query per member.

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
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from members.models import Member, Organization

from .models import PeriodScore, RankingState
from .schemes import effective_schemes

PERIODS = (1, 2, 3, 4)


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


def _true() -> str:
    return "TRUE" if connection.vendor == "postgresql" else "1"


def _false() -> str:
    return "FALSE" if connection.vendor == "postgresql" else "0"


def _counting_ctes(member_filter: str) -> str:
    """The CTEs up to ``counted``: every entry of the scoped members in the year with the
    points it counts after caps and reversals."""
    clip = _greatest("0", _least("after_times", "max_points_per_year - before_sum"))
    return f"""
WITH scope AS ({_scope_rows_sql("scope")}),
m AS (
    SELECT mm.id AS member_id, mm.organization_id AS branch_id, scope.scheme_id,
           sc.base_score, sc.veto_effect,
           CASE WHEN mm.status IN ('exempt', 'transferred_out') THEN 'unranked'
                WHEN mm.category IN ('full', 'probationary') THEN 'party'
                ELSE 'candidate' END AS ranking_group
    FROM members_member mm
    JOIN scope ON scope.branch_id = mm.organization_id
    JOIN scoring_scheme sc ON sc.id = scope.scheme_id
    WHERE {member_filter}
),
e AS (
    SELECT e.id, e.member_id, e.quarter, e.kind, e.points, e.reverses_id, e.occurred_on,
           r.code, r.max_times_per_quarter, r.max_points_per_year
    FROM scoring_entry e
    JOIN m ON m.member_id = e.member_id
    JOIN scoring_rule r ON r.id = e.rule_id
    WHERE e.year = %(year)s
),
capped_times AS (
    SELECT e.*,
           CASE WHEN max_times_per_quarter IS NOT NULL
                     AND ROW_NUMBER() OVER (PARTITION BY member_id, code, quarter
                                            ORDER BY occurred_on, id) > max_times_per_quarter
                THEN 0 ELSE points END AS after_times
    FROM e
    WHERE reverses_id IS NULL
      AND (max_times_per_quarter IS NOT NULL OR max_points_per_year IS NOT NULL)
),
capped AS (
    SELECT capped_times.*,
           SUM(after_times) OVER (PARTITION BY member_id, code ORDER BY occurred_on, id
                                  ROWS UNBOUNDED PRECEDING) - after_times AS before_sum
    FROM capped_times
),
originals AS (
    SELECT id, member_id, quarter, kind, points,
           CASE WHEN max_points_per_year IS NULL THEN after_times ELSE {clip} END AS counted
    FROM capped
    UNION ALL
    SELECT id, member_id, quarter, kind, points, points AS counted
    FROM e
    WHERE reverses_id IS NULL AND max_times_per_quarter IS NULL AND max_points_per_year IS NULL
),
counted AS (
    SELECT id, member_id, quarter, kind, 0 AS is_reversal, points, counted FROM originals
    UNION ALL
    SELECT rv.id, rv.member_id, rv.quarter, rv.kind, 1 AS is_reversal, rv.points,
           COALESCE(-o.counted, rv.points) AS counted
    FROM e rv LEFT JOIN originals o ON o.id = rv.reverses_id
    WHERE rv.reverses_id IS NOT NULL
)
"""


def totals_sql(member_filter: str) -> str:
    """SELECT of every period row (quarters 1–4 and the year as 0) for the scoped members.

    Parameters: ``scope`` (JSON list of [branch_id, scheme_id]), ``year``, and whatever
    ``member_filter`` (a condition on ``mm``, the member table) uses.
    """

    def rating(column: str) -> str:
        return (
            f"(CASE {column} WHEN 'excellent' THEN 100 WHEN 'competent' THEN 80 "
            f"WHEN 'basic' THEN 60 ELSE 40 END)"
        )

    return (
        _counting_ctes(member_filter)
        + f""",
agg AS (
    SELECT member_id, quarter,
           SUM(CASE WHEN kind = 'bonus' THEN counted ELSE 0 END) AS bonus,
           SUM(CASE WHEN kind = 'deduction' THEN -counted ELSE 0 END) AS deduction,
           SUM(CASE WHEN is_reversal = 0 THEN points - counted ELSE 0 END) AS uncounted,
           SUM(CASE WHEN kind = 'veto' THEN (CASE WHEN is_reversal = 1 THEN -1 ELSE 1 END)
                    ELSE 0 END) AS veto_delta
    FROM counted
    GROUP BY member_id, quarter
),
periods AS (
    SELECT 1 AS quarter UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
),
grid AS (
    SELECT m.member_id, m.branch_id, m.scheme_id, m.base_score, m.veto_effect, m.ranking_group,
           periods.quarter,
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
    SELECT member_id, branch_id, scheme_id, quarter, base_score, bonus, deduction, net,
           year_to_date_total,
           CASE WHEN vetoes > 0 AND veto_effect = 'zero_and_fail' THEN 0
                ELSE year_to_date_total END AS total,
           uncounted, vetoes > 0 AS is_vetoed, ranking_group
    FROM running
),
years AS (
    SELECT member_id, branch_id, scheme_id, 0 AS quarter, base_score,
           SUM(bonus) AS bonus, SUM(deduction) AS deduction, SUM(net) AS net,
           base_score + SUM(net) AS year_to_date_total,
           CASE WHEN SUM(veto_delta) > 0 AND veto_effect = 'zero_and_fail' THEN 0
                ELSE base_score + SUM(net) END AS total,
           SUM(uncounted) AS uncounted, SUM(veto_delta) > 0 AS is_vetoed, ranking_group,
           SUM(veto_delta) > 0 AND veto_effect = 'zero_and_fail' AS is_zeroed
    FROM running
    GROUP BY member_id, branch_id, scheme_id, base_score, veto_effect, ranking_group
),
-- Annual review: a scheme may weight the points with the democratic and mass appraisals
-- (优秀 100, 合格 80, 基本合格 60, 不合格 40 on the totals' scale).
weighted AS (
    SELECT y.member_id, y.branch_id, y.scheme_id, y.quarter, y.base_score, y.bonus,
           y.deduction, y.net, y.year_to_date_total,
           CASE WHEN sc.points_weight IS NULL OR a.id IS NULL OR y.is_zeroed THEN y.total
                ELSE sc.points_weight * y.total
                     + sc.democratic_weight * {rating("a.democratic")}
                     + sc.mass_weight * {rating("a.mass")} END AS total,
           y.uncounted, y.is_vetoed, y.ranking_group
    FROM years y
    JOIN scoring_scheme sc ON sc.id = y.scheme_id
    LEFT JOIN reviews_reviewcycle c
           ON c.organization_id = y.branch_id AND c.year = %(year)s AND c.quarter = 0
    LEFT JOIN reviews_appraisal a ON a.cycle_id = c.id AND a.member_id = y.member_id
)
SELECT member_id, branch_id, scheme_id, quarter, base_score,
       ROUND(bonus, 2) AS bonus, ROUND(deduction, 2) AS deduction, ROUND(net, 2) AS net,
       ROUND(year_to_date_total, 2) AS year_to_date_total, ROUND(total, 2) AS total,
       ROUND(uncounted, 2) AS uncounted, is_vetoed, ranking_group
FROM quarters
UNION ALL
SELECT member_id, branch_id, scheme_id, quarter, base_score,
       ROUND(bonus, 2), ROUND(deduction, 2), ROUND(net, 2),
       ROUND(year_to_date_total, 2), ROUND(total, 2), ROUND(uncounted, 2), is_vetoed, ranking_group
FROM weighted
"""
    )


TOTAL_COLUMNS = (
    "member_id, organization_id, scheme_id, quarter, base_score, bonus, deduction, net, "
    "year_to_date_total, total, uncounted_points, is_vetoed, ranking_group"
)


def _member_condition(member_ids: Iterable[int] | None, branch_ids: list[int]) -> tuple[str, dict]:
    if member_ids is None:
        return "1 = 1", {}
    ids = sorted(set(member_ids))
    if connection.vendor == "postgresql":
        return "mm.id = ANY(%(member_ids)s)", {"member_ids": ids}
    return "mm.id IN (SELECT value FROM json_each(%(member_ids)s))", {"member_ids": json.dumps(ids)}


def _write_totals(year: int, branch_ids: list[int], member_ids: Iterable[int] | None) -> int:
    """Replace the PeriodScore rows of the scoped members with totals from the ledger."""
    schemes = effective_schemes(branch_ids, year)
    scope = [[branch_id, scheme.pk] for branch_id, scheme in schemes.items()]
    condition, params = _member_condition(member_ids, branch_ids)
    params.update({"scope": json.dumps(scope), "year": year, "now": timezone.now()})
    select = totals_sql(condition)
    with connection.cursor() as cursor:
        # Rows of members no longer in scope (moved away) are replaced where they now belong.
        if member_ids is None:
            cursor.execute(
                "DELETE FROM scoring_periodscore WHERE year = %(year)s AND member_id IN "
                f"(SELECT mm.id FROM members_member mm WHERE mm.organization_id IN "
                f"(SELECT branch_id FROM ({_scope_rows_sql('scope')}) s))",
                params,
            )
        else:
            cursor.execute(
                f"DELETE FROM scoring_periodscore WHERE year = %(year)s AND member_id IN "
                f"(SELECT mm.id FROM members_member mm WHERE {condition})",
                params,
            )
        cursor.execute(
            f"INSERT INTO scoring_periodscore ({TOTAL_COLUMNS}, year, rank_in_branch, "
            "rank_in_committee, star, grade, is_top_flagged, is_bottom_flagged, computed_at) "
            f"SELECT t.*, %(year)s, NULL, NULL, '', '', {_false()}, {_false()}, %(now)s "
            f"FROM ({select}) t",
            params,
        )
        return cursor.rowcount


def _bands_sql() -> str:
    """Each band with the bound above it and the next lower band's label."""
    low = "COALESCE(b.min_total, -1000000000)"
    return f"""
SELECT b.scheme_id, b.dimension, b.label, {low} AS low,
       LAG({low}) OVER (PARTITION BY b.scheme_id, b.dimension ORDER BY {low} DESC) AS high,
       LEAD(b.label) OVER (PARTITION BY b.scheme_id, b.dimension ORDER BY {low} DESC) AS lower_label
FROM scoring_outcomeband b
"""


def _rank_branches(year: int, branch_ids: list[int]) -> None:
    """Branch ranks, flags, stars and grades of every period row of these branches."""
    if connection.vendor == "postgresql":
        scope_condition = "ps.organization_id = ANY(%(branches)s)"
        params: dict = {"branches": branch_ids, "year": year}
    else:
        scope_condition = "ps.organization_id IN (SELECT value FROM json_each(%(branches)s))"
        params = {"branches": json.dumps(branch_ids), "year": year}
    ranked = f"""
SELECT ps.id,
       CASE WHEN ps.ranking_group = 'unranked' THEN NULL ELSE
         RANK() OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group
                      ORDER BY ps.total DESC) END AS rank_top,
       RANK() OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group
                    ORDER BY ps.total ASC) AS rank_bottom,
       COUNT(*) OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group
                      ORDER BY ps.total DESC RANGE UNBOUNDED PRECEDING) AS at_or_above,
       COUNT(*) OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group) AS group_size,
       MAX(ps.total) OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group) AS group_max,
       MIN(ps.total) OVER (PARTITION BY ps.organization_id, ps.quarter, ps.ranking_group) AS group_min,
       star.label AS star_label,
       grade.label AS grade_label, grade.lower_label AS grade_lower_label,
       sc.top_n_flag, sc.bottom_n_flag, sc.excellent_share_cap, sc.excellent_grade,
       sc.failing_grade, sc.veto_effect
FROM scoring_periodscore ps
JOIN scoring_scheme sc ON sc.id = ps.scheme_id
LEFT JOIN ({_bands_sql()}) star ON star.scheme_id = ps.scheme_id AND star.dimension = 'star'
     AND ps.total >= star.low AND (star.high IS NULL OR ps.total < star.high)
LEFT JOIN ({_bands_sql()}) grade ON grade.scheme_id = ps.scheme_id AND grade.dimension = 'grade'
     AND ps.total >= grade.low AND (grade.high IS NULL OR ps.total < grade.high)
WHERE ps.year = %(year)s AND {scope_condition}
"""
    # When everyone in a group has the same total, nobody stands out at either end.
    is_bottom = (
        "(r.bottom_n_flag > 0 AND r.rank_bottom <= r.bottom_n_flag AND ps.total < r.group_max)"
    )
    loses_excellent = (
        f"(ps.is_vetoed OR {is_bottom} OR (r.excellent_share_cap IS NOT NULL "
        "AND r.at_or_above > FLOOR(r.excellent_share_cap * r.group_size)))"
    )
    grade = f"""
CASE WHEN ps.ranking_group = 'unranked' OR ps.quarter <> 0 THEN ''
     WHEN ps.is_vetoed AND r.veto_effect = 'zero_and_fail' THEN r.failing_grade
     WHEN r.grade_label = r.excellent_grade AND {loses_excellent}
          THEN COALESCE(r.grade_lower_label, '')
     ELSE COALESCE(r.grade_label, '') END
"""
    sql = f"""
UPDATE scoring_periodscore AS ps SET
    rank_in_branch = r.rank_top,
    is_top_flagged = (ps.ranking_group <> 'unranked' AND r.top_n_flag > 0
                      AND r.rank_top <= r.top_n_flag AND ps.total > r.group_min),
    is_bottom_flagged = (ps.ranking_group <> 'unranked' AND {is_bottom}),
    star = CASE WHEN ps.ranking_group = 'unranked' THEN '' ELSE COALESCE(r.star_label, '') END,
    grade = {grade}
FROM ({ranked}) r
WHERE r.id = ps.id
"""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rank_committee(committee: Organization, year: int) -> None:
    """Ranks across every branch of a committee, per period and ranking group."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
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
WHERE r.id = ps.id
""",
            {"year": year, "prefix": committee.path + "%"},
        )


def _committee_of(organization: Organization) -> Organization:
    if organization.depth == 1:
        return organization
    return Organization.objects.get(path=organization.path[: Organization.steplen])


def _lock_state(committee: Organization, year: int) -> RankingState:
    """Serialize recomputes of one committee-year: the row lock is held to commit."""
    RankingState.objects.get_or_create(committee=committee, year=year)
    return RankingState.objects.select_for_update().get(committee=committee, year=year)


@transaction.atomic
def recompute_organization(organization: Organization, year: int) -> int:
    """Recompute every member's periods below ``organization`` and all their ranks."""
    committee = _committee_of(organization)
    state = _lock_state(committee, year)
    branch_ids = list(
        Organization.objects.filter(
            path__startswith=organization.path, kind=Organization.Kind.BRANCH
        ).values_list("id", flat=True)
    )
    written = _write_totals(year, branch_ids, None)
    _rank_branches(year, branch_ids)
    rank_committee(committee, year)
    state.recomputed_at = timezone.now()
    state.ranks_dirty_since = None
    state.recompute_count += 1
    state.save(update_fields=["recomputed_at", "ranks_dirty_since", "recompute_count"])
    return written


@transaction.atomic
def recompute_members(member_ids: list[int], year: int) -> list[int]:
    """Recompute some members' periods and their branches' ranks; mark their committees'
    ranks stale. Returns the ids of those committees."""
    members = list(Member.objects.filter(id__in=member_ids).select_related("organization"))
    if not members:
        return []
    committees = {_committee_of(member.organization) for member in members}
    states = [_lock_state(committee, year) for committee in sorted(committees, key=lambda c: c.pk)]
    branch_ids = sorted({member.organization_id for member in members})
    _write_totals(year, branch_ids, [member.pk for member in members])
    _rank_branches(year, branch_ids)
    now = timezone.now()
    for state in states:
        if state.ranks_dirty_since is None:
            state.ranks_dirty_since = now
            state.save(update_fields=["ranks_dirty_since"])
    return [state.committee_id for state in states]


def refresh_committee_ranks(committee: Organization, year: int) -> bool:
    """Re-rank a committee if its ranks are stale; only one caller does the work."""
    with transaction.atomic():
        claimed = RankingState.objects.filter(
            committee=committee, year=year, ranks_dirty_since__isnull=False
        ).update(ranks_dirty_since=None)
        if not claimed:
            return False
        _lock_state(committee, year)
        rank_committee(committee, year)
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
        schemes = effective_schemes(branch_ids, year)
        if not schemes:
            continue
        scope = [[branch_id, scheme.pk] for branch_id, scheme in schemes.items()]
        params = {"scope": json.dumps(scope), "year": year}
        expected = {}
        with connection.cursor() as cursor:
            cursor.execute(totals_sql("1 = 1"), params)
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(columns, row, strict=True))
                expected[(values["member_id"], values["quarter"])] = values
        stored = {
            (score.member_id, score.quarter): score
            for score in PeriodScore.objects.filter(year=year, organization_id__in=list(schemes))
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


def _decimal(value) -> object:
    from decimal import Decimal

    return Decimal(str(value)).quantize(Decimal("0.01"))


def counted_points(member_ids: list[int], year: int) -> dict[int, object]:
    """{entry id: points it counts} for these members' entries of ``year``, after caps and
    reversals — what the ledger pages show beside each entry."""
    from decimal import Decimal

    members = Member.objects.filter(id__in=member_ids).values_list("id", "organization_id")
    branch_ids = sorted({branch_id for _member_id, branch_id in members})
    schemes = effective_schemes(branch_ids, year)
    if not schemes:
        return {}
    scope = [[branch_id, scheme.pk] for branch_id, scheme in schemes.items()]
    condition, params = _member_condition(member_ids, branch_ids)
    params.update({"scope": json.dumps(scope), "year": year})
    with connection.cursor() as cursor:
        cursor.execute(_counting_ctes(condition) + " SELECT id, counted FROM counted", params)
        return {
            entry_id: Decimal(str(counted)).quantize(Decimal("0.01"))
            for entry_id, counted in cursor.fetchall()
        }
