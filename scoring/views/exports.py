"""Excel exports on the web: the exports page (ask for a workbook, watch it being written,
download it), the status a page polls, the download, and the branch ledger's direct download.

Rankings are written in the background (``scoring.exports.export_job_create`` → a Celery
job); a branch's 台账 is small and streams straight to the browser from the ledger page
(above ``DIRECT_LEDGER_ROWS`` entries it becomes a job too). Organizations and jobs outside
the user's reach answer 404.
"""

from __future__ import annotations

import tempfile
from urllib.parse import quote, urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from members.excel import XLSX_CONTENT_TYPE
from members.models import Member, Organization
from members.permissions import Action, can, get_organization_or_404
from members.refusals import INVALID

from .. import exports, selectors
from ..models import ExportJob

BRANCH = [Organization.Kind.BRANCH]
RECENT_JOBS = 20
# A branch ledger up to this many entries streams straight to the browser; above, it is a job.
DIRECT_LEDGER_ROWS = 20_000
SPOOL_BYTES = 8 * 1024 * 1024
POLL_STATUSES = (ExportJob.Status.PENDING, ExportJob.Status.RUNNING)


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return response


def _may_export(user, organization: Organization) -> bool:
    return can(user, Action.EXPORT_RANKING, organization) or can(
        user, Action.EXPORT_LEDGER, organization
    )


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


class ExportForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("导出内容"),
        choices=ExportJob.Kind.choices,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        error_messages={
            "required": gettext_lazy("请选择导出内容。"),
            "invalid_choice": gettext_lazy("请选择导出内容。"),
        },
    )
    organization = forms.TypedChoiceField(
        label=gettext_lazy("党组织"),
        coerce=int,
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={
            "required": gettext_lazy("请选择党组织。"),
            "invalid_choice": gettext_lazy("请选择列表中的党组织。"),
        },
    )
    year = forms.IntegerField(
        label=gettext_lazy("年度"),
        min_value=2000,
        max_value=2100,
        widget=forms.NumberInput(attrs={"class": "form-control"}),
        error_messages={
            "required": gettext_lazy("请填写年度。"),
            "invalid": gettext_lazy("年度须为 2000 至 2100 之间的整数。"),
            "min_value": gettext_lazy("年度须为 2000 至 2100 之间的整数。"),
            "max_value": gettext_lazy("年度须为 2000 至 2100 之间的整数。"),
        },
    )
    quarter = forms.TypedChoiceField(
        label=gettext_lazy("季度"),
        coerce=int,
        choices=[
            (0, gettext_lazy("全年")),
            (1, gettext_lazy("第 1 季度")),
            (2, gettext_lazy("第 2 季度")),
            (3, gettext_lazy("第 3 季度")),
            (4, gettext_lazy("第 4 季度")),
        ],
        initial=0,
        widget=forms.Select(attrs={"class": "form-select"}),
        help_text=gettext_lazy(
            "年度积分排名选“全年”；季度积分排名选一个季度；台账可选全年或某季度。"
        ),
        error_messages={"invalid_choice": gettext_lazy("季度须为 1 至 4，或“全年”。")},
    )
    category = forms.ChoiceField(
        label=gettext_lazy("党员类别"),
        choices=[("", gettext_lazy("全部类别")), *Member.Category.choices],
        required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={"invalid_choice": gettext_lazy("请选择列表中的党员类别。")},
    )

    def __init__(self, *args, organizations: list[Organization], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].choices = [
            (organization.pk, "\u3000" * (organization.depth - 1) + organization.name)
            for organization in organizations
        ]


def _form_initial(request: HttpRequest) -> dict:
    today = timezone.localdate()
    initial = {
        "kind": ExportJob.Kind.ANNUAL_RANKING,
        "year": today.year,
        "quarter": 0,
        "category": "",
    }
    query = request.GET
    if query.get("kind") in ExportJob.Kind.values:
        initial["kind"] = query["kind"]
    year = _int(query.get("year"))
    if year is not None and 2000 <= year <= 2100:
        initial["year"] = year
    quarter = _int(query.get("quarter"))
    if quarter in (0, 1, 2, 3, 4):
        initial["quarter"] = quarter
    if query.get("category") in Member.Category.values:
        initial["category"] = query["category"]
    organization = _int(query.get("organization"))
    if organization is not None:
        initial["organization"] = organization
    return initial


def _requested_organization(request: HttpRequest) -> Organization | None:
    """The organization named by ?organization= / the posted form, if the user may export it."""
    source = request.POST if request.method == "POST" else request.GET
    pk = _int(source.get("organization"))
    if pk is None:
        return None
    organization = Organization.objects.filter(pk=pk).first()
    if organization is None or not _may_export(request.user, organization):
        raise Http404
    return organization


@login_required
@require_http_methods(["GET", "POST"])
def exports_page(request: HttpRequest) -> HttpResponse:
    """导出: ask for a ranking or ledger workbook; the user's recent jobs with their progress."""
    user = request.user
    requested = _requested_organization(request)
    organizations = selectors.export_organizations(user, include=requested)
    if not organizations:
        raise Http404
    status = 200
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if requested is not None and kind in ExportJob.Kind.values:
            # The right for this kind of export, there (404 like any page out of reach).
            get_organization_or_404(user, exports.action_for(kind), requested.pk)
        form = ExportForm(request.POST, organizations=organizations)
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = exports.export_job_create(
                    user=user,
                    kind=data["kind"],
                    organization=requested,
                    year=data["year"],
                    quarter=data["quarter"],
                    category=data["category"],
                )
            except exports.ExportAlreadyRunning as running:
                messages.info(request, running.messages[0])
                return redirect(_page_url(running.job))
            except PermissionDenied as error:
                raise Http404 from error
            except ValidationError as error:
                _add_errors(form, error)
                status = INVALID
            else:
                messages.success(
                    request,
                    _("已开始导出“%(what)s”，完成后可在下方下载。")
                    % {"what": exports.describe(job)},
                )
                return redirect(_page_url(job))
        else:
            status = INVALID
    else:
        form = ExportForm(initial=_form_initial(request), organizations=organizations)
    exports.export_jobs_expire_stale(user=user)
    jobs = list(selectors.export_jobs_for(user)[:RECENT_JOBS])
    return render(
        request,
        "scoring/exports/page.html",
        {"form": form, "jobs": _rows(jobs), "poll_statuses": POLL_STATUSES},
        status=status,
    )


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, field_errors in error.error_dict.items():
            for message in field_errors:
                form.add_error(field if field in form.fields else None, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


def _page_url(job: ExportJob) -> str:
    query = {
        "organization": job.organization_id,
        "kind": job.kind,
        "year": job.year,
        "quarter": job.quarter,
    }
    if job.category:
        query["category"] = job.category
    return f"{reverse('scoring:exports')}?{urlencode(query)}#export-job-{job.pk}"


def _rows(jobs: list[ExportJob]) -> list[dict]:
    return [{"job": job, "title": exports.describe(job)} for job in jobs]


@login_required
@require_GET
def export_status(request: HttpRequest, pk: int) -> HttpResponse:
    """A job's status: the table row (htmx polls it every 2 s while the job runs) or JSON."""
    exports.export_jobs_expire_stale(user=request.user)
    job = get_object_or_404(selectors.export_jobs_for(request.user), pk=pk)
    if request.headers.get("HX-Request"):
        return render(
            request,
            "scoring/exports/_job.html",
            {"row": _rows([job])[0], "poll_statuses": POLL_STATUSES},
        )
    return JsonResponse(
        {
            "id": job.pk,
            "kind": job.kind,
            "status": job.status,
            "status_display": job.get_status_display(),
            "percent": job.percent,
            "rows_written": job.rows_written,
            "rows_total": job.rows_total,
            "error": job.error,
            "download_url": (
                reverse("scoring:export_download", kwargs={"pk": job.pk})
                if exports.may_download(request.user, job)
                else None
            ),
        }
    )


@login_required
@require_GET
def export_download(request: HttpRequest, pk: int) -> FileResponse:
    """The finished workbook, for the user who asked for it (anyone else: 404)."""
    job = ExportJob.objects.select_related("organization").filter(pk=pk).first()
    if job is None or not exports.may_download(request.user, job):
        raise Http404
    try:
        content = job.file.open("rb")
    except FileNotFoundError as error:
        raise Http404 from error
    response = FileResponse(content, content_type=XLSX_CONTENT_TYPE)
    return _attachment(response, job.filename)


@login_required
@require_GET
def branch_ledger_export(request: HttpRequest, pk: int) -> HttpResponse:
    """导出台账: the branch's ledger of ?year= (and ?quarter=) as a workbook, straight away."""
    branch = get_organization_or_404(request.user, Action.EXPORT_LEDGER, pk, kinds=BRANCH)
    year = _int(request.GET.get("year"))
    quarter = _int(request.GET.get("quarter") or "0")
    ledger_url = reverse("scoring:branch_ledger", kwargs={"pk": branch.pk})
    try:
        exports.validate_export(
            kind=ExportJob.Kind.BRANCH_LEDGER,
            organization=branch,
            year=year,
            quarter=quarter,
            category="",
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(ledger_url)
    if exports.ledger_count(branch=branch, year=year, quarter=quarter) > DIRECT_LEDGER_ROWS:
        try:
            job = exports.export_job_create(
                user=request.user,
                kind=ExportJob.Kind.BRANCH_LEDGER,
                organization=branch,
                year=year,
                quarter=quarter,
            )
        except exports.ExportAlreadyRunning as running:
            messages.info(request, running.messages[0])
            return redirect(_page_url(running.job))
        messages.info(request, _("台账较大，已转为后台导出，完成后可在此页下载。"))
        return redirect(_page_url(job))
    content = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 — FileResponse closes it
    exports.write_ledger_workbook(content, branch=branch, year=year, quarter=quarter)
    content.seek(0)
    response = FileResponse(content, content_type=XLSX_CONTENT_TYPE)
    filename = exports.export_filename(ExportJob.Kind.BRANCH_LEDGER, branch, year, quarter, "")
    return _attachment(response, filename)


urlpatterns = [
    path("exports/", exports_page, name="exports"),
    path("exports/<int:pk>/status/", export_status, name="export_status"),
    path("exports/<int:pk>/download/", export_download, name="export_download"),
    path("branches/<int:pk>/ledger/export.xlsx", branch_ledger_export, name="branch_ledger_export"),
]
