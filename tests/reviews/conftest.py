"""Fixtures of the review tests: a committee with a scheme, one or two branches with their
officers (secretary, recorder, discipline commissioner, committee member) and ordinary
members, the committee's staff, and helpers that drive a cycle through the services with
the on-commit work (recompute, notifications) run in-process.

The period under review is the quarter of today (``timezone.localdate()``): every entry is
dated on its first day, which is never in the future. A publicity window that "has ended" is
simulated by moving the cycle's window dates into the past (``ReviewCycle`` is not
append-only).

Tests marked ``postgres`` (they need ``transactional_db``: the append-only ledger makes
SQLite's teardown flush fail) and ``worker`` (a real Celery worker on a real broker) are
deselected where their backend is missing; pytest reports them as deselected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from members.models import Member, Organization, Role
from members.services import member_create, organization_add, role_assign
from reviews import services as reviews
from reviews.models import CycleEvent, ReviewCycle
from scoring import recompute
from scoring import services as scoring
from scoring.models import Entry, PeriodLock, Rule, Scheme, quarter_of
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import UserFactory
from tests.scoring.conftest import Rules, make_rules

State = ReviewCycle.State


# --- dates ----------------------------------------------------------------------------------


def today() -> date:
    return timezone.localdate()


def period_start(day: date | None = None) -> date:
    """The first day of the quarter of ``day`` (today by default): the day entries are dated."""
    day = day or today()
    return date(day.year, 3 * (quarter_of(day) - 1) + 1, 1)


# --- the people -----------------------------------------------------------------------------

# key → (name, post held in the branch or None, has a login, e-mail)
PEOPLE: dict[str, tuple[str, str | None, bool, str]] = {
    "secretary": ("李书记", Role.Post.SECRETARY, True, "secretary@example.org"),
    "recorder": ("王记录", Role.Post.RECORDER, True, ""),
    "commissioner": ("赵纪检", Role.Post.DISCIPLINE_COMMISSIONER, True, ""),
    "committee_member": ("钱支委", Role.Post.COMMITTEE_MEMBER, True, ""),
    "zhang": ("张三", None, True, "zhangsan@example.org"),
    "li": ("李四", None, True, ""),
    "sun": ("孙七", None, True, ""),
    "wang": ("王五", None, False, ""),  # on the roster, no login
}
WITH_LOGIN = [key for key, (_name, _post, login, _email) in PEOPLE.items() if login]


@dataclass
class Branch:
    """One branch with its officers (each also a member with a login) and ordinary members."""

    organization: Organization
    members: dict[str, Member]
    users: dict[str, User]

    def member(self, key: str) -> Member:
        return self.members[key]

    def user(self, key: str) -> User:
        return self.users[key]

    @property
    def secretary(self) -> User:
        return self.users["secretary"]

    @property
    def recorder(self) -> User:
        return self.users["recorder"]

    @property
    def commissioner(self) -> User:
        return self.users["commissioner"]

    @property
    def committee_member(self) -> User:
        return self.users["committee_member"]


@dataclass
class World:
    """A committee on a five-star scheme (base 100) for this year, its staff, and branches."""

    committee: Organization
    scheme: Scheme
    rules: Rules
    staff: User
    branches: list[Branch] = field(default_factory=list)
    year: int = 0
    quarter: int = 0

    @property
    def branch(self) -> Branch:
        return self.branches[0]


# Phones are unique across the roster of the whole database: number them for the session.
_phone_counter = [0]


def add_branch(committee: Organization, name: str, prefix: str) -> Branch:
    branch = organization_add(parent=committee, name=name, kind=Organization.Kind.BRANCH)
    members: dict[str, Member] = {}
    users: dict[str, User] = {}
    for key, (person, post, has_login, email) in PEOPLE.items():
        user = None
        if has_login:
            user = UserFactory(username=f"{prefix}_{key}", email=email)
            users[key] = user
            if post is not None:
                role_assign(user=user, organization=branch, post=post)
        _phone_counter[0] += 1
        members[key] = member_create(
            organization=branch,
            # The first branch's names are the ones the tests' messages spell out.
            name=person if prefix == "a" else f"{person}{prefix}",
            phone=f"135{_phone_counter[0]:08d}",
            category=Member.Category.FULL,
            is_cadre=post is not None,
            user=user,
        )
    return Branch(organization=branch, members=members, users=users)


def build_world(branch_count: int = 1, **scheme_fields) -> World:
    day = today()
    committee = organization_add(parent=None, name="测试党委", kind=Organization.Kind.COMMITTEE)
    scheme = scheme_create_from_preset(
        owner=committee,
        year=day.year,
        name="五星积分细则",
        preset="five_stars_base_100",
        top_n_flag=0,
        bottom_n_flag=0,
        **scheme_fields,
    )
    scheme_adopt(organization=committee, scheme=scheme)
    staff = UserFactory(username="committee_staff", email="staff@example.org")
    role_assign(user=staff, organization=committee, post=Role.Post.STAFF)
    names = ["第一党支部", "第二党支部", "第三党支部"]
    branches = [add_branch(committee, names[i], "abc"[i]) for i in range(branch_count)]
    return World(
        committee=Organization.objects.get(pk=committee.pk),
        scheme=scheme,
        rules=make_rules(scheme),
        staff=staff,
        branches=branches,
        year=day.year,
        quarter=quarter_of(day),
    )


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def two_branches(db) -> World:
    return build_world(branch_count=2)


# --- running what a commit would run --------------------------------------------------------


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable:
    """``with committed(): service(...)`` runs, after the block, what the block enqueued on
    commit (recompute, notifications), eagerly — as after a real commit.

    The callbacks are called here rather than by ``execute=True``: those services enqueue
    with ``robust=True``, which Django's capture would log and swallow, so a failing
    recompute or notification would go unnoticed."""

    @contextmanager
    def run() -> Iterator[None]:
        with django_capture_on_commit_callbacks() as callbacks:
            yield
        pending = list(callbacks)
        while pending:
            with django_capture_on_commit_callbacks() as more:
                for callback in pending:
                    callback()
            pending = list(more)

    return run


# --- driving a cycle ------------------------------------------------------------------------


def record(world: World, branch: Branch, key: str, rule: Rule, points: str | None = None) -> Entry:
    """The branch recorder records an entry for member ``key``, dated on the period's first day."""
    return scoring.entry_record(
        user=branch.recorder,
        member=branch.member(key),
        rule=rule,
        occurred_on=period_start(),
        description=f"{rule.name}（{branch.member(key).name}）",
        points=Decimal(points) if points is not None else None,
    )


def fresh(cycle: ReviewCycle) -> ReviewCycle:
    return ReviewCycle.objects.get(pk=cycle.pk)


def open_cycle(
    world: World, branch: Branch | None = None, quarter: int | None = None
) -> ReviewCycle:
    branch = branch or world.branch
    return reviews.cycle_open(
        user=branch.secretary,
        branch=branch.organization,
        year=world.year,
        quarter=world.quarter if quarter is None else quarter,
    )


def drive_to(
    world: World, cycle: ReviewCycle, target: str, branch: Branch | None = None
) -> ReviewCycle:
    """Move ``cycle`` forward through the services, as its secretary, until it is in ``target``.

    Everything each step needs is recorded on the way: a deadline of today, the committee
    meeting and every ranked member's agreed score (after a recompute of the branch), a
    general meeting of 8 with 7 attending and 7 for; a publicity window starting today.
    To finalize, the window is first moved into the past (it ended yesterday)."""
    branch = branch or world.branch
    secretary = branch.secretary
    order = [state.value for state in State]
    while order.index(fresh(cycle).state) < order.index(target):
        cycle = fresh(cycle)
        if cycle.state == State.OPEN and cycle.self_assessment_deadline is None:
            reviews.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today())
        elif cycle.state == State.COMMITTEE_REVIEW:
            if not hasattr(cycle, "committee_meeting"):
                reviews.committee_meeting_record(
                    user=secretary,
                    cycle=cycle,
                    meeting_date=today(),
                    attendees=[branch.member(key) for key in ("secretary", "committee_member")],
                )
            recompute.recompute_organization(branch.organization, world.year)
            reviews.scores_agree(
                user=secretary,
                cycle=cycle,
                members=list(reviews.ranked_members(branch.organization)),
            )
        elif cycle.state == State.GENERAL_MEETING and not hasattr(cycle, "general_meeting"):
            reviews.general_meeting_record(
                user=secretary,
                cycle=cycle,
                meeting_date=today(),
                voting_members=8,
                attendance=7,
                votes_for=7,
                votes_against=0,
                votes_abstain=0,
            )
        elif cycle.state == State.PUBLICITY:
            end_window(cycle)
        cycle = fresh(cycle)
        reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=cycle.state)
    return fresh(cycle)


def end_window(cycle: ReviewCycle, days_ago: int = 1) -> None:
    """Move the cycle's publicity window so that it ended ``days_ago`` days ago."""
    ends = today() - timedelta(days=days_ago)
    ReviewCycle.objects.filter(pk=cycle.pk).update(
        publicity_starts_on=ends - timedelta(days=cycle.publicity_days - 1),
        publicity_ends_on=ends,
    )


@dataclass(frozen=True)
class Snapshot:
    """What a refused move must leave as it was."""

    state: str
    events: int
    locks: int  # of the cycle's branch
    deadline: date | None
    publicity: tuple[date | None, date | None]
    finalized_at: object
    reported_at: object


def snapshot(cycle: ReviewCycle) -> Snapshot:
    cycle = fresh(cycle)
    return Snapshot(
        state=cycle.state,
        events=CycleEvent.objects.filter(cycle=cycle).count(),
        locks=PeriodLock.objects.filter(organization=cycle.organization).count(),
        deadline=cycle.self_assessment_deadline,
        publicity=(cycle.publicity_starts_on, cycle.publicity_ends_on),
        finalized_at=cycle.finalized_at,
        reported_at=cycle.reported_at,
    )


def timeline(cycle: ReviewCycle) -> list[tuple[str, str, str, str | None, str]]:
    """(action, from, to, username, note) of every event, in order."""
    return [
        (
            event.action,
            event.from_state,
            event.to_state,
            event.user.username if event.user else None,
            event.note,
        )
        for event in CycleEvent.objects.filter(cycle=cycle).select_related("user")
    ]
