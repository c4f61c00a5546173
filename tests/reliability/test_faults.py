"""Faults injected into the real services.

- The Celery worker process dies in the middle of a recompute (SIGKILL, as the kernel's OOM
  killer would): late acknowledgement and reject-on-worker-lost put the task back on the
  broker, a new process runs it again, and the totals end equal to the ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connection, transaction

from scoring import recompute, services
from scoring.models import PeriodScore, RankingState
from scoring.tasks import recompute_organization_task
from tests.scoring.conftest import YEAR, World, build_world, in_quarter
from tests.workers import TIMEOUT_SECONDS, Worker, celery_worker, tasks_go_to_the_broker

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


@pytest.fixture(scope="module")
def prefork_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """One prefork child, so the child that takes the task is the one to kill."""
    with celery_worker(
        tmp_path_factory.mktemp("celery-faults"), pool="prefork", concurrency=1, label="faults"
    ) as worker:
        yield worker


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def blocked_on_the_ranking_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE %s",
            ["%scoring_rankingstate%FOR UPDATE%"],
        )
        return cursor.fetchone()[0] == 1


def test_a_recompute_whose_worker_is_killed_runs_again_and_ends_right(
    prefork_worker: Worker, transactional_db
):
    # given: committed totals, then entries recorded without their recompute (stale totals)
    world: World = build_world(top_n_flag=0, bottom_n_flag=0)
    first, second = world.member("甲"), world.member("乙")
    recompute.recompute_organization(world.committee, YEAR)
    with services.recomputes_deferred():
        for member, rule in ((first, world.rules.lecture), (second, world.rules.adopted)):
            services.entry_record(
                user=world.recorder,
                member=member,
                rule=rule,
                points=None,
                occurred_on=in_quarter(2),
                description="测试记录",
            )
    assert recompute.stored_totals_mismatches(YEAR) != []
    before = RankingState.objects.get(committee=world.committee, year=YEAR).recompute_count

    # A transaction in another thread holds the committee-year's lock, so the worker's
    # recompute is caught in the middle, waiting, when its process is killed.
    holding = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic():
                RankingState.objects.select_for_update().get(committee=world.committee, year=YEAR)
                holding.set()
                release.wait(2 * TIMEOUT_SECONDS)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(TIMEOUT_SECONDS)
        with tasks_go_to_the_broker():
            recompute_organization_task.delay(world.committee.pk, YEAR)
        prefork_worker.wait_for(blocked_on_the_ranking_lock, "the worker's recompute to wait")
        (child,) = children_of(prefork_worker.process.pid)

        # when: the process running the recompute is killed
        os.kill(child, signal.SIGKILL)
        prefork_worker.wait_for(
            lambda: "WorkerLostError" in prefork_worker.log.read_text(errors="replace"),
            "the worker to notice its lost process",
        )
    finally:
        release.set()
        holder.join(TIMEOUT_SECONDS)

    # then: the task ran again in a new process and the totals equal the ledger
    prefork_worker.wait_for(
        lambda: (
            RankingState.objects.get(committee=world.committee, year=YEAR).recompute_count
            == before + 1
        ),
        "the recompute to run again",
    )
    assert recompute.stored_totals_mismatches(YEAR) == []
    assert PeriodScore.objects.get(member=first, year=YEAR, quarter=0).total == Decimal("150.00")
    assert PeriodScore.objects.get(member=second, year=YEAR, quarter=0).total == Decimal("120.00")
    assert prefork_worker.handled("recompute_organization_task") == 1
    assert child not in children_of(prefork_worker.process.pid)
