"""The window-closing job on the real stack: a Celery worker on Redis finalizing a committed
cycle in PostgreSQL.

Committed data needs ``transactional_db``, which the append-only ledger allows on PostgreSQL
only. The worker gets the broker of ``CELERY_BROKER_URL`` and the pytest test database, and
is stopped at the end of this module (before pytest drops that database, and before the
scoring tests start a worker of their own on the same broker).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from config import celery_app
from reviews.models import CycleEvent, ReviewCycle
from reviews.tasks import close_publicity_windows_task
from scoring.models import PeriodLock

from .conftest import build_world, drive_to, end_window, fresh, open_cycle

pytestmark = [pytest.mark.postgres, pytest.mark.worker]

POLL_SECONDS = 0.2
TIMEOUT_SECONDS = 30.0
State = ReviewCycle.State


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT_SECONDS):
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def _database_url() -> str:
    """The pytest test database (not the one DATABASE_URL names) as a URL for the worker."""
    database = connection.settings_dict
    user = quote(database["USER"] or "postgres")
    password = f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else ""
    host = database["HOST"] or "127.0.0.1"
    port = database["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{database['NAME']}"


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def handled(self, task: str) -> int:
        """How many runs of ``task`` the worker has logged as succeeded."""
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if task in line and "succeeded" in line)


@pytest.fixture(scope="module")
def review_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A real worker (solo pool) on the test database and the broker of CELERY_BROKER_URL."""
    name = f"pytest-reviews-{uuid.uuid4().hex[:8]}@%h"
    log = tmp_path_factory.mktemp("celery-reviews") / "worker.log"
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("EMAIL_URL", None)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "info",
        "--hostname",
        name,
        "--without-gossip",
        "--without-mingle",
        "--purge",  # messages a killed earlier run left behind must not run on this database
    ]
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command,
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        expected = name.replace("%h", "")

        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
            with broker_of_the_worker():
                replies = celery_app.control.ping(timeout=0.5) or []
            return any(expected in host for reply in replies for host in reply)

        try:
            wait_for(answers, "the Celery worker to answer a ping", timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{log.read_text()[-3000:]}") from error
        yield Worker(process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def broker_of_the_worker() -> Iterator[None]:
    """Publish instead of running in-process, to the broker the worker listens on."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.broker_url)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.broker_url = previous


def test_the_worker_finalizes_a_cycle_whose_window_ended(
    review_worker: Worker, transactional_db
) -> None:
    # given: a committed cycle in publicity whose window ended yesterday
    world = build_world()
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    end_window(cycle)
    handled = review_worker.handled("close_publicity_windows_task")

    # when: the scheduled job is sent to the broker
    with broker_of_the_worker():
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
