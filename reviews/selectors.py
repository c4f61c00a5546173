"""Reads for the review pages, each a constant number of queries whatever the branch size.

Views check rights first (through ``members.permissions``); these only load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Prefetch, QuerySet
from django.utils.translation import gettext_lazy as _

from members.models import Member, Organization, Role
from scoring.models import Declaration, PeriodScore

from .models import (
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
from .services import pending_declarations, period_bounds, scored_members

State = ReviewCycle.State

# The order a cycle moves through (the step indicator walks it).
STEPS: tuple[str, ...] = (
    State.OPEN,
    State.SELF_ASSESSMENT,
    State.COMMITTEE_REVIEW,
    State.GENERAL_MEETING,
    State.PUBLICITY,
    State.FINALIZED,
)
# Quarters 1–4, then the annual review (0): the order of every period list.
PERIODS: tuple[int, ...] = (1, 2, 3, 4, 0)

STATE_BADGES: dict[str, str] = {
    State.OPEN: "text-bg-secondary",
    State.SELF_ASSESSMENT: "text-bg-info",
    State.COMMITTEE_REVIEW: "text-bg-primary",
    State.GENERAL_MEETING: "text-bg-warning",
    State.PUBLICITY: "text-bg-danger",
    State.FINALIZED: "text-bg-success",
}
NOT_STARTED_BADGE = "text-bg-light border"
# The posts of the branch committee 支委会 (who attend its review meeting).
COMMITTEE_POSTS = (
    Role.Post.SECRETARY,
    Role.Post.DEPUTY_SECRETARY,
    Role.Post.ORGANIZATION_COMMISSIONER,
    Role.Post.DISCIPLINE_COMMISSIONER,
    Role.Post.COMMITTEE_MEMBER,
)


def period_name(quarter: int) -> str:
    return (
        str(_("年度评议")) if quarter == 0 else str(_("第%(quarter)s季度") % {"quarter": quarter})
    )


def user_display(user: User | None) -> str:
    """How a person is named on the pages: their full name, else the login; None is the system."""
    if user is None:
        return str(_("系统"))
    return user.get_full_name() or user.username


# --- cycles ----------------------------------------------------------------------------------


def cycle_queryset() -> QuerySet[ReviewCycle]:
    return ReviewCycle.objects.select_related("organization")


@dataclass(frozen=True)
class PeriodRow:
    """One period of a branch's year on the cycles page: its cycle, or None if not started."""

    year: int
    quarter: int
    cycle: ReviewCycle | None

    @property
    def name(self) -> str:
        return period_name(self.quarter)

    @property
    def badge_class(self) -> str:
        return STATE_BADGES[self.cycle.state] if self.cycle else NOT_STARTED_BADGE

    @property
    def state_label(self) -> str:
        return self.cycle.get_state_display() if self.cycle else str(_("未开始"))


def branch_periods(branch: Organization, year: int) -> list[PeriodRow]:
    """Q1–Q4 and the annual review of a branch's year, each with its cycle if started."""
    cycles = {
        cycle.quarter: cycle for cycle in cycle_queryset().filter(organization=branch, year=year)
    }
    return [PeriodRow(year=year, quarter=quarter, cycle=cycles.get(quarter)) for quarter in PERIODS]


def review_states(branch_ids: Iterable[int], year: int) -> dict[tuple[int, int], str]:
    """{(branch id, quarter — 0 for the annual review): state} of every started cycle, one query."""
    rows = ReviewCycle.objects.filter(organization_id__in=list(branch_ids), year=year).values_list(
        "organization_id", "quarter", "state"
    )
    return {(branch_id, quarter): state for branch_id, quarter, state in rows}


@dataclass(frozen=True)
class PeriodBadge:
    """A compact state badge of one period (the committee overview)."""

    quarter: int
    state: str | None

    @property
    def name(self) -> str:
        return str(_("年度")) if self.quarter == 0 else f"Q{self.quarter}"

    @property
    def badge_class(self) -> str:
        return STATE_BADGES[self.state] if self.state else NOT_STARTED_BADGE

    @property
    def state_label(self) -> str:
        return State(self.state).label if self.state else str(_("未开始"))


def period_badges(states: dict[tuple[int, int], str], branch_id: int) -> list[PeriodBadge]:
    """One branch's badges for Q1–Q4 and the year, from ``review_states`` (no query)."""
    return [PeriodBadge(quarter, states.get((branch_id, quarter))) for quarter in PERIODS]


@dataclass(frozen=True)
class Step:
    state: str
    label: str
    is_done: bool
    is_current: bool


def steps(cycle: ReviewCycle) -> list[Step]:
    current = STEPS.index(cycle.state)
    return [
        Step(
            state=state,
            label=State(state).label,
            is_done=index < current or cycle.state == State.FINALIZED,
            is_current=index == current,
        )
        for index, state in enumerate(STEPS)
    ]


@dataclass(frozen=True)
class TimelineRow:
    event: CycleEvent

    @property
    def who(self) -> str:
        return user_display(self.event.user)


def timeline(cycle: ReviewCycle) -> list[TimelineRow]:
    events = (
        CycleEvent.objects.filter(cycle=cycle).select_related("user").order_by("created_at", "id")
    )
    return [TimelineRow(event=event) for event in events]


# --- who has done what -----------------------------------------------------------------------


@dataclass(frozen=True)
class MemberStatus:
    """A member and the time they did something (submitted, acknowledged), None if not yet."""

    member: Member
    done_at: datetime | None


def _roster(cycle: ReviewCycle) -> list[Member]:
    return list(scored_members(cycle.organization).order_by("name", "id"))


def self_assessment_status(cycle: ReviewCycle) -> list[MemberStatus]:
    submitted = dict(
        SelfAssessment.objects.filter(cycle=cycle).values_list("member_id", "updated_at")
    )
    return [MemberStatus(member, submitted.get(member.pk)) for member in _roster(cycle)]


def acknowledgement_status(cycle: ReviewCycle) -> list[MemberStatus]:
    acknowledged = dict(
        Acknowledgement.objects.filter(cycle=cycle).values_list("member_id", "acknowledged_at")
    )
    return [MemberStatus(member, acknowledged.get(member.pk)) for member in _roster(cycle)]


# --- the committee review --------------------------------------------------------------------


def cycle_pending_declarations(cycle: ReviewCycle) -> QuerySet[Declaration]:
    """The period's pending declarations, as ``services.pending_declarations`` counts them."""
    return (
        pending_declarations(cycle)
        .select_related("member", "rule", "declared_by")
        .prefetch_related("evidence")
        .order_by("member__name", "declared_at", "id")
    )


def period_declarations(cycle: ReviewCycle) -> QuerySet[Declaration]:
    """Every declaration of the branch's members dated in the cycle's period."""
    first, last = period_bounds(cycle.year, cycle.quarter)
    return (
        Declaration.objects.filter(
            member__organization=cycle.organization, occurred_on__range=(first, last)
        )
        .select_related("rule", "entry")
        .order_by("occurred_on", "id")
    )


@dataclass
class CommitteeRow:
    """One member side by side: what they wrote, what they declared, what the ledger gives."""

    member: Member
    self_assessment: SelfAssessment | None
    declarations: list[Declaration]
    score: PeriodScore | None
    agreement: ScoreAgreement | None
    appraisal: Appraisal | None

    @property
    def is_ranked(self) -> bool:
        return self.member.is_ranked


@dataclass
class CommitteeReview:
    rows: list[CommitteeRow]
    meeting: CommitteeMeeting | None
    attendee_ids: set[int] = field(default_factory=set)
    officer_member_ids: set[int] = field(default_factory=set)

    @property
    def missing_scores(self) -> list[Member]:
        return [row.member for row in self.rows if row.score is None]


def committee_review(cycle: ReviewCycle) -> CommitteeReview:
    members = _roster(cycle)
    member_ids = [member.pk for member in members]
    assessments = {
        assessment.member_id: assessment
        for assessment in SelfAssessment.objects.filter(cycle=cycle)
    }
    declarations: dict[int, list[Declaration]] = {}
    for declaration in period_declarations(cycle):
        declarations.setdefault(declaration.member_id, []).append(declaration)
    scores = {
        score.member_id: score
        for score in PeriodScore.objects.filter(
            member_id__in=member_ids, year=cycle.year, quarter=cycle.quarter
        )
    }
    agreements = {
        agreement.member_id: agreement
        for agreement in ScoreAgreement.objects.filter(cycle=cycle).select_related("agreed_by")
    }
    appraisals = (
        {appraisal.member_id: appraisal for appraisal in Appraisal.objects.filter(cycle=cycle)}
        if cycle.is_annual
        else {}
    )
    meeting = (
        CommitteeMeeting.objects.filter(cycle=cycle)
        .select_related("recorded_by")
        .prefetch_related(Prefetch("attendees", queryset=Member.objects.only("id", "name")))
        .first()
    )
    # The branch officers with a roster entry: the meeting's attendees until one is recorded.
    officer_member_ids = set(
        Member.objects.filter(
            organization=cycle.organization,
            user__party_roles__organization=cycle.organization,
            user__party_roles__post__in=COMMITTEE_POSTS,
        ).values_list("id", flat=True)
    )
    return CommitteeReview(
        rows=[
            CommitteeRow(
                member=member,
                self_assessment=assessments.get(member.pk),
                declarations=declarations.get(member.pk, []),
                score=scores.get(member.pk),
                agreement=agreements.get(member.pk),
                appraisal=appraisals.get(member.pk),
            )
            for member in members
        ],
        meeting=meeting,
        attendee_ids={member.pk for member in meeting.attendees.all()} if meeting else set(),
        officer_member_ids=officer_member_ids,
    )


def general_meeting_of(cycle: ReviewCycle) -> GeneralMeeting | None:
    return GeneralMeeting.objects.filter(cycle=cycle).select_related("recorded_by").first()


def voting_member_count(cycle: ReviewCycle) -> int:
    """A suggestion for the general meeting form: full members have the vote (probationary
    members, development targets and activists do not)."""
    return scored_members(cycle.organization).filter(category=Member.Category.FULL).count()


# --- the member's side -----------------------------------------------------------------------


def member_period_declarations(member: Member, cycle: ReviewCycle) -> QuerySet[Declaration]:
    first, last = period_bounds(cycle.year, cycle.quarter)
    return (
        Declaration.objects.filter(member=member, occurred_on__range=(first, last))
        .select_related("rule", "entry")
        .order_by("-occurred_on", "-id")
    )


def member_period_score(member: Member, cycle: ReviewCycle) -> PeriodScore | None:
    return PeriodScore.objects.filter(member=member, year=cycle.year, quarter=cycle.quarter).first()


@dataclass(frozen=True)
class MyCycle:
    """A cycle of the member's branch with what the member has done in it."""

    cycle: ReviewCycle
    self_assessed_at: datetime | None
    acknowledged_at: datetime | None

    @property
    def badge_class(self) -> str:
        return STATE_BADGES[self.cycle.state]

    @property
    def is_self_assessment_open(self) -> bool:
        return self.cycle.state in (State.OPEN, State.SELF_ASSESSMENT)

    @property
    def is_publicity(self) -> bool:
        return self.cycle.state == State.PUBLICITY

    @property
    def is_finalized(self) -> bool:
        return self.cycle.state == State.FINALIZED


def member_cycles(member: Member) -> list[MyCycle]:
    cycles = list(
        cycle_queryset().filter(organization=member.organization).order_by("-year", "-quarter")
    )
    assessed = dict(
        SelfAssessment.objects.filter(member=member, cycle__in=cycles).values_list(
            "cycle_id", "updated_at"
        )
    )
    acknowledged = dict(
        Acknowledgement.objects.filter(member=member, cycle__in=cycles).values_list(
            "cycle_id", "acknowledged_at"
        )
    )
    return [
        MyCycle(
            cycle=cycle,
            self_assessed_at=assessed.get(cycle.pk),
            acknowledged_at=acknowledged.get(cycle.pk),
        )
        for cycle in cycles
    ]


# --- notifications ---------------------------------------------------------------------------


def user_notifications(user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def unread_notification_count(user: User | AnonymousUser) -> int:
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
