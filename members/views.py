from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from . import roster, selectors
from .excel import XLSX_CONTENT_TYPE
from .forms import RosterFilterForm, RosterImportForm
from .models import Member, Organization
from .permissions import (
    Action,
    can,
    can_view_member,
    get_organization_or_404,
    home_for,
    member_of,
)

BRANCH = [Organization.Kind.BRANCH]


def _xlsx_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(filename)}"
    return response


def _quote(filename: str) -> str:
    from urllib.parse import quote

    return quote(filename)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    url_name, kwargs = home_for(request.user)
    return redirect(url_name, **kwargs)


@login_required
def no_role(request: HttpRequest) -> HttpResponse:
    return render(request, "members/no_role.html")


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    organizations = list(selectors.overview_organizations(request.user))
    if not organizations:
        raise Http404
    branch_count = sum(1 for organization in organizations if organization.is_branch)
    member_total = sum(o.member_count for o in organizations if o.is_branch)
    today = timezone.localdate()
    year = _overview_year(request, today.year)
    selectors.attach_review_badges(organizations, year)
    return render(
        request,
        "members/overview.html",
        {
            "organizations": organizations,
            "branch_count": branch_count,
            "member_total": member_total,
            "top_depth": organizations[0].depth,
            "year": year,
            "previous_year": year - 1,
            "next_year": year + 1 if year < today.year else None,
        },
    )


def _overview_year(request: HttpRequest, default: int) -> int:
    value = request.GET.get("year", "")
    return int(value) if value.isdigit() and 2000 <= int(value) <= 2100 else default


@login_required
def branch_roster(request: HttpRequest, pk: int) -> HttpResponse:
    branch = get_organization_or_404(request.user, Action.VIEW_ROSTER, pk, kinds=BRANCH)
    form = RosterFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    members = selectors.roster_for(branch, **{k: v for k, v in filters.items() if v})
    context = {
        "branch": branch,
        "members": members,
        "filter_form": form,
        "counts": selectors.roster_counts(branch),
        "may_manage": can(request.user, Action.MANAGE_ROSTER, branch),
        "may_export": can(request.user, Action.EXPORT_ROSTER, branch),
        "import_form": RosterImportForm(),
    }
    template = "members/_roster_table.html" if request.htmx else "members/roster.html"
    return render(request, template, context)


@login_required
def member_detail(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(Member.objects.select_related("organization", "user"), pk=pk)
    if not can_view_member(request.user, member):
        raise Http404
    return render(request, "members/member_detail.html", {"member": member})


@login_required
def me(request: HttpRequest) -> HttpResponse:
    member = member_of(request.user)
    if member is None:
        return redirect("members:no_role")
    return render(request, "members/me.html", {"member": member})


@login_required
def roster_template(request: HttpRequest, pk: int) -> HttpResponse:
    get_organization_or_404(request.user, Action.MANAGE_ROSTER, pk, kinds=BRANCH)
    return _xlsx_response(roster.template_workbook(), "党员名册导入模板.xlsx")


@login_required
@require_http_methods(["GET", "POST"])
def roster_import(request: HttpRequest, pk: int) -> HttpResponse:
    branch = get_organization_or_404(request.user, Action.MANAGE_ROSTER, pk, kinds=BRANCH)
    result = None
    form = RosterImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        result = roster.roster_import(branch=branch, upload=upload, size=upload.size)
        if result.is_ok:
            messages.success(request, _("已导入 %(count)s 名党员。") % {"count": result.created})
            return redirect("members:roster", pk=branch.pk)
    return render(
        request,
        "members/roster_import.html",
        {"branch": branch, "form": form, "result": result},
        status=200 if result is None or result.is_ok else 422,
    )


@login_required
def roster_export(request: HttpRequest, pk: int) -> HttpResponse:
    branch = get_organization_or_404(request.user, Action.EXPORT_ROSTER, pk, kinds=BRANCH)
    members = selectors.roster_for(branch)
    date = timezone.localdate().isoformat()
    return _xlsx_response(
        roster.roster_export(branch=branch, members=members), f"{branch.name}-党员名册-{date}.xlsx"
    )
