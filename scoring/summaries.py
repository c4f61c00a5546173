"""Per-branch summaries and the distribution of a period, for the committee's overview and the
ranking workbook: aggregates in SQL over the computed ``PeriodScore`` rows.

堡垒指数 (branch fortress index): for a period (year, quarter 0 = the year), the branch's
average total of its ranked members ÷ the same average over every ranked member of the
organization being viewed (the committee or general branch) × 100, one decimal. 100 means
"level with the average of the organization viewed"; above 100 is stronger. A branch with no
ranked member has no index (None, shown as "—").

Ranked members are the party members (``ranking_group == "party"``); when the caller filters
on a candidates' category (development target, activist) they are that category's members in
the candidates' ranking instead, so the filter never turns every figure into zero.

Cost, whatever the number of branches: ``summary_scope`` is two small queries (the schemes'
star and grade labels), ``period_distribution`` one aggregate, ``branch_summaries`` one
GROUP BY over the branches joined to their period rows (streamed; a slice of
``branch_summary_list`` is one page of it), and ``branch_table`` the same GROUP BY once for
the overview page, which takes its distribution, its sorted page and its top and bottom
lists from it (about 1 s for 15,000 branches and 300,000 members on a busy 2-core machine).
Permission checks are the caller's job (``Action.VIEW_OVERVIEW`` or the export actions).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connections, router
from django.db.models import Q, QuerySet

from members.models import Member, Organization

from .models import OutcomeBand, PeriodScore, RankingState, SchemeAdoption

TWO_PLACES = Decimal("0.01")
ONE_PLACE = Decimal("0.1")
HUNDRED = Decimal(100)

ORDERS = ("path", "name", "-fortress_index", "fortress_index", "-average", "average")
CANDIDATE_CATEGORIES = (Member.Category.DEVELOPMENT_TARGET, Member.Category.ACTIVIST)
# Score bands of the histogram: lower bound included, upper bound excluded. Schemes start at
# base 100 (five stars: 90 / 100 / 110 / 120) or 60 (the "60+N" model), so tens from 60 to 130
# separate every star and grade boundary the presets use.
BUCKET_BOUNDS = (60, 70, 80, 90, 100, 110, 120, 130)
FETCH_SIZE = 2000


def _connection():
    """Where the raw SQL below reads: the router's choice for the period rows (the read replica
    while an export job writes its workbook, config/routers.py), else the default database."""
    return connections[router.db_for_read(PeriodScore)]


def bucket_labels() -> list[str]:
    labels = [f"<{BUCKET_BOUNDS[0]}"]
    labels += [f"{low}–{high}" for low, high in zip(BUCKET_BOUNDS, BUCKET_BOUNDS[1:], strict=False)]
    labels.append(f"≥{BUCKET_BOUNDS[-1]}")
    return labels


@dataclass(frozen=True)
class BranchSummary:
    organization_id: int
    name: str  # branch name
    parent_name: str  # the general branch / committee directly above
    member_count: int  # ranked members in the period (after the category filter)
    average: Decimal | None  # average total, 2 decimals
    highest: Decimal | None
    lowest: Decimal | None
    star_counts: dict[str, int]  # star label -> count, every star the schemes use, 0 included
    grade_counts: dict[str, int]  # grade label -> count (the year only; {} for a quarter)
    vetoed: int
    top_flagged: int
    bottom_flagged: int
    fortress_index: Decimal | None
    path: str = ""  # the tree path (sorting, indentation)


@dataclass(frozen=True)
class Distribution:
    member_count: int
    average: Decimal | None
    star_counts: dict[str, int]
    grade_counts: dict[str, int]
    vetoed: int
    top_flagged: int
    bottom_flagged: int
    score_buckets: list[tuple[str, int]]  # ("<60", n), ("60–70", n), … ("≥130", n)
    highest: Decimal | None = None
    lowest: Decimal | None = None
    total_sum: Decimal = Decimal("0.00")  # sum of the totals (the fortress index's base)
    branches_scored: int = 0  # branches with at least one ranked member


@dataclass(frozen=True)
class SummaryScope:
    """What every summary of one overview shares: the subtree, the period, the filter, and
    the star and grade labels of the schemes used there."""

    organization: Organization
    year: int
    quarter: int
    category: str
    ranking_group: str
    star_labels: tuple[str, ...]
    grade_labels: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return self.organization.path + "%"


def ranking_group_for(category: str) -> str:
    if category in CANDIDATE_CATEGORIES:
        return PeriodScore.RankingGroup.CANDIDATE
    return PeriodScore.RankingGroup.PARTY


def _check(year: int, quarter: int, category: str) -> None:
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        raise ValueError(f"year {year!r} is outside 2000..2100")
    if quarter not in (0, 1, 2, 3, 4):
        raise ValueError(f"quarter {quarter!r} is not 0..4")
    if category and category not in Member.Category.values:
        raise ValueError(f"unknown member category {category!r}")


def _ancestor_paths(organization: Organization) -> list[str]:
    step = Organization.steplen
    return [organization.path[:end] for end in range(step, len(organization.path) + 1, step)]


def _labels(organization: Organization, year: int, quarter: int) -> tuple[tuple, tuple]:
    """Star and grade labels of the schemes used below ``organization`` in ``year``: the one
    it inherits (its nearest adoption at or above it) and those adopted below it; the
    inherited scheme's first, each in band order (highest first)."""
    adoptions = list(
        SchemeAdoption.objects.filter(year=year)
        .filter(
            Q(organization__path__in=_ancestor_paths(organization))
            | Q(organization__path__startswith=organization.path)
        )
        .select_related("scheme", "organization")
        .order_by("organization__path")
    )
    above = [a for a in adoptions if organization.path.startswith(a.organization.path)]
    below = [a for a in adoptions if a not in above]
    used = ([max(above, key=lambda a: len(a.organization.path))] if above else []) + below
    scheme_ids = list(dict.fromkeys(adoption.scheme_id for adoption in used))
    if not scheme_ids:
        return (), ()
    bands = OutcomeBand.objects.filter(scheme_id__in=scheme_ids).values_list(
        "scheme_id", "dimension", "label"
    )
    by_scheme: dict[int, list[tuple[str, str]]] = {}
    for scheme_id, dimension, label in bands:  # already in band order (Meta.ordering)
        by_scheme.setdefault(scheme_id, []).append((dimension, label))
    stars: dict[str, None] = {}
    grades: dict[str, None] = {}
    failing = {adoption.scheme_id: adoption.scheme.failing_grade for adoption in used}
    for scheme_id in scheme_ids:
        for dimension, label in by_scheme.get(scheme_id, []):
            (stars if dimension == OutcomeBand.Dimension.STAR else grades)[label] = None
        if by_scheme.get(scheme_id):
            grades.setdefault(failing[scheme_id], None)  # a veto's grade, even without a band
    return tuple(stars), (tuple(grades) if quarter == 0 else ())


def summary_scope(
    *, organization: Organization, year: int, quarter: int = 0, category: str = ""
) -> SummaryScope:
    """The shared part of one overview's summaries (two small queries)."""
    _check(year, quarter, category)
    stars, grades = _labels(organization, year, quarter)
    return SummaryScope(
        organization=organization,
        year=year,
        quarter=quarter,
        category=category,
        ranking_group=ranking_group_for(category),
        star_labels=stars,
        grade_labels=grades,
    )


# --- SQL -------------------------------------------------------------------------------------


def _scores_sql(scope: SummaryScope) -> str:
    """The period rows counted: one period, one ranking group, optionally one category."""
    category_join = (
        "JOIN members_member mm ON mm.id = ps.member_id AND mm.category = %(category)s "
        if scope.category
        else ""
    )
    # SQL from constant fragments only; every value is a bound parameter.
    return (
        "SELECT ps.id, ps.organization_id, ps.total, ps.star, ps.grade, ps.is_vetoed, "  # noqa: S608
        "ps.is_top_flagged, ps.is_bottom_flagged FROM scoring_periodscore ps "
        f"{category_join}"
        "WHERE ps.year = %(year)s AND ps.quarter = %(quarter)s "
        "AND ps.ranking_group = %(ranking_group)s"
    )


def _params(scope: SummaryScope) -> dict:
    params = {
        "year": scope.year,
        "quarter": scope.quarter,
        "ranking_group": scope.ranking_group,
        "category": scope.category,
        "prefix": scope.prefix,
    }
    for index, label in enumerate(scope.star_labels):
        params[f"star_{index}"] = label
    for index, label in enumerate(scope.grade_labels):
        params[f"grade_{index}"] = label
    return params


def _count_column_list(scope: SummaryScope) -> list[str]:
    """count, sum of totals in cents (exact on both backends), max, min, stars, grades, flags."""
    # PostgreSQL sums numeric exactly; SQLite holds decimals as floats, so it sums cents.
    cents = (
        "SUM(s.total) * 100"
        if _connection().vendor == "postgresql"
        else "SUM(ROUND(s.total * 100))"
    )
    columns = [
        "COUNT(s.id)",
        cents,
        "MAX(s.total)",
        "MIN(s.total)",
    ]
    columns += [
        f"SUM(CASE WHEN s.star = %(star_{index})s THEN 1 ELSE 0 END)"
        for index in range(len(scope.star_labels))
    ]
    columns += [
        f"SUM(CASE WHEN s.grade = %(grade_{index})s THEN 1 ELSE 0 END)"
        for index in range(len(scope.grade_labels))
    ]
    columns += [
        f"SUM(CASE WHEN s.{flag} THEN 1 ELSE 0 END)"
        for flag in ("is_vetoed", "is_top_flagged", "is_bottom_flagged")
    ]
    return columns


def _count_columns(scope: SummaryScope) -> str:
    return ", ".join(_count_column_list(scope))


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def _cents(value) -> int:
    return int(Decimal(str(value or 0)).to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class _Counts:
    count: int
    cents: int
    highest: Decimal | None
    lowest: Decimal | None
    star_counts: dict[str, int]
    grade_counts: dict[str, int]
    vetoed: int
    top_flagged: int
    bottom_flagged: int
    rest: tuple

    @property
    def average(self) -> Decimal | None:
        return _average(self.cents, self.count)


def _average(cents: int, count: int) -> Decimal | None:
    if not count:
        return None
    return (Decimal(cents) / count / HUNDRED).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def _read_counts(scope: SummaryScope, row: tuple) -> _Counts:
    stars = len(scope.star_labels)
    grades = len(scope.grade_labels)
    count, cents, highest, lowest = row[:4]
    star_values = row[4 : 4 + stars]
    grade_values = row[4 + stars : 4 + stars + grades]
    vetoed, top, bottom = row[4 + stars + grades : 7 + stars + grades]
    return _Counts(
        count=int(count or 0),
        cents=_cents(cents),
        highest=_decimal(highest),
        lowest=_decimal(lowest),
        star_counts={
            label: int(value or 0)
            for label, value in zip(scope.star_labels, star_values, strict=True)
        },
        grade_counts={
            label: int(value or 0)
            for label, value in zip(scope.grade_labels, grade_values, strict=True)
        },
        vetoed=int(vetoed or 0),
        top_flagged=int(top or 0),
        bottom_flagged=int(bottom or 0),
        rest=tuple(row[7 + stars + grades :]),
    )


# --- the distribution ------------------------------------------------------------------------


def _bucket_columns() -> list[str]:
    """One count per score band of the histogram (``BUCKET_BOUNDS``)."""
    buckets = [f"SUM(CASE WHEN s.total < {BUCKET_BOUNDS[0]} THEN 1 ELSE 0 END)"]
    buckets += [
        f"SUM(CASE WHEN s.total >= {low} AND s.total < {high} THEN 1 ELSE 0 END)"
        for low, high in zip(BUCKET_BOUNDS, BUCKET_BOUNDS[1:], strict=False)
    ]
    buckets.append(f"SUM(CASE WHEN s.total >= {BUCKET_BOUNDS[-1]} THEN 1 ELSE 0 END)")
    return buckets


def _distribution(scope: SummaryScope) -> Distribution:
    buckets = _bucket_columns()
    sql = (
        f"SELECT {_count_columns(scope)}, {', '.join(buckets)}, "  # noqa: S608
        "COUNT(DISTINCT s.organization_id) "
        f"FROM ({_scores_sql(scope)}) s "
        "JOIN members_organization o ON o.id = s.organization_id "
        "WHERE o.path LIKE %(prefix)s"
    )
    with _connection().cursor() as cursor:
        cursor.execute(sql, _params(scope))
        row = cursor.fetchone()
    counts = _read_counts(scope, row)
    bucket_values = [int(value or 0) for value in counts.rest[: len(BUCKET_BOUNDS) + 1]]
    return Distribution(
        member_count=counts.count,
        average=counts.average,
        star_counts=counts.star_counts,
        grade_counts=counts.grade_counts,
        vetoed=counts.vetoed,
        top_flagged=counts.top_flagged,
        bottom_flagged=counts.bottom_flagged,
        score_buckets=list(zip(bucket_labels(), bucket_values, strict=True)),
        highest=counts.highest,
        lowest=counts.lowest,
        total_sum=Decimal(counts.cents) / HUNDRED,
        branches_scored=int(counts.rest[-1] or 0),
    )


def period_distribution(
    *,
    organization: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
    scope: SummaryScope | None = None,
) -> Distribution:
    """Every ranked member below ``organization`` in the period, in one aggregate: how many,
    their average, stars, grades, vetoes, flags and a histogram of totals."""
    if scope is None:
        scope = summary_scope(
            organization=organization, year=year, quarter=quarter, category=category
        )
    return _distribution(scope)


# --- branch summaries ------------------------------------------------------------------------


def _order_sql(order: str) -> str:
    """ORDER BY of the branch query (``agg.c0`` is the count, ``agg.c1`` the sum in cents)."""
    no_members_last = "CASE WHEN agg.c0 IS NULL THEN 1 ELSE 0 END"
    if order == "path":
        return "o.path"
    if order == "name":
        return "o.name, o.path"
    direction = "DESC" if order.startswith("-") else "ASC"
    # The index is the average over a constant (the organization's average): same order.
    return f"{no_members_last}, agg.c1 * 1.0 / agg.c0 {direction}, o.path"


def _branches_sql(
    scope: SummaryScope, *, order: str, name_contains: str = "", buckets: bool = False
) -> tuple[str, dict]:
    """The branches (with their parent's name) left-joined to their aggregates: the period
    rows are grouped by branch first (a hash of at most one row per branch), then joined, so
    the sort and the join handle branches, not members. Columns: id, name, parent name,
    path, then ``_count_column_list`` (and the histogram's bands with ``buckets``)."""
    params = _params(scope)
    name_filter = ""
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["name"] = f"%{escaped}%"
        name_filter = "AND UPPER(b.name) LIKE UPPER(%(name)s) ESCAPE '\\' "
    branches = (
        "SELECT b.id FROM members_organization b "  # noqa: S608
        f"WHERE b.kind = 'branch' AND b.path LIKE %(prefix)s {name_filter}"
    )
    columns = _count_column_list(scope) + (_bucket_columns() if buckets else [])
    aggregates = ", ".join(f"{column} AS c{index}" for index, column in enumerate(columns))
    step = Organization.steplen
    sql = (
        f"SELECT o.id, o.name, COALESCE(p.name, ''), o.path, "  # noqa: S608
        f"{', '.join(f'agg.c{index}' for index in range(len(columns)))} "
        "FROM members_organization o "
        "LEFT JOIN members_organization p "
        f"ON p.path = SUBSTR(o.path, 1, LENGTH(o.path) - {step}) "
        f"LEFT JOIN (SELECT s.organization_id, {aggregates} "
        f"FROM ({_scores_sql(scope)}) s "
        f"WHERE s.organization_id IN ({branches}) "
        "GROUP BY s.organization_id) agg ON agg.organization_id = o.id "
        f"WHERE o.id IN ({branches}) "
        f"ORDER BY {_order_sql(order)}"
    )
    return sql, params


def _summary_of(scope: SummaryScope, row: tuple, overall: Distribution) -> BranchSummary:
    organization_id, name, parent_name, path = row[:4]
    counts = _read_counts(scope, row[4:])
    return BranchSummary(
        organization_id=organization_id,
        name=name,
        parent_name=parent_name,
        member_count=counts.count,
        average=counts.average,
        highest=counts.highest,
        lowest=counts.lowest,
        star_counts=counts.star_counts,
        grade_counts=counts.grade_counts,
        vetoed=counts.vetoed,
        top_flagged=counts.top_flagged,
        bottom_flagged=counts.bottom_flagged,
        fortress_index=fortress_index(
            counts.count,
            counts.cents,
            overall.member_count,
            _cents(overall.total_sum * HUNDRED),
        ),
        path=path,
    )


class BranchSummaryList:
    """The branches below the scope's organization (or itself, if a branch) with their
    summaries: ``len()`` counts them (one query), a slice loads one page (one aggregate
    query, LIMIT/OFFSET), iteration streams them all from one query in chunks."""

    def __init__(
        self,
        scope: SummaryScope,
        *,
        order: str = "path",
        name_contains: str = "",
        distribution: Distribution | None = None,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
        self.scope = scope
        self.order = order
        self.name_contains = name_contains.strip()
        self._distribution = distribution
        self._count: int | None = None

    @property
    def distribution(self) -> Distribution:
        if self._distribution is None:
            self._distribution = _distribution(self.scope)
        return self._distribution

    def branches(self) -> QuerySet[Organization]:
        branches = Organization.objects.filter(
            path__startswith=self.scope.organization.path, kind=Organization.Kind.BRANCH
        )
        if self.name_contains:
            branches = branches.filter(name__icontains=self.name_contains)
        return branches

    def count(self) -> int:
        if self._count is None:
            self._count = self.branches().count()
        return self._count

    def __len__(self) -> int:
        return self.count()

    def _sql(self) -> tuple[str, dict]:
        return _branches_sql(self.scope, order=self.order, name_contains=self.name_contains)

    def _summary(self, row: tuple) -> BranchSummary:
        return _summary_of(self.scope, row, self.distribution)

    def __getitem__(self, index: slice) -> list[BranchSummary]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("branch summaries are read by slices (a page) or by iteration")
        start = index.start or 0
        stop = index.stop if index.stop is not None else self.count()
        if start < 0 or stop < 0:
            raise ValueError("negative slices are not supported")
        if stop <= start:
            return []
        self.distribution  # noqa: B018 — the fortress index needs it; load it before the page
        sql, params = self._sql()
        params["limit"], params["offset"] = stop - start, start
        with _connection().cursor() as cursor:
            cursor.execute(sql + " LIMIT %(limit)s OFFSET %(offset)s", params)
            rows = cursor.fetchall()
        return [self._summary(row) for row in rows]

    def __iter__(self) -> Iterator[BranchSummary]:
        self.distribution  # noqa: B018
        sql, params = self._sql()
        with _connection().cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(FETCH_SIZE):
                for row in rows:
                    yield self._summary(row)


def fortress_index(
    count: int, cents: int, overall_count: int, overall_cents: int
) -> Decimal | None:
    """(branch average ÷ overall average) × 100, one decimal; None without members or when
    the overall average is 0."""
    if not count or not overall_count or not overall_cents:
        return None
    branch_average = Decimal(cents) / count
    overall_average = Decimal(overall_cents) / overall_count
    return (branch_average / overall_average * HUNDRED).quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


def branch_summary_list(
    *,
    organization: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
    order: str = "path",
    name_contains: str = "",
    scope: SummaryScope | None = None,
    distribution: Distribution | None = None,
) -> BranchSummaryList:
    """The sliceable, countable form of ``branch_summaries`` (for a paginated page)."""
    if scope is None:
        scope = summary_scope(
            organization=organization, year=year, quarter=quarter, category=category
        )
    return BranchSummaryList(
        scope, order=order, name_contains=name_contains, distribution=distribution
    )


def branch_summaries(
    *,
    organization: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
    order: str = "path",
    scope: SummaryScope | None = None,
    distribution: Distribution | None = None,
) -> Iterator[BranchSummary]:
    """Every branch below ``organization`` (or itself if a branch) with its summary, streamed
    from one aggregate query (plus the labels and the distribution: four queries in all,
    whatever the number of branches). ``order``: "path" (tree order), "name",
    "-fortress_index" / "fortress_index", "-average" / "average" (branches without ranked
    members last in every order by index or average)."""
    return iter(
        branch_summary_list(
            organization=organization,
            year=year,
            quarter=quarter,
            category=category,
            order=order,
            scope=scope,
            distribution=distribution,
        )
    )


# --- the overview's table: one query for the page, its lists and its distribution ----------


class BranchTable:
    """Every branch of the scope aggregated by ONE query and held as plain rows (a city has
    15,000 branches: a few MB), from which the overview takes its distribution, its sorted
    and searched pages, and its top and bottom lists without scanning the period rows again.
    ``BranchSummary`` objects are built only for the rows shown."""

    def __init__(
        self,
        scope: SummaryScope,
        rows: list[tuple] | None = None,
        distribution: Distribution | None = None,
        averages: dict[int, float] | None = None,
    ) -> None:
        self.scope = scope
        if rows is None:
            sql, params = _branches_sql(scope, order="path", buckets=True)
            with _connection().cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        self.rows: list[tuple] = rows
        self.distribution = distribution or self._distribution()
        # Each branch's average as cents ÷ members, for the orders by index or average: the
        # same ratio always gives the same float (IEEE division is exactly rounded), so ties
        # stay ties; computed once, not once per comparison.
        self.averages: dict[int, float] = (
            averages
            if averages is not None
            else {row[0]: _cents(row[5]) / int(row[4]) for row in rows if row[4]}
        )

    def _distribution(self) -> Distribution:
        """The scope's distribution, added up from the branches' aggregates."""
        scope = self.scope
        counted = [row[4:] for row in self.rows if row[4]]
        width = len(_count_column_list(scope))
        columns = (
            list(zip(*counted, strict=True)) if counted else [()] * (width + len(bucket_labels()))
        )
        stars, grades = len(scope.star_labels), len(scope.grade_labels)

        def total(column: int) -> int:
            return int(sum(value or 0 for value in columns[column]))

        cents = sum(_cents(value) for value in columns[1])
        count = total(0)
        return Distribution(
            member_count=count,
            average=_average(cents, count),
            star_counts={label: total(4 + i) for i, label in enumerate(scope.star_labels)},
            grade_counts={
                label: total(4 + stars + i) for i, label in enumerate(scope.grade_labels)
            },
            vetoed=total(4 + stars + grades),
            top_flagged=total(5 + stars + grades),
            bottom_flagged=total(6 + stars + grades),
            score_buckets=[(label, total(width + i)) for i, label in enumerate(bucket_labels())],
            highest=max((_decimal(value) for value in columns[2]), default=None),
            lowest=min((_decimal(value) for value in columns[3]), default=None),
            total_sum=Decimal(cents) / HUNDRED,
            branches_scored=len(counted),
        )

    def ordered(
        self, order: str = "path", name_contains: str = "", limit: int | None = None
    ) -> list[tuple]:
        """The rows (optionally those whose name contains ``name_contains``, ignoring case)
        in ``order`` — the same orders as ``branch_summaries``, branches without ranked
        members last in every order by index or average; only the first ``limit`` if given
        (a partial sort: the top and bottom five of a city's 15,000 branches)."""
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
        rows = self.rows
        needle = name_contains.strip().casefold()
        if needle:
            rows = [row for row in rows if needle in row[1].casefold()]
        if order == "path":
            return list(rows[:limit])  # a slice to None is the whole list
        if order == "name":
            key = _by_name
        else:
            sign = -1 if order.startswith("-") else 1

            averages = self.averages

            def key(row: tuple) -> tuple:
                average = averages.get(row[0])
                if average is None:
                    return (1, 0.0, row[3])
                return (0, sign * average, row[3])

        if limit is not None:
            return heapq.nsmallest(limit, rows, key=key)  # == sorted(rows, key=key)[:limit]
        return sorted(rows, key=key)

    def summaries(self, rows: list[tuple]) -> list[BranchSummary]:
        return [_summary_of(self.scope, row, self.distribution) for row in rows]

    def __len__(self) -> int:
        return len(self.rows)


def _by_name(row: tuple) -> tuple:
    return (row[1], row[3])


def _totals_version(scope: SummaryScope) -> int | None:
    """The committee's ``RankingState.totals_version`` for the year (None before its first
    recompute): it moves on with every recompute that changes a period row below it."""
    return (
        RankingState.objects.filter(
            committee__path=scope.organization.path[: Organization.steplen], year=scope.year
        )
        .values_list("totals_version", flat=True)
        .first()
    )


def branch_table(scope: SummaryScope) -> BranchTable:
    """All branches of ``scope`` aggregated in one query (the overview page).

    At city scale that query reads 300,000 period rows (about half a second), and the
    overview is opened far more often than a recompute changes the totals, so its rows are
    cached under the committee's totals version: the first view after a recompute computes
    them again, the others read them back. Branch names and the list of branches are not
    versioned — a renamed or added branch shows within ``OVERVIEW_CACHE_SECONDS``."""
    parts = (
        scope.organization.pk,
        scope.organization.path,
        scope.year,
        scope.quarter,
        scope.ranking_group,
        scope.category or "-",
        _totals_version(scope),
        *scope.star_labels,
        "|",
        *scope.grade_labels,
    )
    # v2: (rows with Decimals as text, distribution, averages); a new shape needs a new name.
    key = "summaries.branch_table.v2:" + hashlib.sha256(repr(parts).encode()).hexdigest()
    cached = cache.get(key)
    if cached is None:
        table = BranchTable(scope)
        # Decimals kept as their text (what _decimal and _cents read back exactly): 15,000
        # rows of them took longer to unpickle than the rest of the page to build.
        rows = [
            tuple(str(value) if isinstance(value, Decimal) else value for value in row)
            for row in table.rows
        ]
        cached = (rows, table.distribution, table.averages)
        cache.set(key, cached, settings.OVERVIEW_CACHE_SECONDS)
        return table
    rows, distribution, averages = cached
    return BranchTable(scope, rows, distribution, averages)


# --- members at the top and the bottom -------------------------------------------------------


def _ranked_scores(scope: SummaryScope) -> QuerySet[PeriodScore]:
    scores = PeriodScore.objects.filter(
        organization__path__startswith=scope.organization.path,
        year=scope.year,
        quarter=scope.quarter,
        ranking_group=scope.ranking_group,
    )
    if scope.category:
        scores = scores.filter(member__category=scope.category)
    return scores.select_related("member", "organization")


# Ranked rows always have a committee rank; filtering on it lets the database walk the
# (year, quarter, ranking_group, rank_in_committee) index from either end instead of
# sorting every row of a city.


def top_members(scope: SummaryScope, limit: int = 10) -> list[PeriodScore]:
    """The best ``limit`` members by committee rank (ties by name)."""
    return list(
        _ranked_scores(scope)
        .filter(rank_in_committee__isnull=False)
        .order_by("rank_in_committee", "member__name", "member_id")[:limit]
    )


def bottom_members(scope: SummaryScope, limit: int = 10) -> list[PeriodScore]:
    """The last ``limit`` members by committee rank, lowest first (ties by name)."""
    return list(
        _ranked_scores(scope)
        .filter(rank_in_committee__isnull=False)
        .order_by("-rank_in_committee", "member__name", "member_id")[:limit]
    )
