"""The roster workbook: the template, the all-or-nothing import, the export."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from django.utils import translation
from openpyxl import load_workbook

from members.excel import XLSX_CONTENT_TYPE, neutralize
from members.models import Member
from members.roster import ImportResult, RowError, roster_import
from tests.factories import (
    ROSTER_HEADERS,
    BranchFactory,
    MemberFactory,
    roster_workbook,
    workbook_rows,
)

pytestmark = pytest.mark.django_db

MEMBER_FIELDS = (
    "name",
    "gender",
    "phone",
    "birth_date",
    "joined_on",
    "category",
    "status",
    "is_cadre",
    "exempt_reason",
)


def import_file(branch, content: bytes) -> ImportResult:
    return roster_import(branch=branch, upload=io.BytesIO(content), size=len(content))


def post_file(client, branch, content: bytes, filename: str = "名册.xlsx"):
    return client.post(
        reverse("members:roster_import", kwargs={"pk": branch.pk}),
        {"file": SimpleUploadedFile(filename, content, content_type=XLSX_CONTENT_TYPE)},
    )


def field_values(branch) -> list[dict]:
    return list(Member.objects.filter(organization=branch).order_by("id").values(*MEMBER_FIELDS))


def file_error_on_page(response) -> str:
    found = re.findall(r'data-testid="file-error">(.*?)</div>', response.content.decode())
    assert len(found) == 1
    return found[0]


def row_errors_on_page(response) -> list[tuple[int, str, list[str]]]:
    html = response.content.decode()
    rows = re.findall(
        r'<tr><td>(\d+)</td><td>(.*?)</td><td><ul class="mb-0">(.*?)</ul></td></tr>', html
    )
    return [
        (int(number), name, re.findall(r"<li>(.*?)</li>", reasons))
        for number, name, reasons in rows
    ]


# --- a valid file --------------------------------------------------------------------------

VALID_ROWS = [
    [
        "王小明",
        "男",
        "13800000001",
        date(1980, 5, 1),
        date(2005, 7, 1),
        "正式党员",
        "在册",
        "是",
        "",
    ],
    ["李小红", "女", "", "1990/03/15", "2015.06.30", "预备党员", "流动党员", "否", ""],
    ["陈大力", None, 13800000003, None, None, "发展对象", "离退休", None, None],
    [
        "周小芳",
        "女",
        "138-0000-0004",
        "1958-12-31",
        None,
        "入党积极分子",
        "不列入积分考核",
        "否",
        "长期患病",
    ],
    ["吴刚", "男", "138 0000 0005", None, None, "正式党员", "转出", "否", ""],
    ["王芳", "女", "", None, None, "full", "active", "否", ""],
]
VALID_ROWS_AS_FIELDS = [
    {
        "name": "王小明",
        "gender": "male",
        "phone": "13800000001",
        "birth_date": date(1980, 5, 1),
        "joined_on": date(2005, 7, 1),
        "category": "full",
        "status": "active",
        "is_cadre": True,
        "exempt_reason": "",
    },
    {
        "name": "李小红",
        "gender": "female",
        "phone": "",
        "birth_date": date(1990, 3, 15),
        "joined_on": date(2015, 6, 30),
        "category": "probationary",
        "status": "flowing",
        "is_cadre": False,
        "exempt_reason": "",
    },
    {
        "name": "陈大力",
        "gender": "",
        "phone": "13800000003",
        "birth_date": None,
        "joined_on": None,
        "category": "development_target",
        "status": "retired",
        "is_cadre": False,
        "exempt_reason": "",
    },
    {
        "name": "周小芳",
        "gender": "female",
        "phone": "13800000004",
        "birth_date": date(1958, 12, 31),
        "joined_on": None,
        "category": "activist",
        "status": "exempt",
        "is_cadre": False,
        "exempt_reason": "长期患病",
    },
    {
        "name": "吴刚",
        "gender": "male",
        "phone": "13800000005",
        "birth_date": None,
        "joined_on": None,
        "category": "full",
        "status": "transferred_out",
        "is_cadre": False,
        "exempt_reason": "",
    },
    {
        # 王芳 without a phone is already on branch A's roster, not on branch B's.
        "name": "王芳",
        "gender": "female",
        "phone": "",
        "birth_date": None,
        "joined_on": None,
        "category": "full",
        "status": "active",
        "is_cadre": False,
        "exempt_reason": "",
    },
]


def test_valid_file_imports_every_row_with_exact_values(tree, members):
    # when
    result = import_file(tree.branch_b, roster_workbook(VALID_ROWS))

    # then
    assert result == ImportResult(created=6, errors=[], file_error="")
    assert field_values(tree.branch_b)[2:] == VALID_ROWS_AS_FIELDS
    assert Member.objects.count() == 12


def test_the_chinese_template_imports_while_the_user_reads_english(tree, members):
    # when: the same file, with the interface switched to English
    with translation.override("en"):
        result = import_file(tree.branch_b, roster_workbook(VALID_ROWS))

    # then
    assert result == ImportResult(created=6, errors=[], file_error="")
    assert field_values(tree.branch_b)[2:] == VALID_ROWS_AS_FIELDS


def test_valid_upload_imports_and_redirects_to_the_roster(client_for, tree, members):
    # when
    response = post_file(client_for("secretary_b"), tree.branch_b, roster_workbook(VALID_ROWS))

    # then
    assert response.status_code == 302
    assert response["Location"] == f"/branches/{tree.branch_b.pk}/"
    assert field_values(tree.branch_b)[2:] == VALID_ROWS_AS_FIELDS


def test_message_after_import_says_how_many_members(client_for, tree, members):
    # given
    client = client_for("secretary_b")

    # when
    response = client.post(
        reverse("members:roster_import", kwargs={"pk": tree.branch_b.pk}),
        {"file": SimpleUploadedFile("名册.xlsx", roster_workbook(VALID_ROWS))},
        follow=True,
    )

    # then
    assert response.redirect_chain == [(f"/branches/{tree.branch_b.pk}/", 302)]
    assert [str(message) for message in response.context["messages"]] == ["已导入 6 名党员。"]
    assert response.context["counts"]["all"] == 8


def test_blank_rows_are_skipped_and_row_numbers_stay_those_of_the_sheet(tree, members):
    # given: row 3 is blank, row 4 holds only spaces
    rows = [
        ["甲", "", "13800000001", None, None, "正式党员", "在册"],
        [],
        ["  ", None, " "],
        ["乙", "", "13800000001", None, None, "正式党员", "在册"],
    ]

    # when
    result = import_file(tree.branch_b, roster_workbook(rows))

    # then
    assert result.errors == [RowError(row_number=5, name="乙", reasons=["手机号与第 2 行重复。"])]
    assert Member.objects.count() == 6


# --- a file with bad rows ------------------------------------------------------------------

BAD_ROWS = [
    # row 2: a good row, which is not imported either
    ["刘好", "男", "13800000011", None, None, "正式党员", "在册", "否", ""],
    # row 3: no name
    ["", "男", "13800000012", None, None, "正式党员", "在册", "否", ""],
    # row 4: "党员" is not a category
    ["陈类别", "", "13800000013", None, None, "党员", "在册", "", ""],
    # row 5: unknown status
    ["林状态", "", "13800000014", None, None, "正式党员", "正常", "", ""],
    # row 6: not a mobile number
    ["黄手机", "", "1380000", None, None, "正式党员", "在册", "", ""],
    # row 7: exempt without a reason
    ["何免考", "", "13800000016", None, None, "正式党员", "不列入积分考核", "", ""],
    # row 8: the phone of row 2
    ["郭重号", "", "13800000011", None, None, "正式党员", "在册", "", ""],
    # row 9: the phone of 赵六, already on branch B's roster
    ["罗已有", "", "13900000004", None, None, "正式党员", "在册", "", ""],
    # row 10: no phone, and branch A already has a 王芳
    ["王芳", "女", "", None, None, "预备党员", "在册", "", ""],
    # row 11: no such day
    ["宋日期", "", "13800000019", "1980-02-30", None, "正式党员", "在册", "", ""],
    # row 12: everything wrong at once
    ["", "未知", "abc", None, "昨天", "", "", "可能", ""],
    # rows 13 and 14: the same name, neither with a phone
    ["赵同名", "", "", None, None, "正式党员", "在册", "", ""],
    ["赵同名", "", "", None, None, "正式党员", "在册", "", ""],
]
BAD_ROW_ERRORS = [
    (3, "", ["姓名不能为空。"]),
    (4, "陈类别", ["类别“党员”无法识别，应为：正式党员、预备党员、发展对象、入党积极分子。"]),
    (5, "林状态", ["状态“正常”无法识别，应为：在册、离退休、流动党员、不列入积分考核、转出。"]),
    (6, "黄手机", ["手机号“1380000”不是 11 位手机号。"]),
    (7, "何免考", ["状态为“不列入积分考核”时须填写不列入考核原因。"]),
    (8, "郭重号", ["手机号与第 2 行重复。"]),
    (9, "罗已有", ["手机号 13900000004 已登记在名册中的其他党员名下。"]),
    (10, "王芳", ["本支部名册中已有“王芳”，请填写手机号加以区分。"]),
    (11, "宋日期", ["出生日期“1980-02-30”不是有效日期，应如 1980-05-01。"]),
    (
        12,
        "",
        [
            "姓名不能为空。",
            "性别“未知”无法识别，应为“男”或“女”。",
            "手机号“abc”不是 11 位手机号。",
            "类别不能为空。",
            "状态不能为空。",
            "党员干部应填“是”或“否”，而不是“可能”。",
            "入党日期“昨天”不是有效日期，应如 1980-05-01。",
        ],
    ),
    (14, "赵同名", ["与第 13 行同名且都没有手机号，无法区分。"]),
]


def test_bad_rows_import_nothing_and_list_every_row_with_its_reasons(tree, members):
    # when
    result = import_file(tree.branch_a, roster_workbook(BAD_ROWS))

    # then
    assert result == ImportResult(
        created=0,
        errors=[
            RowError(row_number=number, name=name, reasons=reasons)
            for number, name, reasons in BAD_ROW_ERRORS
        ],
        file_error="",
    )
    assert Member.objects.count() == 6
    assert Member.objects.filter(organization=tree.branch_a).count() == 3


def test_bad_upload_answers_422_listing_every_bad_row(client_for, tree, members):
    # when
    response = post_file(client_for("secretary_a"), tree.branch_a, roster_workbook(BAD_ROWS))

    # then
    assert response.status_code == 422
    assert row_errors_on_page(response) == [
        (number, name or "—", reasons) for number, name, reasons in BAD_ROW_ERRORS
    ]
    assert "有 11 行不能导入，本次没有导入任何党员。请修改后重新上传。" in response.content.decode()
    assert Member.objects.count() == 6


def test_row_already_on_the_roster_is_reported_on_a_second_import(tree, members):
    # given
    content = roster_workbook(VALID_ROWS[:1])
    assert import_file(tree.branch_b, content).created == 1

    # when
    result = import_file(tree.branch_b, content)

    # then
    assert result.errors == [
        RowError(
            row_number=2,
            name="王小明",
            reasons=["手机号 13800000001 已登记在名册中的其他党员名下。"],
        )
    ]
    assert Member.objects.filter(name="王小明").count() == 1


# --- files that are not a roster -----------------------------------------------------------


def _zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _valid_workbook() -> bytes:
    return roster_workbook([["王小明", "男", "13800000001", None, None, "正式党员", "在册"]])


def _workbook_with(replaced: dict[str, bytes | None]) -> bytes:
    """A valid workbook with some of its parts replaced (or, for None, left out)."""
    source = zipfile.ZipFile(io.BytesIO(_valid_workbook()))
    parts = {name: source.read(name) for name in source.namelist()}
    for name, content in replaced.items():
        if content is None:
            del parts[name]
        else:
            parts[name] = content
    return _zip_of(parts)


NOT_XLSX = "这不是 Excel 工作簿（.xlsx）文件，请用模板填写后上传。"
DAMAGED = "无法读取该 Excel 文件，文件可能已损坏。"
NO_ROWS = "文件中没有党员数据行。"

FILE_ERROR_CASES = {
    "text file renamed .xlsx": (
        lambda: "姓名,类别,状态\n张三,正式党员,在册\n".encode(),
        {},
        NOT_XLSX,
    ),
    "old .xls (OLE) file": (
        lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504,
        {},
        NOT_XLSX,
    ),
    "over the size limit": (
        lambda: b"PK\x03\x04" + b"\0" * 3068,
        {"ROSTER_IMPORT_MAX_BYTES": 1024},
        "文件太大（3 KB），上限为 1 KB。",
    ),
    "corrupt zip starting with PK": (lambda: b"PK\x03\x04" + b"garbage" * 10, {}, DAMAGED),
    "truncated workbook": (lambda: _valid_workbook()[:2000], {}, DAMAGED),
    "zip that is no workbook": (lambda: _zip_of({"readme.txt": b"hello"}), {}, DAMAGED),
    "missing required headers": (
        lambda: roster_workbook(
            [["张三", "男", "13800000001"]], headers=["姓名", "性别", "手机号"]
        ),
        {},
        "第 1 行缺少必需的列：类别、状态。请使用下载的模板。",
    ),
    "data on row 1 instead of headers": (
        lambda: roster_workbook([], headers=["张三", "男", "13800000001", "正式党员", "在册"]),
        {},
        "第 1 行缺少必需的列：姓名、类别、状态。请使用下载的模板。",
    ),
    "only the header row": (lambda: roster_workbook([]), {}, NO_ROWS),
    "header and blank rows": (lambda: roster_workbook([[], [" ", None, ""]]), {}, NO_ROWS),
    "more rows than the limit": (
        lambda: roster_workbook(
            [
                [f"党员{index}", "", f"1380000000{index}", None, None, "正式党员", "在册"]
                for index in range(3)
            ]
        ),
        {"ROSTER_IMPORT_MAX_ROWS": 2},
        "文件行数超过上限 2 行，请分批导入。",
    ),
}


@pytest.mark.parametrize(
    ("make_content", "limits", "message"), FILE_ERROR_CASES.values(), ids=FILE_ERROR_CASES.keys()
)
def test_unreadable_file_gives_a_clear_file_error(tree, members, make_content, limits, message):
    # given
    content = make_content()

    # when
    with override_settings(**limits):
        result = import_file(tree.branch_a, content)

    # then
    assert result == ImportResult(created=0, errors=[], file_error=message)
    assert Member.objects.count() == 6


@pytest.mark.parametrize(
    ("make_content", "limits", "message"), FILE_ERROR_CASES.values(), ids=FILE_ERROR_CASES.keys()
)
def test_unreadable_upload_answers_422_with_the_file_error(
    client_for, tree, members, make_content, limits, message
):
    # given
    content = make_content()

    # when
    with override_settings(**limits):
        response = post_file(client_for("secretary_a"), tree.branch_a, content)

    # then
    assert response.status_code == 422
    assert file_error_on_page(response) == message
    assert Member.objects.count() == 6


def test_exactly_the_row_limit_is_imported(tree, members):
    # given
    rows = [
        [f"党员{index}", "", f"1380000000{index}", None, None, "正式党员", "在册"]
        for index in range(2)
    ]

    # when
    with override_settings(ROSTER_IMPORT_MAX_ROWS=2):
        result = import_file(tree.branch_a, roster_workbook(rows))

    # then
    assert result == ImportResult(created=2, errors=[], file_error="")
    assert Member.objects.count() == 8


def test_empty_file_gives_a_clear_file_error(tree, members):
    result = import_file(tree.branch_a, b"")

    assert result == ImportResult(
        created=0, errors=[], file_error="文件是空的，请选择填好的 Excel 文件。"
    )


def test_empty_upload_gets_the_importers_message(client_for, tree, members):
    # when
    response = post_file(client_for("secretary_a"), tree.branch_a, b"")

    # then
    assert response.status_code == 422
    assert file_error_on_page(response) == "文件是空的，请选择填好的 Excel 文件。"
    assert Member.objects.count() == 6


def test_post_without_a_file_asks_for_one(client_for, tree, members):
    response = client_for("secretary_a").post(
        reverse("members:roster_import", kwargs={"pk": tree.branch_a.pk}), {"note": ""}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"file": ["请选择要导入的名册文件。"]}
    assert Member.objects.count() == 6


def test_import_into_an_organization_that_is_no_branch_is_refused(tree, members):
    result = import_file(tree.general_branch, _valid_workbook())

    assert result == ImportResult(created=0, errors=[], file_error="名册只能导入到党支部。")
    assert Member.objects.count() == 6


DAMAGED_PART_CASES = {
    "sheet xml is not xml": {"xl/worksheets/sheet1.xml": b"<not xml"},
    "workbook xml is not xml": {"xl/workbook.xml": b"<not xml"},
    "content types are not xml": {"[Content_Types].xml": b"<not xml"},
    "styles are not xml": {"xl/styles.xml": b"<not xml"},
    "sheet part missing": {"xl/worksheets/sheet1.xml": None},
}


@pytest.mark.parametrize("replaced", DAMAGED_PART_CASES.values(), ids=DAMAGED_PART_CASES.keys())
def test_workbook_with_damaged_parts_gives_a_clear_file_error(client_for, tree, members, replaced):
    # when
    response = post_file(client_for("secretary_a"), tree.branch_a, _workbook_with(replaced))

    # then
    assert response.status_code == 422
    assert file_error_on_page(response) == DAMAGED
    assert Member.objects.count() == 6


# --- the template --------------------------------------------------------------------------


def test_template_download_has_exactly_the_header_row(client_for, tree, members):
    # when
    response = client_for("secretary_a").get(
        reverse("members:roster_template", kwargs={"pk": tree.branch_a.pk})
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert response["Content-Disposition"] == (
        "attachment; filename*=UTF-8''" + quote("党员名册导入模板.xlsx")
    )
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook.sheetnames == ["党员名册", "填写说明"]
    assert list(workbook["党员名册"].iter_rows(values_only=True)) == [
        (
            "姓名",
            "性别",
            "手机号",
            "出生日期",
            "入党日期",
            "类别",
            "状态",
            "党员干部",
            "不列入考核原因",
        )
    ]


def test_filled_in_template_imports(client_for, tree, members):
    # given
    client = client_for("secretary_b")
    response = client.get(reverse("members:roster_template", kwargs={"pk": tree.branch_b.pk}))
    workbook = load_workbook(io.BytesIO(response.content))
    for row in VALID_ROWS:
        workbook["党员名册"].append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)

    # when
    response = post_file(client, tree.branch_b, buffer.getvalue())

    # then
    assert response.status_code == 302
    assert field_values(tree.branch_b)[2:] == VALID_ROWS_AS_FIELDS


# --- the export ----------------------------------------------------------------------------


def test_export_rows_equal_the_roster_exactly(client_for, tree, members, monkeypatch):
    # given
    monkeypatch.setattr("django.utils.timezone.localdate", lambda: date(2026, 3, 1))

    # when
    response = client_for("secretary_a").get(
        reverse("members:roster_export", kwargs={"pk": tree.branch_a.pk})
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX_CONTENT_TYPE
    assert response["Content-Disposition"] == (
        "attachment; filename*=UTF-8''" + quote("甲党支部-党员名册-2026-03-01.xlsx")
    )
    assert workbook_rows(response.content) == [
        tuple(ROSTER_HEADERS),
        (
            "张三",
            "男",
            "13900000001",
            datetime(1980, 5, 1),
            datetime(2005, 7, 1),
            "正式党员",
            "在册",
            "否",
            None,
        ),
        (
            "李四",
            "女",
            "13900000002",
            datetime(1975, 10, 12),
            datetime(1999, 6, 30),
            "正式党员",
            "在册",
            "是",
            None,
        ),
        ("王芳", None, None, None, None, "预备党员", "在册", "否", None),
    ]


def test_export_reimports_into_an_empty_branch_with_the_same_values(client_for, tree, members):
    # given: the exported file, and its phones freed by removing branch A's members
    exported = client_for("secretary_a").get(
        reverse("members:roster_export", kwargs={"pk": tree.branch_a.pk})
    )
    original_values = field_values(tree.branch_a)
    Member.objects.filter(organization=tree.branch_a).delete()
    new_branch = BranchFactory(name="丁党支部", parent=tree.committee)

    # when
    result = import_file(new_branch, exported.content)

    # then
    assert result == ImportResult(created=3, errors=[], file_error="")
    assert field_values(new_branch) == original_values


def test_export_reimported_next_to_the_original_reports_every_taken_phone(
    client_for, tree, members
):
    # given
    exported = client_for("secretary_a").get(
        reverse("members:roster_export", kwargs={"pk": tree.branch_a.pk})
    )
    new_branch = BranchFactory(name="丁党支部", parent=tree.committee)

    # when
    result = import_file(new_branch, exported.content)

    # then
    assert result.errors == [
        RowError(2, "张三", ["手机号 13900000001 已登记在名册中的其他党员名下。"]),
        RowError(3, "李四", ["手机号 13900000002 已登记在名册中的其他党员名下。"]),
    ]
    assert result.created == 0
    assert Member.objects.filter(organization=new_branch).count() == 0


def test_export_neutralizes_text_a_spreadsheet_would_run_as_a_formula(client_for, tree, members):
    # given
    branch = BranchFactory(name="丁党支部", parent=tree.committee)
    MemberFactory(
        organization=branch,
        name='=HYPERLINK("http://example.com","点我")',
        phone="",
        status=Member.Status.EXEMPT,
        exempt_reason="@SUM(1+1)",
    )

    # when
    response = client_for("committee_staff").get(
        reverse("members:roster_export", kwargs={"pk": branch.pk})
    )

    # then
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = workbook.active
    assert list(sheet.iter_rows(min_row=2, values_only=True)) == [
        (
            '\'=HYPERLINK("http://example.com","点我")',
            None,
            None,
            None,
            None,
            "正式党员",
            "不列入积分考核",
            "否",
            "'@SUM(1+1)",
        )
    ]
    assert [cell.data_type for cell in sheet[2] if cell.value is not None] == ["s"] * 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+86 139", "'+86 139"),
        ("-5", "'-5"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("张三", "张三"),
        ("a=b", "a=b"),
        ("", ""),
        (-5, -5),
        (None, None),
    ],
)
def test_neutralize(value, expected):
    assert neutralize(value) == expected
