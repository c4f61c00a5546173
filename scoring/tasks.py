"""Background recomputes. Thin: take ids, load, call ``scoring.recompute``.

Every task is idempotent (it derives totals from the ledger, so running it twice gives the
same rows), acknowledged late and rejected on worker loss (a task whose worker dies is
delivered again), and retried a bounded number of times on database errors. Two recomputes
of one committee-year are serialized by a row lock in the database (``RankingState``).
"""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from members.models import Organization

from . import exports, recompute

TASK_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**TASK_OPTIONS)
def recompute_members_task(member_ids: list[int], year: int) -> list[int]:
    """After an approved change: the members' periods now, the committee ranks shortly after."""
    committees = recompute.recompute_members(member_ids, year)
    for committee_id in committees:
        refresh_committee_ranks_task.apply_async(
            (committee_id, year), countdown=settings.COMMITTEE_RANK_DELAY_SECONDS
        )
    return committees


@shared_task(**TASK_OPTIONS)
def refresh_committee_ranks_task(committee_id: int, year: int) -> bool:
    committee = Organization.objects.filter(pk=committee_id).first()
    if committee is None:
        return False
    # Half the delay: a burst of recordings re-ranks the committee at most every 15 s, and
    # the refresh after the last change always finds the last re-rank older than that. Run
    # eagerly (no broker: the laptop default) there is no later refresh, so it never waits.
    interval = (
        0
        if refresh_committee_ranks_task.request.is_eager
        else settings.COMMITTEE_RANK_DELAY_SECONDS / 2
    )
    return recompute.refresh_committee_ranks(committee, year, unless_ranked_within=interval)


@shared_task(**TASK_OPTIONS)
def recompute_organization_task(organization_id: int, year: int) -> int:
    """Recompute a whole organization's year on demand."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    return recompute.recompute_organization(organization, year)


def previous_quarter_year(today: date) -> int:
    """The year of the quarter that ended most recently."""
    return today.year - 1 if today.month <= 3 else today.year


@shared_task(**TASK_OPTIONS)
def recompute_after_quarter_task() -> list[int]:
    """Scheduled after each quarter ends: recompute every committee's year of that quarter."""
    year = previous_quarter_year(timezone.localdate())
    roots = list(Organization.objects.filter(depth=1).values_list("id", flat=True))
    for root_id in roots:
        recompute_organization_task.delay(root_id, year)
    return roots


@shared_task(**TASK_OPTIONS)
def sweep_stale_totals_task() -> int:
    """Scheduled sweep: recompute every branch-year still marked stale a while after its
    change (the after-commit task normally clears the mark within a second; a mark this old
    means the broker or a worker was down), then the committee ranks they affect."""
    from .models import StaleTotals

    cutoff = timezone.now() - timedelta(seconds=settings.STALE_TOTALS_GRACE_SECONDS)
    stale: dict[int, list[int]] = {}
    for branch_id, year in StaleTotals.objects.filter(requested_at__lte=cutoff).values_list(
        "organization_id", "year"
    ):
        stale.setdefault(year, []).append(branch_id)
    for year, branch_ids in sorted(stale.items()):
        for committee_id in recompute.recompute_branches(branch_ids, year):
            committee = Organization.objects.get(pk=committee_id)
            recompute.refresh_committee_ranks(committee, year)
    return sum(len(branch_ids) for branch_ids in stale.values())


@shared_task(**TASK_OPTIONS)
def sweep_stale_ranks_task() -> int:
    """Scheduled sweep: re-rank every committee whose ranks were left stale (for instance when
    the broker was down as an entry was recorded)."""
    from .models import RankingState

    refreshed = 0
    for state in RankingState.objects.filter(ranks_dirty_since__isnull=False):
        refreshed += recompute.refresh_committee_ranks(state.committee, state.year)
    return refreshed


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=exports.SOFT_TIME_LIMIT,
    time_limit=exports.HARD_TIME_LIMIT,
)
def export_run(job_id: int) -> str:
    """Write one export job's workbook (``scoring.exports.export_job_run``). Not retried:
    a failed job says why on the page, and the user asks again."""
    return exports.export_job_run(job_id=job_id)
