"""从 Excel 导入台账: the template, the upload, the row-by-row preview, confirm and discard.

Every page needs the right to record entries in the branch (the secretary, the recorder);
anyone else, and another branch's secretary, gets 404. The services judge the rows and
record them; the views parse the request and show what the services say.
"""

from __future__ import annotations

from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from members.excel import XLSX_CONTENT_TYPE
from members.permissions import Action
from members.refusals import INVALID, error_messages, refusal_status

from .. import ledger_import as importer
from ..models import LedgerImport
from .branch import _branch, _context, _url, _year


class LedgerImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("填好的台账文件（.xlsx）"),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx"}),
        allow_empty_file=True,  # the importer says what is wrong with an empty file
        error_messages={"required": gettext_lazy("请选择要导入的台账文件。")},
    )


def _xlsx_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return response


@login_required
def branch_ledger_import_template(request: HttpRequest, pk: int) -> HttpResponse:
    """The import template, with the rules of the branch's scheme for ?year=."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    return _xlsx_response(
        importer.template_workbook(branch=branch, year=year), f"积分台账导入模板-{year}.xlsx"
    )


@login_required
@require_http_methods(["GET", "POST"])
def branch_ledger_import(request: HttpRequest, pk: int) -> HttpResponse:
    """The upload form → ``ledger_import_preview`` → the preview page."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    is_post = request.method == "POST"
    form = LedgerImportForm(request.POST if is_post else None, request.FILES if is_post else None)
    status = 200
    if is_post:
        status = INVALID
        if form.is_valid():
            try:
                ledger_import = importer.ledger_import_preview(
                    branch=branch, user=request.user, upload=form.cleaned_data["file"]
                )
            except (ValidationError, PermissionDenied) as error:
                status = refusal_status(error)
                for message in error_messages(error):
                    form.add_error("file", message)
            else:
                return redirect(_preview_url(ledger_import))
    return render(
        request,
        "scoring/branch/ledger_import.html",
        _context(
            request,
            branch,
            year,
            form=form,
            imports=importer.imports_of(branch),
            active="import",
        ),
        status=status,
    )


def _preview_url(ledger_import: LedgerImport) -> str:
    return reverse(
        "scoring:branch_ledger_import_preview",
        kwargs={"pk": ledger_import.branch_id, "token": ledger_import.token},
    )


def _ledger_import(request: HttpRequest, pk: int, token) -> LedgerImport:
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    return get_object_or_404(
        LedgerImport.objects.select_related("branch", "uploaded_by"), branch=branch, token=token
    )


def _years(ledger_import: LedgerImport) -> list[int]:
    return sorted({int(row["occurred_on"][:4]) for row in ledger_import.rows if row["ok"]})


@login_required
def branch_ledger_import_preview(request: HttpRequest, pk: int, token) -> HttpResponse:
    """Every row of the upload: what it will be recorded as, or why it cannot be."""
    ledger_import = _ledger_import(request, pk, token)
    rows = ledger_import.rows
    recordable = sum(1 for row in rows if row["ok"])
    years = _years(ledger_import)
    return render(
        request,
        "scoring/branch/ledger_import_preview.html",
        _context(
            request,
            ledger_import.branch,
            years[-1] if years else _year(request),
            ledger_import=ledger_import,
            rows=rows,
            total=len(rows),
            recordable=recordable,
            refused=len(rows) - recordable,
            active="import",
        ),
    )


@login_required
@require_POST
def branch_ledger_import_confirm(request: HttpRequest, pk: int, token) -> HttpResponse:
    """Record every valid row → ``ledger_import_confirm``; then the branch ledger."""
    ledger_import = _ledger_import(request, pk, token)
    branch = ledger_import.branch
    try:
        count = importer.ledger_import_confirm(ledger_import=ledger_import, user=request.user)
    except (ValidationError, PermissionDenied) as error:
        code = getattr(error, "code", None)
        if code == "already_imported":  # a second click: the first one did the work
            messages.info(request, " ".join(error_messages(error)))
            return redirect(_url("branch_ledger", branch, year=_latest_year(ledger_import)))
        report = messages.warning if code == "preview_changed" else messages.error
        for message in error_messages(error):
            report(request, message)
        return redirect(_preview_url(ledger_import))
    messages.success(
        request,
        _("已从“%(file)s”导入 %(count)s 条积分记录。")
        % {"file": ledger_import.original_name, "count": count},
    )
    return redirect(_url("branch_ledger", branch, year=_latest_year(ledger_import)))


def _latest_year(ledger_import: LedgerImport) -> int | None:
    ledger_import.refresh_from_db(fields=["rows"])
    years = _years(ledger_import)
    return years[-1] if years else None


@login_required
@require_POST
def branch_ledger_import_discard(request: HttpRequest, pk: int, token) -> HttpResponse:
    """Give up the import → ``ledger_import_discard``; nothing is recorded."""
    ledger_import = _ledger_import(request, pk, token)
    try:
        importer.ledger_import_discard(ledger_import=ledger_import, user=request.user)
    except (ValidationError, PermissionDenied) as error:
        for message in error_messages(error):
            messages.error(request, message)
        return redirect(_preview_url(ledger_import))
    messages.info(
        request,
        _("已放弃导入“%(file)s”，台账没有任何改动。") % {"file": ledger_import.original_name},
    )
    return redirect(_url("branch_ledger_import", ledger_import.branch))


urlpatterns = [
    path(
        "branches/<int:pk>/ledger/import/",
        branch_ledger_import,
        name="branch_ledger_import",
    ),
    path(
        "branches/<int:pk>/ledger/import/template/",
        branch_ledger_import_template,
        name="branch_ledger_import_template",
    ),
    path(
        "branches/<int:pk>/ledger/import/<uuid:token>/",
        branch_ledger_import_preview,
        name="branch_ledger_import_preview",
    ),
    path(
        "branches/<int:pk>/ledger/import/<uuid:token>/confirm/",
        branch_ledger_import_confirm,
        name="branch_ledger_import_confirm",
    ),
    path(
        "branches/<int:pk>/ledger/import/<uuid:token>/discard/",
        branch_ledger_import_discard,
        name="branch_ledger_import_discard",
    ),
]
