"""Backup and restore, as docs/reliability.md describes it: ``pg_dump`` the live database,
restore the dump into a fresh database, and ``verify_ledger`` passes there — with every
entry, every total and the ledger's append-only triggers intact.

Runs on PostgreSQL (committed data and the PostgreSQL client tools)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from scoring import services as scoring
from scoring.models import Entry, PeriodScore
from tests.reviews.conftest import build_world, period_start
from tests.workers import worker_database_url

pytestmark = pytest.mark.postgres


def client_environment() -> dict[str, str]:
    database = connection.settings_dict
    return {
        **os.environ,
        "PGHOST": database["HOST"] or "127.0.0.1",
        "PGPORT": str(database["PORT"] or 5432),
        "PGUSER": database["USER"] or "postgres",
        **({"PGPASSWORD": database["PASSWORD"]} if database.get("PASSWORD") else {}),
    }


def run(*command: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        env={**client_environment(), **environment},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def restored_name() -> str:
    name = f"restore_{uuid.uuid4().hex[:10]}"
    yield name
    run("dropdb", "--if-exists", name)


def test_a_dump_restored_into_a_fresh_database_passes_verify_ledger(
    transactional_db, tmp_path: Path, restored_name: str
):
    # given: a committed ledger with totals (a bonus, a deduction, a reversal)
    world = build_world()
    branch = world.branch
    bonus = scoring.entry_record(
        user=branch.secretary,
        member=branch.member("zhang"),
        rule=world.rules.lecture,
        points=None,
        occurred_on=period_start(),
        description="讲微党课",
    )
    scoring.entry_record(
        user=branch.secretary,
        member=branch.member("li"),
        rule=world.rules.task,
        points=Decimal("-4"),
        occurred_on=period_start(),
        description="未按时完成支部任务",
    )
    scoring.entry_reverse(user=branch.secretary, entry=bonus, reason="记错党员")
    entries = sorted(Entry.objects.values_list("id", "points", "member_id"))
    totals = sorted(PeriodScore.objects.values_list("member_id", "year", "quarter", "total"))

    # when: dumped and restored into a fresh database
    dump = tmp_path / "party_points.dump"
    source = connection.settings_dict["NAME"]
    dumped = run("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source)
    assert dumped.returncode == 0, dumped.stderr
    assert run("createdb", restored_name).returncode == 0
    restored = run(
        "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_name}", str(dump)
    )
    assert restored.returncode == 0, restored.stderr

    # then: verify_ledger passes on the restored database …
    url = worker_database_url().rsplit("/", 1)[0] + f"/{restored_name}"
    verified = run(sys.executable, "manage.py", "verify_ledger", DATABASE_URL=url)
    assert verified.returncode == 0, verified.stderr
    assert "台账核对通过" in verified.stdout
    # … with the same entries and totals, and the ledger still refuses UPDATE and DELETE
    query = "SELECT id, points, member_id FROM scoring_entry ORDER BY id"
    copied = run("psql", "-XAtF,", "-d", restored_name, "-c", query)
    assert copied.stdout.split() == [f"{i},{p},{m}" for i, p, m in entries]
    copied_totals = run(
        "psql",
        "-XAtF,",
        "-d",
        restored_name,
        "-c",
        "SELECT member_id, year, quarter, total FROM scoring_periodscore ORDER BY 1, 2, 3",
    )
    assert copied_totals.stdout.split() == [f"{m},{y},{q},{t}" for m, y, q, t in totals]
    for statement in ("UPDATE scoring_entry SET points = 0", "DELETE FROM scoring_entry"):
        refused = run("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", restored_name, "-c", statement)
        assert refused.returncode != 0
        assert "ledger rows are append-only" in refused.stderr, refused.stderr


def test_verify_ledger_fails_on_a_restored_database_whose_totals_were_altered(
    transactional_db, tmp_path: Path, restored_name: str
):
    # given: a restored copy in which someone edited a stored total by hand
    world = build_world()
    branch = world.branch
    scoring.entry_record(
        user=branch.secretary,
        member=branch.member("zhang"),
        rule=world.rules.lecture,
        points=None,
        occurred_on=period_start(),
        description="讲微党课",
    )
    dump = tmp_path / "party_points.dump"
    run(
        "pg_dump",
        "--format=custom",
        "--no-owner",
        f"--file={dump}",
        connection.settings_dict["NAME"],
    )
    run("createdb", restored_name)
    run("pg_restore", "--no-owner", f"--dbname={restored_name}", str(dump))
    member = branch.member("zhang")
    run(
        "psql",
        "-X",
        "-d",
        restored_name,
        "-c",
        f"UPDATE scoring_periodscore SET total = 999 WHERE member_id = {member.pk} AND quarter = 0",
    )

    # when
    url = worker_database_url().rsplit("/", 1)[0] + f"/{restored_name}"
    verified = run(sys.executable, "manage.py", "verify_ledger", DATABASE_URL=url)

    # then: it names the member and fails
    assert verified.returncode == 1
    assert f"{member.name}（#{member.pk}）total：存储 999.00，台账 150.00" in verified.stderr
