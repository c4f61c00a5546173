from __future__ import annotations

from django.http import HttpRequest

from .selectors import unread_notification_count


def notifications(request: HttpRequest) -> dict:
    """The unread count of the nav badge: one query, only on pages that show it, once."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    counted: list[int] = []

    def unread() -> int:
        if not counted:
            counted.append(unread_notification_count(user))
        return counted[0]

    return {"unread_notification_count": unread}
