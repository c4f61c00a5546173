"""Fixtures of the API tests: the shared tree and users (tests/conftest.py), a five-star
scheme for last year adopted by the committee, a few entries in its fourth quarter with the
totals computed, and API clients signed in with a token for every role.

Last year's fourth quarter is always in the past, so no entry is "in the future" whatever
day the suite runs. Recomputes run eagerly on commit. The throttle counters live in the
cache, which is cleared before every test.

Tests marked ``postgres`` (concurrent requests on committed data: the append-only ledger lets
``transactional_db`` flush on PostgreSQL only) are deselected on SQLite; pytest reports them
as deselected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config import celery_app
from members.models import Member
from scoring import services as scoring_services
from scoring.models import Declaration, Entry, Scheme
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import Tree
from tests.scoring.conftest import Rules, make_rules

YEAR = timezone.localdate().year - 1
QUARTER = 4
HERE = Path(__file__).resolve().parent
ROLES = (
    "superuser",
    "committee_staff",
    "general_staff",
    "secretary_a",
    "recorder_a",
    "discipline_a",
    "member_a",
    "secretary_b",
    "member_b",
    "no_role",
)


def is_postgresql() -> bool:
    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) this directory's ``postgres`` tests when running on SQLite."""
    if is_postgresql():
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mine = HERE in Path(item.path).resolve().parents
        if mine and item.get_closest_marker("postgres") is not None:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path) -> None:
    """Evidence uploads and export files are written under the test's own directory."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def fresh_throttles() -> None:
    """Throttle counters of earlier tests (same users, same address) must not carry over."""
    cache.clear()


def in_quarter(month_in_quarter: int, day: int) -> date:
    return date(YEAR, 3 * (QUARTER - 1) + month_in_quarter, day)


def token_client(user: User | None) -> APIClient:
    """An API client signed in with the user's token (anonymous when None)."""
    client = APIClient()
    if user is not None:
        token, _created = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(users: dict[str, User]) -> Callable[[str], APIClient]:
    """``api("secretary_a")``: a token-authenticated client; ``api("anonymous")``: none."""

    def make(key: str) -> APIClient:
        return token_client(None if key == "anonymous" else users[key])

    return make


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable:
    """``committed(service, **kwargs)``: call a service and run what it enqueued on commit."""

    def run(service: Callable, /, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return run


@dataclass
class Ledger:
    """Branch A: 张三 (member_a) 讲微党课 +50, 王芳 (other_a) 研讨发言 +5; branch B: 赵六
    (member_b) 研讨发言 +5 — all in last year's Q4, recorded by the secretaries, totals
    computed (base 100)."""

    tree: Tree
    scheme: Scheme
    rules: Rules
    users: dict[str, User]
    members: dict[str, Member]
    a_lecture: Entry
    a_other_speech: Entry
    b_speech: Entry

    @property
    def branch(self):
        return self.tree.branch_a


@pytest.fixture
def ledger(tree: Tree, users: dict[str, User], members: dict[str, Member], committed) -> Ledger:
    scheme = scheme_create_from_preset(
        owner=tree.committee,
        year=YEAR,
        name="五星积分细则",
        preset="five_stars_base_100",
        top_n_flag=0,
        bottom_n_flag=0,
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    rules = make_rules(scheme)

    def record(user: str, member: str, rule, day: date) -> Entry:
        return committed(
            scoring_services.entry_record,
            user=users[user],
            member=members[member],
            rule=rule,
            occurred_on=day,
            description=f"{rule.name}（{members[member].name}）",
        )

    a_lecture = record("secretary_a", "member_a", rules.lecture, in_quarter(1, 15))
    a_other_speech = record("secretary_a", "other_a", rules.speech, in_quarter(2, 3))
    b_speech = record("secretary_b", "member_b", rules.speech, in_quarter(1, 20))
    recompute_organization(tree.committee, YEAR)
    return Ledger(
        tree=tree,
        scheme=scheme,
        rules=rules,
        users=users,
        members=members,
        a_lecture=a_lecture,
        a_other_speech=a_other_speech,
        b_speech=b_speech,
    )


def declare(ledger: Ledger, member: str, rule=None, points: str | None = None) -> Declaration:
    """``member`` declares a suggestion (+10, self-declarable) dated in last year's Q4."""
    return scoring_services.declaration_submit(
        user=ledger.users[member],
        member=ledger.members[member],
        rule=rule or ledger.rules.suggestion,
        occurred_on=in_quarter(3, 1),
        description="提出合理化建议",
        points=Decimal(points) if points is not None else None,
    )


def assert_error(response, status: int, code: str) -> dict:
    """The one error shape, with this status and code; returns the body."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "errors"}
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"] != ""
    assert isinstance(body["errors"], dict)
    return body
