"""Time-driven steps of the review: closing publicity windows, reminders. Thin and idempotent."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import services
from .models import ReviewCycle, SelfAssessment
from .notifications import branch_leaders, branch_users, notify, notify_publicity_open

TASK_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**TASK_OPTIONS)
def close_publicity_windows_task() -> dict[str, list[int]]:
    """Finalize every cycle whose publicity window has ended with no open objection;
    remind the secretary of those that still have one."""
    today = timezone.localdate()
    finalized, waiting = [], []
    due = ReviewCycle.objects.filter(
        state=ReviewCycle.State.PUBLICITY, publicity_ends_on__lt=today
    ).values_list("pk", flat=True)
    for cycle_id in list(due):
        cycle = ReviewCycle.objects.select_related("organization").get(pk=cycle_id)
        try:
            services.cycle_advance(
                user=None,
                cycle=cycle,
                expected_state=ReviewCycle.State.PUBLICITY,
                note=_("公示期结束且无未办结异议，系统自动确认归档。"),
                today=today,
            )
        except ValidationError as error:
            if getattr(error, "code", None) == "stale_state":
                continue  # someone finalized it a moment ago
            waiting.append(cycle_id)
            notify(
                branch_leaders(cycle),
                _("%(branch)s%(period)s公示期已结束，但还不能归档：%(reasons)s")
                % {
                    "branch": cycle.organization.name,
                    "period": cycle.period_label,
                    "reasons": " ".join(error.messages),
                },
                url=reverse("reviews:cycle", kwargs={"pk": cycle.pk}),
                key=f"publicity-overdue-{cycle.pk}-{today}",
            )
        else:
            finalized.append(cycle_id)
    return {"finalized": finalized, "waiting": waiting}


@shared_task(**TASK_OPTIONS)
def remind_self_assessments_task() -> int:
    """Members who have not written their self-assessment, in the last 3 days before it closes."""
    today = timezone.localdate()
    sent = 0
    cycles = ReviewCycle.objects.filter(
        state__in=[ReviewCycle.State.OPEN, ReviewCycle.State.SELF_ASSESSMENT],
        self_assessment_deadline__range=(today, today + timedelta(days=3)),
    ).select_related("organization")
    for cycle in cycles:
        done = SelfAssessment.objects.filter(cycle=cycle).values_list("member__user_id", flat=True)
        users = branch_users(cycle).exclude(pk__in=[pk for pk in done if pk])
        sent += notify(
            users,
            _("请在 %(date)s 前提交%(period)s党员自评。")
            % {"date": cycle.self_assessment_deadline, "period": cycle.period_label},
            url=reverse("reviews:self_assessment", kwargs={"pk": cycle.pk}),
            key=f"self-assessment-{cycle.pk}-{today}",
        )
    return sent


@shared_task(**TASK_OPTIONS)
def remind_publicity_task() -> int:
    """Members of branches whose publicity window is open (once per window)."""
    today = timezone.localdate()
    sent = 0
    open_windows = ReviewCycle.objects.filter(
        state=ReviewCycle.State.PUBLICITY,
        publicity_starts_on__lte=today,
        publicity_ends_on__gte=today,
    ).values_list("pk", flat=True)
    for cycle_id in open_windows:
        sent += notify_publicity_open(cycle_id)
    return sent
