"""The three users' main journeys in a real headless Chromium.

1. A branch secretary signs in on a desktop and records one meeting's attendance for the
   branch's members (everyone ticked by default, the two absent members unticked).
2. A member signs in on a phone-sized screen and finds the new points in their ledger, in
   the year's total and in the growth chart.
3. Committee staff export the annual ranking; the downloaded workbook opens with openpyxl
   with the expected rows.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from scoring.models import Entry, PeriodScore, Rule, RuleCategory

from .conftest import PHONE, Branch, sign_in

ATTENDANCE = "参加主题党日活动"

pytestmark = pytest.mark.postgres  # the live server needs committed data


def attendance_rule(branch: Branch) -> Rule:
    category = RuleCategory.objects.create(scheme=branch.scheme, name="组织生活", position=0)
    return Rule.objects.create(
        scheme=branch.scheme,
        category=category,
        code="A01",
        name=ATTENDANCE,
        kind=Rule.Kind.BONUS,
        points_min=Decimal("2"),
        points_max=Decimal("2"),
    )


def record_attendance(page, branch: Branch, rule: Rule, absent: list[str]) -> None:
    page.goto(reverse("scoring:branch_record_bulk", args=[branch.branch.pk]))
    page.get_by_label("细则项", exact=True).select_option(str(rule.pk))
    expect(page.locator("#id_points")).to_have_value("2")
    page.get_by_label("事项").fill("11月主题党日：学习党章")
    for name in absent:
        page.get_by_label(name, exact=True).uncheck()
    page.get_by_role("button", name="为勾选的党员记录").click()
    page.wait_for_load_state()


def test_secretary_records_a_meetings_attendance_for_many_members(new_page, branch: Branch):
    # given: the secretary on a desktop browser, a fixed +2 attendance rule
    rule = attendance_rule(branch)
    page = new_page()
    sign_in(page, "shuji")

    # when: everyone but two absent members is recorded in one submit
    record_attendance(page, branch, rule, absent=["党员29", "党员30"])

    # then: one entry for each of the 28 present, none for the absent, and the page says so
    expect(page.get_by_role("alert")).to_contain_text("28")
    recorded = Entry.objects.filter(rule=rule)
    assert recorded.count() == 28
    assert set(recorded.values_list("points", flat=True)) == {Decimal("2.00")}
    assert set(recorded.values_list("recorded_by__username", flat=True)) == {"shuji"}
    assert not recorded.filter(member__name__in=["党员29", "党员30"]).exists()
    annual = PeriodScore.objects.get(
        member=branch.members[0], year=timezone.localdate().year, quarter=0
    )
    assert annual.total == Decimal("102.00")


def test_member_sees_the_new_points_on_a_phone(new_page, branch: Branch):
    # given: the secretary has recorded the attendance
    rule = attendance_rule(branch)
    secretary = new_page()
    sign_in(secretary, "shuji")
    record_attendance(secretary, branch, rule, absent=[])
    entry = Entry.objects.get(rule=rule, member=branch.members[0])

    # when: the member opens the app on a phone
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, "dangyuan")

    # then: their ledger lists the entry, the year's total counts it, the chart shows it
    expect(page).to_have_url(re.compile(re.escape(reverse("scoring:my_points")) + "$"))
    line = page.get_by_test_id(f"entry-{entry.pk}")
    expect(line).to_be_visible()
    expect(line).to_contain_text(ATTENDANCE)
    expect(line.get_by_test_id("points")).to_have_text("+2")
    expect(page.get_by_test_id("year-total")).to_have_text("102")
    chart = page.get_by_test_id("growth-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("desc")).to_contain_text("102")
    # Phone-first: nothing is wider than the screen.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width == PHONE["width"]
