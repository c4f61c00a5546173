"""The publicity board: who may read it when, what it shows, its print view, its cost."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from members.models import Member, Role
from publicity import selectors, services
from reviews.models import ReviewCycle
from scoring.recompute import recompute_organization
from tests.conftest import logged_in_client
from tests.factories import MemberFactory, OrganizationFactory, RoleFactory, UserFactory
from tests.publicity.conftest import YEAR, Board, drive_cycle, in_quarter, record

pytestmark = pytest.mark.django_db


def board_url(cycle: ReviewCycle, name: str = "board") -> str:
    return reverse(f"publicity:{name}", kwargs={"pk": cycle.pk})


@pytest.fixture
def unrelated_staff():
    """Staff of another committee: no right anywhere in the tree of branch A."""
    user = UserFactory(username="other_committee_staff")
    RoleFactory(user=user, organization=OrganizationFactory(name="另一党委"), post=Role.Post.STAFF)
    return user


# --- who may read it ---------------------------------------------------------------------------

BEFORE, DURING, AFTER = "general_meeting", "publicity", "finalized"

VISIBILITY = [
    # (user, state of the cycle, status)
    ("member_a", BEFORE, 404),
    ("member_a", DURING, 200),
    ("member_a", AFTER, 200),
    ("member_b", DURING, 404),
    ("secretary_b", DURING, 404),
    ("no_role", DURING, 404),
    ("secretary_a", BEFORE, 200),
    ("recorder_a", BEFORE, 200),
    ("discipline_a", BEFORE, 200),
    ("general_staff", DURING, 200),
    ("committee_staff", DURING, 200),
    ("committee_staff", BEFORE, 200),
    ("unrelated_staff", DURING, 404),
]


@pytest.mark.parametrize(("user_key", "state", "status"), VISIBILITY)
@pytest.mark.parametrize("page", ["board", "board_print"])
def test_who_may_read_the_board(
    board: Board, unrelated_staff, user_key: str, state: str, status: int, page: str
):
    # given
    cycle = drive_cycle(board, state)
    user = unrelated_staff if user_key == "unrelated_staff" else board.users[user_key]

    # when
    response = logged_in_client(user).get(board_url(cycle, page))

    # then
    assert response.status_code == status


def test_an_anonymous_visitor_is_sent_to_log_in(board: Board):
    cycle = drive_cycle(board, DURING)

    response = logged_in_client(None).get(board_url(cycle))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_officers_preview_the_board_marked_as_not_yet_published(board: Board):
    cycle = drive_cycle(board, BEFORE)

    content = logged_in_client(board.users["secretary_a"]).get(board_url(cycle)).content.decode()

    assert "未公示（预览）" in content
    assert 'data-testid="raise-total"' not in content


def test_the_published_board_is_not_marked_as_a_preview(board: Board):
    cycle = drive_cycle(board, DURING)

    content = logged_in_client(board.users["member_a"]).get(board_url(cycle)).content.decode()

    assert "未公示（预览）" not in content


@pytest.mark.parametrize(
    ("state", "user_key", "expected"),
    [
        ("publicity", "member_a", True),
        ("general_meeting", "member_a", False),
        ("general_meeting", "secretary_a", True),
        ("finalized", "member_a", True),
        ("publicity", "member_b", False),
        ("publicity", "committee_staff", True),
    ],
)
def test_may_read_board(board: Board, state: str, user_key: str, expected: bool):
    cycle = drive_cycle(board, state)

    assert selectors.may_read_board(board.users[user_key], cycle) is expected


# --- what it shows -----------------------------------------------------------------------------


def test_the_rows_are_ranked_groups_first_with_scores_and_entries(board: Board, committed):
    # given: an activist (candidates' group) and an exempt member (unranked)
    activist = MemberFactory(
        organization=board.branch, name="陈九", category=Member.Category.ACTIVIST
    )
    record(committed, board.users["secretary_a"], activist, board.rules.speech, in_quarter(1, 2))
    exempt = MemberFactory(
        organization=board.branch,
        name="周十",
        status=Member.Status.EXEMPT,
        exempt_reason="长期患病",
    )
    MemberFactory(organization=board.branch, name="吴十一", status=Member.Status.TRANSFERRED_OUT)
    recompute_organization(board.branch, YEAR)
    cycle = drive_cycle(board, DURING)

    # when
    rows = selectors.board_rows(cycle)

    # then
    assert [(row.member.name, row.group, row.rank) for row in rows] == [
        ("张三", "party", 1),
        ("李四", "party", 2),
        ("王芳", "party", 3),
        ("陈九", "candidate", 1),
        ("周十", "unranked", None),
    ]
    zhang = rows[0]
    assert (zhang.score.net, zhang.score.total, zhang.score.star) == (
        Decimal("55.00"),
        Decimal("155.00"),
        "五星",
    )
    assert [line.entry.pk for line in zhang.lines] == [board.lecture.pk, board.speech.pk]
    assert [line.counted for line in zhang.lines] == [Decimal("50.00"), Decimal("5.00")]
    assert rows[4].member == exempt
    assert rows[4].lines == []


def test_a_reversed_entry_is_shown_with_its_reversal(board: Board, cycle: ReviewCycle, committed):
    # given: the secretary upholds 张三's objection at recheck
    objection = services.objection_raise(
        user=board.users["member_a"], cycle=cycle, text="记错了。", entry=board.lecture
    )
    committed(
        services.objection_recheck,
        user=board.users["secretary_a"],
        objection=objection,
        answer="予以冲销。",
        uphold=True,
    )

    # when
    zhang = next(row for row in selectors.board_rows(cycle) if row.member.name == "张三")

    # then
    assert [(line.entry.points, line.is_reversed) for line in zhang.lines] == [
        (Decimal("50.00"), True),
        (Decimal("-50.00"), False),
        (Decimal("5.00"), False),
    ]
    assert zhang.score.total == Decimal("105.00")


def test_a_member_may_object_to_their_own_entries_and_total_only(board: Board, cycle: ReviewCycle):
    content = logged_in_client(board.users["member_a"]).get(board_url(cycle)).content.decode()

    assert f'data-testid="raise-entry-{board.lecture.pk}"' in content
    assert f'data-testid="raise-entry-{board.speech.pk}"' in content
    assert 'data-testid="raise-total"' in content
    assert f'data-testid="raise-entry-{board.others["secretary_a"].pk}"' not in content
    assert f'data-testid="raise-entry-{board.others["other_a"].pk}"' not in content


def test_an_entry_with_an_open_objection_shows_it_is_pending(board: Board, cycle: ReviewCycle):
    services.objection_raise(
        user=board.users["member_a"], cycle=cycle, text="记错了。", entry=board.lecture
    )

    content = logged_in_client(board.users["member_a"]).get(board_url(cycle)).content.decode()

    assert f'data-testid="pending-{board.lecture.pk}"' in content
    assert f'data-testid="raise-entry-{board.lecture.pk}"' not in content
    assert 'data-testid="raise-total"' in content


def test_no_objection_links_after_the_cycle_is_finalized(board: Board):
    cycle = drive_cycle(board, AFTER)

    content = logged_in_client(board.users["member_a"]).get(board_url(cycle)).content.decode()

    assert "raise-entry-" not in content
    assert 'data-testid="raise-total"' not in content


# --- the print view ----------------------------------------------------------------------------


def test_the_print_view_has_the_title_the_header_rows_and_the_deadline(
    board: Board, cycle: ReviewCycle
):
    response = logged_in_client(board.users["member_a"]).get(board_url(cycle, "board_print"))

    content = response.content.decode()
    assert response.status_code == 200
    assert f"甲党支部{YEAR}年第4季度党员积分公示" in content
    assert content.count("<thead>") == 2
    assert "css/print.css" in content
    assert 'class="navbar' not in content
    ends = cycle.publicity_ends_on
    assert f"如有异议请于 {ends.month} 月 {ends.day} 日前向支部提出。" in content
    assert f"公示期：{cycle.publicity_starts_on.isoformat()} 至 {ends.isoformat()}" in content


def test_only_the_print_view_links_the_print_stylesheet(board: Board, cycle: ReviewCycle):
    content = logged_in_client(board.users["member_a"]).get(board_url(cycle)).content.decode()

    assert "css/print.css" not in content
    assert board_url(cycle, "board_print") in content


# --- what it costs -----------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _add_members(board: Board, committed, count: int) -> None:
    for number in range(count):
        member = MemberFactory(organization=board.branch, name=f"党员{number:02d}")
        record(committed, board.users["secretary_a"], member, board.rules.speech, in_quarter(2, 1))
        record(
            committed,
            board.users["secretary_a"],
            member,
            board.rules.volunteer,
            in_quarter(2, 2),
            points=Decimal(number % 10 + 1),
        )
    recompute_organization(board.branch, YEAR)


@pytest.mark.parametrize("user_key", ["member_a", "secretary_a"])
@pytest.mark.parametrize("page", ["board", "board_print"])
def test_the_board_costs_the_same_queries_for_3_and_30_members(
    board: Board, cycle: ReviewCycle, committed, user_key: str, page: str
):
    # given: a branch of 3
    client = logged_in_client(board.users[user_key])
    url = board_url(cycle, page)
    _queries(client, url)  # warm caches (content types, the session)
    small = _queries(client, url)

    # when: 27 more members with entries
    _add_members(board, committed, 27)
    large = _queries(client, url)

    # then
    assert len(selectors.board_rows(cycle)) == 30
    assert large == small, (small, large)
