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
from openpyxl import load_workbook
from playwright.sync_api import expect

from scoring import recompute
from scoring import services as scoring
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


def test_committee_staff_export_the_annual_ranking(new_page, branch: Branch, settings, tmp_path):
    # given: three members with points above the base; everyone else at the base 100
    settings.MEDIA_ROOT = tmp_path
    year = timezone.localdate().year
    day = timezone.localdate().replace(day=1)
    top, second, third = branch.members[4], branch.members[7], branch.members[9]
    for member, rule in (
        (top, branch.rules.lecture),
        (second, branch.rules.adopted),
        (third, branch.rules.suggestion),
    ):
        scoring.entry_record(
            user=branch.secretary,
            member=member,
            rule=rule,
            points=None,
            occurred_on=day,
            description="年度工作",
        )
    recompute.recompute_organization(branch.tree.committee, year)
    page = new_page(accept_downloads=True)
    sign_in(page, "dangwei")

    # when: from the overview, ask for the annual ranking and download it when it is ready
    page.goto(reverse("members:overview"))
    page.get_by_role("link", name="导出年度积分排名（Excel）").click()
    page.get_by_role("button", name="开始导出").click()
    link = page.get_by_test_id("export-download").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    path = tmp_path / "ranking.xlsx"
    download.value.save_as(path)

    # then: the workbook opens, ranked as the ledger says
    assert download.value.suggested_filename.endswith(".xlsx")
    workbook = load_workbook(path, read_only=True)
    assert workbook.sheetnames == ["总排名", "支部汇总", "统计"]
    rows = list(workbook["总排名"].iter_rows(values_only=True))
    header = next(index for index, row in enumerate(rows) if row[0] == "党委排名")
    columns = rows[header]
    data = [dict(zip(columns, row, strict=False)) for row in rows[header + 1 :]]
    assert len(data) == 30
    assert [(row["党委排名"], row["姓名"], row["年度总分"]) for row in data[:4]] == [
        (1, top.name, 150),
        (2, second.name, 120),
        (3, third.name, 110),
        (4, data[3]["姓名"], 100),
    ]
    assert {row["党委排名"] for row in data[3:]} == {4}
    assert {row["所在支部"] for row in data} == {"甲党支部"}
