"""Branch summaries, the 堡垒指数 and the period distribution (scoring/summaries.py), checked
against numbers worked out by hand, and their constant query count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from members.models import Member, Organization
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from scoring.summaries import (
    BranchSummary,
    bottom_members,
    branch_summaries,
    branch_summary_list,
    branch_table,
    period_distribution,
    summary_scope,
    top_members,
)
from tests.factories import BranchFactory

from .conftest import YEAR, World, in_quarter

pytestmark = pytest.mark.django_db

FIVE_STARS = ("五星", "四星", "三星", "二星", "一星")
GRADES = ("优秀", "合格", "不合格")


def stars(**counts: int) -> dict[str, int]:
    """Every five-star label with its count (0 unless given): stars(五星=1)."""
    return {label: counts.get(label, 0) for label in FIVE_STARS}


def grades(**counts: int) -> dict[str, int]:
    return {label: counts.get(label, 0) for label in GRADES}


@dataclass
class City:
    """Annual totals of ``YEAR`` (base 100, flags: top 1 and bottom 1 per branch):

    branch A (甲): 张一 150 (Q1 lecture +50, 五星, 优秀, top), 张二 105 (Q2 speech +5,
    probationary, 三星, 合格), 张三 -50 (Q3 criticism -150, 一星, 不合格, bottom)
    branch B (乙): 李一 110 (Q1 suggestion +10, 四星, 合格, top), 李二 0 (Q2 veto: zeroed,
    一星, 不合格, bottom)
    branch C (丙): 王一 exempt (unranked), 王二 an activist 110 (the candidates' ranking)
    Party members: 5, sum 315, average 63.00. A: 205/3 = 68.33 → index 108.5; B: 55.00 → 87.3.
    """

    world: World
    members: dict[str, Member]


@pytest.fixture
def city(world: World, record: Callable, veto: Callable) -> City:
    tree, rules = world.tree, world.rules
    members = {
        "zhang1": world.member("张一", tree.branch_a),
        "zhang2": world.member("张二", tree.branch_a, category=Member.Category.PROBATIONARY),
        "zhang3": world.member("张三", tree.branch_a),
        "li1": world.member("李一", tree.branch_b),
        "li2": world.member("李二", tree.branch_b),
        "wang1": world.member("王一", tree.branch_c, status=Member.Status.EXEMPT),
        "wang2": world.member("王二", tree.branch_c, category=Member.Category.ACTIVIST),
    }
    record(members["zhang1"], rules.lecture, in_quarter(1))
    record(members["zhang2"], rules.speech, in_quarter(2))
    record(members["zhang3"], rules.criticism, in_quarter(3))
    record(members["li1"], rules.suggestion, in_quarter(1))
    veto(members["li2"], in_quarter(2))
    record(members["wang2"], rules.suggestion, in_quarter(1))
    recompute_organization(tree.committee, YEAR)
    return City(world=world, members=members)


def summary(**fields) -> BranchSummary:
    defaults = {"highest": None, "lowest": None, "vetoed": 0, "top_flagged": 0}
    defaults |= {"bottom_flagged": 0, "path": ""}
    return BranchSummary(**(defaults | fields))


def without_paths(summaries) -> list[BranchSummary]:
    from dataclasses import replace

    return [replace(item, path="") for item in summaries]


def test_the_annual_summaries_of_every_branch_below_the_committee(city: City) -> None:
    tree = city.world.tree
    # when
    result = without_paths(branch_summaries(organization=tree.committee, year=YEAR))
    # then
    assert result == [
        summary(
            organization_id=tree.branch_a.pk,
            name="甲党支部",
            parent_name="测试党总支",
            member_count=3,
            average=Decimal("68.33"),
            highest=Decimal("150.00"),
            lowest=Decimal("-50.00"),
            star_counts=stars(五星=1, 三星=1, 一星=1),
            grade_counts=grades(优秀=1, 合格=1, 不合格=1),
            top_flagged=1,
            bottom_flagged=1,
            fortress_index=Decimal("108.5"),
        ),
        summary(
            organization_id=tree.branch_b.pk,
            name="乙党支部",
            parent_name="测试党总支",
            member_count=2,
            average=Decimal("55.00"),
            highest=Decimal("110.00"),
            lowest=Decimal("0.00"),
            star_counts=stars(四星=1, 一星=1),
            grade_counts=grades(合格=1, 不合格=1),
            vetoed=1,
            top_flagged=1,
            bottom_flagged=1,
            fortress_index=Decimal("87.3"),
        ),
        summary(
            organization_id=tree.branch_c.pk,
            name="丙党支部",
            parent_name="测试党委",
            member_count=0,
            average=None,
            star_counts=stars(),
            grade_counts=grades(),
            fortress_index=None,
        ),
    ]


def test_the_annual_distribution_of_the_committee(city: City) -> None:
    distribution = period_distribution(organization=city.world.committee, year=YEAR)

    assert distribution.member_count == 5
    assert distribution.average == Decimal("63.00")
    assert distribution.highest == Decimal("150.00")
    assert distribution.lowest == Decimal("-50.00")
    assert distribution.total_sum == Decimal("315.00")
    assert distribution.branches_scored == 2
    assert distribution.star_counts == stars(五星=1, 四星=1, 三星=1, 一星=2)
    assert distribution.grade_counts == grades(优秀=1, 合格=2, 不合格=2)
    assert (distribution.vetoed, distribution.top_flagged, distribution.bottom_flagged) == (1, 2, 2)
    assert distribution.score_buckets == [
        ("<60", 2),
        ("60–70", 0),
        ("70–80", 0),
        ("80–90", 0),
        ("90–100", 0),
        ("100–110", 1),
        ("110–120", 1),
        ("120–130", 0),
        ("≥130", 1),
    ]


def test_a_quarter_uses_the_year_to_date_totals_and_has_no_grades(city: City) -> None:
    tree = city.world.tree
    # Q1: 张一 150, 张二 100, 张三 100 | 李一 110, 李二 100 → overall 560 / 5 = 112
    result = list(branch_summaries(organization=tree.committee, year=YEAR, quarter=1))
    distribution = period_distribution(organization=tree.committee, year=YEAR, quarter=1)

    assert [(s.member_count, s.average, s.fortress_index) for s in result] == [
        (3, Decimal("116.67"), Decimal("104.2")),
        (2, Decimal("105.00"), Decimal("93.8")),
        (0, None, None),
    ]
    assert [s.star_counts for s in result] == [
        stars(五星=1, 三星=2),
        stars(四星=1, 三星=1),
        stars(),
    ]
    assert [s.grade_counts for s in result] == [{}, {}, {}]
    assert distribution.grade_counts == {}
    assert distribution.average == Decimal("112.00")


def test_the_index_is_relative_to_the_organization_viewed(city: City) -> None:
    tree = city.world.tree

    general = list(branch_summaries(organization=tree.general_branch, year=YEAR))
    alone = list(branch_summaries(organization=tree.branch_a, year=YEAR))

    assert [(s.name, s.fortress_index) for s in general] == [
        ("甲党支部", Decimal("108.5")),
        ("乙党支部", Decimal("87.3")),
    ]
    assert [(s.name, s.parent_name, s.fortress_index) for s in alone] == [
        ("甲党支部", "测试党总支", Decimal("100.0"))
    ]


@pytest.mark.parametrize(
    ("category", "expected", "overall"),
    [
        # only 张二 is probationary: level with the (one-member) average
        (
            Member.Category.PROBATIONARY,
            [(1, Decimal("105.00"), Decimal("100.0")), (0, None, None), (0, None, None)],
            (1, Decimal("105.00")),
        ),
        # an activist is ranked with the candidates, not the party members
        (
            Member.Category.ACTIVIST,
            [(0, None, None), (0, None, None), (1, Decimal("110.00"), Decimal("100.0"))],
            (1, Decimal("110.00")),
        ),
        (
            Member.Category.DEVELOPMENT_TARGET,
            [(0, None, None), (0, None, None), (0, None, None)],
            (0, None),
        ),
    ],
)
def test_the_category_filter(city: City, category: str, expected: list, overall: tuple) -> None:
    committee = city.world.committee

    result = list(branch_summaries(organization=committee, year=YEAR, category=category))
    distribution = period_distribution(organization=committee, year=YEAR, category=category)

    assert [(s.member_count, s.average, s.fortress_index) for s in result] == expected
    assert (distribution.member_count, distribution.average) == overall


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("path", ["甲党支部", "乙党支部", "丙党支部"]),
        ("-fortress_index", ["甲党支部", "乙党支部", "丙党支部"]),
        ("fortress_index", ["乙党支部", "甲党支部", "丙党支部"]),
        ("-average", ["甲党支部", "乙党支部", "丙党支部"]),
        ("average", ["乙党支部", "甲党支部", "丙党支部"]),
    ],
)
def test_orders_put_branches_without_members_last(city: City, order: str, expected) -> None:
    result = branch_summaries(organization=city.world.committee, year=YEAR, order=order)

    assert [s.name for s in result] == expected


def test_a_page_is_a_slice_and_the_name_search_narrows_it(city: City) -> None:
    committee = city.world.committee

    every = branch_summary_list(organization=committee, year=YEAR)
    searched = branch_summary_list(organization=committee, year=YEAR, name_contains=" 乙 ")
    nothing = branch_summary_list(organization=committee, year=YEAR, name_contains="100%")

    assert len(every) == 3
    assert [s.name for s in every[1:3]] == ["乙党支部", "丙党支部"]
    assert [s.name for s in every[5:10]] == []
    assert len(searched) == 1
    assert [(s.name, s.fortress_index) for s in searched[0:50]] == [("乙党支部", Decimal("87.3"))]
    assert (len(nothing), nothing[0:50]) == (0, [])


def test_top_and_bottom_members_by_committee_rank(city: City) -> None:
    scope = summary_scope(organization=city.world.committee, year=YEAR)

    top = top_members(scope, limit=3)
    bottom = bottom_members(scope, limit=2)

    assert [(s.member.name, s.total, s.rank_in_committee) for s in top] == [
        ("张一", Decimal("150.00"), 1),
        ("李一", Decimal("110.00"), 2),
        ("张二", Decimal("105.00"), 3),
    ]
    assert [(s.member.name, s.total, s.is_bottom_flagged) for s in bottom] == [
        ("张三", Decimal("-50.00"), True),
        ("李二", Decimal("0.00"), True),
    ]


def test_labels_of_every_scheme_used_below(city: City) -> None:
    tree = city.world.tree
    colours = scheme_create_from_preset(
        owner=tree.branch_b, year=YEAR, name="四色星", preset="colour_stars_base_100"
    )
    scheme_adopt(organization=tree.branch_b, scheme=colours)

    committee = summary_scope(organization=tree.committee, year=YEAR)
    branch_a = summary_scope(organization=tree.branch_a, year=YEAR)
    quarter = summary_scope(organization=tree.committee, year=YEAR, quarter=2)
    other_year = summary_scope(organization=tree.committee, year=YEAR + 1)

    assert committee.star_labels == (
        *FIVE_STARS,
        "红色示范星",
        "黄色上进星",
        "蓝色激励星",
        "绿色警示星",
    )
    assert committee.grade_labels == GRADES
    assert branch_a.star_labels == FIVE_STARS
    assert quarter.grade_labels == ()
    assert (other_year.star_labels, other_year.grade_labels) == ((), ())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"year": 1999}, "year 1999 is outside 2000..2100"),
        ({"quarter": 5}, "quarter 5 is not 0..4"),
        ({"category": "cadre"}, "unknown member category 'cadre'"),
        ({"order": "members"}, "unknown order 'members'"),
    ],
)
def test_bad_arguments_are_refused(city: City, arguments: dict, message: str) -> None:
    call = {"organization": city.world.committee, "year": YEAR} | arguments

    with pytest.raises(ValueError, match=message):
        list(branch_summaries(**call))


def add_branches(world: World, count: int, record: Callable) -> None:
    for number in range(count):
        branch = BranchFactory(name=f"新增第{number}支部", parent=world.tree.general_branch)
        member = world.member(f"新党员{number}", Organization.objects.get(pk=branch.pk))
        if number % 2:
            record(member, world.rules.suggestion, in_quarter(1))


def test_the_summaries_cost_four_queries_whatever_the_number_of_branches(
    city: City, record: Callable, django_assert_num_queries
) -> None:
    committee = city.world.committee
    with django_assert_num_queries(4):  # labels (2), the distribution, the branches
        small = list(branch_summaries(organization=committee, year=YEAR))
    add_branches(city.world, 12, record)
    recompute_organization(committee, YEAR)

    with django_assert_num_queries(4):
        big = list(branch_summaries(organization=committee, year=YEAR))
    scope = summary_scope(organization=committee, year=YEAR)
    with django_assert_num_queries(3):  # the distribution, the count, one page
        page = branch_summary_list(organization=committee, year=YEAR, scope=scope)
        assert len(page) == 15
        assert len(page[0:10]) == 10

    assert (len(small), len(big)) == (3, 15)
    assert big[2].name == "新增第0支部"
    assert (big[2].member_count, big[2].average) == (1, Decimal("100.00"))


@pytest.mark.parametrize("quarter", (0, 2))
@pytest.mark.parametrize("category", ("", Member.Category.PROBATIONARY, Member.Category.ACTIVIST))
def test_the_overview_table_agrees_with_the_streamed_summaries(
    city: City, quarter: int, category: str
) -> None:
    tree = city.world.tree
    arguments = {"organization": tree.committee, "year": YEAR, "quarter": quarter}
    arguments["category"] = category
    scope = summary_scope(**arguments)

    table = branch_table(scope)

    assert table.distribution == period_distribution(**arguments)
    assert len(table) == 3
    for order in ("path", "-fortress_index", "fortress_index", "-average", "average"):
        streamed = list(branch_summaries(**arguments, order=order))
        assert table.summaries(table.ordered(order)) == streamed


def test_the_overview_table_searches_names_and_costs_two_queries(
    city: City, django_assert_num_queries
) -> None:
    scope = summary_scope(organization=city.world.committee, year=YEAR)

    with django_assert_num_queries(2):  # the totals' version, the aggregate (then cached)
        table = branch_table(scope)
        searched = table.summaries(table.ordered("-average", name_contains=" 乙党 "))
        by_name = [row[1] for row in table.ordered("name")]

    assert [(s.name, s.fortress_index) for s in searched] == [("乙党支部", Decimal("87.3"))]
    assert table.ordered("path", name_contains="丁") == []
    assert by_name == sorted(["甲党支部", "乙党支部", "丙党支部"])
    with pytest.raises(ValueError, match="unknown order 'members'"):
        table.ordered("members")


def test_the_same_branch_has_another_index_under_another_organization(
    city: City, record: Callable
) -> None:
    tree = city.world.tree
    # 王三 in 丙: 150 → the committee's six party members: 465 / 6 = 77.50
    record(city.world.member("王三", tree.branch_c), city.world.rules.lecture, in_quarter(4))

    committee = list(branch_summaries(organization=tree.committee, year=YEAR))
    general = list(branch_summaries(organization=tree.general_branch, year=YEAR))

    assert [(s.name, s.fortress_index) for s in committee] == [
        ("甲党支部", Decimal("88.2")),
        ("乙党支部", Decimal("71.0")),
        ("丙党支部", Decimal("193.5")),
    ]
    assert [(s.name, s.fortress_index) for s in general] == [
        ("甲党支部", Decimal("108.5")),
        ("乙党支部", Decimal("87.3")),
    ]


@pytest.mark.parametrize("order", ["path", "name", "-fortress_index", "fortress_index"])
def test_the_first_rows_of_an_order_are_those_of_the_whole_sort(
    city: City, record: Callable, order: str
) -> None:
    add_branches(city.world, 12, record)
    recompute_organization(city.world.committee, YEAR)
    table = branch_table(summary_scope(organization=city.world.committee, year=YEAR))

    whole = table.ordered(order)

    assert len(whole) == 15
    assert table.ordered(order, limit=5) == whole[:5]
    assert table.ordered(order, limit=50) == whole
