"""Random ledgers: after a recompute every stored row equals an independent model of the
semantics written here in plain Python (recompute.py's docstring), and verify_ledger agrees.

The model is deliberately naive — loops over entries, no windows — so that it shares no
code and no shortcut with the SQL it checks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from members.models import Member
from scoring import recompute, services
from scoring.models import Entry, PeriodScore, Rule, RuleCategory, Scheme, quarter_of

from .conftest import SCORE_FIELDS, YEAR, World

pytestmark = pytest.mark.django_db

CENT = Decimal("0.01")
BASE = Decimal("100")
STARS = [
    (Decimal("120"), "五星"),
    (Decimal("110"), "四星"),
    (Decimal("100"), "三星"),
    (Decimal("90"), "二星"),
]
GRADES = [(Decimal("120"), "优秀"), (Decimal("90"), "合格")]
RULE_KEYS = ("speech", "lecture", "suggestion", "volunteer", "combo", "criticism", "task", "once")


@pytest.fixture
def rules(world: World) -> dict[str, Rule]:
    """The example rules plus two with both kinds of cap / a capped deduction."""
    category = RuleCategory.objects.create(scheme=world.scheme, name="创新服务", position=9)
    combo = Rule.objects.create(
        scheme=world.scheme,
        category=category,
        code="B09",
        name="创新项目",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("5"),
        points_max=Decimal("20"),
        max_times_per_quarter=1,
        max_points_per_year=Decimal("30"),
    )
    once = Rule.objects.create(
        scheme=world.scheme,
        category=category,
        code="D09",
        name="无故缺席组织生活",
        kind=Rule.Kind.DEDUCTION,
        points_min=Decimal("-8"),
        points_max=Decimal("-1.5"),
        max_times_per_quarter=1,
    )
    named = {key: getattr(world.rules, key) for key in RULE_KEYS if key not in ("combo", "once")}
    return {**named, "combo": combo, "once": once}


# --- the model ------------------------------------------------------------------------------


@dataclass
class Line:
    id: int
    member: int
    code: str
    kind: str
    points: Decimal
    day: date
    times_cap: int | None
    year_cap: Decimal | None
    reverses: int | None

    @property
    def quarter(self) -> int:
        return quarter_of(self.day)


def model_counted(lines: list[Line]) -> dict[int, Decimal]:
    """What each line counts: caps in date order (then id), reversals minus their original."""
    originals = sorted(
        (line for line in lines if line.reverses is None), key=lambda x: (x.day, x.id)
    )
    after_times: dict[int, Decimal] = {}
    seen_in_quarter: dict[tuple, int] = defaultdict(int)
    for line in originals:
        key = (line.member, line.code, line.quarter)
        seen_in_quarter[key] += 1
        over = line.times_cap is not None and seen_in_quarter[key] > line.times_cap
        after_times[line.id] = Decimal(0) if over else line.points
    counted: dict[int, Decimal] = {}
    added_this_year: dict[tuple, Decimal] = defaultdict(Decimal)
    for line in originals:
        key = (line.member, line.code)
        if line.year_cap is None:
            counted[line.id] = after_times[line.id]
        else:
            room = line.year_cap - added_this_year[key]
            counted[line.id] = max(Decimal(0), min(after_times[line.id], room))
        added_this_year[key] += after_times[line.id]
    for line in lines:
        if line.reverses is not None:
            counted[line.id] = -counted[line.reverses]
    return counted


def band(total: Decimal, bands: list[tuple[Decimal, str]], lowest: str) -> str:
    return next((label for low, label in bands if total >= low), lowest)


def model_rows(
    lines: list[Line],
    people: dict[int, dict],
    scheme: dict,
) -> dict[tuple[int, int], dict]:
    """{(member id, quarter): the expected PeriodScore fields}."""
    counted = model_counted(lines)
    rows: dict[tuple[int, int], dict] = {}
    for member_id, person in people.items():
        mine = [line for line in lines if line.member == member_id]
        group = (
            "unranked"
            if person["status"] in ("exempt", "transferred_out")
            else "party"
            if person["category"] in ("full", "probationary")
            else "candidate"
        )
        running, vetoes = BASE, 0
        year = {"bonus": Decimal(0), "deduction": Decimal(0), "uncounted": Decimal(0)}
        for quarter in (1, 2, 3, 4):
            here = [line for line in mine if line.quarter == quarter]
            bonus = sum((counted[x.id] for x in here if x.kind == "bonus"), Decimal(0))
            deduction = -sum((counted[x.id] for x in here if x.kind == "deduction"), Decimal(0))
            uncounted = sum(
                (x.points - counted[x.id] for x in here if x.reverses is None), Decimal(0)
            )
            vetoes += sum((-1 if x.reverses else 1) for x in here if x.kind == "veto")
            running += bonus - deduction
            zeroed = vetoes > 0 and scheme["veto_effect"] == "zero_and_fail"
            rows[(member_id, quarter)] = {
                "bonus": bonus,
                "deduction": deduction,
                "net": bonus - deduction,
                "year_to_date_total": running,
                "total": Decimal(0) if zeroed else running,
                "uncounted_points": uncounted,
                "is_vetoed": vetoes > 0,
            }
            year["bonus"] += bonus
            year["deduction"] += deduction
            year["uncounted"] += uncounted
        zeroed = vetoes > 0 and scheme["veto_effect"] == "zero_and_fail"
        rows[(member_id, 0)] = {
            "bonus": year["bonus"],
            "deduction": year["deduction"],
            "net": year["bonus"] - year["deduction"],
            "year_to_date_total": running,
            "total": Decimal(0) if zeroed else running,
            "uncounted_points": year["uncounted"],
            "is_vetoed": vetoes > 0,
        }
        for quarter in (0, 1, 2, 3, 4):
            rows[(member_id, quarter)].update(ranking_group=group, branch=person["branch"])
    _rank(rows, scheme)
    return rows


def _rank(rows: dict[tuple[int, int], dict], scheme: dict) -> None:
    """Ranks (1 + how many in the same group have a strictly higher total), flags, bands."""
    for (_member_id, quarter), row in rows.items():
        ranked = row["ranking_group"] != "unranked"
        peers = [
            other
            for (_other_id, other_quarter), other in rows.items()
            if other_quarter == quarter and other["ranking_group"] == row["ranking_group"]
        ]
        branch_peers = [other for other in peers if other["branch"] == row["branch"]]
        totals = [other["total"] for other in branch_peers]
        total = row["total"]
        rank = 1 + sum(1 for other in totals if other > total)
        rank_from_bottom = 1 + sum(1 for other in totals if other < total)
        top, bottom = scheme["top_n_flag"], scheme["bottom_n_flag"]
        is_top = ranked and top > 0 and rank <= top and total > min(totals)
        is_bottom = ranked and bottom > 0 and rank_from_bottom <= bottom and total < max(totals)
        grade = ""
        if ranked and quarter == 0:
            if row["is_vetoed"] and scheme["veto_effect"] == "zero_and_fail":
                grade = "不合格"
            else:
                grade = band(total, GRADES, "不合格")
                at_or_above = sum(1 for other in totals if other >= total)
                cap = scheme["excellent_share_cap"]
                over_cap = cap is not None and at_or_above > int(cap * len(totals))
                if grade == "优秀" and (row["is_vetoed"] or is_bottom or over_cap):
                    grade = "合格"
        row.update(
            rank_in_branch=rank if ranked else None,
            rank_in_committee=(
                1 + sum(1 for other in peers if other["total"] > total) if ranked else None
            ),
            star=band(total, STARS, "一星") if ranked else "",
            grade=grade,
            is_top_flagged=is_top,
            is_bottom_flagged=is_bottom,
        )


# --- the random ledgers ---------------------------------------------------------------------

CATEGORIES = [choice.value for choice in Member.Category]
STATUSES = ["active", "active", "active", "retired", "flowing", "exempt"]

people_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(CATEGORIES), st.sampled_from(STATUSES)),
    min_size=1,
    max_size=6,
)
# Bonus and capped rules come up more often, and an entry may be repeated on the next days,
# so that caps are reached and totals reach the 优秀 band.
WEIGHTED_RULES = (*RULE_KEYS, "speech", "speech", "volunteer", "combo", "lecture", "once")
entries_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # member (modulo how many there are)
        st.sampled_from(WEIGHTED_RULES),
        st.integers(0, 10_000),  # where in the rule's range, in 1/10 000
        st.integers(0, 364),  # day of the year
        st.integers(1, 3),  # times, on consecutive days
    ),
    min_size=3,
    max_size=20,
)
vetoes_strategy = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 364)), max_size=2)
reversals_strategy = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 120)), max_size=8, unique_by=lambda x: x[0]
)
scheme_strategy = st.fixed_dictionaries(
    {
        "veto_effect": st.sampled_from(["zero_and_fail", "lose_excellent"]),
        "top_n_flag": st.integers(0, 3),
        "bottom_n_flag": st.integers(0, 3),
        "excellent_share_cap": st.sampled_from([None, Decimal("0.4"), Decimal("0.5")]),
    }
)


def points_in(rule: Rule, where: int) -> Decimal:
    span = rule.points_max - rule.points_min
    return (rule.points_min + span * where / 10_000).quantize(CENT, rounding=ROUND_HALF_UP)


def day_of(number: int) -> date:
    return date(YEAR, 1, 1) + timedelta(days=number)


def _line(entry: Entry, rule: Rule) -> Line:
    return Line(
        id=entry.pk,
        member=entry.member_id,
        code=rule.code,
        kind=entry.kind,
        points=Decimal(entry.points),
        day=entry.occurred_on,
        times_cap=rule.max_times_per_quarter,
        year_cap=rule.max_points_per_year,
        reverses=entry.reverses_id,
    )


def stored_rows() -> dict[tuple[int, int], dict]:
    return {
        (score.member_id, score.quarter): {
            **{name: getattr(score, name) for name in SCORE_FIELDS},
            "branch": score.organization_id,
        }
        for score in PeriodScore.objects.filter(year=YEAR)
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scheme=scheme_strategy,
    people=people_strategy,
    entries=entries_strategy,
    vetoes=vetoes_strategy,
    reversals=reversals_strategy,
    movers=st.sets(st.integers(0, 5), max_size=2),
)
def test_stored_totals_and_ranks_equal_the_model(
    world: World, rules: dict[str, Rule], scheme, people, entries, vetoes, reversals, movers
) -> None:
    # Each example runs in a savepoint that is rolled back: the next one starts clean.
    with transaction.atomic():
        branches = [world.tree.branch_a, world.tree.branch_b]
        Scheme.objects.filter(pk=world.scheme.pk).update(**scheme)
        members = [
            world.member(f"党员{index}", branches[branch], category=category, status=status)
            for index, (branch, category, status) in enumerate(people)
        ]
        written: list[tuple[Entry, Rule]] = []

        # given: entries in random order, vetoes, reversals, moves
        for member_index, key, where, day, times in entries:
            rule = rules[key]
            for repeat in range(times):
                entry = services.entry_record(
                    user=world.recorder,
                    member=members[member_index % len(members)],
                    rule=rule,
                    occurred_on=day_of(min(day + repeat, 364)),
                    description="随机记录",
                    points=points_in(rule, where),
                )
                written.append((entry, rule))
        for member_index, day in vetoes:
            entry = services.veto_record(
                user=world.recorder,
                member=members[member_index % len(members)],
                rule=world.rules.veto,
                occurred_on=day_of(day),
                description="违纪",
                meeting_date=day_of(day),
                voting_members=5,
                attendance=5,
                votes_for=3,
                votes_against=2,
                votes_abstain=0,
            )
            written.append((entry, world.rules.veto))
        originals = list(written)
        for index, offset in reversals:
            if index >= len(originals):
                continue
            original, rule = originals[index]
            day = min(original.occurred_on + timedelta(days=offset), date(YEAR, 12, 31))
            reversal = services.entry_reverse(
                user=world.recorder, entry=original, reason="更正", occurred_on=day
            )
            written.append((reversal, rule))
        for index in movers:
            if index < len(members):
                other = branches[1 - people[index][0]]
                Member.objects.filter(pk=members[index].pk).update(organization=other)

        # when
        recompute.recompute_organization(world.committee, YEAR)

        # then
        lines = [_line(entry, rule) for entry, rule in written]
        by_id = {
            member.pk: member for member in Member.objects.filter(pk__in=[m.pk for m in members])
        }
        expected = model_rows(
            lines,
            {
                pk: {"category": m.category, "status": m.status, "branch": m.organization_id}
                for pk, m in by_id.items()
            },
            scheme,
        )
        assert stored_rows() == expected
        # what the examples covered (shown with --hypothesis-show-statistics)
        year_rows = [row for (_pk, quarter), row in expected.items() if quarter == 0]
        event(f"grades {sorted({row['grade'] for row in year_rows})}")
        event(f"share cap {scheme['excellent_share_cap']}")
        event(f"vetoed {any(row['is_vetoed'] for row in year_rows)}")
        event(f"uncounted {any(row['uncounted_points'] for row in year_rows)}")
        event(f"entries {len(written) // 10 * 10}+")
        counted = recompute.counted_points(list(by_id), YEAR)
        assert counted == {
            line_id: points.quantize(CENT) for line_id, points in model_counted(lines).items()
        }
        call_command("verify_ledger", "--year", str(YEAR), stdout=StringIO(), stderr=StringIO())
        transaction.set_rollback(True)


def test_the_model_agrees_with_a_hand_worked_cap_example() -> None:
    """The model itself, on the docstring's cap rules: a check of the checker."""
    day = date(YEAR, 1, 5)
    lines = [
        Line(1, 7, "S", "bonus", Decimal(5), day, 2, None, None),
        Line(2, 7, "S", "bonus", Decimal(5), day + timedelta(days=1), 2, None, None),
        Line(3, 7, "S", "bonus", Decimal(5), day + timedelta(days=2), 2, None, None),
        Line(4, 7, "V", "bonus", Decimal(15), day, None, Decimal(20), None),
        Line(5, 7, "V", "bonus", Decimal(15), day + timedelta(days=100), None, Decimal(20), None),
        Line(6, 7, "V", "bonus", Decimal(-15), day + timedelta(days=200), None, Decimal(20), 5),
    ]

    assert model_counted(lines) == {
        1: Decimal(5),
        2: Decimal(5),
        3: Decimal(0),
        4: Decimal(15),
        5: Decimal(5),
        6: Decimal(-5),
    }
