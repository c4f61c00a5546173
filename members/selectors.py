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


def overview_choices(user: User | AnonymousUser) -> list[Organization]:
    """The committees and general branches the user oversees, in tree order: the overview's
    list of organizations (branches, which may be 15,000, are reached by name search)."""
    return list(
        organizations_where(user, Action.VIEW_OVERVIEW)
        .exclude(kind=Organization.Kind.BRANCH)
        .order_by("path")
    )


def overview_default(
    user: User | AnonymousUser, choices: list[Organization]
) -> Organization | None:
    """Where the overview opens: the highest organization the user oversees."""
    if choices:
        return min(choices, key=lambda organization: (organization.depth, organization.path))
    return organizations_where(user, Action.VIEW_OVERVIEW).order_by("depth", "path").first()


def overview_organization(user: User | AnonymousUser, pk: int) -> Organization | None:
    """Organization ``pk`` if the user oversees it, else None."""
    return organizations_where(user, Action.VIEW_OVERVIEW).filter(pk=pk).first()


def review_badges(branch_ids: list[int], year: int) -> dict[int, list]:
    """{branch id: its review badges for Q1–Q4 and the year} from one query (a page's branches)."""
    from reviews.selectors import period_badges, review_states

    states = review_states(branch_ids, year)
    return {branch_id: period_badges(states, branch_id) for branch_id in branch_ids}
