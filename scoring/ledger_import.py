"""台账导入: a branch moving off spreadsheets uploads its entries as an .xlsx workbook.

The upload is read (read-only, size and row limits), every row is checked exactly as
recording it by hand would check it, plus the caps (counting the rows above it in the same
file), repeated rows and rows already in the ledger; the preview lists every row with what
it will become or why it cannot be recorded. Confirming re-checks everything against the
database as it is then and records every valid row through ``services.entry_record`` in one
transaction, or nothing.

Each preview row (``LedgerImport.rows``) is a dict: ``row`` (the sheet's row number), the
cells as read (``name``, ``phone``, ``code``, ``points_text``, ``date_text``,
``description``), ``ok`` and ``reasons``; for a valid row also ``member_id``,
``member_name``, ``rule_id``, ``rule_name``, ``points`` (and ``points_display``) and
``occurred_on``.
"""

from __future__ import annotations

import datetime
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font

from members.excel import WorkbookError, cell_date, cell_text, neutralize, read_table
from members.models import Member, Organization
from members.permissions import Action

from . import selectors
from .formatting import format_number, signed
from .models import Entry, LedgerImport, Rule
from .services import (
    Scored,
    _enqueue_recompute,
    _require,
    clean_description,
    ensure_not_future,
    entry_record,
    lookups_remembered,
    parse_points,
    recomputes_deferred,
    require_scheme,
    validate_caps,
    validate_recording,
)

NAME, PHONE, CODE, POINTS, DATE, DESCRIPTION = (
    "党员姓名",
    "手机号",
    "细则编号",
    "分值",
    "发生日期",
    "事项说明",
)
HEADERS = [NAME, PHONE, CODE, POINTS, DATE, DESCRIPTION]
REQUIRED_HEADERS = (NAME, CODE, POINTS, DATE, DESCRIPTION)
WIDTHS = {"A": 14, "B": 16, "C": 10, "D": 8, "E": 12, "F": 40}
# The template's example row carries this name; a row with it is left out of the import.
EXAMPLE_NAME = "示例（导入时忽略此行）"
# What is kept of one cell in the preview: enough to show it and to judge it again.
CELL_LIMIT = 1000


def _limits() -> tuple[int, int]:
    """(bytes, data rows) an upload may have."""
    return settings.LEDGER_IMPORT_MAX_BYTES, settings.LEDGER_IMPORT_MAX_ROWS


# --- the template ------------------------------------------------------------------------------


def _audience(rule: Rule) -> str:
    parts = []
    if rule.audience != Rule.Audience.ALL:
        parts.append(str(rule.get_audience_display()))
    if rule.applies_to:
        labels = dict(Member.Category.choices)
        parts.append("、".join(str(labels.get(value, value)) for value in rule.applies_to))
    return "；".join(parts) or str(Rule.Audience.ALL.label)


@translation.override("zh-hans")  # the columns, like the roster template's, are in Chinese
def template_workbook(*, branch: Organization, year: int) -> bytes:
    """The import template: the six columns with one example row (left out when imported),
    and a sheet explaining each column and listing the rules of the branch's scheme for
    ``year`` with their codes, points and caps."""
    rules = [rule for rule in selectors.current_rules(branch, year) if rule.kind != Rule.Kind.VETO]
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "积分台账"
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for column, width in WIDTHS.items():
        sheet.column_dimensions[column].width = width
    example = rules[0] if rules else None
    sheet.append(
        [
            EXAMPLE_NAME,
            "",
            neutralize(example.code) if example else "B01",
            example.points_min if example else 5,
            timezone.localdate(),
            "参加主题党日活动",
        ]
    )
    sheet["E2"].number_format = "yyyy-mm-dd"

    guide = workbook.create_sheet("填写说明")
    for column, width in {"A": 12, "B": 24, "C": 14, "D": 8, "E": 12}.items():
        guide.column_dimensions[column].width = width
    guide.column_dimensions["F"].width = 14
    guide.column_dimensions["G"].width = 14
    guide.column_dimensions["H"].width = 24
    guide.append(["列", "说明"])
    for row in [
        (NAME, "必填，与本支部党员名册中的姓名一致。"),
        (PHONE, "可不填；本支部有同名党员时必填，用于区分。"),
        (CODE, "必填，见下方细则项列表中的“编号”。"),
        (POINTS, "分值固定的细则项可不填；有范围的须填写范围内的分值，减分填负数，最多两位小数。"),
        (DATE, "必填，如 2025-03-01；不能晚于今天，不能落在已确认归档（锁定）的季度。"),
        (DESCRIPTION, "必填，500 字以内，如会议、活动名称。"),
        ("示例行", f"姓名为“{EXAMPLE_NAME}”的行不会导入，可保留或删除。"),
        (
            "导入规则",
            "上传后先逐行预览：每行显示将记录的内容或不能记录的原因；确认后一次记录所有可记录的行。"
            "超出细则项计次或计分上限的行、文件内重复的行、台账中已有的相同记录不会记录。"
            "一票否决须经支部党员大会表决，不能从表格导入。",
        ),
    ]:
        guide.append(list(row))
    guide.append([])
    scheme = rules[0].scheme if rules else None
    title = (
        f"{year} 年度细则项（{neutralize(scheme.name)}）"
        if scheme
        else f"{year} 年度本支部尚未采用积分细则"
    )
    guide.append([title])
    guide.cell(row=guide.max_row, column=1).font = Font(bold=True)
    columns = ["编号", "名称", "类别", "类型", "分值", "每季度最多计次", "每年最多计分", "适用对象"]
    guide.append(columns)
    for cell in guide[guide.max_row]:
        cell.font = Font(bold=True)
    for rule in rules:
        guide.append(
            [
                neutralize(rule.code),
                neutralize(rule.name),
                neutralize(rule.category.name),
                str(rule.get_kind_display()),
                rule.points_display,
                rule.max_times_per_quarter if rule.max_times_per_quarter is not None else "不限",
                format_number(rule.max_points_per_year)
                if rule.max_points_per_year is not None
                else "不限",
                _audience(rule),
            ]
        )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- reading the upload -----------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return cell_text(value)[:CELL_LIMIT]


def _read_upload(upload: UploadedFile) -> list[dict[str, Any]]:
    """The data rows of the upload as text, in sheet order; a file that cannot be read is
    refused with the reason. Formulas are read as their text, never evaluated."""
    max_bytes, max_rows = _limits()
    try:
        table = read_table(
            upload,
            size=upload.size,
            max_bytes=max_bytes,
            max_rows=max_rows,
            required_headers=REQUIRED_HEADERS,
            formulas_as_text=True,
        )
    except WorkbookError as error:
        raise ValidationError(str(error), code="bad_file") from error
    cells = [
        {
            "row": number,
            "name": _cell(values.get(NAME)),
            "phone": _cell(values.get(PHONE)).replace(" ", "").replace("-", ""),
            "code": _cell(values.get(CODE)),
            "points_text": _cell(values.get(POINTS)),
            "date_text": _cell(values.get(DATE)),
            "description": _cell(values.get(DESCRIPTION)),
        }
        for number, values in table
        if cell_text(values.get(NAME)) != EXAMPLE_NAME
    ]
    if not cells:
        raise ValidationError(_("文件中没有台账数据行。"), code="no_rows")
    return cells


# --- judging the rows --------------------------------------------------------------------------


@dataclass
class _Checked:
    rows: list[dict[str, Any]]
    recordable: list[tuple[int, Scored, str]]  # (row number, scored entry, description)


def _find_member(
    by_name: dict[str, list[Member]], name: str, phone: str, reasons: list[str]
) -> Member | None:
    if not name:
        reasons.append(_("党员姓名不能为空。"))
        return None
    candidates = by_name.get(name, [])
    if not candidates:
        reasons.append(_("本支部没有名为“%(name)s”的党员。") % {"name": name})
        return None
    if phone:
        candidates = [member for member in candidates if member.phone == phone]
        if not candidates:
            reasons.append(
                _("本支部没有姓名为“%(name)s”、手机号为 %(phone)s 的党员。")
                % {"name": name, "phone": phone}
            )
            return None
    if len(candidates) > 1:
        # A transferred-out namesake cannot be scored, so the one still on the roster is meant.
        recordable = [m for m in candidates if m.status != Member.Status.TRANSFERRED_OUT]
        if len(recordable) == 1:
            return recordable[0]
        reasons.append(
            _("本支部有 %(count)s 名党员名为“%(name)s”，请填写手机号加以区分。")
            % {"count": len(candidates), "name": name}
        )
        return None
    return candidates[0]


def _rules_of(
    branch: Organization, year: int, cache: dict[int, dict[str, Rule] | ValidationError]
) -> dict[str, Rule] | ValidationError:
    """{code: current rule} of the scheme the branch uses in ``year``, or why there is none."""
    if year not in cache:
        try:
            require_scheme(branch, year)
        except ValidationError as error:
            cache[year] = error
        else:
            cache[year] = {rule.code: rule for rule in selectors.current_rules(branch, year)}
    return cache[year]


def _check_rows(branch: Organization, cells: list[dict[str, Any]]) -> _Checked:
    """Judge every row against the database as it is now, each reason in column order; the
    rows above a row count for its caps and repeats only when they are recordable.

    Call inside ``services.lookups_remembered``: the scheme, the locks and each member's
    capped entries are then read once, not once per row."""
    by_name: dict[str, list[Member]] = defaultdict(list)
    for member in Member.objects.filter(organization=branch).select_related("organization"):
        by_name[member.name].append(member)
    years = {
        day.year for row in cells if (day := cell_date(row["date_text"], DATE, [])) is not None
    }
    rules_of_year: dict[int, dict[str, Rule] | ValidationError] = {}
    # An identical entry already in the ledger (and not reversed): a file sent twice, or a
    # spreadsheet that kept last month's rows, must not record them again.
    in_ledger = set(
        Entry.objects.filter(
            member__organization=branch,
            year__in=sorted(years),
            reverses__isnull=True,
            reversal__isnull=True,
        ).values_list("member_id", "rule__code", "points", "occurred_on", "description")
    )
    checked = _Checked(rows=[], recordable=[])
    accepted: dict[tuple[int, str, int], list[Scored]] = defaultdict(list)  # for the caps
    first_row_of: dict[tuple, int] = {}
    for row in cells:
        name_reasons: list[str] = []
        member = _find_member(by_name, row["name"], row["phone"], name_reasons)
        points_reasons: list[str] = []
        points = None
        try:
            points = parse_points(row["points_text"])
        except ValidationError as error:
            points_reasons.extend(error.messages)
        date_reasons: list[str] = []
        day = None
        if not row["date_text"]:
            date_reasons.append(_("发生日期不能为空。"))
        else:
            day = cell_date(row["date_text"], DATE, date_reasons)
        if day is not None:
            try:
                ensure_not_future(day)
            except ValidationError as error:
                date_reasons.extend(error.messages)
        code_reasons: list[str] = []
        rule = None
        if not row["code"]:
            code_reasons.append(_("细则编号不能为空。"))
        elif day is not None and not date_reasons:  # the code is looked up in the year's scheme
            rules = _rules_of(branch, day.year, rules_of_year)
            if isinstance(rules, ValidationError):
                code_reasons.extend(rules.messages)
            else:
                rule = rules.get(row["code"])
                if rule is None:
                    code_reasons.append(
                        _("细则编号“%(code)s”不在本支部 %(year)s 年度采用的积分细则中。")
                        % {"code": row["code"], "year": day.year}
                    )
        description_reasons: list[str] = []
        try:
            clean_description(row["description"])
        except ValidationError as error:
            description_reasons.extend(error.messages)
        reasons = [
            *name_reasons,
            *code_reasons,
            *points_reasons,
            *date_reasons,
            *description_reasons,
        ]
        scored = None
        description = ""
        if not reasons and member is not None and rule is not None and day is not None:
            try:
                scored, description = validate_recording(
                    member=member,
                    rule=rule,
                    points=points,
                    occurred_on=day,
                    description=row["description"],
                )
                key = (member.pk, rule.code, scored.points, day, description)
                if key in first_row_of:
                    reasons.append(
                        _(
                            "与第 %(row)s 行完全相同（党员、细则项、分值、日期、事项说明），不重复记录。"
                        )
                        % {"row": first_row_of[key]}
                    )
                elif key in in_ledger:
                    reasons.append(
                        _(
                            "台账中已有一条完全相同的记录（党员、细则项、分值、日期、事项说明），不重复记录。"
                        )
                    )
                else:
                    validate_caps(scored, earlier=accepted[(member.pk, rule.code, day.year)])
            except ValidationError as error:
                reasons.extend(error.messages)
        result = {**row, "ok": not reasons, "reasons": reasons}
        if not reasons and scored is not None:
            accepted[(member.pk, rule.code, day.year)].append(scored)
            first_row_of[(member.pk, rule.code, scored.points, day, description)] = row["row"]
            checked.recordable.append((row["row"], scored, description))
            result.update(
                member_id=member.pk,
                member_name=member.name,
                rule_id=rule.pk,
                rule_name=f"{rule.code} {rule.name}",
                points=str(scored.points),
                points_display=signed(scored.points),
                occurred_on=day.isoformat(),
                description=description,
            )
        checked.rows.append(result)
    return checked


def _recordable_signature(rows: list[dict[str, Any]]) -> list[tuple]:
    """What a confirm would record, row by row: compared before recording anything."""
    return [
        (
            row["row"],
            row["member_id"],
            row["rule_id"],
            row["points"],
            row["occurred_on"],
            row["description"],
        )
        for row in rows
        if row["ok"]
    ]


def _inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("row", "name", "phone", "code", "points_text", "date_text", "description")
    return [{key: row[key] for key in keys} for row in rows]


def recordable_count(ledger_import: LedgerImport) -> int:
    return sum(1 for row in ledger_import.rows if row["ok"])


def form_token_of(ledger_import: LedgerImport, row_number: int) -> uuid.UUID:
    """The form token of one row's entry: the same on every confirm of this import, so a
    second confirm cannot record the row again."""
    return uuid.uuid5(ledger_import.token, f"row-{row_number}")


# --- the services ------------------------------------------------------------------------------


def ledger_import_preview(
    *, branch: Organization, user: User, upload: UploadedFile
) -> LedgerImport:
    """Read an uploaded ledger workbook and judge every row; keep the upload and the preview.

    A file that cannot be read (not .xlsx, damaged, empty, too large, too many rows, the
    template's columns missing, no data rows) is refused and nothing is stored."""
    _require(user, Action.RECORD_ENTRY, branch)
    if not branch.is_branch:
        raise ValidationError(_("台账只能导入到党支部。"), code="not_branch")
    cells = _read_upload(upload)
    with lookups_remembered():
        checked = _check_rows(branch, cells)
    upload.seek(0)
    return LedgerImport.objects.create(
        branch=branch,
        uploaded_by=user,
        file=upload,
        original_name=(upload.name or "")[:255],
        rows=checked.rows,
    )


def ledger_import_confirm(*, ledger_import: LedgerImport, user: User) -> int:
    """Record every valid row of a previewed import as a ledger entry, all in one transaction.

    Everything is checked again first: if what would be recorded now differs from the
    preview the secretary saw (a period locked, a member transferred, a cap reached
    meanwhile), nothing is recorded, the preview is replaced by the new one and the confirm
    is refused. Returns the number of entries recorded."""
    new_rows = None
    with transaction.atomic(), lookups_remembered():
        locked = (
            LedgerImport.objects.select_for_update()
            .select_related("branch")
            .get(pk=ledger_import.pk)
        )
        _require(user, Action.RECORD_ENTRY, locked.branch)
        if locked.status == LedgerImport.Status.IMPORTED:
            raise ValidationError(
                _("这份台账已经导入（%(count)s 条记录），不能重复导入。")
                % {"count": locked.imported_count},
                code="already_imported",
            )
        if locked.status == LedgerImport.Status.DISCARDED:
            raise ValidationError(_("这份台账已放弃导入，请重新上传。"), code="discarded")
        checked = _check_rows(locked.branch, _inputs(locked.rows))
        if _recordable_signature(checked.rows) != _recordable_signature(locked.rows):
            new_rows = checked.rows
        else:
            if not checked.recordable:
                raise ValidationError(
                    _("没有可以记录的行，未导入任何记录。"), code="nothing_to_import"
                )
            with recomputes_deferred() as recomputes:
                for row_number, scored, description in checked.recordable:
                    try:
                        entry_record(
                            user=user,
                            member=scored.member,
                            rule=scored.rule,
                            occurred_on=scored.occurred_on,
                            description=description,
                            points=scored.points,
                            form_token=form_token_of(locked, row_number),
                        )
                    except ValidationError as error:
                        raise ValidationError(
                            _("第 %(row)s 行：%(reason)s 本次没有导入任何记录。")
                            % {"row": row_number, "reason": " ".join(error.messages)},
                            code="row_refused",
                        ) from error
            by_year: dict[int, list[int]] = defaultdict(list)
            for member_id, year in recomputes:
                by_year[year].append(member_id)
            for year, member_ids in sorted(by_year.items()):
                _enqueue_recompute(member_ids, year)
            locked.rows = checked.rows
            locked.status = LedgerImport.Status.IMPORTED
            locked.imported_count = len(checked.recordable)
            locked.imported_at = timezone.now()
            locked.save(update_fields=["rows", "status", "imported_count", "imported_at"])
            return locked.imported_count
    # Outside the refused transaction: the secretary must see what a confirm would do now.
    LedgerImport.objects.filter(pk=ledger_import.pk, status=LedgerImport.Status.PREVIEWED).update(
        rows=new_rows
    )
    raise ValidationError(
        _(
            "预览之后台账或细则已有变化，部分行的结果已不同。本次没有导入任何记录，请查看新的预览后再确认。"
        ),
        code="preview_changed",
    )


def ledger_import_discard(*, ledger_import: LedgerImport, user: User) -> LedgerImport:
    """Give up a previewed import: nothing is recorded; the upload stays on file."""
    with transaction.atomic():
        locked = (
            LedgerImport.objects.select_for_update()
            .select_related("branch")
            .get(pk=ledger_import.pk)
        )
        _require(user, Action.RECORD_ENTRY, locked.branch)
        if locked.status != LedgerImport.Status.PREVIEWED:
            raise ValidationError(
                _("这份台账%(status)s，不能再放弃。") % {"status": locked.get_status_display()},
                code="not_previewed",
            )
        locked.status = LedgerImport.Status.DISCARDED
        locked.save(update_fields=["status"])
    return locked


def imports_of(branch: Organization, *, limit: int = 10) -> list[LedgerImport]:
    """The branch's latest imports, newest first (the upload page lists them)."""
    return list(
        LedgerImport.objects.filter(branch=branch)
        .select_related("uploaded_by")
        .order_by("-created_at", "-id")[:limit]
    )


__all__ = [
    "HEADERS",
    "EXAMPLE_NAME",
    "form_token_of",
    "imports_of",
    "ledger_import_confirm",
    "ledger_import_discard",
    "ledger_import_preview",
    "recordable_count",
    "template_workbook",
]
