"""The committee overview (members.views.overview): headline figures, charts, top and bottom
lists, the paginated branch table with its filters and sorting, bad filters answered with a
clear message, and a constant number of queries whatever the number of branches."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from members.models import Member, Organization, Role
from scoring import services
from scoring.charts import column_chart, row_chart
from scoring.recompute import recompute_organization
from tests.factories import BranchFactory, RoleFactory, UserFactory
from tests.scoring.conftest import YEAR, World, build_world, in_quarter

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("members:overview")


@dataclass
class City:
    """Annual totals of ``YEAR`` (five stars, base 100; flags: top 1 and bottom 1 per branch):

    甲党支部 (under 测试党总支): 张一 150, 张二 105 (probationary), 张三 -50 → 68.33, index 108.5
    乙党支部 (under 测试党总支): 李一 110, 李二 0 (veto) → 55.00, index 87.3
    丙党支部 (under 测试党委): 王一 exempt, 王二 an activist 110 → no party member, no index
    Five party members: sum 315, average 63."""

    world: World
    members: dict[str, Member]
    committee_staff: User
    general_staff: User

    @property
    def tree(self):
        return self.world.tree

    def client(self, user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client


def record(world: World, member: Member, rule, day: date) -> None:
    services.entry_record(
        user=world.recorder,
        member=member,
        rule=rule,
        occurred_on=day,
        description=f"{rule.name}（{day.isoformat()}）",
    )


@pytest.fixture
def city() -> City:
    world = build_world(top_n_flag=1, bottom_n_flag=1)
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
    record(world, members["zhang1"], rules.lecture, in_quarter(1))
    record(world, members["zhang2"], rules.speech, in_quarter(2))
    record(world, members["zhang3"], rules.criticism, in_quarter(3))
    record(world, members["li1"], rules.suggestion, in_quarter(1))
    record(world, members["wang2"], rules.suggestion, in_quarter(1))
    services.veto_record(
        user=world.recorder,
        member=members["li2"],
        rule=rules.veto,
        occurred_on=in_quarter(2),
        description="受到党纪处分",
        meeting_date=in_quarter(2),
        voting_members=9,
        attendance=8,
        votes_for=6,
        votes_against=1,
        votes_abstain=1,
    )
    recompute_organization(tree.committee, YEAR)
    committee_staff = UserFactory(username="committee_staff")
    RoleFactory(user=committee_staff, organization=tree.committee, post=Role.Post.STAFF)
    general_staff = UserFactory(username="general_staff")
    RoleFactory(user=general_staff, organization=tree.general_branch, post=Role.Post.STAFF)
    return City(world, members, committee_staff, general_staff)


def text(page: str, testid: str) -> str:
    """The text of the element carrying ``data-testid`` (tags removed, spaces collapsed)."""
    match = re.search(
        rf'data-testid="{re.escape(testid)}"[^>]*>(.*?)</(?:div|td|span|text|p)>', page, re.S
    )
    assert match is not None, f"no element {testid}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def branch_rows(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-testid="branch-row-(\d+)"', page)]


def test_the_committee_sees_the_annual_figures_of_every_branch(city: City) -> None:
    tree = city.tree
    # when
    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR})
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert text(page, "overview-scope") == "测试党委 · 2025 年全年"
    assert [text(page, key) for key in ("branch-count", "member-count", "average")] == [
        "3",
        "5",
        "63",
    ]
    assert [text(page, key) for key in ("vetoed", "top-flagged", "bottom-flagged")] == [
        "1",
        "2",
        "2",
    ]
    assert branch_rows(page) == [tree.branch_a.pk, tree.branch_b.pk, tree.branch_c.pk]
    assert [text(page, f"fortress-{branch.pk}") for branch in (tree.branch_a, tree.branch_b)] == [
        "108.5",
        "87.3",
    ]
    assert text(page, f"fortress-{tree.branch_c.pk}") == "—"
    assert (
        "堡垒指数</strong>：支部参与排名党员的平均积分 ÷ 测试党委全部参与排名党员的平均积分 × 100"
        in page
    )


def test_the_charts_draw_the_distribution(city: City) -> None:
    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR})

    page = response.content.decode()
    stars = [text(page, f"star-chart-{number}") for number in range(1, 6)]
    grades = [text(page, f"grade-chart-{number}") for number in range(1, 4)]
    assert stars == ["1（20%）", "1（20%）", "1（20%）", "0（0%）", "2（40%）"]
    assert grades == ["1（20%）", "2（40%）", "2（40%）"]
    # the histogram labels only the bands with members: <60 (2), 100–110, 110–120, ≥130
    assert re.findall(r'data-testid="score-chart-(\d+)">(\d+)<', page) == [
        ("1", "2"),
        ("6", "1"),
        ("7", "1"),
        ("9", "1"),
    ]
    assert (
        '<desc id="score-chart-desc">&lt;60 2；60–70 0；70–80 0；80–90 0；90–100 0；100–110 1；'
        in page
    )


def test_the_top_and_bottom_lists(city: City) -> None:
    tree = city.tree

    context = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR}).context

    assert [(s.member.name, s.total) for s in context["top_members"]] == [
        ("张一", Decimal("150.00")),
        ("李一", Decimal("110.00")),
        ("张二", Decimal("105.00")),
        ("李二", Decimal("0.00")),
        ("张三", Decimal("-50.00")),
    ]
    assert [s.member.name for s in context["bottom_members"]] == [
        "张三",
        "李二",
        "张二",
        "李一",
        "张一",
    ]
    assert [(s.organization_id, s.fortress_index) for s in context["top_branches"]] == [
        (tree.branch_a.pk, Decimal("108.5")),
        (tree.branch_b.pk, Decimal("87.3")),
    ]
    assert [s.organization_id for s in context["bottom_branches"]] == [
        tree.branch_b.pk,
        tree.branch_a.pk,
    ]


def test_a_quarter_shows_year_to_date_totals_and_no_grades(city: City) -> None:
    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR, "quarter": 1})

    page = response.content.decode()
    assert text(page, "overview-scope") == "测试党委 · 2025 年第一季度"
    assert text(page, "average") == "112"
    assert "季度不评定等次" in text(page, "grade-chart-quarter")
    assert "等次分布</th>" not in page
    assert response.context["export_query"] == (
        f"kind=quarterly_ranking&organization={city.tree.committee.pk}&year=2025&quarter=1&category="
    )


@pytest.mark.parametrize(
    ("category", "member_count", "average"),
    [
        (Member.Category.PROBATIONARY, "1", "105"),
        (Member.Category.ACTIVIST, "1", "110"),
        (Member.Category.DEVELOPMENT_TARGET, "0", "—"),
    ],
)
def test_the_member_category_filter(
    city: City, category: str, member_count: str, average: str
) -> None:
    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR, "category": category})

    page = response.content.decode()
    assert (text(page, "member-count"), text(page, "average")) == (member_count, average)


def test_the_general_branch_sees_only_its_own_branches(city: City) -> None:
    tree = city.tree
    # 王三 in 丙 (under the committee only): 150, so the committee's average becomes 77.50
    wang3 = city.world.member("王三", tree.branch_c)
    record(city.world, wang3, city.world.rules.lecture, in_quarter(4))
    recompute_organization(tree.committee, YEAR)

    response = city.client(city.general_staff).get(OVERVIEW, {"year": YEAR})
    committee = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR})

    page = response.content.decode()
    assert response.context["organization"] == tree.general_branch
    assert response.context["organization_choices"] == [
        (tree.general_branch.pk, "\u3000测试党总支")
    ]
    assert branch_rows(page) == [tree.branch_a.pk, tree.branch_b.pk]
    # each index is relative to the average of the organization viewed: 63 here, 77.5 above
    assert [text(page, f"fortress-{pk}") for pk in branch_rows(page)] == ["108.5", "87.3"]
    assert [text(committee.content.decode(), f"fortress-{pk}") for pk in branch_rows(page)] == [
        "88.2",
        "71.0",
    ]
    assert "丙党支部" not in page
    assert "王三" not in page


def test_one_branch_below_can_be_chosen(city: City) -> None:
    tree = city.tree

    response = city.client(city.general_staff).get(
        OVERVIEW, {"year": YEAR, "organization": tree.branch_b.pk}
    )

    page = response.content.decode()
    assert response.context["filter_errors"] == []
    assert branch_rows(page) == [tree.branch_b.pk]
    assert text(page, f"fortress-{tree.branch_b.pk}") == "100.0"
    assert [s.member.name for s in response.context["top_members"]] == ["李一", "李二"]
    assert response.context["organization_choices"] == [
        (tree.general_branch.pk, "\u3000测试党总支"),
        (tree.branch_b.pk, "乙党支部"),
    ]


@pytest.mark.parametrize("target", ("committee", "branch_c"))
def test_an_organization_outside_the_users_reach_is_refused(city: City, target: str) -> None:
    tree = city.tree

    response = city.client(city.general_staff).get(
        OVERVIEW, {"year": YEAR, "organization": tree.by_key(target).pk}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["filter_errors"] == ["党组织：所选党组织不存在或不在您的管理范围内。"]
    assert response.context["organization"] == tree.general_branch
    assert branch_rows(page) == [tree.branch_a.pk, tree.branch_b.pk]
    assert "丙党支部" not in page


def test_bad_filters_are_named_and_the_defaults_used(city: City) -> None:
    tree = city.tree

    response = city.client(city.committee_staff).get(
        OVERVIEW,
        {
            "year": "二〇二五",
            "quarter": "9",
            "organization": "abc",
            "category": "cadre",
            "sort": "members",
            "branch": "支" * 51,
            "page": "last-but-one",
        },
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["filter_errors"] == [
        "年度：须为 2000 至 2100 之间的整数。",
        "期间：须为全年或第一至第四季度之一。",
        "党组织：请从列表中选择。",
        "支部名称：最多输入 50 个字。",
        "党员类别：不是有效的党员类别，请从列表中选择。",
        "排序：不是有效的排序方式，请从列表中选择。",
    ]
    assert response.context["filters"] == {
        "year": timezone.localdate().year,
        "quarter": 0,
        "organization": tree.committee,
        "branch": "",
        "category": "",
        "sort": "path",
    }
    assert "以下筛选条件无效，已改用默认值" in page
    assert branch_rows(page) == [tree.branch_a.pk, tree.branch_b.pk, tree.branch_c.pk]


@pytest.mark.parametrize("year", ("1999", "2101", "-5", "2025.5"))
def test_a_year_out_of_range_is_refused(city: City, year: str) -> None:
    response = city.client(city.committee_staff).get(OVERVIEW, {"year": year})

    assert response.status_code == 200
    assert response.context["filter_errors"] == ["年度：须为 2000 至 2100 之间的整数。"]
    assert response.context["year"] == timezone.localdate().year


def test_the_default_period_is_this_year(city: City) -> None:
    response = city.client(city.committee_staff).get(OVERVIEW)

    page = response.content.decode()
    assert response.context["year"] == timezone.localdate().year
    assert response.context["filter_errors"] == []
    assert (text(page, "member-count"), text(page, "average")) == ("0", "—")
    assert "这一期间还没有参与排名的积分。" in page


def test_the_name_search_narrows_the_table_only(city: City) -> None:
    tree = city.tree

    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR, "branch": " 乙 "})

    page = response.content.decode()
    assert branch_rows(page) == [tree.branch_b.pk]
    assert text(page, "branch-table-count") == "名称含“乙”的支部 1 个"
    assert text(page, "branch-count") == "3"
    assert text(page, "member-count") == "5"


@pytest.mark.parametrize(
    ("sort", "expected", "links"),
    [
        ("-fortress_index", ["branch_a", "branch_b", "branch_c"], ("fortress_index", "desc")),
        ("fortress_index", ["branch_b", "branch_a", "branch_c"], ("-fortress_index", "asc")),
        ("-average", ["branch_a", "branch_b", "branch_c"], ("average", "desc")),
        ("path", ["branch_a", "branch_b", "branch_c"], ("-fortress_index", "")),
    ],
)
def test_the_table_sorts_by_index_and_average(
    city: City, sort: str, expected: list[str], links: tuple[str, str]
) -> None:
    tree = city.tree

    response = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR, "sort": sort})

    assert branch_rows(response.content.decode()) == [tree.by_key(key).pk for key in expected]
    column = "average" if "average" in sort else "fortress_index"
    link = response.context["sort_links"][column]
    assert link["url"].endswith(f"&sort={links[0]}")
    assert link["direction"] == links[1]


def test_the_export_link_carries_the_filters(city: City) -> None:
    committee = city.tree.committee

    response = city.client(city.committee_staff).get(
        OVERVIEW, {"year": YEAR, "category": Member.Category.FULL}
    )

    page = response.content.decode()
    href = (
        f"{reverse('scoring:exports')}?kind=annual_ranking&amp;organization={committee.pk}"
        "&amp;year=2025&amp;quarter=0&amp;category=full"
    )
    assert f'href="{href}" data-testid="overview-export"' in page


def test_the_page_has_no_inline_script_or_style(city: City) -> None:
    page = city.client(city.committee_staff).get(OVERVIEW, {"year": YEAR}).content.decode()

    assert re.findall(r"<script(?![^>]*\ssrc=)", page) == []
    assert " style=" not in page
    assert "/static/css/overview.css" in page


def add_branches(city: City, count: int) -> list[Organization]:
    """``count`` more branches under the general branch, each with one member; every other
    one scored (a suggestion, +10)."""
    world = city.world
    branches = []
    for number in range(count):
        branch = BranchFactory(name=f"新增第{number:02d}支部", parent=world.tree.general_branch)
        branch = Organization.objects.get(pk=branch.pk)
        member = world.member(f"新党员{number}", branch)
        if number % 2:
            record(world, member, world.rules.suggestion, in_quarter(1))
        branches.append(branch)
    recompute_organization(world.tree.committee, YEAR)
    return branches


def test_the_table_is_paginated_by_fifty_and_keeps_the_filters(city: City) -> None:
    tree = city.tree
    added = add_branches(city, 60)
    client = city.client(city.committee_staff)
    filters = {"year": YEAR, "category": Member.Category.FULL, "sort": "path"}

    first = client.get(OVERVIEW, filters).content.decode()
    second = client.get(OVERVIEW, filters | {"page": 2}).content.decode()
    beyond = client.get(OVERVIEW, filters | {"page": 99})

    # tree order: A, B, the 60 new branches (under the general branch), C
    assert branch_rows(first) == [tree.branch_a.pk, tree.branch_b.pk] + [b.pk for b in added[:48]]
    assert branch_rows(second) == [b.pk for b in added[48:]] + [tree.branch_c.pk]
    assert len(re.findall(r'data-testid="review-states-\d+"', first)) == 50
    keep = f"year=2025&amp;quarter=0&amp;organization={tree.committee.pk}&amp;category=full&amp;sort=path"
    assert f'href="?{keep}&amp;page=2"' in first
    assert f'href="?{keep}&amp;page=1"' in second
    assert text(first, "branch-count") == "63"
    assert beyond.context["page"].number == 2


def overview_queries(client: Client, params: dict) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(OVERVIEW, params)
    assert response.status_code == 200
    return len(captured.captured_queries)


# The session and the user (2); the user's posts and roster entry (2); the filter's list of
# organizations (1); the schemes' star and grade labels (2); the totals' version (1); the
# branch aggregate (1); the page's review badges (1); top and bottom members (2); the
# navigation (2) and the unread notifications (1) of base.html.
EXPECTED_QUERIES = 15
# Once the branch aggregate is cached for the totals' version, it is not run again.
EXPECTED_QUERIES_CACHED = EXPECTED_QUERIES - 1


@pytest.mark.parametrize("params", ({"year": YEAR}, {"year": YEAR, "sort": "-fortress_index"}))
def test_the_page_costs_the_same_queries_whatever_the_number_of_branches(
    city: City, params: dict
) -> None:
    client = city.client(city.committee_staff)
    small = overview_queries(client, params)

    add_branches(city, 60)  # recomputes: a new totals version
    big = overview_queries(client, params)
    big_second_page = overview_queries(client, params | {"page": 2})

    assert (small, big, big_second_page) == (
        EXPECTED_QUERIES,
        EXPECTED_QUERIES,
        EXPECTED_QUERIES_CACHED,
    )


def without_csrf_tokens(html: str) -> str:
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_the_branch_aggregate_is_cached_until_a_recompute_changes_a_total(city: City) -> None:
    # given: the overview seen once (甲党支部's average 68.33)
    client = city.client(city.committee_staff)
    params = {"year": YEAR}
    first = client.get(OVERVIEW, params).content.decode()
    assert "68.33" in first

    # when: seen again, nothing changed
    again_queries = overview_queries(client, params)
    again = client.get(OVERVIEW, params).content.decode()

    # then: the aggregate is read back, the page is the same (but for its CSRF tokens)
    assert again_queries == EXPECTED_QUERIES_CACHED
    assert without_csrf_tokens(again) == without_csrf_tokens(first)

    # when: 张三 gets +10 and the branch is recomputed (as the task after recording does)
    record(city.world, city.members["zhang3"], city.world.rules.suggestion, in_quarter(3))
    recompute_organization(city.tree.branch_a, YEAR)
    changed_queries = overview_queries(client, params)
    changed = client.get(OVERVIEW, params).content.decode()

    # then: the next view computes it again and shows the new average, (150+105-40)/3
    assert changed_queries == EXPECTED_QUERIES
    assert "71.67" in changed
    assert "68.33" not in changed


def test_a_recompute_that_changes_nothing_keeps_the_cached_aggregate(city: City) -> None:
    client = city.client(city.committee_staff)
    params = {"year": YEAR}
    client.get(OVERVIEW, params)

    recompute_organization(city.tree.committee, YEAR)  # the same totals: no row written

    assert overview_queries(client, params) == EXPECTED_QUERIES_CACHED


# --- the SVG charts (scoring.charts), exact coordinates --------------------------------------


def test_a_row_chart_scales_bars_to_the_largest_count() -> None:
    chart = row_chart([("五星", 3), ("四星", 1), ("一星", 0)])

    assert (chart.view_box, chart.left, chart.plot_width, chart.total) == ("0 0 360 90", 76, 200, 4)
    assert [(bar.label, bar.share, bar.x, bar.y, bar.width, bar.height) for bar in chart.bars] == [
        ("五星", Decimal("75.0"), Decimal(76), Decimal("11.0"), Decimal("200.0"), Decimal("16.1")),
        ("四星", Decimal("25.0"), Decimal(76), Decimal("37.0"), Decimal("66.7"), Decimal("16.1")),
        ("一星", Decimal("0.0"), Decimal(76), Decimal("63.0"), Decimal("0.0"), Decimal("16.1")),
    ]
    assert [(bar.value_x, bar.value_y, bar.label_x) for bar in chart.bars][1] == (
        Decimal("148.7"),
        Decimal("45.0"),
        Decimal(70),
    )
    assert chart.description == "五星 3；四星 1；一星 0"


def test_a_column_chart_with_labels_between_the_columns() -> None:
    chart = column_chart([("<60", 2), ("60–70", 0), ("≥70", 5)], edge_labels=["60", "70"])

    assert (chart.view_box, chart.left, chart.right, chart.top, chart.bottom) == (
        "0 0 380 190",
        30,
        372,
        18,
        166,
    )
    assert [(bar.x, bar.y, bar.width, bar.height, bar.value_y) for bar in chart.bars] == [
        (Decimal("41.4"), Decimal("116.7"), Decimal("91.2"), Decimal("49.3"), Decimal("112.7")),
        (Decimal("155.4"), Decimal("166.0"), Decimal("91.2"), Decimal("0.0"), Decimal("162.0")),
        (Decimal("269.4"), Decimal("42.7"), Decimal("91.2"), Decimal("123.3"), Decimal("38.7")),
    ]
    # counts up to 5 → an axis to 6 in steps of 2
    assert [(tick.position, tick.label) for tick in chart.ticks] == [
        (Decimal("166.0"), "0"),
        (Decimal("116.7"), "2"),
        (Decimal("67.3"), "4"),
        (Decimal("18.0"), "6"),
    ]
    assert [(edge.position, edge.label) for edge in chart.edges] == [
        (Decimal("144.0"), "60"),
        (Decimal("258.0"), "70"),
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: row_chart([]), "a chart needs at least one bar"),
        (lambda: column_chart([]), "a chart needs at least one bar"),
        (lambda: column_chart([("a", 1), ("b", 2)], edge_labels=[]), "one fewer than the bars"),
    ],
)
def test_charts_refuse_what_they_cannot_draw(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_chart_of_nothing_but_zeros() -> None:
    rows = row_chart([("优秀", 0), ("合格", 0)])
    columns = column_chart([("<60", 0), ("≥60", 0)])

    assert [(bar.width, bar.share) for bar in rows.bars] == [(Decimal(0), Decimal(0))] * 2
    assert [bar.height for bar in columns.bars] == [Decimal("0.0")] * 2
    assert [tick.label for tick in columns.ticks] == ["0", "1"]


def test_a_staff_post_at_a_branch_sees_that_branch(city: City) -> None:
    tree = city.tree
    user = UserFactory(username="branch_staff")
    RoleFactory(user=user, organization=tree.branch_a, post=Role.Post.STAFF)

    response = city.client(user).get(OVERVIEW, {"year": YEAR})

    assert response.context["organization"] == tree.branch_a
    assert response.context["organization_choices"] == [(tree.branch_a.pk, "\u3000\u3000甲党支部")]
    assert branch_rows(response.content.decode()) == [tree.branch_a.pk]
