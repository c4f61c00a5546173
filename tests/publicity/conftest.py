"""Fixtures of the publicity tests: branch A of the shared tree on a five-star scheme (base
100) for last year, a few entries in its fourth quarter, and a review cycle of that quarter
driven through reviews.services to the state a test needs. Recomputes run eagerly on commit.

Last year's fourth quarter is always in the past, so no entry is "in the future" whatever
day the suite runs, and the publicity window (which starts today) is always open.

Tests marked ``postgres`` (two connections racing for a row lock, on committed data: the
append-only ledger lets ``transactional_db`` flush on PostgreSQL only) are deselected on
SQLite; pytest reports them as deselected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from members.models import Member
from reviews import services as review_services
from reviews.demo import general_meeting_record_unanimous
from reviews.models import ReviewCycle
from scoring import services as scoring_services
from scoring.models import Entry, PeriodScore, Rule, RuleCategory, Scheme
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import Tree

YEAR = timezone.localdate().year - 1
QUARTER = 4


def in_quarter(month_in_quarter: int, day: int) -> date:
    return date(YEAR, 3 * (QUARTER - 1) + month_in_quarter, day)


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable:
    """``committed(service, **kwargs)``: call a service and run what it enqueued on commit."""

    def run(service: Callable, /, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return run


@dataclass
class Rules:
    speech: Rule  # 研讨发言 +5
    lecture: Rule  # 讲微党课 +50
    volunteer: Rule  # 志愿服务 +1..+10
    task: Rule  # 未完成支部任务 −10..−2


@dataclass
class Board:
    """Branch A with 张三 (member_a), 李四 (secretary_a) and 王芳 (other_a) and their entries:

    张三: 讲微党课 +50 (the entry he objects to) and 研讨发言 +5 → 155, rank 1, 五星
    李四: 讲微党课 +50 → 150, rank 2, 五星
    王芳: 研讨发言 +5 → 105, rank 3, 三星
    """

    tree: Tree
    scheme: Scheme
    rules: Rules
    users: dict[str, User]
    members: dict[str, Member]
    lecture: Entry  # 张三's 讲微党课, dated in_quarter(1, 15)
    speech: Entry  # 张三's 研讨发言, dated in_quarter(2, 3)
    others: dict[str, Entry]

    @property
    def branch(self):
        return self.tree.branch_a


def make_rules(scheme: Scheme) -> Rules:
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    discipline = RuleCategory.objects.create(scheme=scheme, name="纪律规矩不严明", position=2)

    def rule(category, code, name, kind, low, high) -> Rule:
        return Rule.objects.create(
            scheme=scheme,
            category=category,
            code=code,
            name=name,
            kind=kind,
            points_min=Decimal(low),
            points_max=Decimal(high),
        )

    return Rules(
        speech=rule(study, "B01", "研讨发言", Rule.Kind.BONUS, "5", "5"),
        lecture=rule(study, "B02", "讲微党课", Rule.Kind.BONUS, "50", "50"),
        volunteer=rule(study, "B05", "志愿服务", Rule.Kind.BONUS, "1", "10"),
        task=rule(discipline, "D02", "未完成支部任务", Rule.Kind.DEDUCTION, "-10", "-2"),
    )


def record(
    committed: Callable,
    user: User,
    member: Member,
    rule: Rule,
    day: date,
    points: Decimal | None = None,
) -> Entry:
    return committed(
        scoring_services.entry_record,
        user=user,
        member=member,
        rule=rule,
        occurred_on=day,
        description=f"{rule.name}（{day.isoformat()}）",
        points=points,
    )


@pytest.fixture
def board(tree: Tree, users: dict[str, User], members: dict[str, Member], committed) -> Board:
    scheme = scheme_create_from_preset(
        owner=tree.committee,
        year=YEAR,
        name="五星积分细则",
        preset="five_stars_base_100",
        top_n_flag=0,
        bottom_n_flag=0,
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    rules = make_rules(scheme)
    secretary = users["secretary_a"]
    lecture = record(committed, secretary, members["member_a"], rules.lecture, in_quarter(1, 15))
    speech = record(committed, secretary, members["member_a"], rules.speech, in_quarter(2, 3))
    others = {
        "secretary_a": record(
            committed, secretary, members["secretary_a"], rules.lecture, in_quarter(1, 20)
        ),
        "other_a": record(committed, secretary, members["other_a"], rules.speech, in_quarter(3, 1)),
    }
    recompute_organization(tree.branch_a, YEAR)
    return Board(
        tree=tree,
        scheme=scheme,
        rules=rules,
        users=users,
        members=members,
        lecture=lecture,
        speech=speech,
        others=others,
    )


STATES_BEFORE_PUBLICITY = (
    ReviewCycle.State.OPEN,
    ReviewCycle.State.SELF_ASSESSMENT,
    ReviewCycle.State.COMMITTEE_REVIEW,
    ReviewCycle.State.GENERAL_MEETING,
)


def drive_cycle(
    board: Board, state: str, *, publicity_starts_on: date | None = None
) -> ReviewCycle:
    """The branch's review of last year's Q4, moved through the services to ``state``."""
    user = board.users["secretary_a"]
    today = timezone.localdate()
    branch = board.branch
    cycle = review_services.cycle_open(user=user, branch=branch, year=YEAR, quarter=QUARTER)
    if state == ReviewCycle.State.OPEN:
        return cycle
    review_services.cycle_set_deadline(user=user, cycle=cycle, deadline=today)
    cycle = review_services.cycle_advance(user=user, cycle=cycle, expected_state="open")
    if state == ReviewCycle.State.SELF_ASSESSMENT:
        return cycle
    cycle = review_services.cycle_advance(user=user, cycle=cycle, expected_state="self_assessment")
    review_services.committee_meeting_record(
        user=user, cycle=cycle, meeting_date=today, attendees=[board.members["secretary_a"]]
    )
    review_services.scores_agree(
        user=user, cycle=cycle, members=list(review_services.ranked_members(branch))
    )
    if state == ReviewCycle.State.COMMITTEE_REVIEW:
        return cycle
    cycle = review_services.cycle_advance(user=user, cycle=cycle, expected_state="committee_review")
    general_meeting_record_unanimous(user=user, cycle=cycle, meeting_date=today)
    if state == ReviewCycle.State.GENERAL_MEETING:
        return cycle
    cycle = review_services.cycle_advance(
        user=user,
        cycle=cycle,
        expected_state="general_meeting",
        publicity_starts_on=publicity_starts_on or today,
    )
    if state == ReviewCycle.State.PUBLICITY:
        return cycle
    return review_services.cycle_advance(
        user=user,
        cycle=cycle,
        expected_state="publicity",
        today=cycle.publicity_ends_on + timedelta(days=1),
    )


@pytest.fixture
def cycle(board: Board) -> ReviewCycle:
    """The review in publicity, the window opening today."""
    return drive_cycle(board, ReviewCycle.State.PUBLICITY)


def score_of(member: Member) -> PeriodScore:
    return PeriodScore.objects.get(member=member, year=YEAR, quarter=QUARTER)
