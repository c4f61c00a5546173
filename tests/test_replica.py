"""The read replica (config/routers.py): the settings that add it, the router's answers inside
and outside ``reading_from_replica()``, and — on PostgreSQL — a real ranking export job whose
workbook is read on a second connection "replica" while the job's own updates go to default.
"""

from __future__ import annotations

import copy
import io
import re
import runpy
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.test.utils import CaptureQueriesContext, override_settings
from openpyxl import load_workbook

from config.routers import REPLICA, ReplicaRouter, reading_from_replica
from members.models import Organization
from scoring import exports, services
from scoring.models import ExportJob, PeriodScore
from tests.scoring.conftest import YEAR, build_world, in_quarter

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "config" / "settings.py"

# Overriding DATABASES is what these tests are about; Django warns that it is unusual.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")


def databases(*, with_replica: bool) -> dict[str, dict]:
    default = copy.deepcopy(settings.DATABASES[DEFAULT_DB_ALIAS])
    configured = {DEFAULT_DB_ALIAS: default}
    if with_replica:
        configured[REPLICA] = {**copy.deepcopy(default), "TEST": {"MIRROR": DEFAULT_DB_ALIAS}}
    return configured


# --- settings --------------------------------------------------------------------------------


def load_settings(monkeypatch, **environment: str) -> dict:
    """config/settings.py run afresh with these environment variables (Django's own settings,
    already loaded, are not touched)."""
    monkeypatch.setenv("DATABASE_URL", "postgres://party_points:secret@primary:5432/party_points")
    monkeypatch.delenv("DATABASE_REPLICA_URL", raising=False)
    monkeypatch.delenv("DATABASE_CONN_MAX_AGE", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_a_replica_url_adds_the_replica_with_the_primarys_connection_options(monkeypatch):
    # when
    loaded = load_settings(
        monkeypatch,
        DATABASE_REPLICA_URL="postgres://reader:secret@replica.internal:5432/party_points",
        DATABASE_CONN_MAX_AGE="30",
    )

    # then
    assert loaded["DATABASES"][REPLICA] == {
        "NAME": "party_points",
        "USER": "reader",
        "PASSWORD": "secret",
        "HOST": "replica.internal",
        "PORT": 5432,
        "ENGINE": "django.db.backends.postgresql",
        "CONN_MAX_AGE": 30,
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"MIRROR": "default"},
    }
    assert loaded["DATABASES"][DEFAULT_DB_ALIAS]["CONN_MAX_AGE"] == 30
    assert loaded["DATABASE_ROUTERS"] == ["config.routers.ReplicaRouter"]


@pytest.mark.parametrize("replica_url", [None, ""])
def test_without_a_replica_url_there_is_only_the_primary(monkeypatch, replica_url):
    environment = {} if replica_url is None else {"DATABASE_REPLICA_URL": replica_url}

    loaded = load_settings(monkeypatch, **environment)

    assert list(loaded["DATABASES"]) == [DEFAULT_DB_ALIAS]
    assert loaded["DATABASE_ROUTERS"] == ["config.routers.ReplicaRouter"]


def test_a_replica_that_is_not_postgresql_is_refused_at_startup(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_URL must be a postgres://"):
        load_settings(monkeypatch, DATABASE_REPLICA_URL="sqlite:////tmp/replica.sqlite3")


def test_the_settings_use_the_replica_router():
    assert settings.DATABASE_ROUTERS == ["config.routers.ReplicaRouter"]


# --- the router ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_replica", "inside_block", "expected"),
    [
        (True, True, REPLICA),
        (True, False, None),
        (False, True, None),  # no replica configured: the block changes nothing
        (False, False, None),
    ],
)
def test_reads_go_to_the_replica_only_inside_the_block_and_only_if_configured(
    with_replica, inside_block, expected
):
    with override_settings(DATABASES=databases(with_replica=with_replica)):
        if inside_block:
            with reading_from_replica():
                answer = ReplicaRouter().db_for_read(PeriodScore)
        else:
            answer = ReplicaRouter().db_for_read(PeriodScore)

    assert answer == expected


@pytest.mark.parametrize("inside_block", [True, False])
def test_writes_always_go_to_the_primary(inside_block):
    with override_settings(DATABASES=databases(with_replica=True)):
        if inside_block:
            with reading_from_replica():
                answer = ReplicaRouter().db_for_write(ExportJob)
        else:
            answer = ReplicaRouter().db_for_write(ExportJob)

    assert answer is None


def test_djangos_router_sends_reads_to_the_replica_and_writes_to_default_inside_the_block():
    with override_settings(DATABASES=databases(with_replica=True)):
        with reading_from_replica():
            inside = (
                router.db_for_read(PeriodScore),
                router.db_for_write(ExportJob),
                PeriodScore.objects.all().db,
            )
        outside = (router.db_for_read(PeriodScore), PeriodScore.objects.all().db)

    assert inside == (REPLICA, DEFAULT_DB_ALIAS, REPLICA)
    assert outside == (DEFAULT_DB_ALIAS, DEFAULT_DB_ALIAS)


@pytest.mark.parametrize(
    ("db", "model_name", "expected"),
    [
        (REPLICA, None, False),
        (REPLICA, "periodscore", False),
        (DEFAULT_DB_ALIAS, None, None),
        (DEFAULT_DB_ALIAS, "periodscore", None),
    ],
)
def test_migrations_run_on_the_primary_only(db, model_name, expected):
    assert ReplicaRouter().allow_migrate(db, "scoring", model_name=model_name) is expected


def _organization_from(alias: str) -> Organization:
    organization = Organization(name="甲党支部")
    organization._state.db = alias
    return organization


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (DEFAULT_DB_ALIAS, DEFAULT_DB_ALIAS, True),
        (DEFAULT_DB_ALIAS, REPLICA, True),
        (REPLICA, DEFAULT_DB_ALIAS, True),
        (REPLICA, REPLICA, True),
        (DEFAULT_DB_ALIAS, "archive", None),  # not ours to judge
    ],
)
def test_objects_of_the_primary_and_the_replica_may_refer_to_each_other(first, second, expected):
    answer = ReplicaRouter().allow_relation(_organization_from(first), _organization_from(second))

    assert answer is expected


def test_the_block_is_left_behind_when_it_ends():
    with override_settings(DATABASES=databases(with_replica=True)):
        with reading_from_replica():
            pass
        after = ReplicaRouter().db_for_read(PeriodScore)

    assert after is None


def test_the_block_is_left_behind_when_it_raises():
    with override_settings(DATABASES=databases(with_replica=True)):
        with pytest.raises(ZeroDivisionError), reading_from_replica():
            1 / 0  # noqa: B018
        after = ReplicaRouter().db_for_read(PeriodScore)

    assert after is None


def test_leaving_a_nested_block_keeps_the_outer_one():
    with override_settings(DATABASES=databases(with_replica=True)):
        with reading_from_replica():
            with reading_from_replica():
                pass
            still_inside = ReplicaRouter().db_for_read(PeriodScore)
        after = ReplicaRouter().db_for_read(PeriodScore)

    assert (still_inside, after) == (REPLICA, None)


def test_a_block_in_one_thread_does_not_reach_another():
    # given: a thread that stays inside the block until the main thread has asked
    answers: dict[str, str | None] = {}
    entered, asked = threading.Event(), threading.Event()

    def export_job() -> None:
        with reading_from_replica():
            answers["job"] = ReplicaRouter().db_for_read(PeriodScore)
            entered.set()
            asked.wait(timeout=5)

    with override_settings(DATABASES=databases(with_replica=True)):
        job = threading.Thread(target=export_job)
        job.start()
        assert entered.wait(timeout=5)

        # when: a page's read in this thread meanwhile
        answers["page"] = ReplicaRouter().db_for_read(PeriodScore)
        asked.set()
        job.join(timeout=5)

        # and a thread started from inside a block starts outside it
        with reading_from_replica():
            started_inside = threading.Thread(
                target=lambda: answers.update(started=ReplicaRouter().db_for_read(PeriodScore))
            )
            started_inside.start()
            started_inside.join(timeout=5)

    # then
    assert answers == {"job": REPLICA, "page": None, "started": None}


# --- a real export job with a real second connection (PostgreSQL) ----------------------------


@pytest.fixture(scope="module")
def replica_alias(django_db_setup) -> Iterator[str]:
    """A second alias "replica" on the same test database, as ``"TEST": {"MIRROR": "default"}``
    makes of a configured replica in a test run. Module-scoped because pytest sets up
    higher-scoped fixtures first: the alias must exist before the test's database access is
    prepared (``django_db(databases=...)`` names it, and Django checks that it exists)."""
    if REPLICA in connections.settings:  # DATABASE_REPLICA_URL set: already the mirror
        yield REPLICA
        return
    replica = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])
    replica["TEST"] = {**replica.get("TEST", {}), "MIRROR": DEFAULT_DB_ALIAS}
    # ``connections.settings`` is the dict ``connections`` creates its connections from.
    connections.settings[REPLICA] = replica
    yield REPLICA
    del connections.settings[REPLICA]


@pytest.fixture
def replica_database(replica_alias, transactional_db) -> Iterator[str]:
    """The replica as the router sees it (settings.DATABASES), with its own connection, which
    sees the committed data (``transactional_db``). The connection is closed and dropped
    before the database is flushed."""
    with override_settings(DATABASES={**connections.settings}):
        yield replica_alias
    for connection in connections.all(initialized_only=True):
        if connection.alias == REPLICA:
            connection.close()
            del connections[REPLICA]


TABLE = re.compile(r'\bFROM\s+"?(\w+)"?|^UPDATE\s+"?(\w+)"?', re.IGNORECASE)
# ``.iterator()`` reads through a server-side cursor: DECLARE "…" NO SCROLL CURSOR … FOR SELECT …
SERVER_SIDE_CURSOR = re.compile(r"^DECLARE\s.*?\sCURSOR\s.*?\bFOR\s+", re.IGNORECASE)


def statements(captured: CaptureQueriesContext) -> list[tuple[str, str]]:
    """(verb, first table) of every captured query: ("SELECT", "scoring_periodscore")."""
    result = []
    for query in captured.captured_queries:
        sql = SERVER_SIDE_CURSOR.sub("", query["sql"].lstrip())
        match = TABLE.search(sql)
        result.append((sql.split(None, 1)[0].upper(), (match.group(1) or match.group(2))))
    return result


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])
def test_an_export_job_reads_its_workbook_from_the_replica_and_updates_the_job_on_default(
    replica_database, settings, tmp_path
):
    # given: a committee with two scored members in two of its three branches (committed)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    world = build_world(top_n_flag=1, bottom_n_flag=1)
    first = world.member("甲")
    second = world.member("乙", world.tree.branch_b)
    for member, rule in ((first, world.rules.lecture), (second, world.rules.adopted)):
        services.entry_record(
            user=world.recorder,
            member=member,
            rule=rule,
            occurred_on=in_quarter(2),
            description=rule.name,
        )
    # a pending job, as export_job_create leaves it (created directly: that service would run
    # it at once on commit, eager, before the queries could be captured)
    job = ExportJob.objects.create(
        kind=ExportJob.Kind.ANNUAL_RANKING,
        organization=world.committee,
        year=YEAR,
        requested_by=world.recorder,
        filename="ranking.xlsx",
    )

    # when
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_default,
    ):
        status = exports.export_job_run(job_id=job.pk)

    # then: the job's claim, load and updates on the primary, nothing else
    assert status == ExportJob.Status.DONE
    assert statements(on_default) == [
        ("UPDATE", "scoring_exportjob"),  # claimed
        ("SELECT", "scoring_exportjob"),  # loaded with its organization
        ("UPDATE", "scoring_exportjob"),  # rows_total
        ("UPDATE", "scoring_exportjob"),  # done
    ]
    # and every read of the workbook on the replica, in the writer's order
    assert statements(on_replica) == [
        ("SELECT", "scoring_periodscore"),  # ranking_count
        ("SELECT", "members_organization"),  # _branch_count
        ("SELECT", "members_organization"),  # the committee's name for the notes
        ("SELECT", "scoring_periodscore"),  # 总排名: party members (server-side cursor)
        ("SELECT", "scoring_periodscore"),  # 总排名: candidates
        ("SELECT", "scoring_periodscore"),  # 总排名: not ranked
        ("SELECT", "scoring_schemeadoption"),  # the star and grade labels
        ("SELECT", "scoring_outcomeband"),
        ("SELECT", "scoring_periodscore"),  # 统计: the distribution (raw SQL)
        ("SELECT", "members_organization"),  # 支部汇总: the branches (raw SQL)
    ]
    job.refresh_from_db()
    assert (job.status, job.error, job.rows_total, job.rows_written) == ("done", "", 5, 5)
    with job.file.open("rb") as content:
        workbook = load_workbook(io.BytesIO(content.read()))
    ranking = list(workbook["总排名"].iter_rows(min_row=5, values_only=True))
    summary = list(workbook["支部汇总"].iter_rows(min_row=5, values_only=True))
    assert [(row[0], row[2], row[9]) for row in ranking] == [(1, "甲", 150), (2, "乙", 120)]
    assert [row[0] for row in summary] == ["甲党支部", "乙党支部", "丙党支部"]
