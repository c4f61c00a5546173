"""Demo review cycles: last year's quarters and year finalized, this year's past quarters
finalized, the current quarter at self-assessment — driven through the same services the
pages use, so every rule (meetings, quorum, windows, locks) is applied."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from members.models import Member, Organization, Role
from scoring import services as scoring_services
from scoring.recompute import recompute_organization

from . import services
from .models import ReviewCycle

State = ReviewCycle.State


def _secretary(branch: Organization) -> User:
    return User.objects.get(party_roles__organization=branch, party_roles__post=Role.Post.SECRETARY)


def general_meeting_record_unanimous(*, user: User, cycle: ReviewCycle, meeting_date: date) -> None:
    """Record a general meeting at which every active full member of the branch has the
    vote, attends and votes for (prepared data: the load benchmark and the tests)."""
    voting = Member.objects.filter(
        organization=cycle.organization,
        category=Member.Category.FULL,
        status=Member.Status.ACTIVE,
    ).count()
    services.general_meeting_record(
        user=user,
        cycle=cycle,
        meeting_date=meeting_date,
        voting_members=voting,
        attendance=voting,
        votes_for=voting,
        votes_against=0,
        votes_abstain=0,
    )


def _finalize(cycle: ReviewCycle, secretary: User, period_end: date, today: date) -> None:
    """Walk a cycle of a past period from open to finalized, dated after the period."""
    branch = cycle.organization
    publicity_start = min(period_end + timedelta(days=10), today - timedelta(days=6))
    if cycle.state == State.OPEN:
        services.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today)
        cycle = services.cycle_advance(user=secretary, cycle=cycle, expected_state=State.OPEN)
    if cycle.state == State.SELF_ASSESSMENT:
        cycle = services.cycle_advance(
            user=secretary, cycle=cycle, expected_state=State.SELF_ASSESSMENT
        )
    if cycle.state == State.COMMITTEE_REVIEW:
        for declaration in services.pending_declarations(cycle):
            scoring_services.declaration_approve(user=secretary, declaration=declaration)
        officers = list(
            Member.objects.filter(
                organization=branch, user__party_roles__organization=branch
            ).distinct()
        )
        services.committee_meeting_record(
            user=secretary,
            cycle=cycle,
            meeting_date=publicity_start - timedelta(days=5),
            attendees=officers,
            notes="逐条审核积分申报，确认党员初评积分。",
        )
        services.scores_agree(
            user=secretary, cycle=cycle, members=list(services.ranked_members(branch))
        )
        cycle = services.cycle_advance(
            user=secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW
        )
    if cycle.state == State.GENERAL_MEETING:
        with_vote = (
            Member.objects.filter(organization=branch, category=Member.Category.FULL)
            .exclude(status=Member.Status.TRANSFERRED_OUT)
            .count()
        )
        present = max(with_vote - 2, with_vote // 2 + 1)
        services.general_meeting_record(
            user=secretary,
            cycle=cycle,
            meeting_date=publicity_start - timedelta(days=2),
            voting_members=with_vote,
            attendance=present,
            votes_for=present,
            votes_against=0,
            votes_abstain=0,
        )
        cycle = services.cycle_advance(
            user=secretary,
            cycle=cycle,
            expected_state=State.GENERAL_MEETING,
            publicity_starts_on=publicity_start,
            today=publicity_start,
        )
    if cycle.state == State.PUBLICITY:
        cycle = services.cycle_advance(
            user=secretary,
            cycle=cycle,
            expected_state=State.PUBLICITY,
            today=cycle.publicity_ends_on + timedelta(days=1),
        )
    for member in Member.objects.filter(organization=branch, user__isnull=False):
        if not member.user.party_roles.exists():  # the demo members with a phone login
            services.acknowledge(user=member.user, cycle=cycle)


@transaction.atomic
def seed_demo_reviews(committee: Organization, today: date) -> int:
    """The demo committee's review cycles; returns how many were created (0 on a re-run)."""
    created = 0
    current_quarter = (today.month - 1) // 3 + 1
    periods = [(today.year - 1, quarter) for quarter in (1, 2, 3, 4, 0)]
    periods += [(today.year, quarter) for quarter in range(1, current_quarter)]
    branches = Organization.objects.filter(
        path__startswith=committee.path, kind=Organization.Kind.BRANCH
    ).order_by("path")
    for branch in branches:
        secretary = _secretary(branch)
        for year, quarter in periods:
            if ReviewCycle.objects.filter(organization=branch, year=year, quarter=quarter).exists():
                continue
            cycle = services.cycle_open(user=secretary, branch=branch, year=year, quarter=quarter)
            _, period_end = services.period_bounds(year, quarter)
            with scoring_services.recomputes_deferred():
                _finalize(cycle, secretary, period_end, today)
            created += 1
        if not ReviewCycle.objects.filter(
            organization=branch, year=today.year, quarter=current_quarter
        ).exists():
            cycle = services.cycle_open(
                user=secretary, branch=branch, year=today.year, quarter=current_quarter
            )
            services.cycle_set_deadline(
                user=secretary, cycle=cycle, deadline=today + timedelta(days=7)
            )
            services.cycle_advance(user=secretary, cycle=cycle, expected_state=State.OPEN)
            created += 1
    if created:
        # Declarations approved on the way were recorded with recomputes deferred.
        for year in (today.year - 1, today.year):
            recompute_organization(committee, year)
    return created
