"""The recompute on the real stack: a Celery worker on Redis recomputing a committed ledger in
PostgreSQL, and two recomputes of one committee-year taking turns on the RankingState lock.

Committed data needs ``transactional_db``, which the append-only ledger allows on PostgreSQL
only (its flush truncates; SQLite's deletes row by row and the triggers refuse). Tests that
need the worker also need ``CELERY_BROKER_URL``; the worker gets the same broker and the test
database, and is stopped before pytest drops that database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from members.models import Member
from scoring import recompute, services
from scoring.models import PeriodScore, RankingState
from scoring.tasks import recompute_organization_task, refresh_committee_ranks_task
from tests.workers import TIMEOUT_SECONDS, Worker, celery_worker, tasks_go_to_the_broker, wait_for

from .conftest import YEAR, World, build_world

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    """A real worker (prefork, 2 processes) on the test database and the CI's broker."""
    with celery_worker(
        tmp_path_factory.mktemp("celery"), pool="prefork", concurrency=2, label="pytest-scoring"
    ) as worker:
        yield worker


@pytest.fixture
def committed_world(transactional_db) -> World:
    """The committee, branches, scheme and rules, committed (autocommit outside any atomic)."""
    return build_world(top_n_flag=1, bottom_n_flag=1)


def _members_with_entries(world: World) -> tuple[Member, Member, Member]:
    """甲 120 and 乙 110 in branch A, 丙 150 in branch B — recorded in-process (eager)."""
    first = world.member("甲")
    second = world.member("乙")
    third = world.member("丙", world.tree.branch_b)
    for member, rule in (
        (first, world.rules.adopted),
        (second, world.rules.suggestion),
        (third, world.rules.lecture),
    ):
        services.entry_record(
            user=world.recorder,
            member=member,
            rule=rule,
            occurred_on=date(YEAR, 3, 1),
            description=rule.name,
        )
    return first, second, third


def _year_row(member: Member) -> PeriodScore | None:
    return PeriodScore.objects.filter(member=member, year=YEAR, quarter=0).first()


@pytest.mark.worker
def test_a_committed_entry_is_recomputed_by_the_worker(
    celery_worker_process: Worker, committed_world: World
) -> None:
    # given
    world = committed_world
    member = world.member("甲")
    handled = celery_worker_process.handled("recompute_members_task")

    # when: the service commits, its on-commit hook publishes the recompute
    with tasks_go_to_the_broker():
        services.entry_record(
            user=world.recorder,
            member=member,
            rule=world.rules.lecture,
            occurred_on=date(YEAR, 5, 20),
            description="讲微党课",
        )
        row = celery_worker_process.wait_for(
            lambda: PeriodScore.objects.filter(
                member=member, year=YEAR, quarter=0, total=Decimal("150")
            ).first(),
            "the worker to write the member's year total",
        )

    # then: the worker did it (not an in-process eager run)
    celery_worker_process.wait_for(
        lambda: celery_worker_process.handled("recompute_members_task") == handled + 1,
        "the worker's log of the task",
    )
    assert (row.bonus, row.rank_in_branch, row.star) == (Decimal("50"), 1, "五星")
    assert [
        score.total for score in PeriodScore.objects.filter(member=member).order_by("quarter")
    ] == [
        Decimal("150"),
        Decimal("100"),
        Decimal("150"),
        Decimal("150"),
        Decimal("150"),
    ]


@pytest.mark.worker
def test_two_concurrent_organization_recomputes_on_the_worker_take_turns(
    celery_worker_process: Worker, committed_world: World
) -> None:
    # given: totals recorded in-process; no organization recompute has run yet
    world = committed_world
    first, second, third = _members_with_entries(world)
    PeriodScore.objects.all().delete()
    handled = celery_worker_process.handled("recompute_organization_task")

    # when: two recomputes of the same committee-year, one for each worker process
    with tasks_go_to_the_broker():
        recompute_organization_task.delay(world.committee.pk, YEAR)
        recompute_organization_task.delay(world.committee.pk, YEAR)
        celery_worker_process.wait_for(
            lambda: RankingState.objects.filter(
                committee=world.committee, year=YEAR, recompute_count=2
            ).exists(),
            "both recomputes to finish",
        )

    # then
    celery_worker_process.wait_for(
        lambda: celery_worker_process.handled("recompute_organization_task") == handled + 2,
        "the worker's log of both tasks",
    )
    rows = {member.name: _year_row(member) for member in (first, second, third)}
    assert {
        name: (row.total, row.rank_in_branch, row.rank_in_committee) for name, row in rows.items()
    } == {
        "甲": (Decimal("120"), 1, 2),
        "乙": (Decimal("110"), 2, 3),
        "丙": (Decimal("150"), 1, 1),
    }
    assert PeriodScore.objects.filter(year=YEAR).count() == 3 * 5
    assert recompute.stored_totals_mismatches(YEAR) == []


@pytest.mark.worker
def test_the_worker_refreshes_stale_committee_ranks(
    celery_worker_process: Worker, committed_world: World
) -> None:
    # given: branch ranks are there, committee ranks are stale (last ranked a minute ago)
    world = committed_world
    first, second, third = _members_with_entries(world)
    PeriodScore.objects.update(rank_in_committee=None)
    RankingState.objects.filter(committee=world.committee, year=YEAR).update(
        ranks_dirty_since=timezone.now(), ranked_at=timezone.now() - timedelta(minutes=1)
    )

    # when
    with tasks_go_to_the_broker():
        refresh_committee_ranks_task.delay(world.committee.pk, YEAR)
        celery_worker_process.wait_for(
            lambda: (
                RankingState.objects.filter(
                    committee=world.committee, year=YEAR, ranks_dirty_since__isnull=True
                ).exists()
                and not PeriodScore.objects.filter(rank_in_committee__isnull=True).exists()
            ),
            "the committee ranks",
        )

    # then
    assert [
        (row.quarter, row.rank_in_committee)
        for member in (third, first, second)
        for row in PeriodScore.objects.filter(member=member, quarter__in=[0, 1]).order_by("quarter")
    ] == [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)]


def test_two_recomputes_of_one_committee_year_take_turns(committed_world: World) -> None:
    """Thread A recomputes and keeps its transaction open; thread B's recompute must wait on
    the RankingState row lock until A commits — seen in pg_stat_activity, not guessed from
    timing."""
    # given: the committee-year's RankingState row exists (committed)
    world = committed_world
    _members_with_entries(world)
    recompute.recompute_organization(world.committee, YEAR)
    before = RankingState.objects.get(committee=world.committee, year=YEAR).recompute_count
    a_holds_the_lock = threading.Event()
    a_may_commit = threading.Event()
    events: list[str] = []
    errors: list[BaseException] = []

    def thread_a() -> None:
        try:
            with transaction.atomic():
                recompute.recompute_organization(world.committee, YEAR)
                a_holds_the_lock.set()
                if not a_may_commit.wait(2 * TIMEOUT_SECONDS):
                    raise AssertionError("never released")
                events.append("A commits")
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            a_holds_the_lock.set()
        finally:
            connection.close()

    def thread_b() -> None:
        try:
            recompute.recompute_organization(world.committee, YEAR)
            events.append("B done")
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def b_waits_on_a_lock() -> bool:
        if events or errors:
            raise AssertionError(f"B did not wait for A: {events} {errors}")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE %s",
                ["%scoring_rankingstate%FOR UPDATE%"],
            )
            return cursor.fetchone()[0] == 1

    # when
    a = threading.Thread(target=thread_a)
    a.start()
    try:
        assert a_holds_the_lock.wait(TIMEOUT_SECONDS)
        assert errors == []
        b = threading.Thread(target=thread_b)
        b.start()
        wait_for(b_waits_on_a_lock, "B to block on the RankingState row lock")
        assert events == []
    finally:
        a_may_commit.set()
        a.join(TIMEOUT_SECONDS)
    b.join(TIMEOUT_SECONDS)

    # then: B finished only after A committed, and both recomputes counted
    assert errors == []
    assert events == ["A commits", "B done"]
    assert RankingState.objects.get(committee=world.committee, year=YEAR).recompute_count == (
        before + 2
    )
    assert recompute.stored_totals_mismatches(YEAR) == []
