"""Ledger import from Excel: the template, the row-by-row preview with every reason a row
cannot be recorded, the all-or-nothing confirm, double submits and permissions.

Branch A (张三, 李四 the secretary and a cadre, 王芳 probationary without a phone) uses a
five-star scheme adopted by the committee for ``YEAR``; the rows are written with openpyxl
as a secretary would fill the template.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook, load_workbook

from members.excel import XLSX_CONTENT_TYPE
from members.models import Member, Organization, Role
from scoring import services
from scoring.ledger_import import (
    EXAMPLE_NAME,
    HEADERS,
    form_token_of,
    ledger_import_confirm,
    ledger_import_discard,
    ledger_import_preview,
)
from scoring.models import Entry, LedgerImport, PeriodLock, PeriodScore, Rule, RuleCategory
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import MemberFactory, RoleFactory, Tree, UserFactory, build_tree

YEAR = 2025
Q1_DAY = date(2025, 2, 10)
Q2_DAY = date(2025, 5, 12)
LOCKED_Q2 = (
    "2025年第2季度已确认归档并锁定，不能再记入该期间。"
    "如需更正，请记入当前开放的期间，并在说明中注明所更正的记录。"
)
NOT_XLSX = "这不是 Excel 工作簿（.xlsx）文件，请用模板填写后上传。"
DAMAGED = "无法读取该 Excel 文件，文件可能已损坏。"
CHANGED = (
    "预览之后台账或细则已有变化，部分行的结果已不同。本次没有导入任何记录，请查看新的预览后再确认。"
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass
class Branch:
    tree: Tree
    secretary: User  # secretary of branch A
    recorder: User  # recorder of branch A
    member_user: User  # 张三's own login, no post
    other_secretary: User  # secretary of branch B
    zhang: Member  # 张三, full member, 13900000001
    li: Member  # 李四, cadre, 13900000002
    wang: Member  # 王芳, probationary, no phone
    zhao: Member  # 赵六, branch B
    speech: Rule  # B01 研讨发言 +5, at most twice a quarter
    lecture: Rule  # B02 微党课 +3..+10
    volunteer: Rule  # B03 志愿服务 +1..+10, at most 20 a year
    cadre_only: Rule  # B04 领学 +3, cadres only
    task: Rule  # D01 未完成支部任务 −10..−2
    veto: Rule  # V01 违法违纪

    @property
    def branch(self) -> Organization:
        return self.tree.branch_a


def build_branch() -> Branch:
    tree = build_tree()
    scheme = scheme_create_from_preset(
        owner=tree.committee, year=YEAR, name="五星积分细则", preset="five_stars_base_100"
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    service = RuleCategory.objects.create(scheme=scheme, name="志愿奉献", position=2)
    discipline = RuleCategory.objects.create(scheme=scheme, name="纪律规矩不严明", position=3)

    def rule(category, code, name, kind, low, high, **extra) -> Rule:
        return Rule.objects.create(
            scheme=scheme,
            category=category,
            code=code,
            name=name,
            kind=kind,
            points_min=Decimal(low),
            points_max=Decimal(high),
            **extra,
        )

    def user(name: str, organization: Organization | None = None) -> User:
        account = UserFactory(username=name)
        if organization is not None:
            post = Role.Post.RECORDER if name == "recorder_a" else Role.Post.SECRETARY
            RoleFactory(user=account, organization=organization, post=post)
        return account

    bonus = Rule.Kind.BONUS
    member_user = user("member_a")
    return Branch(
        tree=tree,
        secretary=user("secretary_a", tree.branch_a),
        recorder=user("recorder_a", tree.branch_a),
        member_user=member_user,
        other_secretary=user("secretary_b", tree.branch_b),
        zhang=MemberFactory(
            organization=tree.branch_a, user=member_user, name="张三", phone="13900000001"
        ),
        li=MemberFactory(
            organization=tree.branch_a, name="李四", phone="13900000002", is_cadre=True
        ),
        wang=MemberFactory(
            organization=tree.branch_a,
            name="王芳",
            phone="",
            category=Member.Category.PROBATIONARY,
        ),
        zhao=MemberFactory(organization=tree.branch_b, name="赵六", phone="13900000004"),
        speech=rule(study, "B01", "研讨发言", bonus, "5", "5", max_times_per_quarter=2),
        lecture=rule(study, "B02", "微党课", bonus, "3", "10"),
        volunteer=rule(
            service, "B03", "志愿服务", bonus, "1", "10", max_points_per_year=Decimal("20")
        ),
        cadre_only=rule(study, "B04", "领学", bonus, "3", "3", audience=Rule.Audience.CADRES),
        task=rule(discipline, "D01", "未完成支部任务", Rule.Kind.DEDUCTION, "-10", "-2"),
        veto=rule(discipline, "V01", "违法违纪", Rule.Kind.VETO, "0", "0"),
    )


@pytest.fixture
def world(db) -> Branch:
    return build_branch()


# --- helpers --------------------------------------------------------------------------------


def workbook(rows: list[list[Any]], headers: list[str] | None = None) -> bytes:
    """A filled-in template: the header row (the template's unless given), then ``rows``."""
    book = Workbook()
    sheet = book.active
    sheet.append(HEADERS if headers is None else headers)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def upload(content: bytes, name: str = "台账.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=XLSX_CONTENT_TYPE)


def preview(world: Branch, rows: list[list[Any]], user: User | None = None) -> LedgerImport:
    return ledger_import_preview(
        branch=world.branch, user=user or world.secretary, upload=upload(workbook(rows))
    )


def outcomes(ledger_import: LedgerImport) -> dict[int, list[str]]:
    """{row number: reasons} — an empty list for a row that will be recorded."""
    return {row["row"]: row["reasons"] for row in ledger_import.rows}


def record(world: Branch, member: Member, rule: Rule, day: date, points: str | None = None):
    return services.entry_record(
        user=world.secretary,
        member=member,
        rule=rule,
        occurred_on=day,
        description=f"{rule.name}（手工记录）",
        points=Decimal(points) if points is not None else None,
    )


def entry_values() -> list[tuple]:
    return list(
        Entry.objects.order_by("id").values_list(
            "member__name",
            "rule__code",
            "points",
            "occurred_on",
            "year",
            "quarter",
            "description",
            "recorded_by__username",
            "approved_by",
            "kind",
        )
    )


def ledger_snapshot() -> list[dict]:
    return list(Entry.objects.order_by("id").values())


def url(name: str, world: Branch, ledger_import: LedgerImport | None = None) -> str:
    kwargs: dict[str, Any] = {"pk": world.branch.pk}
    if ledger_import is not None:
        kwargs["token"] = ledger_import.token
    return reverse(f"scoring:{name}", kwargs=kwargs)


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def file_errors(response) -> list[str]:
    return re.findall(r'data-testid="file-error">(.*?)</div>', response.content.decode())


# --- the template -----------------------------------------------------------------------------


def test_template_has_the_columns_an_example_and_the_rules_of_the_scheme(world):
    # when
    response = client_of(world.secretary).get(
        url("branch_ledger_import_template", world) + f"?year={YEAR}"
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert response["Content-Disposition"] == (
        "attachment; filename*=UTF-8''"
        "%E7%A7%AF%E5%88%86%E5%8F%B0%E8%B4%A6%E5%AF%BC%E5%85%A5%E6%A8%A1%E6%9D%BF-2025.xlsx"
    )
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["积分台账", "填写说明"]
    data = [tuple(row) for row in book["积分台账"].iter_rows(values_only=True)]
    assert data[0] == ("党员姓名", "手机号", "细则编号", "分值", "发生日期", "事项说明")
    assert data[1][:4] == (EXAMPLE_NAME, None, "B01", 5)
    assert data[1][4].date() == timezone.localdate()
    assert data[1][5] == "参加主题党日活动"
    assert len(data) == 2
    guide = [tuple(row) for row in book["填写说明"].iter_rows(values_only=True)]
    header_at = guide.index(
        ("编号", "名称", "类别", "类型", "分值", "每季度最多计次", "每年最多计分", "适用对象")
    )
    assert guide[header_at - 1][0] == "2025 年度细则项（五星积分细则）"
    assert guide[header_at + 1 :] == [
        ("B01", "研讨发言", "学习教育", "加分", "+5", 2, "不限", "全体"),
        ("B02", "微党课", "学习教育", "加分", "+3 ~ +10", "不限", "不限", "全体"),
        ("B04", "领学", "学习教育", "加分", "+3", "不限", "不限", "仅党员干部"),
        ("B03", "志愿服务", "志愿奉献", "加分", "+1 ~ +10", "不限", "20", "全体"),
        ("D01", "未完成支部任务", "纪律规矩不严明", "减分", "-10 ~ -2", "不限", "不限", "全体"),
    ]


def test_filled_in_template_round_trips_through_preview_and_confirm(world):
    # given: the downloaded template, filled in below its example row
    client = client_of(world.secretary)
    template = client.get(url("branch_ledger_import_template", world) + f"?year={YEAR}")
    book = load_workbook(io.BytesIO(template.content))
    sheet = book["积分台账"]
    sheet.append(["张三", "", "B01", 5, Q1_DAY, "一季度专题研讨发言"])
    sheet.append(["王芳", None, "B02", "8", "2025-05-12", "讲微党课《初心》"])
    buffer = io.BytesIO()
    book.save(buffer)

    # when
    response = client.post(
        url("branch_ledger_import", world), {"file": upload(buffer.getvalue(), "三月台账.xlsx")}
    )

    # then: the preview, with the example row left out
    ledger_import = LedgerImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("branch_ledger_import_preview", world, ledger_import)
    assert ledger_import.original_name == "三月台账.xlsx"
    assert ledger_import.uploaded_by == world.secretary
    assert ledger_import.status == LedgerImport.Status.PREVIEWED
    assert outcomes(ledger_import) == {3: [], 4: []}
    page = client.get(response["Location"])
    assert page.status_code == 200
    content = page.content.decode()
    assert "共 2 行：<strong>2</strong> 行将记录，<strong>0</strong> 行不能记录。" in content
    assert "确认导入 2 条记录" in content
    assert content.count("✓ 将记录") == 2
    assert Entry.objects.count() == 0

    # when: confirmed
    response = client.post(url("branch_ledger_import_confirm", world, ledger_import))

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_ledger", world) + "?year=2025"
    assert messages_of(response) == ["已从“三月台账.xlsx”导入 2 条积分记录。"]
    assert entry_values() == [
        (
            "张三",
            "B01",
            Decimal("5.00"),
            Q1_DAY,
            2025,
            1,
            "一季度专题研讨发言",
            "secretary_a",
            None,
            "bonus",
        ),
        (
            "王芳",
            "B02",
            Decimal("8.00"),
            Q2_DAY,
            2025,
            2,
            "讲微党课《初心》",
            "secretary_a",
            None,
            "bonus",
        ),
    ]


def test_the_ledger_page_links_to_the_import(world):
    response = client_of(world.secretary).get(url("branch_ledger", world) + f"?year={YEAR}")

    assert response.status_code == 200
    assert (
        f'href="{url("branch_ledger_import", world)}?year=2025" '
        'data-testid="ledger-import-link">从 Excel 导入台账</a>'
    ) in response.content.decode()


# --- every reason a row cannot be recorded ----------------------------------------------------

TOMORROW = "tomorrow"

REJECTIONS = {
    "no name": (["", "", "B01", 5, Q2_DAY, "发言"], ["党员姓名不能为空。"]),
    "member of another branch": (
        ["赵六", "", "B01", 5, Q2_DAY, "发言"],
        ["本支部没有名为“赵六”的党员。"],
    ),
    "unknown member": (["周九", "", "B01", 5, Q2_DAY, "发言"], ["本支部没有名为“周九”的党员。"]),
    "phone of nobody of that name": (
        ["张三", "13900000009", "B01", 5, Q2_DAY, "发言"],
        ["本支部没有姓名为“张三”、手机号为 13900000009 的党员。"],
    ),
    "no rule code": (["张三", "", "", 5, Q2_DAY, "发言"], ["细则编号不能为空。"]),
    "unknown rule code": (
        ["张三", "", "X99", 5, Q2_DAY, "发言"],
        ["细则编号“X99”不在本支部 2025 年度采用的积分细则中。"],
    ),
    "year without a scheme": (
        ["张三", "", "B01", 5, date(2019, 5, 1), "发言"],
        ["甲党支部 2019 年度尚未采用积分细则，请先由党委工作人员设定。"],
    ),
    "points above the range": (
        ["张三", "", "B02", 11, Q2_DAY, "微党课"],
        ["分值 +11 超出细则项“微党课”的范围 +3 ~ +10。"],
    ),
    "bonus points on a deduction": (
        ["张三", "", "D01", 5, Q2_DAY, "未完成任务"],
        ["分值 +5 超出细则项“未完成支部任务”的范围 -10 ~ -2。"],
    ),
    "points other than the fixed ones": (
        ["张三", "", "B01", 6, Q2_DAY, "发言"],
        ["分值 +6 超出细则项“研讨发言”的范围 +5。"],
    ),
    "no points for a range": (
        ["张三", "", "B02", None, Q2_DAY, "微党课"],
        ["请填写分值（范围 +3 ~ +10）。"],
    ),
    "zero points": (["张三", "", "B02", 0, Q2_DAY, "微党课"], ["分值不能为 0。"]),
    "points that are no number": (
        ["张三", "", "B02", "五分", Q2_DAY, "微党课"],
        ["分值“五分”不是有效数字。"],
    ),
    "points with three decimals": (
        ["张三", "", "B02", "5.125", Q2_DAY, "微党课"],
        ["分值最多保留两位小数。"],
    ),
    "no date": (["张三", "", "B01", 5, None, "发言"], ["发生日期不能为空。"]),
    "no valid date": (
        ["张三", "", "B01", 5, "2025-13-01", "发言"],
        ["发生日期“2025-13-01”不是有效日期，应如 1980-05-01。"],
    ),
    "date in the future": (["张三", "", "B01", 5, TOMORROW, "发言"], ["发生日期不能晚于今天。"]),
    "no description": (["张三", "", "B01", 5, Q2_DAY, "  "], ["请填写事项说明。"]),
    "description too long": (
        ["张三", "", "B01", 5, Q2_DAY, "长" * 501],
        ["事项说明不能超过 500 字。"],
    ),
    "rule not for this member": (
        ["张三", "", "B04", 3, Q2_DAY, "领学"],
        ["细则项“领学”不适用于张三（正式党员）。"],
    ),
    "veto": (
        ["张三", "", "V01", 0, Q2_DAY, "违纪"],
        ["一票否决须经支部党员大会表决，请使用“一票否决”登记并填写表决结果。"],
    ),
    "several problems at once, in column order": (
        ["", "", "", "x", None, ""],
        [
            "党员姓名不能为空。",
            "细则编号不能为空。",
            "分值“x”不是有效数字。",
            "发生日期不能为空。",
            "请填写事项说明。",
        ],
    ),
}


@pytest.mark.parametrize(("row", "reasons"), REJECTIONS.values(), ids=REJECTIONS.keys())
def test_preview_gives_the_exact_reason_a_row_cannot_be_recorded(world, row, reasons):
    # given: one bad row between two good ones
    if row[4] == TOMORROW:
        row = [*row[:4], timezone.localdate() + timedelta(days=1), row[5]]
    rows = [["李四", "", "B02", 4, Q2_DAY, "微党课一"], row, ["王芳", "", "B01", 5, Q2_DAY, "发言"]]

    # when
    ledger_import = preview(world, rows)

    # then
    assert outcomes(ledger_import) == {2: [], 3: reasons, 4: []}
    assert [row["ok"] for row in ledger_import.rows] == [True, False, True]
    assert Entry.objects.count() == 0


def test_a_locked_quarter_refuses_its_rows_only(world):
    # given
    PeriodLock.objects.create(organization=world.branch, year=YEAR, quarter=2)

    # when
    ledger_import = preview(
        world, [["张三", "", "B01", 5, Q2_DAY, "发言"], ["张三", "", "B01", 5, Q1_DAY, "发言"]]
    )

    # then
    assert outcomes(ledger_import) == {2: [LOCKED_Q2], 3: []}


def test_a_transferred_out_member_cannot_be_scored(world):
    # given
    world.wang.status = Member.Status.TRANSFERRED_OUT
    world.wang.save()

    # when
    ledger_import = preview(world, [["王芳", "", "B01", 5, Q2_DAY, "发言"]])

    # then
    assert outcomes(ledger_import) == {2: ["王芳已转出，不能再记分。"]}


def test_namesakes_need_the_phone_number(world):
    # given: a second 张三 on the roster
    other_zhang = MemberFactory(organization=world.branch, name="张三", phone="13900000009")

    # when
    ledger_import = preview(
        world,
        [
            ["张三", "", "B01", 5, Q2_DAY, "发言"],
            ["张三", "139 0000 0009", "B01", 5, Q2_DAY, "发言"],
            ["张三", 13900000001, "B01", 5, Q2_DAY, "发言"],
        ],
    )

    # then
    assert outcomes(ledger_import) == {
        2: ["本支部有 2 名党员名为“张三”，请填写手机号加以区分。"],
        3: [],
        4: [],
    }
    assert [row.get("member_id") for row in ledger_import.rows] == [
        None,
        other_zhang.pk,
        world.zhang.pk,
    ]


def test_a_transferred_out_namesake_does_not_make_a_name_ambiguous(world):
    # given
    MemberFactory(
        organization=world.branch,
        name="张三",
        phone="13900000009",
        status=Member.Status.TRANSFERRED_OUT,
    )

    # when
    ledger_import = preview(world, [["张三", "", "B01", 5, Q2_DAY, "发言"]])

    # then
    assert outcomes(ledger_import) == {2: []}
    assert ledger_import.rows[0]["member_id"] == world.zhang.pk


# --- caps and repeats -------------------------------------------------------------------------


def test_times_per_quarter_count_the_rows_above_in_the_same_file(world):
    # when: three speeches in one quarter, the rule counts two
    ledger_import = preview(
        world,
        [
            ["张三", "", "B01", 5, date(2025, 4, 1), "第一次发言"],
            ["张三", "", "B01", 5, date(2025, 4, 8), "第二次发言"],
            ["张三", "", "B01", 5, date(2025, 4, 15), "第三次发言"],
            ["张三", "", "B01", 5, date(2025, 7, 1), "下季度发言"],
            ["李四", "", "B01", 5, date(2025, 4, 15), "李四发言"],
        ],
    )

    # then
    assert outcomes(ledger_import) == {
        2: [],
        3: [],
        4: ["细则项“研讨发言”每季度最多计 2 次，张三 2025年第2季度已达上限，此条不会计分。"],
        5: [],
        6: [],
    }


def test_times_per_quarter_count_the_ledger_too(world):
    # given: two speeches already recorded in Q2, one of them later than the file's row
    record(world, world.zhang, world.speech, date(2025, 4, 2))
    record(world, world.zhang, world.speech, date(2025, 6, 2))

    # when: an earlier-dated third one would push the later one out of the count
    ledger_import = preview(world, [["张三", "", "B01", 5, date(2025, 5, 2), "发言"]])

    # then
    assert outcomes(ledger_import) == {
        2: ["细则项“研讨发言”每季度最多计 2 次，张三 2025年第2季度已达上限，此条不会计分。"]
    }


def test_a_reversed_entry_keeps_its_place_in_the_quarter_count_as_the_totals_do(world):
    # given: two speeches in Q2, one of them reversed
    record(world, world.zhang, world.speech, date(2025, 4, 2))
    entry = record(world, world.zhang, world.speech, date(2025, 4, 9))
    services.entry_reverse(
        user=world.secretary, entry=entry, reason="重复记录", occurred_on=date(2025, 4, 10)
    )

    # when
    ledger_import = preview(world, [["张三", "", "B01", 5, date(2025, 5, 2), "发言"]])

    # then: scoring.recompute still counts the reversed entry's place, so this would count 0
    assert outcomes(ledger_import) == {
        2: ["细则项“研讨发言”每季度最多计 2 次，张三 2025年第2季度已达上限，此条不会计分。"]
    }


def test_points_per_year_count_the_ledger_and_the_rows_above(world):
    # given: 15 of the 20 volunteer points of the year already counted
    record(world, world.zhang, world.volunteer, Q1_DAY, "10")
    record(world, world.zhang, world.volunteer, Q1_DAY + timedelta(days=1), "5")

    # when
    ledger_import = preview(
        world,
        [
            ["张三", "", "B03", 10, Q2_DAY, "社区服务"],
            ["张三", "", "B03", 3, Q2_DAY, "社区服务半天"],
            ["张三", "", "B03", 3, Q2_DAY + timedelta(days=1), "社区服务又半天"],
            ["张三", "", "B03", 2, Q2_DAY + timedelta(days=2), "清扫"],
        ],
    )

    # then: the refused row takes no room; the accepted one does
    assert outcomes(ledger_import) == {
        2: ["细则项“志愿服务”每年最多计 20 分，张三 2025年已计 15 分，此条 +10 分超出上限。"],
        3: [],
        4: ["细则项“志愿服务”每年最多计 20 分，张三 2025年已计 18 分，此条 +3 分超出上限。"],
        5: [],
    }


def test_repeated_rows_and_rows_already_in_the_ledger_are_not_recorded_again(world):
    # given
    services.entry_record(
        user=world.secretary,
        member=world.li,
        rule=world.lecture,
        occurred_on=Q1_DAY,
        description="讲微党课",
        points=Decimal("6"),
    )

    # when
    ledger_import = preview(
        world,
        [
            ["张三", "", "B02", 6, Q2_DAY, "讲微党课"],
            ["张三", "", "B02", "6.00", Q2_DAY, " 讲微党课 "],
            ["张三", "", "B02", 7, Q2_DAY, "讲微党课"],
            ["李四", "", "B02", 6, Q1_DAY, "讲微党课"],
        ],
    )

    # then
    assert outcomes(ledger_import) == {
        2: [],
        3: ["与第 2 行完全相同（党员、细则项、分值、日期、事项说明），不重复记录。"],
        4: [],
        5: ["台账中已有一条完全相同的记录（党员、细则项、分值、日期、事项说明），不重复记录。"],
    }


def test_a_reversed_entry_may_be_recorded_again(world):
    # given
    entry = services.entry_record(
        user=world.secretary,
        member=world.li,
        rule=world.lecture,
        occurred_on=Q1_DAY,
        description="讲微党课",
        points=Decimal("6"),
    )
    services.entry_reverse(user=world.secretary, entry=entry, reason="分值有误")

    # when
    ledger_import = preview(world, [["李四", "", "B02", 6, Q1_DAY, "讲微党课"]])

    # then
    assert outcomes(ledger_import) == {2: []}


# --- confirm ----------------------------------------------------------------------------------


MIXED_ROWS = [
    ["张三", "", "B01", 5, Q1_DAY, "一季度研讨发言"],
    ["周九", "", "B01", 5, Q1_DAY, "不在名册"],
    ["王芳", "", "B02", "7.5", Q2_DAY, "讲微党课"],
    ["李四", "13900000002", "D01", -4, Q2_DAY, "未按时完成调研任务"],
    ["李四", "", "B02", 20, Q2_DAY, "超出范围"],
]


def test_confirm_records_exactly_the_valid_rows(world, django_capture_on_commit_callbacks):
    # given
    ledger_import = preview(world, MIXED_ROWS)
    assert [row["ok"] for row in ledger_import.rows] == [True, False, True, True, False]

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        count = ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then
    assert count == 3
    assert entry_values() == [
        (
            "张三",
            "B01",
            Decimal("5.00"),
            Q1_DAY,
            2025,
            1,
            "一季度研讨发言",
            "secretary_a",
            None,
            "bonus",
        ),
        ("王芳", "B02", Decimal("7.50"), Q2_DAY, 2025, 2, "讲微党课", "secretary_a", None, "bonus"),
        (
            "李四",
            "D01",
            Decimal("-4.00"),
            Q2_DAY,
            2025,
            2,
            "未按时完成调研任务",
            "secretary_a",
            None,
            "deduction",
        ),
    ]
    assert list(Entry.objects.order_by("id").values_list("form_token", flat=True)) == [
        uuid.uuid5(ledger_import.token, "row-2"),
        uuid.uuid5(ledger_import.token, "row-4"),
        uuid.uuid5(ledger_import.token, "row-5"),
    ]
    assert form_token_of(ledger_import, 2) == uuid.uuid5(ledger_import.token, "row-2")
    stored = LedgerImport.objects.get(pk=ledger_import.pk)
    assert stored.status == LedgerImport.Status.IMPORTED
    assert stored.imported_count == 3
    assert stored.imported_at is not None
    # one recompute for the year, after the commit, as manual recording does
    assert len(callbacks) == 1
    totals = {
        (score.member.name, score.quarter): score.total
        for score in PeriodScore.objects.filter(year=YEAR, quarter__in=[0, 2])
    }
    assert totals == {
        ("张三", 0): Decimal("105.00"),
        ("张三", 2): Decimal("105.00"),
        ("王芳", 0): Decimal("107.50"),
        ("王芳", 2): Decimal("107.50"),
        ("李四", 0): Decimal("96.00"),
        ("李四", 2): Decimal("96.00"),
    }


def test_a_formula_is_kept_as_text_and_never_evaluated(world):
    # given: formulas typed into the description and the points cells
    ledger_import = preview(
        world,
        [["张三", "", "B02", 5, Q2_DAY, "=1+1"], ["张三", "", "B02", "=2+3", Q2_DAY, "发言"]],
    )
    assert outcomes(ledger_import) == {2: [], 3: ["分值“=2+3”不是有效数字。"]}
    assert ledger_import.rows[0]["description"] == "=1+1"

    # when
    ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then
    assert list(Entry.objects.values_list("description", "points")) == [("=1+1", Decimal("5.00"))]


def test_confirm_is_refused_with_the_new_preview_when_the_ledger_changed(world):
    # given: a preview, then Q2 is locked before the confirm
    ledger_import = preview(world, MIXED_ROWS)
    PeriodLock.objects.create(organization=world.branch, year=YEAR, quarter=2)

    # when
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then: nothing recorded, the preview shows what a confirm would do now
    assert refused.value.code == "preview_changed"
    assert refused.value.messages == [CHANGED]
    assert Entry.objects.count() == 0
    stored = LedgerImport.objects.get(pk=ledger_import.pk)
    assert stored.status == LedgerImport.Status.PREVIEWED
    assert outcomes(stored) == {
        2: [],
        3: ["本支部没有名为“周九”的党员。"],
        4: [LOCKED_Q2],
        5: [LOCKED_Q2],
        6: ["分值 +20 超出细则项“微党课”的范围 +3 ~ +10。"],
    }

    # when: confirmed again after seeing the new preview
    count = ledger_import_confirm(ledger_import=stored, user=world.secretary)

    # then
    assert count == 1
    assert entry_values() == [
        (
            "张三",
            "B01",
            Decimal("5.00"),
            Q1_DAY,
            2025,
            1,
            "一季度研讨发言",
            "secretary_a",
            None,
            "bonus",
        )
    ]


def test_confirm_is_refused_when_a_row_became_recordable_meanwhile(world):
    # given: 周九 joins the branch after the preview
    ledger_import = preview(world, MIXED_ROWS)
    MemberFactory(organization=world.branch, name="周九", phone="13900000010")

    # when
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then: 4 rows would be recorded where the preview said 3; the secretary sees it first
    assert refused.value.code == "preview_changed"
    assert Entry.objects.count() == 0
    assert [row["ok"] for row in LedgerImport.objects.get(pk=ledger_import.pk).rows] == [
        True,
        True,
        True,
        True,
        False,
    ]


def test_confirm_page_shows_the_new_preview_and_records_nothing(world):
    # given
    client = client_of(world.secretary)
    ledger_import = preview(world, MIXED_ROWS)
    PeriodLock.objects.create(organization=world.branch, year=YEAR, quarter=2)
    before = ledger_snapshot()

    # when
    response = client.post(url("branch_ledger_import_confirm", world, ledger_import))

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_ledger_import_preview", world, ledger_import)
    assert messages_of(response) == [CHANGED]
    assert ledger_snapshot() == before
    page = client.get(response["Location"]).content.decode()
    assert "共 5 行：<strong>1</strong> 行将记录，<strong>4</strong> 行不能记录。" in page
    assert page.count(f"<li>{LOCKED_Q2}</li>") == 2


def test_confirm_with_no_valid_row_records_nothing(world):
    # given
    ledger_import = preview(world, [["周九", "", "B01", 5, Q1_DAY, "不在名册"]])

    # when
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then
    assert refused.value.messages == ["没有可以记录的行，未导入任何记录。"]
    assert Entry.objects.count() == 0
    assert LedgerImport.objects.get(pk=ledger_import.pk).status == LedgerImport.Status.PREVIEWED


def test_a_second_confirm_imports_nothing_more(world):
    # given
    ledger_import = preview(world, MIXED_ROWS)
    assert ledger_import_confirm(ledger_import=ledger_import, user=world.secretary) == 3
    before = ledger_snapshot()

    # when
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then
    assert refused.value.code == "already_imported"
    assert refused.value.messages == ["这份台账已经导入（3 条记录），不能重复导入。"]
    assert ledger_snapshot() == before


def test_a_double_clicked_confirm_button_imports_once(world):
    # given
    client = client_of(world.secretary)
    ledger_import = preview(world, MIXED_ROWS)

    # when
    first = client.post(url("branch_ledger_import_confirm", world, ledger_import))
    second = client.post(url("branch_ledger_import_confirm", world, ledger_import))

    # then
    assert first.status_code == 302
    assert second.status_code == 302
    assert second["Location"] == url("branch_ledger", world) + "?year=2025"
    # the first answer's message was never shown (its redirect was not followed): both show now
    assert messages_of(second) == [
        "已从“台账.xlsx”导入 3 条积分记录。",
        "这份台账已经导入（3 条记录），不能重复导入。",
    ]
    assert Entry.objects.count() == 3


def test_the_same_file_uploaded_again_records_nothing_twice(world):
    # given: the file imported once
    first = preview(world, MIXED_ROWS)
    ledger_import_confirm(ledger_import=first, user=world.secretary)

    # when: uploaded again, with one new row
    second = preview(world, [*MIXED_ROWS, ["张三", "", "B02", 4, Q2_DAY, "新的一行"]])

    # then
    already = ["台账中已有一条完全相同的记录（党员、细则项、分值、日期、事项说明），不重复记录。"]
    assert [row["reasons"] == already for row in second.rows] == [
        True,
        False,
        True,
        True,
        False,
        False,
    ]
    assert outcomes(second)[7] == []
    assert ledger_import_confirm(ledger_import=second, user=world.secretary) == 1
    assert Entry.objects.count() == 4


def test_a_reset_import_cannot_record_its_rows_twice(world):
    # given: an imported file whose status were somehow set back to "previewed"
    ledger_import = preview(world, MIXED_ROWS)
    ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)
    LedgerImport.objects.filter(pk=ledger_import.pk).update(status=LedgerImport.Status.PREVIEWED)
    before = ledger_snapshot()

    # when
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)

    # then: its rows are now in the ledger, so nothing more is recorded
    assert refused.value.code == "preview_changed"
    assert ledger_snapshot() == before


def test_discard_records_nothing_and_a_confirm_after_it_is_refused(world):
    # given
    client = client_of(world.secretary)
    ledger_import = preview(world, MIXED_ROWS)

    # when
    response = client.post(url("branch_ledger_import_discard", world, ledger_import))

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_ledger_import", world)
    assert messages_of(response) == ["已放弃导入“台账.xlsx”，台账没有任何改动。"]
    assert LedgerImport.objects.get(pk=ledger_import.pk).status == LedgerImport.Status.DISCARDED
    with pytest.raises(ValidationError) as refused:
        ledger_import_confirm(ledger_import=ledger_import, user=world.secretary)
    assert refused.value.messages == ["这份台账已放弃导入，请重新上传。"]
    with pytest.raises(ValidationError) as refused:
        ledger_import_discard(ledger_import=ledger_import, user=world.secretary)
    assert refused.value.messages == ["这份台账已放弃，不能再放弃。"]
    assert Entry.objects.count() == 0


# --- who may import ---------------------------------------------------------------------------


def test_the_recorder_may_import(world):
    ledger_import = preview(world, MIXED_ROWS, user=world.recorder)

    assert ledger_import_confirm(ledger_import=ledger_import, user=world.recorder) == 3
    assert set(Entry.objects.values_list("recorded_by__username", flat=True)) == {"recorder_a"}


@pytest.mark.parametrize("who", ["member_user", "other_secretary"])
def test_others_get_404_on_every_page_and_nothing_changes(world, who):
    # given: an import previewed by branch A's secretary
    ledger_import = preview(world, MIXED_ROWS)
    client = client_of(getattr(world, who))

    # when
    responses = [
        client.get(url("branch_ledger_import", world)),
        client.get(url("branch_ledger_import_template", world)),
        client.post(url("branch_ledger_import", world), {"file": upload(workbook(MIXED_ROWS))}),
        client.get(url("branch_ledger_import_preview", world, ledger_import)),
        client.post(url("branch_ledger_import_confirm", world, ledger_import)),
        client.post(url("branch_ledger_import_discard", world, ledger_import)),
    ]

    # then
    assert [response.status_code for response in responses] == [404] * 6
    assert LedgerImport.objects.count() == 1
    assert LedgerImport.objects.get().status == LedgerImport.Status.PREVIEWED
    assert Entry.objects.count() == 0


def test_an_import_is_not_reachable_through_another_branch(world):
    # given: branch B's secretary opens branch A's import under branch B's address
    ledger_import = preview(world, MIXED_ROWS)
    client = client_of(world.other_secretary)
    address = reverse(
        "scoring:branch_ledger_import_confirm",
        kwargs={"pk": world.tree.branch_b.pk, "token": ledger_import.token},
    )

    # when
    response = client.post(address)

    # then
    assert response.status_code == 404
    assert Entry.objects.count() == 0


@pytest.mark.parametrize("who", ["member_user", "other_secretary"])
def test_services_refuse_others_and_store_nothing(world, who):
    # given
    user = getattr(world, who)
    ledger_import = preview(world, MIXED_ROWS)

    # when / then
    with pytest.raises(PermissionDenied):
        preview(world, MIXED_ROWS, user=user)
    with pytest.raises(PermissionDenied):
        ledger_import_confirm(ledger_import=ledger_import, user=user)
    with pytest.raises(PermissionDenied):
        ledger_import_discard(ledger_import=ledger_import, user=user)
    assert LedgerImport.objects.count() == 1
    assert LedgerImport.objects.get().status == LedgerImport.Status.PREVIEWED
    assert Entry.objects.count() == 0


# --- files that cannot be read ----------------------------------------------------------------


def _zip_of(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


FILE_ERRORS = {
    "empty file": (lambda: b"", {}, "文件是空的，请选择填好的 Excel 文件。"),
    "csv text": (lambda: "党员姓名,细则编号\n张三,B01\n".encode(), {}, NOT_XLSX),
    "old .xls": (lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504, {}, NOT_XLSX),
    "damaged zip": (lambda: b"PK\x03\x04" + b"garbage" * 10, {}, DAMAGED),
    "zip that is no workbook": (lambda: _zip_of({"readme.txt": b"hello"}), {}, DAMAGED),
    "truncated workbook": (
        lambda: workbook([["张三", "", "B01", 5, Q2_DAY, "发言"]])[:1500],
        {},
        DAMAGED,
    ),
    "too large": (
        lambda: b"PK\x03\x04" + b"\0" * 3068,
        {"LEDGER_IMPORT_MAX_BYTES": 1024},
        "文件太大（3 KB），上限为 1 KB。",
    ),
    "too many rows": (
        lambda: workbook([["张三", "", "B02", 3 + index, Q2_DAY, "发言"] for index in range(3)]),
        {"LEDGER_IMPORT_MAX_ROWS": 2},
        "文件行数超过上限 2 行，请分批导入。",
    ),
    "not the template's columns": (
        lambda: workbook([["张三", "B01"]], headers=["姓名", "细则编号"]),
        {},
        "第 1 行缺少必需的列：党员姓名、分值、发生日期、事项说明。请使用下载的模板。",
    ),
    "only the header": (lambda: workbook([]), {}, "文件中没有台账数据行。"),
    "only the template's example and blank rows": (
        lambda: workbook([[EXAMPLE_NAME, "", "B01", 5, Q2_DAY, "参加主题党日活动"], [None, " "]]),
        {},
        "文件中没有台账数据行。",
    ),
}


@pytest.mark.parametrize(
    ("make_content", "limits", "message"), FILE_ERRORS.values(), ids=FILE_ERRORS.keys()
)
def test_a_file_that_cannot_be_read_is_refused_and_nothing_is_stored(
    world, make_content, limits, message
):
    # when
    with override_settings(**limits), pytest.raises(ValidationError) as refused:
        ledger_import_preview(
            branch=world.branch, user=world.secretary, upload=upload(make_content())
        )

    # then
    assert refused.value.messages == [message]
    assert LedgerImport.objects.count() == 0


@pytest.mark.parametrize(
    ("make_content", "limits", "message"), FILE_ERRORS.values(), ids=FILE_ERRORS.keys()
)
def test_the_upload_page_answers_422_with_the_reason(world, make_content, limits, message):
    # when
    with override_settings(**limits):
        response = client_of(world.secretary).post(
            url("branch_ledger_import", world), {"file": upload(make_content(), "x.xlsx")}
        )

    # then
    assert response.status_code == 422
    assert file_errors(response) == [message]
    assert LedgerImport.objects.count() == 0


def test_exactly_the_row_limit_is_accepted(world):
    with override_settings(LEDGER_IMPORT_MAX_ROWS=2):
        ledger_import = preview(
            world, [["张三", "", "B02", 3, Q2_DAY, "发言"], ["张三", "", "B02", 4, Q2_DAY, "发言"]]
        )

    assert outcomes(ledger_import) == {2: [], 3: []}


def test_the_upload_form_asks_for_a_file(world):
    response = client_of(world.secretary).post(url("branch_ledger_import", world), {})

    assert response.status_code == 422
    assert file_errors(response) == ["请选择要导入的台账文件。"]
    assert LedgerImport.objects.count() == 0


def test_the_upload_is_kept_as_sent(world):
    content = workbook(MIXED_ROWS)

    ledger_import = ledger_import_preview(
        branch=world.branch, user=world.secretary, upload=upload(content, "../../etc/三月.xlsx")
    )

    assert ledger_import.original_name == "三月.xlsx"
    assert ledger_import.file.name.startswith(f"ledger-imports/{world.branch.pk}/")
    with ledger_import.file.open("rb") as stored:
        assert stored.read() == content


# --- two confirms at once (real row locks) ----------------------------------------------------


@pytest.mark.postgres
def test_two_simultaneous_confirms_record_the_entries_once(transactional_db):
    # given: a committed preview, confirmed from two connections at once
    world = build_branch()
    ledger_import = preview(world, MIXED_ROWS)
    barrier = threading.Barrier(2)
    outcomes_of_threads: list[object] = []
    lock = threading.Lock()

    def confirm() -> None:
        try:
            seen = LedgerImport.objects.get(pk=ledger_import.pk)
            user = User.objects.get(pk=world.secretary.pk)
            barrier.wait(timeout=10)
            result: object = ledger_import_confirm(ledger_import=seen, user=user)
        except BaseException as error:  # reported by the main thread
            result = error
        finally:
            connection.close()
        with lock:
            outcomes_of_threads.append(result)

    # when
    threads = [threading.Thread(target=confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then
    assert len(outcomes_of_threads) == 2
    assert outcomes_of_threads.count(3) == 1
    (error,) = [outcome for outcome in outcomes_of_threads if outcome != 3]
    assert isinstance(error, ValidationError), error
    assert error.code == "already_imported"
    assert Entry.objects.count() == 3
    stored = LedgerImport.objects.get(pk=ledger_import.pk)
    assert stored.status == LedgerImport.Status.IMPORTED
    assert stored.imported_count == 3
