"""Reads of organizations and rosters, scoped through the permission module."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from .models import Member, Organization
from .permissions import Action, organizations_where


def roster_for(
    branch: Organization, *, category: str = "", status: str = "", search: str = ""
) -> QuerySet[Member]:
    members = Member.objects.filter(organization=branch).select_related("user")
    if category:
        members = members.filter(category=category)
    if status:
        members = members.filter(status=status)
    if search:
        members = members.filter(Q(name__icontains=search) | Q(phone__icontains=search))
    return members.order_by("name", "id")


def roster_counts(branch: Organization) -> dict[str, int]:
    """Head counts of the branch by category, for the roster page's summary line."""
    counts = dict(
        Member.objects.filter(organization=branch)
        .values_list("category")
        .annotate(total=Count("id"))
        .values_list("category", "total")
    )
    counts["all"] = sum(counts.values())
    return counts


def overview_organizations(user: User | AnonymousUser) -> QuerySet[Organization]:
    """Every organization the user oversees, in tree order, with each branch's head count."""
    return (
        organizations_where(user, Action.VIEW_OVERVIEW)
        .annotate(
            member_count=Count("members", filter=~Q(members__status=Member.Status.TRANSFERRED_OUT))
        )
        .order_by("path")
    )


def attach_review_badges(organizations: list[Organization], year: int) -> None:
    """Give each branch its review state per quarter of ``year`` and the annual review
    (``review_badges``), from one query for all of them."""
    from reviews.selectors import period_badges, review_states

    branch_ids = [organization.pk for organization in organizations if organization.is_branch]
    states = review_states(branch_ids, year)
    for organization in organizations:
        organization.review_badges = (
            period_badges(states, organization.pk) if organization.is_branch else []
        )
