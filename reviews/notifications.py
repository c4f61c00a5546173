"""In-app notifications, and e-mail too when a mail backend is configured (EMAIL_URL)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, Role

from .models import Notification, ReviewCycle

logger = logging.getLogger("party_points")


def notify(users: Iterable[User], text: str, *, url: str = "", key: str = "") -> int:
    """Notify each user once per ``key`` (no key: always). Returns how many were notified."""
    sent = 0
    for user in users:
        try:
            with transaction.atomic():
                Notification.objects.create(user=user, text=text[:300], url=url[:300], key=key)
        except IntegrityError:
            continue  # already notified for this key
        sent += 1
        if settings.EMAIL_ENABLED and user.email:
            try:
                send_mail(_("党员积分提醒"), f"{text}\n{url}", None, [user.email])
            except OSError:
                logger.warning("reminder mail to %s failed", user.pk, exc_info=True)
    return sent


def notifications_mark_read(*, user: User, ids: list[int]) -> int:
    """Mark these notifications of ``user`` read (others' are left alone)."""
    return Notification.objects.filter(user=user, pk__in=ids, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def branch_users(cycle: ReviewCycle):
    """Users with a login among the branch's (not transferred-out) members."""
    return User.objects.filter(member__organization=cycle.organization, is_active=True).exclude(
        member__status=Member.Status.TRANSFERRED_OUT
    )


def branch_leaders(cycle: ReviewCycle):
    return User.objects.filter(
        party_roles__organization=cycle.organization,
        party_roles__post__in=[Role.Post.SECRETARY, Role.Post.DEPUTY_SECRETARY],
        is_active=True,
    ).distinct()


def notify_publicity_open(cycle_id: int) -> int:
    cycle = ReviewCycle.objects.select_related("organization").get(pk=cycle_id)
    return notify(
        branch_users(cycle),
        _("%(branch)s%(period)s积分公示中（%(start)s 至 %(end)s），如有异议请在公示期内提出。")
        % {
            "branch": cycle.organization.name,
            "period": cycle.period_label,
            "start": cycle.publicity_starts_on,
            "end": cycle.publicity_ends_on,
        },
        url=reverse("publicity:board", kwargs={"pk": cycle.pk}),
        key=f"publicity-open-{cycle.pk}-{cycle.publicity_starts_on}",
    )
