"""Faults injected into the real services.

- The Celery worker process dies in the middle of a recompute (SIGKILL, as the kernel's OOM
  killer would): late acknowledgement and reject-on-worker-lost put the task back on the
  broker, a new process runs it again, and the totals end equal to the ledger.
- Redis stops (a Redis server of the test's own, so the machine's is not disturbed): the
  app under gunicorn still records, says the totals are being updated, and once Redis is
  back the scheduled sweep brings the totals right.
- PostgreSQL restarts (a cluster of the test's own) under the running app: it serves the
  next requests without a restart of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection, transaction
from django.urls import reverse

from scoring import recompute, services
from scoring.models import Entry, PeriodScore, RankingState, StaleTotals
from scoring.tasks import recompute_organization_task
from tests.factories import TEST_PASSWORD
from tests.reviews.conftest import build_world as build_reviews_world
from tests.reviews.conftest import period_start
from tests.scoring.conftest import YEAR, World, build_world, in_quarter
from tests.workers import (
    TIMEOUT_SECONDS,
    Worker,
    celery_worker,
    ping,
    send_task,
    tasks_go_to_the_broker,
    worker_database_url,
)

from .http import Session, hidden_value
from .stack import app_server, postgres_cluster, redis_server

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


UPDATING = "积分正在更新"


def record_through_the_page(session: Session, world, member, rule) -> int:
    branch = world.branch
    record = reverse("scoring:branch_record", args=[branch.organization.pk])
    form = session.get(record).text
    answer = session.post(
        record,
        {
            "year": hidden_value(form, "year"),
            "form_token": hidden_value(form, "form_token"),
            "member": member.pk,
            "rule": rule.pk,
            "points": "",
            "occurred_on": period_start().isoformat(),
            "description": "停电演练",
        },
    )
    return answer.status


def test_recording_survives_a_redis_outage_and_the_sweep_catches_up(transactional_db, tmp_path):
    """Redis stops: recording still succeeds, the pages say the totals are being updated;
    Redis comes back: the scheduled sweep (sent as beat sends it) brings the totals right."""
    world = build_reviews_world()
    branch, zhang = world.branch, world.branch.member("zhang")
    ledger = reverse("scoring:branch_ledger", args=[branch.organization.pk])
    with (
        redis_server(tmp_path) as redis,
        celery_worker(
            tmp_path, broker_url=redis.url, environment={"STALE_TOTALS_GRACE_SECONDS": "0"}
        ) as worker,
        app_server(
            tmp_path, DATABASE_URL=worker_database_url(), CELERY_BROKER_URL=redis.url
        ) as app,
    ):
        # the app under gunicorn knows the production hashers, not the tests' fast one
        secretary = branch.secretary
        hasher = PBKDF2PasswordHasher()
        secretary.password = hasher.encode(TEST_PASSWORD, hasher.salt())
        secretary.save(update_fields=["password"])
        session = Session(app.url)
        session.sign_in(secretary.username)
        # the normal path: the worker recomputes right after the recording
        assert record_through_the_page(session, world, zhang, world.rules.lecture) == 302
        worker.wait_for(lambda: annual_total(zhang) == Decimal("150.00"), "the first recompute")
        worker.wait_for(lambda: not StaleTotals.objects.exists(), "the mark to be taken")

        # when: Redis stops and the secretary records again
        redis.stop()
        assert record_through_the_page(session, world, zhang, world.rules.suggestion) == 302

        # then: the entry is saved, its totals wait, and the page says so
        assert Entry.objects.filter(member=zhang).count() == 2
        assert StaleTotals.objects.filter(organization=branch.organization).count() == 1
        assert annual_total(zhang) == Decimal("150.00")
        assert UPDATING in session.get(ledger).text

        # when: Redis is back (and the worker too: kombu's Redis transport can crash it when
        # the broker vanishes under an unacknowledged message; its supervisor restarts it),
        # and beat sends the sweep
        redis.start()

        def worker_answers() -> list[dict]:
            worker.restart_if_exited()  # it may die while reconnecting, too
            return ping(redis.url)

        worker.wait_for(worker_answers, "the worker to reconnect", timeout=90)
        send_task(redis.url, "scoring.tasks.sweep_stale_totals_task")

        # then: the totals follow the ledger, nothing lost or doubled, the page is calm again
        worker.wait_for(lambda: annual_total(zhang) == Decimal("160.00"), "the sweep")
        assert not StaleTotals.objects.exists()
        assert Entry.objects.filter(member=zhang).count() == 2
        assert recompute.stored_totals_mismatches(world.year) == []
        assert UPDATING not in session.get(ledger).text


def annual_total(member) -> Decimal | None:
    score = PeriodScore.objects.filter(member=member, year=period_start().year, quarter=0).first()
    return score.total if score else None


def test_the_app_serves_again_after_postgresql_restarts(tmp_path):
    """PostgreSQL restarts under a running app (kept connections, CONN_MAX_AGE 60): the next
    requests are served on new connections, without restarting the app."""
    with postgres_cluster() as cluster:
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "points"],
            check=True,
        )
        url = cluster.url("points")
        environment = {**os.environ, "DATABASE_URL": url}
        environment.pop("CELERY_BROKER_URL", None)
        for command in (["migrate", "--noinput", "-v0"], ["seed_demo", "--roster-only"]):
            subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=settings.BASE_DIR,
                env=environment,
                check=True,
                capture_output=True,
            )
        with app_server(tmp_path, DATABASE_URL=url, CELERY_BROKER_URL="") as app:
            session = Session(app.url)
            session.sign_in("shuji1", "Demo@2026")
            ledger = session.get("/").location  # the secretary's home: the branch ledger
            assert ledger.startswith("/branches/")
            before = session.get(ledger)
            assert before.status == 200

            # when
            cluster.restart()

            # then: every request after the restart is served
            statuses = [session.get(ledger).status for _ in range(5)]
            assert statuses == [200] * 5
