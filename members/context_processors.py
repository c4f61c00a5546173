from __future__ import annotations

from django.http import HttpRequest

from .permissions import Action, branches_where, holds, member_of, organizations_where


def navigation(request: HttpRequest) -> dict:
    """What the top navigation offers this user (a few cheap queries, only when signed in)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def items() -> dict:
        return {
            "has_overview": user.is_superuser
            or organizations_where(user, Action.VIEW_OVERVIEW).exists(),
            "nav_branches": list(branches_where(user, Action.VIEW_ROSTER).order_by("path")[:20]),
            "nav_member": member_of(user),
            # No query: the posts were loaded (and cached on the user) by the lines above.
            "has_audit": holds(user, Action.VIEW_AUDIT),
        }

    return {"nav": items}
