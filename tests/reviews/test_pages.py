"""The review pages: a branch's cycles, the cycle page (steps, timeline, next step), the
member's self-assessment and acknowledgement, the committee review, the general meeting,
my reviews, notifications and the committee overview's review states.

Every refused POST shows the service's exact Chinese message(s) with 422 (403 when the
service says the user may not), keeps what was typed and changes nothing; pages outside the
user's reach answer 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config import celery_app
from members.models import Member, Organization
from reviews import services
from reviews.models import (
    Acknowledgement,
    Appraisal,
    CommitteeMeeting,
    CycleEvent,
    GeneralMeeting,
    Notification,
    ReviewCycle,
    ScoreAgreement,
    SelfAssessment,
)
from scoring import services as scoring_services
from scoring.models import Declaration, Entry, PeriodLock, PeriodScore, Rule, RuleCategory
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import MemberFactory, Tree

pytestmark = pytest.mark.django_db

# A whole past year: none of its days is "in the future", whatever day the suite runs.
YEAR = 2025
QUARTER = 2
DAY = date(2025, 5, 12)  # in the second quarter
State = ReviewCycle.State
Action = CycleEvent.Action

STALE = "该评议已由他人推进到“党员自评”，您的操作没有执行，请刷新页面查看。"
NO_RIGHT_A = "您没有在“甲党支部”进行此操作的权限。"


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def today() -> date:
    return timezone.localdate()


@dataclass
class Setup:
    """Branch A (张三, 李四 the secretary, 王芳 probationary) on a five-star scheme (base 100)
    adopted by the committee for ``YEAR``; 张三 has one pending declaration in Q2 (+5)."""

    tree: Tree
    users: dict[str, User]
    members: dict[str, Member]
    speech: Rule
    meeting_rule: Rule
    declaration: Declaration

    @property
    def branch(self) -> Organization:
        return self.tree.branch_a

    @property
    def zhang(self) -> Member:
        return self.members["member_a"]

    @property
    def li(self) -> Member:
        return self.members["secretary_a"]

    @property
    def wang(self) -> Member:
        return self.members["other_a"]

    def roster(self) -> list[Member]:
        return [self.zhang, self.li, self.wang]


def make_scheme(tree: Tree, **fields):
    scheme = scheme_create_from_preset(
        owner=tree.committee, year=YEAR, name="五星积分细则", preset="five_stars_base_100", **fields
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    return scheme


def add_rules(scheme) -> tuple[Rule, Rule]:
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    life = RuleCategory.objects.create(scheme=scheme, name="组织生活", position=2)
    speech = Rule.objects.create(
        scheme=scheme,
        category=study,
        code="B01",
        name="研讨发言",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("3"),
        points_max=Decimal("10"),
        self_declarable=True,
    )
    meeting = Rule.objects.create(
        scheme=scheme,
        category=life,
        code="B02",
        name="参加主题党日",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("2"),
        points_max=Decimal("2"),
    )
    return speech, meeting


def declare(user: User, member: Member, rule: Rule, points: str = "5") -> Declaration:
    return scoring_services.declaration_submit(
        user=user,
        member=member,
        rule=rule,
        occurred_on=DAY,
        description="党课研讨发言",
        points=Decimal(points),
    )


@pytest.fixture
def setup(tree: Tree, users: dict[str, User], members: dict[str, Member]) -> Setup:
    scheme = make_scheme(tree)
    speech, meeting_rule = add_rules(scheme)
    scoring_services.entry_record(
        user=users["secretary_a"],
        member=members["other_a"],
        rule=meeting_rule,
        occurred_on=DAY,
        description="主题党日",
    )
    declaration = declare(users["member_a"], members["member_a"], speech)
    recompute_organization(tree.committee, YEAR)
    return Setup(
        tree=tree,
        users=users,
        members=members,
        speech=speech,
        meeting_rule=meeting_rule,
        declaration=declaration,
    )


def url(name: str, cycle: ReviewCycle | Organization | None = None, **kwargs) -> str:
    if cycle is not None:
        kwargs["pk"] = cycle.pk
    return reverse(f"reviews:{name}", kwargs=kwargs)


def text_of(response) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    content = response.content.decode()
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", content, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", content))


def flash(response) -> list[str]:
    """The messages this response added (earlier ones wait in the cookie until a page shows
    them; the test client does not follow redirects)."""
    added = getattr(response.wsgi_request, "_messages", None)
    queued = getattr(added, "_queued_messages", None)
    if queued is None:
        return [str(message) for message in get_messages(response.wsgi_request)]
    return [str(message) for message in queued]


def events(cycle: ReviewCycle) -> list[tuple]:
    return list(
        CycleEvent.objects.filter(cycle=cycle)
        .order_by("created_at", "id")
        .values_list("action", "from_state", "to_state", "user__username", "note")
    )


def state_of(cycle: ReviewCycle) -> str:
    return ReviewCycle.objects.get(pk=cycle.pk).state


# --- building cycles through the services (arrange) -----------------------------------------


def open_cycle(setup: Setup, quarter: int = QUARTER) -> ReviewCycle:
    return services.cycle_open(
        user=setup.users["secretary_a"], branch=setup.branch, year=YEAR, quarter=quarter
    )


def advance(setup: Setup, cycle: ReviewCycle, **kwargs) -> ReviewCycle:
    return services.cycle_advance(
        user=setup.users["secretary_a"], cycle=cycle, expected_state=cycle.state, **kwargs
    )


def to_self_assessment(setup: Setup, cycle: ReviewCycle) -> ReviewCycle:
    secretary = setup.users["secretary_a"]
    services.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today() + timedelta(days=7))
    cycle = ReviewCycle.objects.get(pk=cycle.pk)
    return advance(setup, cycle)


def to_committee_review(setup: Setup, cycle: ReviewCycle) -> ReviewCycle:
    return advance(setup, to_self_assessment(setup, cycle))


def settle_committee(setup: Setup, cycle: ReviewCycle, capture) -> None:
    """Decide the pending declaration, record the meeting, agree every member's score."""
    secretary = setup.users["secretary_a"]
    with capture(execute=True):
        scoring_services.declaration_approve(user=secretary, declaration=setup.declaration)
    services.committee_meeting_record(
        user=secretary, cycle=cycle, meeting_date=today(), attendees=[setup.li]
    )
    services.scores_agree(user=secretary, cycle=cycle, members=setup.roster())


def to_publicity(setup: Setup, cycle: ReviewCycle, capture) -> ReviewCycle:
    cycle = to_committee_review(setup, cycle)
    settle_committee(setup, cycle, capture)
    cycle = advance(setup, cycle)
    services.general_meeting_record(
        user=setup.users["secretary_a"],
        cycle=cycle,
        meeting_date=today(),
        voting_members=2,
        attendance=2,
        votes_for=2,
        votes_against=0,
        votes_abstain=0,
    )
    cycle = ReviewCycle.objects.get(pk=cycle.pk)
    with capture(execute=True):
        return advance(setup, cycle)


def to_finalized(setup: Setup, cycle: ReviewCycle, capture) -> ReviewCycle:
    cycle = to_publicity(setup, cycle, capture)
    return advance(setup, cycle, today=cycle.publicity_ends_on + timedelta(days=1))


# --- who sees what ---------------------------------------------------------------------------

OFFICER_PAGES = ["cycle", "committee_review", "general_meeting"]
MEMBER_PAGES = ["self_assessment", "acknowledge"]


@pytest.mark.parametrize(
    ("user_key", "expected"),
    [
        ("secretary_a", 200),
        ("recorder_a", 200),
        ("discipline_a", 200),
        ("general_staff", 200),
        ("committee_staff", 200),
        ("secretary_b", 404),
        ("member_a", 404),
        ("member_b", 404),
        ("no_role", 404),
    ],
)
def test_officer_pages_answer_the_branch_officers_and_staff_above_only(
    setup: Setup, client_for: Callable[[str], Client], user_key: str, expected: int
) -> None:
    # given
    cycle = open_cycle(setup)
    client = client_for(user_key)
    # when
    statuses = [client.get(url(name, cycle)).status_code for name in OFFICER_PAGES]
    statuses.append(client.get(url("branch_cycles", setup.branch)).status_code)
    # then
    assert statuses == [expected] * 4


@pytest.mark.parametrize(
    ("user_key", "expected"),
    [
        ("member_a", 200),
        ("secretary_a", 200),  # 李四 is on branch A's roster too
        ("recorder_a", 404),
        ("discipline_a", 404),
        ("committee_staff", 404),
        ("secretary_b", 404),
        ("member_b", 404),
        ("no_role", 404),
    ],
)
def test_member_pages_answer_the_branch_members_only(
    setup: Setup, client_for: Callable[[str], Client], user_key: str, expected: int
) -> None:
    cycle = open_cycle(setup)
    client = client_for(user_key)
    assert [client.get(url(name, cycle)).status_code for name in MEMBER_PAGES] == [expected] * 2


def test_anonymous_is_sent_to_login(setup: Setup, client_for) -> None:
    cycle = open_cycle(setup)
    response = client_for("anonymous").get(url("cycle", cycle))
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next=/reviews/{cycle.pk}/"


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("cycle_advance", "post"),
        ("cycle_deadline", "post"),
        ("cycle_reopen", "post"),
        ("committee_agree", "post"),
        ("committee_meeting", "post"),
        ("general_meeting", "post"),
    ],
)
def test_another_branchs_secretary_cannot_post_either(
    setup: Setup, client_for, name: str, method: str
) -> None:
    cycle = open_cycle(setup)
    before = events(cycle)
    response = client_for("secretary_b").post(url(name, cycle), {"expected_state": "open"})
    assert response.status_code == 404
    assert events(cycle) == before
    assert state_of(cycle) == State.OPEN


# --- the branch's cycles --------------------------------------------------------------------


def test_branch_cycles_lists_the_five_periods_with_their_state(setup: Setup, client_for) -> None:
    # given
    cycle = open_cycle(setup)
    # when
    response = client_for("secretary_a").get(url("branch_cycles", setup.branch) + f"?year={YEAR}")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    states = re.findall(r'data-testid="period-(\d)">.*?data-testid="state">([^<]+)<', page, re.S)
    assert states == [
        ("1", "未开始"),
        ("2", "记录中"),
        ("3", "未开始"),
        ("4", "未开始"),
        ("0", "未开始"),
    ]
    assert page.count("开始评议</button>") == 4
    assert f'href="/reviews/{cycle.pk}/"' in page


def test_staff_see_the_cycles_without_the_open_button(setup: Setup, client_for) -> None:
    response = client_for("committee_staff").get(
        url("branch_cycles", setup.branch) + f"?year={YEAR}"
    )
    assert response.status_code == 200
    assert "开始评议</button>" not in response.content.decode()


def test_open_a_cycle_redirects_to_it_with_the_first_timeline_row(setup: Setup, client_for) -> None:
    # when
    response = client_for("secretary_a").post(
        url("cycle_open", setup.branch), {"year": YEAR, "quarter": QUARTER}
    )
    # then
    cycle = ReviewCycle.objects.get(organization=setup.branch, year=YEAR, quarter=QUARTER)
    assert response.status_code == 302
    assert response["Location"] == f"/reviews/{cycle.pk}/"
    assert flash(response) == ["已开始2025年第2季度评议。"]
    assert cycle.state == State.OPEN
    assert events(cycle) == [
        (Action.ADVANCE, "", State.OPEN, "secretary_a", "开始2025年第2季度评议")
    ]


def test_opening_a_year_without_scheme_is_refused_with_the_message(
    setup: Setup, client_for
) -> None:
    response = client_for("secretary_a").post(
        url("cycle_open", setup.branch), {"year": 2024, "quarter": 1}
    )
    assert response.status_code == 422
    assert "甲党支部 2024 年度尚未采用积分细则，不能开展评议。" in text_of(response)
    assert ReviewCycle.objects.count() == 0


def test_a_recorder_may_not_open_a_cycle(setup: Setup, client_for) -> None:
    response = client_for("recorder_a").post(
        url("cycle_open", setup.branch), {"year": YEAR, "quarter": QUARTER}
    )
    assert response.status_code == 403
    assert NO_RIGHT_A in text_of(response)
    assert ReviewCycle.objects.count() == 0


# --- the full walk ---------------------------------------------------------------------------


def test_a_full_walk_from_open_to_publicity_through_the_pages(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    secretary = client_for("secretary_a")
    member = client_for("member_a")
    deadline = today() + timedelta(days=7)

    # 开始评议
    response = secretary.post(url("cycle_open", setup.branch), {"year": YEAR, "quarter": QUARTER})
    cycle = ReviewCycle.objects.get(organization=setup.branch, year=YEAR, quarter=QUARTER)
    assert response.status_code == 302

    # the deadline, then into the self-assessment
    response = secretary.post(url("cycle_deadline", cycle), {"deadline": deadline.isoformat()})
    assert response.status_code == 302
    assert flash(response) == [f"自评截止日期已设为 {deadline.isoformat()}。"]
    response = secretary.post(url("cycle_advance", cycle), {"expected_state": "open", "note": ""})
    assert response.status_code == 302
    assert flash(response) == ["2025年第2季度评议已进入“党员自评”。"]
    assert state_of(cycle) == State.SELF_ASSESSMENT

    # the member writes their self-assessment on the phone page
    response = member.post(url("self_assessment", cycle), {"text": "本季度按时参加组织生活。"})
    assert response.status_code == 302
    assert response["Location"] == f"/reviews/{cycle.pk}/self-assessment/"
    assert (
        SelfAssessment.objects.get(cycle=cycle, member=setup.zhang).text
        == "本季度按时参加组织生活。"
    )
    page = secretary.get(url("cycle", cycle))
    assert re.search(r'data-testid="submitted">\s*张三\s*<', page.content.decode())
    assert re.search(r'data-testid="not-submitted">\s*李四、王芳\s*<', page.content.decode())

    response = secretary.post(
        url("cycle_advance", cycle), {"expected_state": "self_assessment", "note": "自评结束"}
    )
    assert response.status_code == 302
    assert state_of(cycle) == State.COMMITTEE_REVIEW

    # the committee review: the declaration, the meeting, the scores
    with django_capture_on_commit_callbacks(execute=True):
        response = secretary.post(
            url("committee_decide", cycle, declaration_pk=setup.declaration.pk),
            {"decision": "approve", "points": "5", "reason": ""},
        )
    assert response.status_code == 302
    assert flash(response) == ["已通过张三的申报（研讨发言），记入 +5 分。"]
    assert Entry.objects.get(declaration=setup.declaration).points == Decimal("5.00")
    assert PeriodScore.objects.get(member=setup.zhang, year=YEAR, quarter=QUARTER).total == Decimal(
        "105.00"
    )
    response = secretary.post(
        url("committee_meeting", cycle),
        {"meeting_date": today().isoformat(), "attendees": [setup.li.pk], "notes": "逐人初评"},
    )
    assert response.status_code == 302
    meeting = CommitteeMeeting.objects.get(cycle=cycle)
    assert list(meeting.attendees.values_list("name", flat=True)) == ["李四"]
    response = secretary.post(
        url("committee_agree", cycle),
        {"agree": [m.pk for m in setup.roster()], f"note-{setup.zhang.pk}": "表现积极"},
    )
    assert response.status_code == 302
    assert flash(response) == ["已确认 3 名党员的初评积分。"]
    agreed = dict(
        ScoreAgreement.objects.filter(cycle=cycle).values_list("member__name", "proposed_total")
    )
    assert agreed == {
        "张三": Decimal("105.00"),
        "李四": Decimal("100.00"),
        "王芳": Decimal("102.00"),
    }
    assert ScoreAgreement.objects.get(cycle=cycle, member=setup.zhang).note == "表现积极"

    response = secretary.post(
        url("cycle_advance", cycle), {"expected_state": "committee_review", "note": ""}
    )
    assert response.status_code == 302
    assert state_of(cycle) == State.GENERAL_MEETING

    # the general meeting, then the publicity
    response = secretary.get(url("general_meeting", cycle))
    assert re.search(r'name="voting_members" value="2"', response.content.decode())
    response = secretary.post(
        url("general_meeting", cycle),
        {
            "meeting_date": today().isoformat(),
            "voting_members": "2",
            "attendance": "2",
            "votes_for": "2",
            "votes_against": "0",
            "votes_abstain": "0",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"/reviews/{cycle.pk}/"
    assert GeneralMeeting.objects.get(cycle=cycle).votes_for == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = secretary.post(
            url("cycle_advance", cycle),
            {"expected_state": "general_meeting", "publicity_starts_on": today().isoformat()},
        )
    assert response.status_code == 302
    cycle = ReviewCycle.objects.get(pk=cycle.pk)
    ends = today() + timedelta(days=4)
    assert (cycle.state, cycle.publicity_starts_on, cycle.publicity_ends_on) == (
        State.PUBLICITY,
        today(),
        ends,
    )

    # then: the timeline, exactly
    start, end, day = today().isoformat(), ends.isoformat(), today().isoformat()
    assert events(cycle) == [
        (Action.ADVANCE, "", "open", "secretary_a", "开始2025年第2季度评议"),
        (Action.DEADLINE, "", "", "secretary_a", f"自评截止日期：{deadline.isoformat()}"),
        (Action.ADVANCE, "open", "self_assessment", "secretary_a", ""),
        (Action.ADVANCE, "self_assessment", "committee_review", "secretary_a", "自评结束"),
        (Action.COMMITTEE_MEETING, "", "", "secretary_a", f"支委会 {day}，出席 1 人"),
        (Action.ADVANCE, "committee_review", "general_meeting", "secretary_a", ""),
        (
            Action.GENERAL_MEETING,
            "",
            "",
            "secretary_a",
            f"党员大会 {day}：应到 2 人，实到 2 人；赞成 2，反对 0，弃权 0",
        ),
        (Action.ADVANCE, "general_meeting", "publicity", "secretary_a", f"公示 {start} 至 {end}"),
    ]
    # the members are told, and find the board from their reviews page
    board = reverse("publicity:board", kwargs={"pk": cycle.pk})
    notice = f"甲党支部2025年第2季度积分公示中（{start} 至 {end}），如有异议请在公示期内提出。"
    assert sorted(Notification.objects.values_list("user__username", "text", "url")) == [
        ("member_a", notice, board),
        ("secretary_a", notice, board),
    ]
    assert f'href="{board}">查看公示</a>' in member.get(url("my_reviews")).content.decode()
    assert f'<a href="{board}">{notice}</a>' in member.get(url("notifications")).content.decode()
    # and the cycle page shows every row of it, with the steps done so far
    response = secretary.get(url("cycle", cycle))
    page = response.content.decode()
    assert page.count('data-testid="event"') == 8
    assert "党员大会评定 → 公示" in text_of(response)
    assert re.findall(r'class="badge rounded-pill ([^"]+)" data-testid="step-(\w+)"', page) == [
        ("text-bg-success", "open"),
        ("text-bg-success", "self_assessment"),
        ("text-bg-success", "committee_review"),
        ("text-bg-success", "general_meeting"),
        ("text-bg-danger", "publicity"),
        ("text-bg-light border text-secondary", "finalized"),
    ]


# --- refused moves change nothing -----------------------------------------------------------


def test_a_refused_advance_shows_every_reason_and_changes_nothing(setup: Setup, client_for) -> None:
    # given: in the committee review with a pending declaration, no meeting, nothing agreed
    cycle = to_committee_review(setup, open_cycle(setup))
    before = events(cycle)
    # when
    response = client_for("secretary_a").post(
        url("cycle_advance", cycle), {"expected_state": "committee_review", "note": "提交大会"}
    )
    # then
    assert response.status_code == 422
    page = response.content.decode()
    errors = re.search(r'data-testid="advance-errors">(.*?)</ul>', page, re.S)
    listed = re.findall(r"<li>([^<]+)</li>", errors.group(1))
    assert listed == [
        "还有 1 条积分申报未审核，请在支委初评中逐条处理。",
        "请先记录支委会（日期、出席支委）。",
        "还有 3 名党员的初评积分未经支委会确认。",
    ]
    assert "\n提交大会</textarea>" in page  # the note typed is kept
    assert state_of(cycle) == State.COMMITTEE_REVIEW
    assert events(cycle) == before


def test_a_stale_expected_state_is_refused_with_the_others_move(setup: Setup, client_for) -> None:
    # given: someone moved the cycle on while this secretary's page still showed 记录中
    cycle = to_self_assessment(setup, open_cycle(setup))
    before = events(cycle)
    # when
    response = client_for("secretary_a").post(
        url("cycle_advance", cycle), {"expected_state": "open", "note": "开始自评"}
    )
    # then
    assert response.status_code == 422
    assert STALE in text_of(response)
    assert state_of(cycle) == State.SELF_ASSESSMENT
    assert events(cycle) == before


def test_the_next_step_form_carries_the_state_the_page_showed(setup: Setup, client_for) -> None:
    cycle = to_self_assessment(setup, open_cycle(setup))
    page = client_for("secretary_a").get(url("cycle", cycle)).content.decode()
    assert '<input type="hidden" name="expected_state" value="self_assessment"' in page
    assert "结束自评，进入支委初评</button>" in page


def test_the_cycle_page_lists_what_the_next_step_still_needs(setup: Setup, client_for) -> None:
    cycle = open_cycle(setup)
    page = client_for("secretary_a").get(url("cycle", cycle)).content.decode()
    problems = re.search(r'data-testid="problems">(.*?)</ul>', page, re.S).group(1)
    assert re.findall(r"<li>([^<]+)</li>", problems) == ["请先设定党员自评截止日期。"]


def test_a_recorder_sees_the_cycle_but_may_not_move_it(setup: Setup, client_for) -> None:
    cycle = open_cycle(setup)
    client = client_for("recorder_a")
    assert 'data-testid="advance-form"' not in client.get(url("cycle", cycle)).content.decode()
    response = client.post(url("cycle_advance", cycle), {"expected_state": "open"})
    assert response.status_code == 403
    assert NO_RIGHT_A in text_of(response)
    assert state_of(cycle) == State.OPEN


def test_a_past_deadline_is_refused_with_the_message(setup: Setup, client_for) -> None:
    cycle = open_cycle(setup)
    before = events(cycle)
    yesterday = today() - timedelta(days=1)
    response = client_for("secretary_a").post(
        url("cycle_deadline", cycle), {"deadline": yesterday.isoformat()}
    )
    assert response.status_code == 422
    assert "截止日期不能早于今天。" in text_of(response)
    assert f'value="{yesterday.isoformat()}"' in response.content.decode()
    assert ReviewCycle.objects.get(pk=cycle.pk).self_assessment_deadline is None
    assert events(cycle) == before


# --- the self-assessment ---------------------------------------------------------------------


def test_self_assessment_after_the_deadline_is_refused_with_the_exact_message(
    setup: Setup, client_for
) -> None:
    # given: the deadline has passed
    cycle = to_self_assessment(setup, open_cycle(setup))
    ReviewCycle.objects.filter(pk=cycle.pk).update(self_assessment_deadline=date(2025, 7, 10))
    # when
    response = client_for("member_a").post(url("self_assessment", cycle), {"text": "迟交的自评"})
    # then
    assert response.status_code == 422
    assert "自评已于 2025-07-10 截止。" in text_of(response)
    assert "\n迟交的自评</textarea>" in response.content.decode()
    assert SelfAssessment.objects.count() == 0


def test_an_empty_self_assessment_is_refused(setup: Setup, client_for) -> None:
    cycle = to_self_assessment(setup, open_cycle(setup))
    response = client_for("member_a").post(url("self_assessment", cycle), {"text": "  "})
    assert response.status_code == 422
    assert "请填写自评内容。" in text_of(response)
    assert SelfAssessment.objects.count() == 0


def test_the_self_assessment_page_shows_the_text_and_the_periods_declarations(
    setup: Setup, client_for
) -> None:
    cycle = to_self_assessment(setup, open_cycle(setup))
    client = client_for("member_a")
    client.post(url("self_assessment", cycle), {"text": "第一稿"})
    client.post(url("self_assessment", cycle), {"text": "修改稿"})
    response = client.get(url("self_assessment", cycle))
    page = response.content.decode()
    assert "\n修改稿</textarea>" in page
    assert SelfAssessment.objects.get(cycle=cycle, member=setup.zhang).text == "修改稿"
    declarations = re.search(r'data-testid="declarations">(.*?)</ul>', page, re.S).group(1)
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", declarations)).split() == [
        "研讨发言",
        "2025-05-12",
        "待审核",
        "+5",
    ]
    assert 'href="/me/declare/"' in page
    assert 'href="/me/declarations/"' in page


# --- reopen ----------------------------------------------------------------------------------


def test_staff_reopen_with_a_reason_unlocks_the_period_and_writes_the_timeline(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    # given
    cycle = to_finalized(setup, open_cycle(setup), django_capture_on_commit_callbacks)
    assert (
        PeriodLock.objects.filter(organization=setup.branch, year=YEAR, quarter=QUARTER).count()
        == 1
    )
    before = events(cycle)
    client = client_for("committee_staff")
    assert 'data-testid="reopen-form"' in client.get(url("cycle", cycle)).content.decode()
    # when
    response = client.post(url("cycle_reopen", cycle), {"reason": "发现张三的积分漏记"})
    # then
    assert response.status_code == 302
    assert flash(response) == ["已重新打开2025年第2季度评议，退回支委初评。"]
    assert state_of(cycle) == State.COMMITTEE_REVIEW
    assert (
        PeriodLock.objects.filter(organization=setup.branch, year=YEAR, quarter=QUARTER).count()
        == 0
    )
    assert ReviewCycle.objects.get(pk=cycle.pk).finalized_at is None
    assert events(cycle) == [
        *before,
        (Action.REOPEN, "finalized", "committee_review", "committee_staff", "发现张三的积分漏记"),
    ]
    page = text_of(client.get(url("cycle", cycle)))
    assert "重新打开 确认归档 → 支委初评 发现张三的积分漏记" in page


def test_staff_reopen_without_a_reason_is_refused(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    cycle = to_finalized(setup, open_cycle(setup), django_capture_on_commit_callbacks)
    before = events(cycle)
    response = client_for("committee_staff").post(url("cycle_reopen", cycle), {"reason": " "})
    assert response.status_code == 422
    assert "重新打开已归档的期间须填写原因。" in text_of(response)
    assert state_of(cycle) == State.FINALIZED
    assert (
        PeriodLock.objects.filter(organization=setup.branch, year=YEAR, quarter=QUARTER).count()
        == 1
    )
    assert events(cycle) == before


@pytest.mark.parametrize(("user_key", "expected"), [("secretary_a", 403), ("secretary_b", 404)])
def test_a_secretary_may_not_reopen(
    setup: Setup, client_for, django_capture_on_commit_callbacks, user_key: str, expected: int
) -> None:
    # given
    cycle = to_finalized(setup, open_cycle(setup), django_capture_on_commit_callbacks)
    before = events(cycle)
    client = client_for(user_key)
    # when
    response = client.post(url("cycle_reopen", cycle), {"reason": "想改分"})
    # then
    assert response.status_code == expected
    if expected == 403:
        assert NO_RIGHT_A in text_of(response)
        assert 'data-testid="reopen-form"' not in client.get(url("cycle", cycle)).content.decode()
    assert state_of(cycle) == State.FINALIZED
    assert (
        PeriodLock.objects.filter(organization=setup.branch, year=YEAR, quarter=QUARTER).count()
        == 1
    )
    assert events(cycle) == before


# --- acknowledgement -------------------------------------------------------------------------


def test_a_member_acknowledges_the_finalized_result(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    # given
    cycle = to_finalized(setup, open_cycle(setup), django_capture_on_commit_callbacks)
    client = client_for("member_a")
    page = client.get(url("acknowledge", cycle)).content.decode()
    assert re.search(r'data-testid="total">105<', page)
    assert re.search(r'data-testid="rank">1<', page)
    assert re.search(r'data-testid="star">三星<', page)
    assert "签字确认</button>" in page
    # when
    response = client.post(url("acknowledge", cycle))
    # then
    assert response.status_code == 302
    assert response["Location"] == f"/reviews/{cycle.pk}/acknowledge/"
    acknowledgement = Acknowledgement.objects.get(cycle=cycle, member=setup.zhang)
    at = timezone.localtime(acknowledgement.acknowledged_at).strftime("%Y-%m-%d %H:%M")
    assert f"已于 {at} 签字确认。" in text_of(client.get(url("acknowledge", cycle)))
    officer_page = client_for("secretary_a").get(url("cycle", cycle)).content.decode()
    assert re.search(r'data-testid="acknowledged-count">1 / 3<', officer_page)
    assert re.search(r'data-testid="not-acknowledged">\s*李四、王芳\s*<', officer_page)
    assert f'张三 <span class="text-muted">{at}</span>' in officer_page


def test_acknowledging_before_the_period_is_finalized_is_refused(setup: Setup, client_for) -> None:
    cycle = open_cycle(setup)
    response = client_for("member_a").post(url("acknowledge", cycle))
    assert response.status_code == 422
    assert "评议确认归档后才能签字确认。" in text_of(response)
    assert Acknowledgement.objects.count() == 0


def test_my_reviews_offers_what_the_member_can_do_now(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    # given: Q1 finalized, Q2 in self-assessment
    finalized = to_finalized(
        setup, open_cycle(setup, quarter=1), django_capture_on_commit_callbacks
    )
    current = to_self_assessment(setup, open_cycle(setup, quarter=QUARTER))
    # when
    response = client_for("member_a").get(url("my_reviews"))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    q2 = re.search(rf'data-testid="cycle-{current.pk}">(.*?)</li>', page, re.S).group(1)
    q1 = re.search(rf'data-testid="cycle-{finalized.pk}">(.*?)</li>', page, re.S).group(1)
    assert f'href="/reviews/{current.pk}/self-assessment/">填写自评</a>' in q2
    assert f'href="/reviews/{finalized.pk}/acknowledge/">查看结果并签字确认</a>' in q1
    assert page.index(f"cycle-{current.pk}") < page.index(f"cycle-{finalized.pk}")


def test_my_reviews_sends_a_login_without_roster_entry_to_no_role(setup: Setup, client_for) -> None:
    response = client_for("no_role").get(url("my_reviews"))
    assert response.status_code == 302
    assert response["Location"] == "/no-role/"


# --- the committee review --------------------------------------------------------------------


def test_the_committee_page_sets_each_member_side_by_side(setup: Setup, client_for) -> None:
    # given
    cycle = to_self_assessment(setup, open_cycle(setup))
    services.self_assessment_submit(user=setup.users["member_a"], cycle=cycle, text="认真学习")
    cycle = advance(setup, cycle)
    # when
    response = client_for("secretary_a").get(url("committee_review", cycle))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'data-testid="pending-count">1<', page)
    row = re.search(rf'data-testid="member-{setup.zhang.pk}">(.*?)</tr>', page, re.S).group(1)
    cells = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]
    assert cells[:8] == [
        "张三 正式党员",
        "认真学习 认真学习",
        "研讨发言 +5 待审核",
        "0",
        "0",
        "0",
        "100",
        "2",
    ]
    # every member not yet agreed is ticked
    assert sorted(re.findall(r'name="agree" value="(\d+)"[^>]*checked', page)) == sorted(
        str(member.pk) for member in setup.roster()
    )


def test_agreeing_some_members_unticks_them_and_keeps_the_note(setup: Setup, client_for) -> None:
    cycle = to_committee_review(setup, open_cycle(setup))
    client = client_for("secretary_a")
    response = client.post(
        url("committee_agree", cycle),
        {"agree": [setup.wang.pk], f"note-{setup.wang.pk}": "按时参会"},
    )
    assert response.status_code == 302
    assert ScoreAgreement.objects.get(cycle=cycle).proposed_total == Decimal("102.00")
    page = client.get(url("committee_review", cycle)).content.decode()
    assert sorted(re.findall(r'name="agree" value="(\d+)"[^>]*checked', page)) == sorted(
        [str(setup.zhang.pk), str(setup.li.pk)]
    )
    assert f'name="note-{setup.wang.pk}" value="按时参会"' in page
    assert re.search(r'data-testid="agreed-count">1 / 3<', page)


def test_agreeing_outside_the_committee_review_is_refused(setup: Setup, client_for) -> None:
    cycle = to_self_assessment(setup, open_cycle(setup))
    response = client_for("secretary_a").post(
        url("committee_agree", cycle), {"agree": [setup.wang.pk]}
    )
    assert response.status_code == 422
    assert "只有在支委初评阶段才能确认初评积分。" in text_of(response)
    assert ScoreAgreement.objects.count() == 0


def test_a_secretary_may_not_decide_their_own_declaration(setup: Setup, client_for) -> None:
    # given: 李四 (the secretary) declared for himself
    own = declare(setup.users["secretary_a"], setup.li, setup.speech)
    cycle = to_committee_review(setup, open_cycle(setup))
    # when
    response = client_for("secretary_a").post(
        url("committee_decide", cycle, declaration_pk=own.pk),
        {"decision": "approve", "points": "5", "reason": ""},
    )
    # then
    assert response.status_code == 403
    assert "不能审核本人的申报。" in text_of(response)
    assert Declaration.objects.get(pk=own.pk).status == Declaration.Status.PENDING
    assert Entry.objects.filter(declaration=own).count() == 0


def test_an_adjustment_without_a_reason_is_refused_and_keeps_the_points(
    setup: Setup, client_for
) -> None:
    cycle = to_committee_review(setup, open_cycle(setup))
    response = client_for("discipline_a").post(
        url("committee_decide", cycle, declaration_pk=setup.declaration.pk),
        {"decision": "approve", "points": "8", "reason": ""},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "调整分值时请填写调整原因。" in text_of(response)
    assert 'name="points" class="form-control" value="8"' in page
    assert Declaration.objects.get(pk=setup.declaration.pk).status == Declaration.Status.PENDING


def test_the_meeting_without_attendees_is_refused_and_keeps_the_notes(
    setup: Setup, client_for
) -> None:
    cycle = to_committee_review(setup, open_cycle(setup))
    before = events(cycle)
    response = client_for("secretary_a").post(
        url("committee_meeting", cycle),
        {"meeting_date": today().isoformat(), "notes": "逐人过分"},
    )
    assert response.status_code == 422
    assert "请选择出席会议的支委。" in text_of(response)
    assert "\n逐人过分</textarea>" in response.content.decode()
    assert CommitteeMeeting.objects.count() == 0
    assert events(cycle) == before


def test_annual_appraisals_are_recorded_for_a_weighted_scheme(
    tree: Tree, users, members, client_for, django_capture_on_commit_callbacks
) -> None:
    # given: a scheme weighting 40% points + 30% democratic + 30% mass, the annual review
    scheme = make_scheme(
        tree,
        points_weight=Decimal("0.400"),
        democratic_weight=Decimal("0.300"),
        mass_weight=Decimal("0.300"),
    )
    speech, meeting_rule = add_rules(scheme)
    recompute_organization(tree.committee, YEAR)
    setup = Setup(tree, users, members, speech, meeting_rule, declaration=None)
    cycle = to_committee_review(setup, open_cycle(setup, quarter=0))
    client = client_for("secretary_a")
    assert 'id="appraisals"' in client.get(url("committee_review", cycle)).content.decode()
    # when: one row half filled → nothing saved, the problem named
    half = {
        f"democratic-{setup.zhang.pk}": "excellent",
        f"democratic-{setup.li.pk}": "competent",
        f"mass-{setup.li.pk}": "competent",
    }
    response = client.post(url("committee_appraisals", cycle), half)
    assert response.status_code == 422
    assert "张三：评议等次应为优秀、合格、基本合格或不合格。" in text_of(response)
    assert Appraisal.objects.count() == 0
    # when: every row filled
    ratings = {}
    for member in setup.roster():
        ratings[f"democratic-{member.pk}"] = "excellent"
        ratings[f"mass-{member.pk}"] = "competent"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("committee_appraisals", cycle), ratings)
    # then
    assert response.status_code == 302
    assert sorted(Appraisal.objects.values_list("member__name", "democratic", "mass")) == sorted(
        [(m.name, "excellent", "competent") for m in setup.roster()]
    )
    assert "本年度细则按民主评议和群众评议加权" not in " ".join(
        services.cycle_blockers(ReviewCycle.objects.get(pk=cycle.pk), today())
    )


# --- the general meeting ---------------------------------------------------------------------


def test_general_meeting_counts_that_do_not_add_up_are_refused_and_kept(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    cycle = to_committee_review(setup, open_cycle(setup))
    settle_committee(setup, cycle, django_capture_on_commit_callbacks)
    cycle = advance(setup, cycle)
    response = client_for("secretary_a").post(
        url("general_meeting", cycle),
        {
            "meeting_date": today().isoformat(),
            "voting_members": "2",
            "attendance": "3",
            "votes_for": "3",
            "votes_against": "0",
            "votes_abstain": "0",
        },
    )
    assert response.status_code == 422
    assert "实到人数不能多于有表决权党员人数。" in text_of(response)
    assert 'name="attendance" value="3"' in response.content.decode()
    assert GeneralMeeting.objects.count() == 0


def test_a_general_meeting_without_quorum_blocks_the_publicity(
    setup: Setup, client_for, django_capture_on_commit_callbacks
) -> None:
    cycle = to_committee_review(setup, open_cycle(setup))
    settle_committee(setup, cycle, django_capture_on_commit_callbacks)
    cycle = advance(setup, cycle)
    client = client_for("secretary_a")
    client.post(
        url("general_meeting", cycle),
        {
            "meeting_date": today().isoformat(),
            "voting_members": "2",
            "attendance": "1",
            "votes_for": "0",
            "votes_against": "1",
            "votes_abstain": "0",
        },
    )
    before = events(cycle)
    response = client.post(url("cycle_advance", cycle), {"expected_state": "general_meeting"})
    assert response.status_code == 422
    errors = re.search(r'data-testid="advance-errors">(.*?)</ul>', response.content.decode(), re.S)
    assert re.findall(r"<li>([^<]+)</li>", errors.group(1)) == [
        "党员大会实到 1 人，未超过有表决权党员 2 人的半数，会议无效。",
        "党员大会表决未通过（赞成 0 票，未超过实到人数的半数）。",
    ]
    assert state_of(cycle) == State.GENERAL_MEETING
    assert events(cycle) == before


# --- notifications ---------------------------------------------------------------------------


def test_the_notifications_page_lists_newest_first_and_marks_them_read(
    setup: Setup, client_for
) -> None:
    # given
    user = setup.users["member_a"]
    older = Notification.objects.create(user=user, text="请提交自评", url="/me/reviews/")
    newer = Notification.objects.create(user=user, text="公示开始了", url="https://evil.example/")
    others = Notification.objects.create(user=setup.users["member_b"], text="别人的通知")
    client = client_for("member_a")
    nav = client.get(url("my_reviews")).content.decode()
    assert re.search(r'data-testid="unread-count">2<', nav)
    # when
    response = client.get(url("notifications"))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert re.findall(r'data-testid="notification-(\d+)"', page) == [str(newer.pk), str(older.pk)]
    assert page.count(">新</span>") == 2
    assert '<a href="/me/reviews/">请提交自评</a>' in page
    assert "evil.example" not in page  # only this site's links are followed
    assert "别人的通知" not in page
    assert Notification.objects.filter(user=user, read_at__isnull=True).count() == 0
    assert Notification.objects.get(pk=others.pk).read_at is None
    again = client.get(url("notifications")).content.decode()
    assert again.count(">新</span>") == 0
    assert 'data-testid="unread-count"' not in again


# --- the committee overview ------------------------------------------------------------------


def test_the_overview_shows_each_branchs_review_states_from_one_query(
    setup: Setup, client_for
) -> None:
    # given
    to_self_assessment(setup, open_cycle(setup))
    open_cycle(setup, quarter=0)
    client = client_for("committee_staff")
    # when
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("members:overview") + f"?year={YEAR}")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    branch_a, branch_b = setup.branch.pk, setup.tree.branch_b.pk
    badges = dict(re.findall(rf'data-testid="review-{branch_a}-(\d)">([^<]+)<', page))
    assert badges == {
        "1": "Q1 未开始",
        "2": "Q2 党员自评",
        "3": "Q3 未开始",
        "4": "Q4 未开始",
        "0": "年度 记录中",
    }
    assert re.findall(rf'data-testid="review-{branch_b}-\d">([^<]+)<', page) == [
        "Q1 未开始",
        "Q2 未开始",
        "Q3 未开始",
        "Q4 未开始",
        "年度 未开始",
    ]
    cycle_queries = [
        q["sql"] for q in captured.captured_queries if "reviews_reviewcycle" in q["sql"]
    ]
    assert len(cycle_queries) == 1


# --- constant queries ------------------------------------------------------------------------


def grow_branch(setup: Setup, cycle: ReviewCycle, extra: int) -> None:
    """``extra`` more members, each with a self-assessment, a pending declaration and a
    computed score; the committee agreed the first members' scores."""
    for number in range(extra):
        user = User.objects.create(username=f"extra{number}")
        member = MemberFactory(organization=setup.branch, user=user, name=f"党员{number:02d}")
        declare(user, member, setup.speech)
        SelfAssessment.objects.create(cycle=cycle, member=member, text="自评")
    recompute_organization(setup.tree.committee, YEAR)
    ScoreAgreement.objects.bulk_create(
        ScoreAgreement(
            cycle=cycle,
            member=member,
            proposed_total=Decimal("100"),
            agreed_by=setup.users["secretary_a"],
        )
        for member in Member.objects.filter(organization=setup.branch)[:2]
    )


@pytest.mark.parametrize("name", ["committee_review", "cycle"])
def test_the_page_costs_the_same_queries_for_3_and_30_members(
    setup: Setup, client_for, django_assert_num_queries, name: str
) -> None:
    # given: 3 members
    cycle = to_committee_review(setup, open_cycle(setup))
    services.committee_meeting_record(
        user=setup.users["secretary_a"], cycle=cycle, meeting_date=today(), attendees=[setup.li]
    )
    client = client_for("secretary_a")
    with CaptureQueriesContext(connection) as few:
        assert client.get(url(name, cycle)).status_code == 200
    # when: 27 more, with their assessments, declarations and scores
    grow_branch(setup, cycle, 27)
    # then
    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(url(name, cycle))
    assert response.status_code == 200
    assert Member.objects.filter(organization=setup.branch).count() == 30
    if name == "committee_review":
        assert re.search(r'data-testid="pending-count">28<', response.content.decode())
