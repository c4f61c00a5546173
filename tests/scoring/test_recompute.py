"""Totals, ranks, stars, grades and flags derived from the ledger (scoring/recompute.py),
checked against numbers worked out by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone

from members.models import Member
from scoring import recompute
from scoring.models import CapClip, CapState, Entry, PeriodScore, RankingState, Scheme
from scoring.schemes import scheme_adopt, scheme_create_from_preset

from .conftest import SCORE_FIELDS, YEAR, World, in_quarter, make_rules, score_table, scores_of

pytestmark = pytest.mark.django_db

PARTY, CANDIDATE, UNRANKED = "party", "candidate", "unranked"


def table_of(members: dict[str, Member]) -> dict[str, dict[int, tuple]]:
    """{member key: {quarter: (every SCORE_FIELDS value)}}, quarter 0 being the year."""
    return {
        key: {
            quarter: tuple(getattr(score, name) for name in SCORE_FIELDS)
            for quarter, score in sorted(scores_of(member).items())
        }
        for key, member in members.items()
    }


def decimals(table: dict[str, dict[int, tuple]]) -> dict[str, dict[int, tuple]]:
    """The hand-written table with its six point columns as exact decimals."""
    return {
        key: {
            quarter: tuple(Decimal(str(value)) for value in row[:6]) + tuple(row[6:])
            for quarter, row in rows.items()
        }
        for key, rows in table.items()
    }


def totals(member: Member) -> dict[int, Decimal]:
    return {quarter: score.total for quarter, score in sorted(scores_of(member).items())}


def recompute_all(world: World) -> None:
    recompute.recompute_organization(world.committee, YEAR)


# --- the hand-worked year -------------------------------------------------------------------
#
# Scheme: five stars, base 100 (≥120 五星, ≥110 四星, ≥100 三星, ≥90 二星, else 一星; grades
# ≥120 优秀, ≥90 合格, else 不合格), veto effect zero_and_fail, top 1 and bottom 1 flagged,
# no excellent share cap.
#
# Branch A, party members
#   A 张三   Q1: speech +5, micro-lecture +50, suggestion +10, adopted +20 = +85;
#            Q2: notified criticism −150.
#            ytd: Q1 185, Q2 35, Q3 35, Q4 35; year 100 + 85 − 150 = 35.
#   B 李四   Q1: suggestion +10; Q3: veto (vote 6 of 8); Q4: micro-lecture +50.
#            ytd: 110, 110, 110, 160; totals zeroed from the veto's quarter: 110, 110, 0, 0;
#            year: bonus 60, ytd 160, total 0, vetoed, 不合格.
#   C 王芳   (probationary: ranked with party members)
#            volunteer (+1..+10, at most 20 a year): Q1 +8, Q2 +9, Q4 +7 → counts 8, 9, 3
#            (20 − 17 = 3 left; 4 not counted);
#            speech (+5, at most twice a quarter) three times in Q3 → 10 counted, 5 not.
#            The Q3 speech of 1 Aug is recorded first: the date, not the order of
#            recording, decides which one is past the cap.
#            ytd: 108, 117, 127, 130; year bonus 30, uncounted 5 + 4 = 9.
#   D 赵强   Q1: suggestion +10; Q2: task not done −5. ytd: 110, 105, 105, 105.
# Branch A, candidates (ranked apart from the party members)
#   E 陈晨   activist, Q1: suggestion +10 → 110 all year.
#   E2 刘洋  development target, Q4: task not done −2 → 100, 100, 100, 98.
# Branch B
#   F 孙丽   Q1: adopted +20 → 120 all year.
#   G 周杰   Q2: micro-lecture +50 → 100, 150, 150, 150.
# Branch C
#   H 吴老   exempt, Q1: suggestion +10 → 110, unranked.
#
# Ranks (RANK over the period's total, highest first; ties share):
#   branch A party  Q1: A 185 (1), B 110 (2), D 110 (2), C 108 (4)
#                   Q2: C 117 (1), B 110 (2), D 105 (3), A 35 (4)
#                   Q3, Q4, year: C (1), D 105 (2), A 35 (3), B 0 (4)
#   branch A candidates: E (1), E2 (2) every period
#   branch B        Q1: F 120 (1), G 100 (2); Q2 on: G 150 (1), F 120 (2)
#   committee party Q1: A 185, F 120, B 110, D 110, C 108, G 100 → 1, 2, 3, 3, 5, 6
#                   Q2: G 150, F 120, C 117, B 110, D 105, A 35 → 1 … 6
#                   Q3, Q4, year: G 150, C 127/130, F 120, D 105, A 35, B 0 → 1 … 6
# Flags: top = rank 1 and above the group's lowest; bottom = lowest and below the highest.
# Grades (year only): C 130 优秀; G 150 优秀; F 120 is in the 优秀 band but the bottom of
# branch B, so 合格; A 35 不合格; B vetoed 不合格; D, E, E2 合格.

# Each row: bonus, deduction, net, year-to-date total, total, points not counted, vetoed,
# ranking group, rank in branch, rank in committee, star, grade, top flag, bottom flag.
HAND_WORKED = {
    "A": {
        1: (85, 0, 85, 185, 185, 0, False, PARTY, 1, 1, "五星", "", True, False),
        2: (0, 150, -150, 35, 35, 0, False, PARTY, 4, 6, "一星", "", False, True),
        3: (0, 0, 0, 35, 35, 0, False, PARTY, 3, 5, "一星", "", False, False),
        4: (0, 0, 0, 35, 35, 0, False, PARTY, 3, 5, "一星", "", False, False),
        0: (85, 150, -65, 35, 35, 0, False, PARTY, 3, 5, "一星", "不合格", False, False),
    },
    "B": {
        1: (10, 0, 10, 110, 110, 0, False, PARTY, 2, 3, "四星", "", False, False),
        2: (0, 0, 0, 110, 110, 0, False, PARTY, 2, 4, "四星", "", False, False),
        3: (0, 0, 0, 110, 0, 0, True, PARTY, 4, 6, "一星", "", False, True),
        4: (50, 0, 50, 160, 0, 0, True, PARTY, 4, 6, "一星", "", False, True),
        0: (60, 0, 60, 160, 0, 0, True, PARTY, 4, 6, "一星", "不合格", False, True),
    },
    "C": {
        1: (8, 0, 8, 108, 108, 0, False, PARTY, 4, 5, "三星", "", False, True),
        2: (9, 0, 9, 117, 117, 0, False, PARTY, 1, 3, "四星", "", True, False),
        3: (10, 0, 10, 127, 127, 5, False, PARTY, 1, 2, "五星", "", True, False),
        4: (3, 0, 3, 130, 130, 4, False, PARTY, 1, 2, "五星", "", True, False),
        0: (30, 0, 30, 130, 130, 9, False, PARTY, 1, 2, "五星", "优秀", True, False),
    },
    "D": {
        1: (10, 0, 10, 110, 110, 0, False, PARTY, 2, 3, "四星", "", False, False),
        2: (0, 5, -5, 105, 105, 0, False, PARTY, 3, 5, "三星", "", False, False),
        3: (0, 0, 0, 105, 105, 0, False, PARTY, 2, 4, "三星", "", False, False),
        4: (0, 0, 0, 105, 105, 0, False, PARTY, 2, 4, "三星", "", False, False),
        0: (10, 5, 5, 105, 105, 0, False, PARTY, 2, 4, "三星", "合格", False, False),
    },
    "E": {
        1: (10, 0, 10, 110, 110, 0, False, CANDIDATE, 1, 1, "四星", "", True, False),
        2: (0, 0, 0, 110, 110, 0, False, CANDIDATE, 1, 1, "四星", "", True, False),
        3: (0, 0, 0, 110, 110, 0, False, CANDIDATE, 1, 1, "四星", "", True, False),
        4: (0, 0, 0, 110, 110, 0, False, CANDIDATE, 1, 1, "四星", "", True, False),
        0: (10, 0, 10, 110, 110, 0, False, CANDIDATE, 1, 1, "四星", "合格", True, False),
    },
    "E2": {
        1: (0, 0, 0, 100, 100, 0, False, CANDIDATE, 2, 2, "三星", "", False, True),
        2: (0, 0, 0, 100, 100, 0, False, CANDIDATE, 2, 2, "三星", "", False, True),
        3: (0, 0, 0, 100, 100, 0, False, CANDIDATE, 2, 2, "三星", "", False, True),
        4: (0, 2, -2, 98, 98, 0, False, CANDIDATE, 2, 2, "二星", "", False, True),
        0: (0, 2, -2, 98, 98, 0, False, CANDIDATE, 2, 2, "二星", "合格", False, True),
    },
    "F": {
        1: (20, 0, 20, 120, 120, 0, False, PARTY, 1, 2, "五星", "", True, False),
        2: (0, 0, 0, 120, 120, 0, False, PARTY, 2, 2, "五星", "", False, True),
        3: (0, 0, 0, 120, 120, 0, False, PARTY, 2, 3, "五星", "", False, True),
        4: (0, 0, 0, 120, 120, 0, False, PARTY, 2, 3, "五星", "", False, True),
        0: (20, 0, 20, 120, 120, 0, False, PARTY, 2, 3, "五星", "合格", False, True),
    },
    "G": {
        1: (0, 0, 0, 100, 100, 0, False, PARTY, 2, 6, "三星", "", False, True),
        2: (50, 0, 50, 150, 150, 0, False, PARTY, 1, 1, "五星", "", True, False),
        3: (0, 0, 0, 150, 150, 0, False, PARTY, 1, 1, "五星", "", True, False),
        4: (0, 0, 0, 150, 150, 0, False, PARTY, 1, 1, "五星", "", True, False),
        0: (50, 0, 50, 150, 150, 0, False, PARTY, 1, 1, "五星", "优秀", True, False),
    },
    "H": {
        1: (10, 0, 10, 110, 110, 0, False, UNRANKED, None, None, "", "", False, False),
        2: (0, 0, 0, 110, 110, 0, False, UNRANKED, None, None, "", "", False, False),
        3: (0, 0, 0, 110, 110, 0, False, UNRANKED, None, None, "", "", False, False),
        4: (0, 0, 0, 110, 110, 0, False, UNRANKED, None, None, "", "", False, False),
        0: (10, 0, 10, 110, 110, 0, False, UNRANKED, None, None, "", "", False, False),
    },
}


@pytest.fixture
def hand_worked(world: World, record: Callable, veto: Callable) -> dict[str, Member]:
    """The year above, recorded through the services; each recording's recompute runs."""
    tree, rules = world.tree, world.rules
    people = {
        "A": world.member("张三"),
        "B": world.member("李四"),
        "C": world.member("王芳", category=Member.Category.PROBATIONARY),
        "D": world.member("赵强"),
        "E": world.member("陈晨", category=Member.Category.ACTIVIST),
        "E2": world.member("刘洋", category=Member.Category.DEVELOPMENT_TARGET),
        "F": world.member("孙丽", tree.branch_b),
        "G": world.member("周杰", tree.branch_b),
        "H": world.member("吴老", tree.branch_c, status=Member.Status.EXEMPT),
    }
    a, b, c, d, e, e2, f, g, h = people.values()
    record(a, rules.speech, date(YEAR, 1, 10))
    record(d, rules.suggestion, date(YEAR, 1, 15))
    record(b, rules.suggestion, date(YEAR, 1, 20))
    record(h, rules.suggestion, date(YEAR, 1, 25))
    record(c, rules.volunteer, date(YEAR, 2, 1), points="8")
    record(a, rules.lecture, date(YEAR, 2, 5))
    record(f, rules.adopted, date(YEAR, 2, 10))
    record(a, rules.suggestion, date(YEAR, 2, 20))
    record(e, rules.suggestion, date(YEAR, 3, 1))
    record(a, rules.adopted, date(YEAR, 3, 15))
    record(c, rules.volunteer, date(YEAR, 4, 15), points="9")
    record(a, rules.criticism, date(YEAR, 5, 10))
    record(g, rules.lecture, date(YEAR, 5, 20))
    record(d, rules.task, date(YEAR, 6, 1), points="-5")
    record(c, rules.speech, date(YEAR, 8, 1))  # recorded first, dated last
    record(c, rules.speech, date(YEAR, 7, 3))
    record(c, rules.speech, date(YEAR, 7, 10))
    veto(b, date(YEAR, 8, 15))
    record(c, rules.volunteer, date(YEAR, 10, 10), points="7")
    record(b, rules.lecture, date(YEAR, 11, 5))
    record(e2, rules.task, date(YEAR, 12, 1), points="-2")
    return people


def test_the_hand_worked_year_after_recording_through_the_services(hand_worked) -> None:
    assert table_of(hand_worked) == decimals(HAND_WORKED)


def test_the_hand_worked_year_after_a_full_recompute(world: World, hand_worked) -> None:
    recompute_all(world)

    assert table_of(hand_worked) == decimals(HAND_WORKED)


def test_the_hand_worked_rows_belong_to_the_branch_and_scheme(world: World, hand_worked) -> None:
    recompute_all(world)

    branches = {"F": world.tree.branch_b, "G": world.tree.branch_b, "H": world.tree.branch_c}
    for key, member in hand_worked.items():
        rows = list(PeriodScore.objects.filter(member=member).order_by("quarter"))
        assert [row.quarter for row in rows] == [0, 1, 2, 3, 4]
        assert {(row.organization, row.scheme, row.base_score, row.year) for row in rows} == {
            (branches.get(key, world.tree.branch_a), world.scheme, Decimal("100"), YEAR)
        }


def test_entries_past_a_cap_stay_in_the_ledger_and_count_nothing(hand_worked) -> None:
    c = hand_worked["C"]
    entries = list(Entry.objects.filter(member=c).order_by("occurred_on", "id"))

    counted = recompute.counted_points([c.pk], YEAR)

    # volunteer 8, 9, speeches of 3 Jul and 10 Jul, the 1 Aug speech past the cap, volunteer 7
    assert [(entry.occurred_on, entry.points, counted[entry.pk]) for entry in entries] == [
        (date(YEAR, 2, 1), Decimal("8"), Decimal("8")),
        (date(YEAR, 4, 15), Decimal("9"), Decimal("9")),
        (date(YEAR, 7, 3), Decimal("5"), Decimal("5")),
        (date(YEAR, 7, 10), Decimal("5"), Decimal("5")),
        (date(YEAR, 8, 1), Decimal("5"), Decimal("0")),
        (date(YEAR, 10, 10), Decimal("7"), Decimal("3")),
    ]


# --- cap clips: what a capped entry counts, kept for the annual recompute -------------------


def clips_of(member: Member) -> dict[int, Decimal]:
    return dict(CapClip.objects.filter(member=member, year=YEAR).values_list("entry", "counted"))


def test_the_clips_keep_what_capped_entries_count_and_follow_a_backdated_entry(
    world: World, record: Callable
) -> None:
    # given: speeches (cap 2 a quarter) on 10 Jan, 10 Feb, 10 Mar: the third counts 0
    member = world.member("甲")
    speeches = [record(member, world.rules.speech, date(YEAR, month, 10)) for month in (1, 2, 3)]
    assert clips_of(member) == {speeches[2].pk: Decimal("0")}
    assert CapState.objects.get(member=member, year=YEAR).entries == 3

    # when: a speech dated 5 Jan is recorded afterwards
    early = record(member, world.rules.speech, date(YEAR, 1, 5))

    # then: the two latest speeches count 0, and the year's totals say so
    assert clips_of(member) == {speeches[1].pk: Decimal("0"), speeches[2].pk: Decimal("0")}
    assert CapState.objects.get(member=member, year=YEAR).entries == 4
    assert early.pk not in clips_of(member)
    assert (scores_of(member)[1].bonus, scores_of(member)[1].uncounted_points) == (
        Decimal("10"),
        Decimal("10"),
    )


@pytest.mark.parametrize("rebuild_above", [0, 5000], ids=["whole-scope", "member-by-member"])
def test_a_full_recompute_derives_missing_or_outdated_clips_from_the_ledger(
    world: World, hand_worked, monkeypatch, rebuild_above: int
) -> None:
    # given: the clips lost, and one member's state outdated with a clip missing
    expected = {member.pk: clips_of(member) for member in hand_worked.values()}
    before = score_table()
    c = hand_worked["C"]
    assert expected[c.pk]  # the speech past its cap and the volunteering over 20
    CapClip.objects.filter(member=c).delete()
    CapState.objects.filter(member=c).update(entries=F("entries") - 1)
    CapState.objects.exclude(member=c).delete()
    CapClip.objects.exclude(member=c).delete()
    monkeypatch.setattr(recompute, "CLIPS_REBUILD_MEMBERS", rebuild_above)

    # when
    recompute_all(world)

    # then
    assert {member.pk: clips_of(member) for member in hand_worked.values()} == expected
    assert score_table() == before
    assert recompute.stored_totals_mismatches(YEAR) == []


def working_tables(statements: list[str]) -> set[tuple[str, str]]:
    """(kind, name) of every working table these statements created."""
    pattern = re.compile(r"CREATE (\w+) TABLE (recompute_\w+)")
    return {match.groups() for sql in statements if (match := pattern.match(sql))}


def leftover_working_tables() -> list[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'recompute%%'")
        else:
            cursor.execute("SELECT name FROM sqlite_temp_master WHERE name LIKE 'recompute%'")
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.parametrize(
    ("city_scale_from", "kind"),
    [(0, "UNLOGGED"), (1000, "TEMPORARY")],
    ids=["city-scale", "branch-scale"],
)
def test_a_full_recompute_at_city_scale_works_in_shared_tables_and_leaves_none_behind(
    world: World, hand_worked, monkeypatch, city_scale_from: int, kind: str
) -> None:
    # given: the stored rows lost; from 0 branches on, the recompute counts as city scale
    PeriodScore.objects.all().delete()
    monkeypatch.setattr(recompute, "CITY_SCALE_BRANCHES", city_scale_from)
    statements: list[str] = []

    def log(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    # when
    with connection.execute_wrapper(log):
        written = recompute.recompute_organization(world.committee, YEAR)

    # then: every row is back, computed in tables of the kind the scale asks for on
    # PostgreSQL (named for the session, with the ranks in tables of their own; SQLite has
    # temporary tables only), and none of them is left
    assert written == 9 * 5
    assert table_of(hand_worked) == decimals(HAND_WORKED)
    names, suffix = ("scope", "sums", "totals", "rows"), ""
    if connection.vendor != "postgresql":
        kind = "TEMPORARY"
    elif kind == "UNLOGGED":
        names, suffix = recompute.SCRATCH, f"_{connection.connection.get_backend_pid()}"
    assert working_tables(statements) == {(kind, f"recompute_{name}{suffix}") for name in names}
    assert leftover_working_tables() == []
    assert recompute.recompute_organization(world.committee, YEAR) == 0


@pytest.mark.postgres
def test_a_city_scale_recompute_sums_and_ranks_with_the_configured_work_mem(
    world: World, hand_worked, monkeypatch, settings
) -> None:
    # given: a deployment that gives the recompute 5 MB, at city scale
    settings.RECOMPUTE_WORK_MEM = "5MB"
    monkeypatch.setattr(recompute, "CITY_SCALE_BRANCHES", 0)
    PeriodScore.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        (before,) = cursor.fetchone()
    chosen: list[list] = []

    def log(execute, sql, params, many, context):
        if "set_config" in sql and params[0] == "work_mem":
            chosen.append(list(params))
        return execute(sql, params, many, context)

    # when
    with connection.execute_wrapper(log):
        written = recompute.recompute_organization(world.committee, YEAR)

    # then: the sums and the ranking each ran with it, and the session's own is back after
    assert written == 9 * 5
    assert chosen == [
        ["work_mem", "5MB"],
        ["work_mem", before],
        ["work_mem", "5MB"],
        ["work_mem", before],
    ]
    with connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        assert cursor.fetchone() == (before,)


def estimated_period_rows() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'scoring_periodscore'")
        return cursor.fetchone()[0]


def analyze_period_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scoring_periodscore")


@pytest.mark.postgres
def test_a_recompute_that_rewrote_much_of_the_period_table_analyzes_it(
    world: World, hand_worked, monkeypatch
) -> None:
    # given: the stored rows lost and the table analysed empty; from 3 rows + 10% written
    # on, a recompute analyses it
    monkeypatch.setattr(recompute, "TABLE_ANALYZE_ROWS", 3)
    PeriodScore.objects.all().delete()
    analyze_period_table()
    assert estimated_period_rows() == 0

    # when: a recompute writes every row back
    assert recompute.recompute_organization(world.committee, YEAR) == 9 * 5

    # then: the planner's estimate counts them
    assert estimated_period_rows() == 9 * 5

    # given: one member's five rows lost, and the table analysed again
    PeriodScore.objects.filter(member=hand_worked["A"]).delete()
    analyze_period_table()
    assert estimated_period_rows() == 8 * 5

    # when: a recompute writes them back: 5 rows, more than 3 but under 3 + 10% of 40
    assert recompute.recompute_organization(world.committee, YEAR) == 5

    # then: it left the statistics alone
    assert estimated_period_rows() == 8 * 5
    assert PeriodScore.objects.count() == 9 * 5


@pytest.mark.parametrize("share", [0, 2], ids=["whole-ledger", "scope-only"])
def test_a_recompute_of_part_of_a_committee_sums_only_its_members_either_way(
    world: World, hand_worked, monkeypatch, share: int
) -> None:
    # given: the general branch's rows lost (members A–G; H is in branch C, outside it),
    # at city scale, with the sums reading the whole ledger or only the scope's entries
    general = world.tree.general_branch
    before = score_table()
    PeriodScore.objects.filter(organization__path__startswith=general.path).delete()
    monkeypatch.setattr(recompute, "CITY_SCALE_BRANCHES", 0)
    monkeypatch.setattr(recompute, "SUMS_WHOLE_LEDGER_SHARE", share)

    # when
    written = recompute.recompute_organization(general, YEAR)

    # then: the general branch's eight members have their rows back, and H's are as they were
    assert written == 8 * 5
    assert table_of(hand_worked) == decimals(HAND_WORKED)
    assert score_table() == before
    assert leftover_working_tables() == []


def test_recomputing_twice_gives_identical_rows(world: World, hand_worked) -> None:
    recompute_all(world)
    first = score_table()

    recompute_all(world)
    recompute.recompute_members([member.pk for member in hand_worked.values()], YEAR)
    recompute.refresh_committee_ranks(world.committee, YEAR)

    assert score_table() == first
    assert len(first) == 9 * 5
    assert RankingState.objects.get(committee=world.committee, year=YEAR).recompute_count == 2


def test_a_burst_of_refreshes_re_ranks_the_committee_once_per_interval(
    world: World, hand_worked
) -> None:
    # given: the committee fully recomputed (and so ranked) just now, then a branch changes
    recompute_all(world)
    state = RankingState.objects.get(committee=world.committee, year=YEAR)
    ranked_at = state.ranked_at
    assert ranked_at is not None
    PeriodScore.objects.update(rank_in_committee=None)
    RankingState.objects.filter(pk=state.pk).update(ranks_dirty_since=timezone.now())

    # when: the refresh scheduled by the change runs within the interval
    refreshed = recompute.refresh_committee_ranks(world.committee, YEAR, unless_ranked_within=15)

    # then: it leaves the ranks for a later refresh, still marked stale
    assert refreshed is False
    state.refresh_from_db()
    assert (state.ranked_at, state.ranks_dirty_since is not None) == (ranked_at, True)
    assert PeriodScore.objects.filter(rank_in_committee__isnull=False).count() == 0

    # when: the refresh after the last change finds the last re-rank older than the interval
    RankingState.objects.filter(pk=state.pk).update(ranked_at=ranked_at - timedelta(seconds=16))
    refreshed = recompute.refresh_committee_ranks(world.committee, YEAR, unless_ranked_within=15)

    # then: the committee is ranked again and the mark is gone
    assert refreshed is True
    state.refresh_from_db()
    assert state.ranks_dirty_since is None
    assert state.ranked_at > ranked_at
    assert (
        PeriodScore.objects.filter(ranking_group="party", rank_in_committee__isnull=True).count()
        == 0
    )
    assert PeriodScore.objects.filter(ranking_group="party").count() > 0


def test_verify_ledger_passes_when_the_totals_equal_the_ledger(hand_worked) -> None:
    out = StringIO()

    call_command("verify_ledger", stdout=out, stderr=StringIO())

    assert out.getvalue().strip() == "台账核对通过：2025 年度的期间积分均与台账一致。"


@pytest.mark.parametrize(
    ("tamper", "complaint"),
    [
        (
            lambda scores: scores.filter(quarter=0).update(total=F("total") + 1),
            "2025年全年 张三（#{id}）total：存储 36.00，台账 35.00",
        ),
        (
            lambda scores: scores.filter(quarter=2).update(deduction=Decimal("140")),
            "2025年第2季度 张三（#{id}）deduction：存储 140.00，台账 150.00",
        ),
        (
            lambda scores: scores.filter(quarter=3).delete(),
            "2025年第3季度 张三（#{id}）row：记录缺失或多余",
        ),
    ],
    ids=["total", "deduction", "missing row"],
)
def test_verify_ledger_names_the_member_whose_stored_total_was_tampered_with(
    hand_worked, tamper, complaint: str
) -> None:
    # given
    member = hand_worked["A"]
    tamper(PeriodScore.objects.filter(member=member, year=YEAR))
    errors = StringIO()

    # when
    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger", "--year", str(YEAR), stdout=StringIO(), stderr=errors)

    # then
    assert str(failure.value) == "台账核对未通过：1 处不一致。"
    assert errors.getvalue().strip() == complaint.format(id=member.pk)


def test_verify_ledger_catches_a_vetoed_flag_that_was_cleared(hand_worked) -> None:
    member = hand_worked["B"]
    PeriodScore.objects.filter(member=member, year=YEAR, quarter=0).update(is_vetoed=False)

    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=StringIO(), stderr=StringIO())


# --- ranks ----------------------------------------------------------------------------------


def test_ties_share_a_rank(world: World, record: Callable) -> None:
    # given: 110, 110 and 100 in branch B; 120 in branch A
    first = world.member("甲", world.tree.branch_b)
    second = world.member("乙", world.tree.branch_b)
    third = world.member("丙", world.tree.branch_b)
    leader = world.member("丁", world.tree.branch_a)
    record(first, world.rules.suggestion, in_quarter(1, day=3))
    record(second, world.rules.suggestion, in_quarter(1, day=4))
    record(leader, world.rules.adopted, in_quarter(1, day=5))

    # when
    recompute_all(world)

    # then: RANK, not DENSE_RANK or ROW_NUMBER
    ranks = {
        member.name: (score.total, score.rank_in_branch, score.rank_in_committee)
        for member in (first, second, third, leader)
        for score in [scores_of(member)[0]]
    }
    assert ranks == {
        "甲": (Decimal("110"), 1, 2),
        "乙": (Decimal("110"), 1, 2),
        "丙": (Decimal("100"), 3, 4),
        "丁": (Decimal("120"), 1, 1),
    }
    # both tied leaders of branch B are commended
    assert [scores_of(m)[0].is_top_flagged for m in (first, second, third)] == [True, True, False]


def test_nobody_stands_out_when_everyone_has_the_same_total(world: World) -> None:
    members = [world.member(name, world.tree.branch_b) for name in ("甲", "乙", "丙")]

    recompute_all(world)

    rows = [scores_of(member)[0] for member in members]
    assert [(row.rank_in_branch, row.is_top_flagged, row.is_bottom_flagged) for row in rows] == [
        (1, False, False)
    ] * 3


def test_activists_and_development_targets_are_ranked_apart(world: World, record) -> None:
    # given: an activist with the highest total of the branch
    party = [world.member("党员甲"), world.member("党员乙", category=Member.Category.PROBATIONARY)]
    activist = world.member("积极分子", category=Member.Category.ACTIVIST)
    target = world.member("发展对象", category=Member.Category.DEVELOPMENT_TARGET)
    record(party[0], world.rules.adopted, in_quarter(1, day=3))
    record(activist, world.rules.lecture, in_quarter(1, day=3))

    # when
    recompute_all(world)

    # then
    def ranks(member: Member) -> tuple:
        year = scores_of(member)[0]
        return (year.ranking_group, year.total, year.rank_in_branch, year.rank_in_committee)

    assert [ranks(member) for member in (*party, activist, target)] == [
        (PARTY, Decimal("120"), 1, 1),
        (PARTY, Decimal("100"), 2, 2),
        (CANDIDATE, Decimal("150"), 1, 1),
        (CANDIDATE, Decimal("100"), 2, 2),
    ]


@pytest.mark.parametrize("status", [Member.Status.EXEMPT, Member.Status.TRANSFERRED_OUT])
def test_exempt_and_transferred_out_members_are_not_ranked(world, record, status: str) -> None:
    # given: the unranked member has the highest total; the others are ranked without them
    unranked = world.member("不排名")
    ranked = [world.member("甲"), world.member("乙")]
    record(unranked, world.rules.lecture, in_quarter(1, day=3))
    record(ranked[0], world.rules.suggestion, in_quarter(1, day=3))
    Member.objects.filter(pk=unranked.pk).update(
        status=status, exempt_reason="长期患病" if status == Member.Status.EXEMPT else ""
    )

    # when
    recompute_all(world)

    # then: their totals are kept, everything else is blank
    rows = scores_of(unranked)
    assert {quarter: row.total for quarter, row in rows.items()} == {
        0: Decimal("150"),
        1: Decimal("150"),
        2: Decimal("150"),
        3: Decimal("150"),
        4: Decimal("150"),
    }
    assert {
        (
            row.ranking_group,
            row.rank_in_branch,
            row.rank_in_committee,
            row.star,
            row.grade,
            row.is_top_flagged,
            row.is_bottom_flagged,
        )
        for row in rows.values()
    } == {(UNRANKED, None, None, "", "", False, False)}
    assert [(scores_of(m)[0].rank_in_branch, scores_of(m)[0].grade) for m in ranked] == [
        (1, "合格"),
        (2, "合格"),
    ]


def test_a_member_who_moved_branch_is_ranked_in_the_new_branch_with_all_entries(
    world: World, record: Callable
) -> None:
    # given: 甲 scored +20 in Q1 and +10 in Q2 in branch A, then moved to branch B
    mover = world.member("甲")
    stayer = world.member("乙")
    local = world.member("丙", world.tree.branch_b)
    record(mover, world.rules.adopted, in_quarter(1, day=3))
    record(mover, world.rules.suggestion, in_quarter(2, day=3))
    record(local, world.rules.suggestion, in_quarter(1, day=3))
    Member.objects.filter(pk=mover.pk).update(organization=world.tree.branch_b)

    # when
    recompute_all(world)

    # then
    rows = scores_of(mover)
    assert {row.organization for row in rows.values()} == {world.tree.branch_b}
    assert (rows[0].total, rows[0].rank_in_branch, rows[0].rank_in_committee) == (
        Decimal("130"),
        1,
        1,
    )
    assert (rows[1].total, rows[1].rank_in_branch) == (Decimal("120"), 1)
    assert scores_of(local)[0].rank_in_branch == 2
    assert scores_of(stayer)[0].rank_in_branch == 1
    assert PeriodScore.objects.filter(organization=world.tree.branch_a).count() == 5
    # the ledger keeps the branch each entry was recorded in
    assert set(Entry.objects.filter(member=mover).values_list("organization", flat=True)) == {
        world.tree.branch_a.pk
    }


@pytest.mark.parametrize("city_scale_from", [0, 1000], ids=["city-scale", "branch-scale"])
def test_a_recompute_removes_the_rows_of_a_member_who_left_its_scope(
    world: World, record: Callable, monkeypatch, city_scale_from: int
) -> None:
    # given: 甲 (+20) and 乙 (+10) ranked in branch A, under the general branch; then 甲 moved
    # to branch C, outside the general branch
    mover = world.member("甲")
    stayer = world.member("乙")
    record(mover, world.rules.adopted, in_quarter(1, day=3))
    record(stayer, world.rules.suggestion, in_quarter(1, day=3))
    assert (scores_of(mover)[0].rank_in_branch, scores_of(stayer)[0].rank_in_branch) == (1, 2)
    Member.objects.filter(pk=mover.pk).update(organization=world.tree.branch_c)
    monkeypatch.setattr(recompute, "CITY_SCALE_BRANCHES", city_scale_from)

    # when: the general branch is recomputed
    recompute.recompute_organization(world.tree.general_branch, YEAR)

    # then: 甲's five rows left with him (branch C's recompute writes them there), and 乙
    # leads branch A alone
    assert scores_of(mover) == {}
    assert PeriodScore.objects.filter(organization=world.tree.branch_a).count() == 5
    assert (scores_of(stayer)[0].rank_in_branch, scores_of(stayer)[0].total) == (
        1,
        Decimal("110"),
    )


def test_recording_for_a_moved_member_re_ranks_the_branch_they_left(world, record) -> None:
    mover = world.member("甲")
    stayer = world.member("乙")
    record(mover, world.rules.adopted, in_quarter(1, day=3))
    record(stayer, world.rules.suggestion, in_quarter(1, day=3))
    assert scores_of(stayer)[0].rank_in_branch == 2
    Member.objects.filter(pk=mover.pk).update(organization=world.tree.branch_b)

    record(mover, world.rules.suggestion, in_quarter(2, day=3))

    assert scores_of(stayer)[0].rank_in_branch == 1


def test_a_member_without_entries_is_ranked_after_someone_else_is_scored(world, record):
    # given
    quiet = world.member("甲")
    scored = world.member("乙")

    # when: the everyday path (entry_record → recompute_members_task)
    record(scored, world.rules.task, in_quarter(1, day=3), points="-5")

    # then: 甲 (100) is ahead of 乙 (95), and the totals equal the ledger
    assert scores_of(scored)[0].rank_in_branch == 2
    assert scores_of(quiet)[0].total == Decimal("100")
    assert recompute.stored_totals_mismatches(YEAR) == []


# --- grades and vetoes ----------------------------------------------------------------------


def test_a_lose_excellent_veto_keeps_the_total_but_prevents_excellent(
    world: World, record: Callable, veto: Callable
) -> None:
    # given: a scheme with the milder veto effect and no bottom flag
    Scheme.objects.filter(pk=world.scheme.pk).update(
        veto_effect=Scheme.VetoEffect.LOSE_EXCELLENT, bottom_n_flag=0
    )
    vetoed = world.member("甲")
    clean = world.member("乙")
    record(vetoed, world.rules.lecture, in_quarter(1, day=3))  # 150
    veto(vetoed, in_quarter(2, day=3))
    record(clean, world.rules.adopted, in_quarter(1, day=3))  # 120

    # when
    recompute_all(world)

    # then
    rows = scores_of(vetoed)
    assert [(q, rows[q].total, rows[q].is_vetoed) for q in (1, 2, 3, 4, 0)] == [
        (1, Decimal("150"), False),
        (2, Decimal("150"), True),
        (3, Decimal("150"), True),
        (4, Decimal("150"), True),
        (0, Decimal("150"), True),
    ]
    assert (rows[0].star, rows[0].grade, rows[0].rank_in_branch) == ("五星", "合格", 1)
    assert (scores_of(clean)[0].grade, scores_of(clean)[0].rank_in_branch) == ("优秀", 2)


def test_a_reversed_veto_counts_only_until_its_reversal(world, record, veto, reverse) -> None:
    member = world.member("甲")
    record(member, world.rules.adopted, in_quarter(1, day=3))
    entry = veto(member, in_quarter(2, day=3))
    reverse(entry, in_quarter(3, day=3), reason="处分已撤销")

    recompute_all(world)

    rows = scores_of(member)
    assert [(q, rows[q].total, rows[q].is_vetoed) for q in (1, 2, 3, 4, 0)] == [
        (1, Decimal("120"), False),
        (2, Decimal("0"), True),
        (3, Decimal("120"), False),
        (4, Decimal("120"), False),
        (0, Decimal("120"), False),
    ]
    assert rows[0].grade == "优秀"


@pytest.mark.parametrize(
    ("bonuses", "grades"),
    [
        # 150, 140, 130, 125 are in the 优秀 band; 40 % of 5 is 2: the excess falls to 合格
        (
            [
                ("lecture",),
                ("adopted", "adopted"),
                ("adopted", "suggestion"),
                ("adopted", "speech"),
                (),
            ],
            ["优秀", "优秀", "合格", "合格", "合格"],
        ),
        # 150, 140, 140: a tie across the limit; giving one of the two 优秀 would need an
        # arbitrary tie-break, so both fall to 合格
        (
            [
                ("lecture",),
                ("adopted", "adopted"),
                ("adopted", "adopted"),
                ("adopted", "speech"),
                (),
            ],
            ["优秀", "合格", "合格", "合格", "合格"],
        ),
    ],
    ids=["four in the band", "tie at the limit"],
)
def test_the_excellent_share_cap_demotes_the_excess_to_the_next_band(
    world: World, record: Callable, bonuses: list[tuple[str, ...]], grades: list[str]
) -> None:
    # given
    Scheme.objects.filter(pk=world.scheme.pk).update(
        excellent_share_cap=Decimal("0.400"), bottom_n_flag=0, top_n_flag=0
    )
    members = [world.member(f"党员{index}") for index in range(5)]
    for member, rule_keys in zip(members, bonuses, strict=True):
        for month, key in enumerate(rule_keys, start=1):
            record(member, getattr(world.rules, key), date(YEAR, month, 1))

    # when
    recompute_all(world)

    # then
    rows = [scores_of(member)[0] for member in members]
    assert [row.grade for row in rows] == grades
    assert [row.star for row in rows][:4] == ["五星"] * 4


def test_the_bottom_n_cannot_be_excellent(world: World, record: Callable) -> None:
    # given: 150, 130, 120, 120, all in the 优秀 band, the bottom 2 flagged
    Scheme.objects.filter(pk=world.scheme.pk).update(bottom_n_flag=2)
    members = [world.member(name) for name in ("甲", "乙", "丙", "丁")]
    for member, rule_keys in zip(
        members, [("lecture",), ("adopted", "suggestion"), ("adopted",), ("adopted",)], strict=True
    ):
        for month, key in enumerate(rule_keys, start=1):
            record(member, getattr(world.rules, key), date(YEAR, month, 1))

    # when
    recompute_all(world)

    # then: ranked from below the two 120s share rank 1 — both are in the bottom 2
    rows = [scores_of(member)[0] for member in members]
    assert [(row.total, row.grade, row.is_bottom_flagged) for row in rows] == [
        (Decimal("150"), "优秀", False),
        (Decimal("130"), "优秀", False),
        (Decimal("120"), "合格", True),
        (Decimal("120"), "合格", True),
    ]


# --- reversals ------------------------------------------------------------------------------


def test_a_reversal_in_a_later_quarter_counts_minus_what_the_original_counted(
    world: World, record: Callable, reverse: Callable
) -> None:
    # given, Q1: speeches (cap 2 a quarter) on 10 Jan, 10 Feb, 10 Mar → count 5, 5, 0;
    # volunteer (cap 20 a year) 9, 9, 9 → count 9, 9, 2; a suggestion +10.
    # Q1 bonus 5 + 5 + 9 + 9 + 2 + 10 = 40, not counted 5 + 7 = 12, ytd 140.
    member = world.member("甲")
    speeches = [record(member, world.rules.speech, date(YEAR, month, 10)) for month in (1, 2, 3)]
    volunteering = [
        record(member, world.rules.volunteer, date(YEAR, month, 20), points="9")
        for month in (1, 2, 3)
    ]
    suggestion = record(member, world.rules.suggestion, date(YEAR, 3, 25))

    # when, Q3: reverse the first speech (−5), the speech past the cap (−0), the third
    # volunteering (−2, what it counted, not −9) and the suggestion (−10): Q3 bonus −17
    reversals = [
        reverse(entry, date(YEAR, 8, 1))
        for entry in (speeches[0], speeches[2], volunteering[2], suggestion)
    ]

    # then
    rows = scores_of(member)
    assert {
        quarter: (row.bonus, row.deduction, row.net, row.total, row.uncounted_points)
        for quarter, row in rows.items()
    } == {
        1: (Decimal("40"), Decimal("0"), Decimal("40"), Decimal("140"), Decimal("12")),
        2: (Decimal("0"), Decimal("0"), Decimal("0"), Decimal("140"), Decimal("0")),
        3: (Decimal("-17"), Decimal("0"), Decimal("-17"), Decimal("123"), Decimal("0")),
        4: (Decimal("0"), Decimal("0"), Decimal("0"), Decimal("123"), Decimal("0")),
        0: (Decimal("23"), Decimal("0"), Decimal("23"), Decimal("123"), Decimal("12")),
    }
    counted = recompute.counted_points([member.pk], YEAR)
    assert [counted[reversal.pk] for reversal in reversals] == [
        Decimal("-5"),
        Decimal("0"),
        Decimal("-2"),
        Decimal("-10"),
    ]


def test_a_reversed_deduction_gives_the_points_back_in_its_quarter(world, record, reverse):
    member = world.member("甲")
    criticism = record(member, world.rules.criticism, in_quarter(1, day=3))
    reverse(criticism, in_quarter(2, day=3), reason="处分已撤销")

    rows = scores_of(member)
    assert [(rows[q].deduction, rows[q].net, rows[q].total) for q in (1, 2, 0)] == [
        (Decimal("150"), Decimal("-150"), Decimal("-50")),
        (Decimal("-150"), Decimal("150"), Decimal("100")),
        (Decimal("0"), Decimal("0"), Decimal("100")),
    ]


@pytest.fixture
def next_year(world: World):
    scheme = scheme_create_from_preset(
        owner=world.committee, year=YEAR + 1, name="次年细则", preset="five_stars_base_100"
    )
    scheme_adopt(organization=world.committee, scheme=scheme)
    make_rules(scheme)
    return scheme


def test_a_reversal_in_the_next_year_counts_in_that_year(world, next_year, record, reverse):
    member = world.member("甲")
    suggestion = record(member, world.rules.suggestion, date(YEAR, 12, 20))

    reverse(suggestion, date(YEAR + 1, 1, 5), reason="跨年更正")

    assert scores_of(member, YEAR)[0].total == Decimal("110")
    assert scores_of(member, YEAR + 1)[0].total == Decimal("90")


def test_a_reversal_in_the_next_year_of_an_entry_past_the_cap_counts_nothing(
    world, next_year, record, reverse
) -> None:
    # given: three speeches in Q4; the third is past the cap and counts 0
    member = world.member("甲")
    speeches = [record(member, world.rules.speech, date(YEAR, 12, day)) for day in (1, 2, 3)]
    assert scores_of(member, YEAR)[0].total == Decimal("110")

    # when
    reverse(speeches[2], date(YEAR + 1, 1, 5), reason="重复登记")

    # then
    assert scores_of(member, YEAR + 1)[0].total == Decimal("100")
