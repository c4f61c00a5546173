"""What may this user see and do in this organization — the one place that answers it.

Every view, API endpoint, export and service asks here. A right held through a post in an
organization reaches that organization and everything below it (the materialized path of
the organization tree makes that a prefix match). A user linked to a ``Member`` also holds
the plain member's rights in that member's branch.

Views that find an object outside the user's reach answer 404, never 403, so that the
existence of another branch's objects does not leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.http import Http404

from .models import Member, Organization, Role


class Action(StrEnum):
    VIEW_ROSTER = "view_roster"  # the branch roster, member details
    MANAGE_ROSTER = "manage_roster"  # import the roster, edit members
    EXPORT_ROSTER = "export_roster"
    VIEW_OVERVIEW = "view_overview"  # the committee's view of all branches below
    VIEW_PUBLICITY = "view_publicity"  # the branch's publicity board
    VIEW_LEDGER = "view_ledger"  # the branch ledger, quarter table, members' entries
    RECORD_ENTRY = "record_entry"  # record points straight into the ledger
    RECORD_VETO = "record_veto"  # record a veto with the branch vote
    REVERSE_ENTRY = "reverse_entry"  # correct the ledger with a reversal entry
    REVIEW_DECLARATION = "review_declaration"  # approve / adjust / reject declarations
    RECOMPUTE = "recompute"  # recompute an organization's totals on demand
    DECLARE = "declare"  # declare points for oneself (a member of the branch)
    MANAGE_SCHEME = "manage_scheme"  # schemes, rules and adoptions (committee staff)
    VIEW_REVIEW = "view_review"  # a branch's review cycles, their timeline and records
    ADVANCE_CYCLE = "advance_cycle"  # move a review cycle forward, record its meetings
    REOPEN_CYCLE = "reopen_cycle"  # reopen a finalized period (committee staff)
    SELF_ASSESS = "self_assess"  # write one's own self-assessment (a member)
    ACKNOWLEDGE = "acknowledge"  # acknowledge one's finalized result 签字确认 (a member)
    RAISE_OBJECTION = "raise_objection"  # object during publicity (a member)
    RECHECK_OBJECTION = "recheck_objection"  # recheck an objection and answer (the recorder)
    HANDLE_APPEAL = "handle_appeal"  # examine an appeal (the discipline commissioner)
    RULE_OBJECTION = "rule_objection"  # the branch committee's final ruling
    EXPORT_RANKING = "export_ranking"  # the annual / quarterly ranking workbook of an organization
    EXPORT_LEDGER = "export_ledger"  # a branch's ledger workbook 台账
    VIEW_AUDIT = "view_audit"  # the audit history of every change (members/audit.py)


Post = Role.Post
# The pseudo-post of a user who is a member of the branch (through Member.user).
MEMBER_POST = "member"

_READ = {Action.VIEW_ROSTER, Action.VIEW_PUBLICITY, Action.VIEW_LEDGER, Action.VIEW_REVIEW}
# The branch committee 支委会: the posts that decide on declarations.
_BRANCH_COMMITTEE = _READ | {Action.REVIEW_DECLARATION}
_BRANCH_LEADERS = _BRANCH_COMMITTEE | {
    Action.MANAGE_ROSTER,
    Action.EXPORT_ROSTER,
    Action.RECORD_ENTRY,
    Action.RECORD_VETO,
    Action.REVERSE_ENTRY,
    Action.RECOMPUTE,
    Action.ADVANCE_CYCLE,
    Action.RECHECK_OBJECTION,
    Action.RULE_OBJECTION,
    Action.EXPORT_RANKING,
    Action.EXPORT_LEDGER,
}

POST_ACTIONS: dict[str, frozenset[Action]] = {
    Post.STAFF: frozenset(
        _READ
        | {
            Action.EXPORT_ROSTER,
            Action.VIEW_OVERVIEW,
            Action.RECOMPUTE,
            Action.MANAGE_SCHEME,
            Action.REOPEN_CYCLE,
            Action.EXPORT_RANKING,
            Action.EXPORT_LEDGER,
            Action.VIEW_AUDIT,
        }
    ),
    Post.SECRETARY: frozenset(_BRANCH_LEADERS),
    Post.DEPUTY_SECRETARY: frozenset(_BRANCH_LEADERS),
    Post.ORGANIZATION_COMMISSIONER: frozenset(
        _BRANCH_COMMITTEE
        | {
            Action.MANAGE_ROSTER,
            Action.EXPORT_ROSTER,
            Action.RECORD_ENTRY,
            Action.RECHECK_OBJECTION,
            Action.EXPORT_RANKING,
            Action.EXPORT_LEDGER,
        }
    ),
    Post.DISCIPLINE_COMMISSIONER: frozenset(
        _BRANCH_COMMITTEE | {Action.HANDLE_APPEAL, Action.VIEW_AUDIT}
    ),
    Post.COMMITTEE_MEMBER: frozenset(_BRANCH_COMMITTEE),
    Post.RECORDER: frozenset(_READ | {Action.RECORD_ENTRY, Action.RECHECK_OBJECTION}),
    MEMBER_POST: frozenset(
        {
            Action.VIEW_PUBLICITY,
            Action.DECLARE,
            Action.SELF_ASSESS,
            Action.ACKNOWLEDGE,
            Action.RAISE_OBJECTION,
        }
    ),
}


def _grants(user: User | AnonymousUser) -> list[tuple[str, str]]:
    """(organization path, post) pairs the user holds, cached on the user for the request."""
    if not user.is_authenticated:
        return []
    cached = getattr(user, "_party_grants", None)
    if cached is not None:
        return cached
    grants = list(Role.objects.filter(user=user).values_list("organization__path", "post"))
    member = member_of(user)
    if member is not None and member.status != Member.Status.TRANSFERRED_OUT:
        grants.append((member.organization.path, MEMBER_POST))
    user._party_grants = grants
    return grants


def member_of(user: User | AnonymousUser) -> Member | None:
    """The roster entry linked to this login, if any."""
    if not user.is_authenticated:
        return None
    if not hasattr(user, "_party_member"):
        user._party_member = Member.objects.select_related("organization").filter(user=user).first()
    return user._party_member


def posts_of(user: User | AnonymousUser) -> set[str]:
    return {post for _path, post in _grants(user)}


def _paths_with(user: User | AnonymousUser, action: Action) -> list[str]:
    return [path for path, post in _grants(user) if action in POST_ACTIONS.get(post, ())]


def holds(user: User | AnonymousUser, action: Action) -> bool:
    """Does ``user`` hold ``action`` anywhere? Free once the user's posts are loaded (the
    navigation asks it after ``organizations_where`` has loaded them)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or bool(_paths_with(user, action))


def can(user: User | AnonymousUser, action: Action, organization: Organization) -> bool:
    """May ``user`` do ``action`` in ``organization``?"""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return any(organization.path.startswith(path) for path in _paths_with(user, action))


def organizations_where(user: User | AnonymousUser, action: Action) -> QuerySet[Organization]:
    """Every organization in which ``user`` may do ``action``."""
    organizations = Organization.objects.all()
    if not user.is_authenticated or not user.is_active:
        return organizations.none()
    if user.is_superuser:
        return organizations
    paths = _paths_with(user, action)
    if not paths:
        return organizations.none()
    condition = Q()
    for path in paths:
        condition |= Q(path__startswith=path)
    return organizations.filter(condition)


def branches_where(user: User | AnonymousUser, action: Action) -> QuerySet[Organization]:
    return organizations_where(user, action).filter(kind=Organization.Kind.BRANCH)


def members_visible_to(user: User | AnonymousUser) -> QuerySet[Member]:
    """Members whose record this user may see: their own, and every roster they may view."""
    if not user.is_authenticated or not user.is_active:
        return Member.objects.none()
    if user.is_superuser:
        return Member.objects.all()
    branches = branches_where(user, Action.VIEW_ROSTER)
    return Member.objects.filter(Q(organization__in=branches) | Q(user=user))


def can_view_member(user: User | AnonymousUser, member: Member) -> bool:
    if user.is_authenticated and member.user_id == user.pk:
        return True
    return can(user, Action.VIEW_ROSTER, member.organization)


def get_organization_or_404(
    user: User | AnonymousUser, action: Action, pk: int, kinds: Iterable[str] | None = None
) -> Organization:
    """The organization ``pk`` if ``user`` may do ``action`` there, else 404."""
    organizations = Organization.objects.filter(pk=pk)
    if kinds is not None:
        organizations = organizations.filter(kind__in=list(kinds))
    organization = organizations.first()
    if organization is None or not can(user, action, organization):
        raise Http404
    return organization


def home_for(user: User | AnonymousUser) -> tuple[str, dict]:
    """Where this user's work is: (url name, kwargs) for the home page redirect.

    Committee and general-branch staff → the overview; a branch officer → their branch's
    points ledger; a member → their own points.
    """
    if user.is_superuser or organizations_where(user, Action.VIEW_OVERVIEW).exists():
        return "members:overview", {}
    first_branch = branches_where(user, Action.VIEW_LEDGER).order_by("path").first()
    if first_branch is not None:
        return "scoring:branch_ledger", {"pk": first_branch.pk}
    if member_of(user) is not None:
        return "scoring:my_points", {}
    return "members:no_role", {}
