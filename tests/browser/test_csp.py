"""The pages really work under the strict Content-Security-Policy: each user's main pages
load in Chromium without a single CSP violation or script error, and the interactive bits
(htmx swaps, the tick-all box) still run."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from scoring.models import Rule

from .conftest import PHONE, Branch, sign_in

pytestmark = pytest.mark.postgres  # the live server needs committed data


def watch(page: Page) -> list[str]:
    """Every console error and CSP violation the page reports, as text."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    page.wait_for_load_state("networkidle")


def test_the_secretarys_pages_run_under_the_policy(new_page, branch: Branch):
    page = new_page()
    problems = watch(page)
    sign_in(page, "shuji")
    pk = branch.branch.pk
    for name in (
        "scoring:branch_ledger",
        "scoring:branch_record",
        "scoring:branch_record_grid",
        "scoring:branch_record_veto",
        "scoring:branch_declarations",
        "scoring:branch_entries",
        "scoring:branch_table",
        "reviews:branch_cycles",
        "members:roster",
    ):
        visit(page, reverse(name, args=[pk]))

    # htmx swaps the points field when a rule with a range is picked …
    visit(page, reverse("scoring:branch_record_bulk", args=[pk]))
    ranged = Rule.objects.get(scheme=branch.scheme, code="D02")
    page.get_by_label("细则项", exact=True).select_option(str(ranged.pk))
    expect(page.locator("#points-field .form-text")).to_contain_text(f"{Decimal('-10'):f}")
    # … and the tick-all box unticks every member
    page.get_by_label("全选/全不选").first.uncheck()
    expect(page.locator("#bulk-member-rows input:checked")).to_have_count(0)

    assert problems == []


def test_the_members_and_the_committees_pages_run_under_the_policy(new_page, branch: Branch):
    phone = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    problems = watch(phone)
    sign_in(phone, "dangyuan")
    for name in (
        "scoring:my_points",
        "scoring:declare",
        "scoring:my_declarations",
        "reviews:my_reviews",
    ):
        visit(phone, reverse(name))

    desktop = new_page()
    problems += watch(desktop)
    sign_in(desktop, "dangwei")
    visit(desktop, reverse("members:overview"))

    assert problems == []
