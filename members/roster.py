"""The branch roster as a workbook: the template, the all-or-nothing import, the export."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.datavalidation import DataValidation

from .excel import WorkbookError, cell_date, cell_text, read_table, write_workbook
from .models import Member, Organization

HEADERS = [
    "姓名",
    "性别",
    "手机号",
    "出生日期",
    "入党日期",
    "类别",
    "状态",
    "党员干部",
    "不列入考核原因",
]
REQUIRED_HEADERS = ("姓名", "类别", "状态")
WIDTHS = {"姓名": 12, "手机号": 16, "出生日期": 12, "入党日期": 12, "不列入考核原因": 28}
YES_NO = {"是": True, "否": False, "": False}
PHONE_PATTERN = re.compile(r"^1\d{10}$")


def _choice_lookup(choices: type) -> dict[str, str]:
    """Accept the Chinese label (the template's language), the label in the user's
    language, or the code of a choice."""
    lookup = {str(label): value for value, label in choices.choices}
    with translation.override("zh-hans"):
        lookup.update({str(label): value for value, label in choices.choices})
    lookup.update({value: value for value in choices.values})
    return lookup


@dataclass
class RowError:
    row_number: int
    name: str
    reasons: list[str]


@dataclass
class ImportResult:
    created: int = 0
    errors: list[RowError] = field(default_factory=list)
    file_error: str = ""

    @property
    def is_ok(self) -> bool:
        return not self.errors and not self.file_error


@translation.override("zh-hans")  # the workbook's columns and lists are in Chinese
def template_workbook() -> bytes:
    """An empty roster with drop-down lists for the coded columns and a sheet of guidance."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "党员名册"
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for index, header in enumerate(HEADERS):
        sheet.column_dimensions[chr(ord("A") + index)].width = WIDTHS.get(header, 12)
    lists = {
        "B": ["男", "女"],
        "F": [str(label) for label in Member.Category.labels],
        "G": [str(label) for label in Member.Status.labels],
        "H": ["是", "否"],
    }
    for column, options in lists.items():
        validation = DataValidation(type="list", formula1='"' + ",".join(options) + '"')
        validation.error = _("请从下拉列表中选择。")
        validation.add(f"{column}2:{column}{settings.ROSTER_IMPORT_MAX_ROWS + 1}")
        sheet.add_data_validation(validation)
    guide = workbook.create_sheet("填写说明")
    guide.column_dimensions["A"].width = 18
    guide.column_dimensions["B"].width = 70
    guide.append(["列", "说明"])
    for row in [
        ("姓名", "必填，50 字以内。"),
        ("性别", "男 / 女，可不填。"),
        (
            "手机号",
            "11 位手机号，可不填；同一手机号只能登记一人。无手机号时，同一支部内姓名不能重复。",
        ),
        ("出生日期、入党日期", "日期格式，如 1980-05-01，可不填。"),
        ("类别", "必填：" + "、".join(lists["F"]) + "。"),
        ("状态", "必填：" + "、".join(lists["G"]) + "。"),
        ("党员干部", "是 / 否，不填视为否。"),
        ("不列入考核原因", "状态为“不列入积分考核”时必填（如年老、患病、残疾）。"),
        ("导入规则", "整份文件一起校验：任何一行有错，则全部不导入，并列出每一行的错误原因。"),
    ]:
        guide.append(list(row))
    import io

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _parse_row(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Turn one row's cells into Member fields, with every reason it cannot be imported."""
    reasons: list[str] = []
    name = cell_text(values.get("姓名"))
    if not name:
        reasons.append(_("姓名不能为空。"))
    elif len(name) > 50:
        reasons.append(_("姓名超过 50 字。"))

    gender_text = cell_text(values.get("性别"))
    gender = _choice_lookup(Member.Gender).get(gender_text, None) if gender_text else ""
    if gender is None:
        reasons.append(_("性别“%(value)s”无法识别，应为“男”或“女”。") % {"value": gender_text})

    phone = cell_text(values.get("手机号")).replace(" ", "").replace("-", "")
    if phone and not PHONE_PATTERN.match(phone):
        reasons.append(_("手机号“%(value)s”不是 11 位手机号。") % {"value": phone})

    category_text = cell_text(values.get("类别"))
    category = _choice_lookup(Member.Category).get(category_text)
    if not category_text:
        reasons.append(_("类别不能为空。"))
    elif category is None:
        reasons.append(
            _("类别“%(value)s”无法识别，应为：%(options)s。")
            % {"value": category_text, "options": "、".join(str(x) for x in Member.Category.labels)}
        )

    status_text = cell_text(values.get("状态"))
    status = _choice_lookup(Member.Status).get(status_text)
    if not status_text:
        reasons.append(_("状态不能为空。"))
    elif status is None:
        reasons.append(
            _("状态“%(value)s”无法识别，应为：%(options)s。")
            % {"value": status_text, "options": "、".join(str(x) for x in Member.Status.labels)}
        )

    cadre_text = cell_text(values.get("党员干部"))
    is_cadre = YES_NO.get(cadre_text)
    if is_cadre is None:
        reasons.append(_("党员干部应填“是”或“否”，而不是“%(value)s”。") % {"value": cadre_text})

    exempt_reason = cell_text(values.get("不列入考核原因"))
    if status == Member.Status.EXEMPT and not exempt_reason:
        reasons.append(_("状态为“不列入积分考核”时须填写不列入考核原因。"))
    if len(exempt_reason) > 200:
        reasons.append(_("不列入考核原因超过 200 字。"))

    fields = {
        "name": name,
        "gender": gender or "",
        "phone": phone,
        "birth_date": cell_date(values.get("出生日期"), "出生日期", reasons),
        "joined_on": cell_date(values.get("入党日期"), "入党日期", reasons),
        "category": category,
        "status": status,
        "is_cadre": bool(is_cadre),
        "exempt_reason": exempt_reason,
    }
    return fields, reasons


def roster_import(*, branch: Organization, upload: IO[bytes], size: int) -> ImportResult:
    """Import a filled roster template into ``branch``: every row, or none.

    Each row is checked (required fields, known category and status, dates, phone
    numbers, duplicates inside the file and against the existing rosters). If any row
    fails, nothing is imported and every failing row is listed with its reasons.
    """
    result = ImportResult()
    if not branch.is_branch:
        result.file_error = _("名册只能导入到党支部。")
        return result
    try:
        table = read_table(
            upload,
            size=size,
            max_bytes=settings.ROSTER_IMPORT_MAX_BYTES,
            max_rows=settings.ROSTER_IMPORT_MAX_ROWS,
            required_headers=REQUIRED_HEADERS,
        )
    except WorkbookError as error:
        result.file_error = str(error)
        return result
    parsed: list[tuple[int, dict[str, Any], list[str]]] = [
        (number, *_parse_row(cells)) for number, cells in table
    ]
    if not parsed:
        result.file_error = _("文件中没有党员数据行。")
        return result

    _check_duplicates(branch, parsed)
    result.errors = [
        RowError(row_number=number, name=fields["name"], reasons=reasons)
        for number, fields, reasons in parsed
        if reasons
    ]
    if result.errors:
        return result
    with transaction.atomic():
        # Re-check against the roster inside the transaction: another import may have landed.
        _check_duplicates(branch, parsed)
        late_errors = [
            RowError(row_number=number, name=fields["name"], reasons=reasons)
            for number, fields, reasons in parsed
            if reasons
        ]
        if late_errors:
            result.errors = late_errors
            return result
        try:
            with transaction.atomic():
                Member.objects.bulk_create(
                    [Member(organization=branch, **fields) for _number, fields, _reasons in parsed]
                )
        except IntegrityError:
            # Another import took one of these phone numbers a moment ago.
            result.file_error = _(
                "导入时名册已被他人修改（手机号重复），本次没有导入任何党员，请重新上传。"
            )
            return result
    result.created = len(parsed)
    return result


def _check_duplicates(
    branch: Organization, parsed: list[tuple[int, dict[str, Any], list[str]]]
) -> None:
    """Add a reason to every row that repeats another row or an existing member.

    A member is identified by phone number when there is one; without a phone number,
    by name within the branch.
    """
    phones = [fields["phone"] for _n, fields, _r in parsed if fields["phone"]]
    taken_phones = set(Member.objects.filter(phone__in=phones).values_list("phone", flat=True))
    branch_names = set(Member.objects.filter(organization=branch).values_list("name", flat=True))
    first_row_of: dict[tuple[str, str], int] = {}
    for number, fields, reasons in parsed:
        key = ("phone", fields["phone"]) if fields["phone"] else ("name", fields["name"])
        if not key[1]:
            continue
        message_done = False
        if key in first_row_of:
            if key[0] == "phone":
                reasons.append(_("手机号与第 %(row)s 行重复。") % {"row": first_row_of[key]})
            else:
                reasons.append(
                    _("与第 %(row)s 行同名且都没有手机号，无法区分。") % {"row": first_row_of[key]}
                )
            message_done = True
        else:
            first_row_of[key] = number
        if message_done:
            continue
        if key[0] == "phone" and fields["phone"] in taken_phones:
            duplicate = _("手机号 %(phone)s 已登记在名册中的其他党员名下。") % {
                "phone": fields["phone"]
            }
            if duplicate not in reasons:
                reasons.append(duplicate)
        if key[0] == "name" and fields["name"] in branch_names:
            duplicate = _("本支部名册中已有“%(name)s”，请填写手机号加以区分。") % {
                "name": fields["name"]
            }
            if duplicate not in reasons:
                reasons.append(duplicate)


def roster_rows(members) -> list[list[Any]]:
    rows = []
    for member in members:
        rows.append(
            [
                member.name,
                member.get_gender_display() if member.gender else "",
                member.phone,
                member.birth_date,
                member.joined_on,
                member.get_category_display(),
                member.get_status_display(),
                "是" if member.is_cadre else "否",
                member.exempt_reason,
            ]
        )
    return rows


@translation.override("zh-hans")  # the same Chinese columns and values as the template
def roster_export(*, branch: Organization, members) -> bytes:
    """The branch roster in the same columns as the template, so it can be edited and re-read."""
    return write_workbook([("党员名册", HEADERS, roster_rows(members))], widths=WIDTHS)
