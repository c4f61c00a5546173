"""Shared fixtures: the organization tree, a user for every post, the rosters, logged-in clients."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from config import celery_app
from members.models import Member, Role
from tests.factories import MemberFactory, RoleFactory, Tree, UserFactory, build_tree

# key → (organization key on the tree, post) of every user the permission tests walk through.
USER_POSTS: dict[str, tuple[str, str] | None] = {
    "committee_staff": ("committee", Role.Post.STAFF),
    "general_staff": ("general_branch", Role.Post.STAFF),
    "secretary_a": ("branch_a", Role.Post.SECRETARY),
    "recorder_a": ("branch_a", Role.Post.RECORDER),
    "discipline_a": ("branch_a", Role.Post.DISCIPLINE_COMMISSIONER),
    "member_a": None,  # a login linked to a member of branch A, no post
    "secretary_b": ("branch_b", Role.Post.SECRETARY),
    "member_b": None,  # a login linked to a member of branch B, no post
    "no_role": None,  # a login with neither a post nor a roster entry
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the tests whose backend is missing: ``postgres`` tests need
    ``transactional_db``, which the append-only ledger allows on PostgreSQL only (its flush
    truncates; SQLite deletes row by row and the triggers refuse), and ``worker`` tests need
    a real broker (``CELERY_BROKER_URL``). pytest reports them as deselected."""
    postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    broker = bool(os.environ.get("CELERY_BROKER_URL"))
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        needs_postgres = item.get_closest_marker("postgres") is not None
        needs_worker = item.get_closest_marker("worker") is not None
        if (needs_postgres and not postgres) or (needs_worker and not broker):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    """Tasks run in-process unless a test sends them to the real worker itself."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache: cached aggregates (the committee overview's) are
    keyed by ids that the next test's rolled-back database hands out again."""
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    # Hashing strength is not under test; PBKDF2 would make every login take ~0.3 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tree(db) -> Tree:
    return build_tree()


@pytest.fixture
def users(tree: Tree) -> dict[str, User]:
    users = {"superuser": UserFactory(username="superuser", is_staff=True, is_superuser=True)}
    for key, grant in USER_POSTS.items():
        users[key] = UserFactory(username=key)
        if grant is not None:
            organization_key, post = grant
            RoleFactory(user=users[key], organization=tree.by_key(organization_key), post=post)
    return users


@pytest.fixture
def members(tree: Tree, users: dict[str, User]) -> dict[str, Member]:
    """The rosters: A has three members (one without phone), B two, C one exempt member."""
    return {
        "member_a": MemberFactory(
            organization=tree.branch_a,
            user=users["member_a"],
            name="张三",
            gender=Member.Gender.MALE,
            phone="13900000001",
            birth_date=date(1980, 5, 1),
            joined_on=date(2005, 7, 1),
        ),
        "secretary_a": MemberFactory(
            organization=tree.branch_a,
            user=users["secretary_a"],
            name="李四",
            gender=Member.Gender.FEMALE,
            phone="13900000002",
            birth_date=date(1975, 10, 12),
            joined_on=date(1999, 6, 30),
            is_cadre=True,
        ),
        "other_a": MemberFactory(
            organization=tree.branch_a,
            name="王芳",
            phone="",
            category=Member.Category.PROBATIONARY,
        ),
        "member_b": MemberFactory(
            organization=tree.branch_b, user=users["member_b"], name="赵六", phone="13900000004"
        ),
        "secretary_b": MemberFactory(
            organization=tree.branch_b, user=users["secretary_b"], name="钱七", phone="13900000005"
        ),
        "member_c": MemberFactory(
            organization=tree.branch_c,
            name="孙八",
            phone="13900000006",
            status=Member.Status.EXEMPT,
            exempt_reason="长期患病",
        ),
    }


def logged_in_client(user: User | None) -> Client:
    """A test client signed in as ``user`` (anonymous when None)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def client_for(users: dict[str, User]) -> Callable[[str], Client]:
    """``client_for("secretary_a")``: a client signed in as that user; "anonymous" for nobody."""

    def make(key: str) -> Client:
        return logged_in_client(None if key == "anonymous" else users[key])

    return make
