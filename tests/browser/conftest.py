"""Real-browser tests: Debian's Chromium, headless, driven by Playwright against the app
served by pytest-django's live server.

The live server needs committed data (``transactional_db``), which the append-only ledger
allows on PostgreSQL only, so these tests are marked ``postgres`` and run in CI's PostgreSQL
pass. ``make install-test`` installs Chromium (``apt-get install chromium``) when it is
missing; ``CHROMIUM`` names another binary.

Playwright's synchronous API runs an event loop in the test's thread, and Django refuses ORM
calls from a thread with a running loop; the tests drive the browser and read the database
one after the other, never at the same time, so that check is switched off here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from members.models import Member, Organization, Role
from members.services import member_create
from scoring.models import Scheme
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import TEST_PASSWORD, RoleFactory, Tree, UserFactory, build_tree
from tests.scoring.conftest import Rules, make_rules

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone, portrait
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser, live_server) -> Iterator[Callable[..., Page]]:
    """``new_page(viewport=…, **context options)``: a page in a fresh context (own cookies)
    whose relative URLs go to the live server; every context is closed after the test."""
    contexts: list[BrowserContext] = []

    def make(viewport: dict[str, int] = DESKTOP, **options) -> Page:
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport, locale="zh-CN", **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Page, username: str, password: str = TEST_PASSWORD) -> None:
    page.goto(reverse("login"))
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


@dataclass
class Branch:
    """One branch of 30 members on this year's five-star scheme, its secretary, one member
    with a login, and committee staff above it."""

    tree: Tree
    scheme: Scheme
    rules: Rules
    secretary: User
    staff: User
    member_user: User
    members: list[Member]

    @property
    def branch(self) -> Organization:
        return self.tree.branch_a


@pytest.fixture
def branch(transactional_db) -> Branch:
    year = timezone.localdate().year
    tree = build_tree()
    scheme = scheme_create_from_preset(
        owner=tree.committee, year=year, name="五星积分细则", preset="five_stars_base_100"
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    secretary = UserFactory(username="shuji")
    RoleFactory(user=secretary, organization=tree.branch_a, post=Role.Post.SECRETARY)
    staff = UserFactory(username="dangwei")
    RoleFactory(user=staff, organization=tree.committee, post=Role.Post.STAFF)
    member_user = UserFactory(username="dangyuan")
    members = [
        member_create(
            organization=tree.branch_a,
            name=f"党员{number:02d}",
            phone=f"1380000{number:04d}",
            category=Member.Category.FULL,
            user=member_user if number == 1 else None,
        )
        for number in range(1, 31)
    ]
    return Branch(
        tree=tree,
        scheme=scheme,
        rules=make_rules(scheme),
        secretary=secretary,
        staff=staff,
        member_user=member_user,
        members=members,
    )
