"""The window-closing job on the real stack: a Celery worker on Redis finalizing a committed
cycle in PostgreSQL.

Committed data needs ``transactional_db``, which the append-only ledger allows on PostgreSQL
only. The worker gets the broker of ``CELERY_BROKER_URL`` and the pytest test database, and
is stopped at the end of this module (before pytest drops that database, and before the
scoring tests start a worker of their own on the same broker).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reviews.models import CycleEvent, ReviewCycle
from reviews.tasks import close_publicity_windows_task
from scoring.models import PeriodLock
from tests.workers import Worker, celery_worker, tasks_go_to_the_broker, wait_for

from .conftest import build_world, drive_to, end_window, fresh, open_cycle

pytestmark = [pytest.mark.postgres, pytest.mark.worker]

State = ReviewCycle.State


@pytest.fixture(scope="module")
def review_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A real worker (solo pool) on the test database and the broker of CELERY_BROKER_URL."""
    with celery_worker(tmp_path_factory.mktemp("celery-reviews"), label="pytest-reviews") as worker:
        yield worker


def test_the_worker_finalizes_a_cycle_whose_window_ended(
    review_worker: Worker, transactional_db
) -> None:
    # given: a committed cycle in publicity whose window ended yesterday
    world = build_world()
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    end_window(cycle)
    handled = review_worker.handled("close_publicity_windows_task")

    # when: the scheduled job is sent to the broker
    with tasks_go_to_the_broker():
        close_publicity_windows_task.delay()
        wait_for(
            lambda: (
                fresh(cycle).state == State.FINALIZED
                and PeriodLock.objects.filter(organization=world.branch.organization).exists()
            ),
            "the worker to finalize the cycle and lock the period",
        )

    # then: the worker did it (not an in-process eager run), as the system (no user)
    wait_for(
        lambda: review_worker.handled("close_publicity_windows_task") == handled + 1,
        "the worker's log of the task",
    )
    finalized = fresh(cycle)
    assert finalized.finalized_at is not None
    lock = PeriodLock.objects.get(organization=world.branch.organization)
    assert (lock.year, lock.quarter, lock.locked_by) == (world.year, world.quarter, None)
    assert list(
        CycleEvent.objects.filter(cycle=cycle, user=None).values_list(
            "action", "from_state", "to_state"
        )
    ) == [
        (CycleEvent.Action.ADVANCE, State.PUBLICITY, State.FINALIZED),
        (CycleEvent.Action.REPORT, "", ""),
    ]
