from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from . import audit as audit_selectors
from . import roster, selectors
from .excel import XLSX_CONTENT_TYPE
from .forms import (
    QUARTER_CHOICES,
    AuditFilterForm,
    OverviewFilterForm,
    RosterFilterForm,
    RosterImportForm,
)
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
    """The committee's dashboard: every branch below the chosen organization for a period,
    with totals, charts, the top and bottom lists and a paginated branch table; a constant
    number of queries whatever the number of branches."""
    from scoring import charts, summaries

    choices = selectors.overview_choices(request.user)
    default = selectors.overview_default(request.user, choices)
    if default is None:
        raise Http404
    form = OverviewFilterForm(
        request.GET,
        organizations=choices or [default],  # a staff post held at a branch: that branch
        find_organization=lambda pk: selectors.overview_organization(request.user, pk),
    )
    filters = form.filters(default_year=timezone.localdate().year, default_organization=default)
    organization = filters["organization"]
    year, quarter = filters["year"], filters["quarter"]
    scope = summaries.summary_scope(
        organization=organization, year=year, quarter=quarter, category=filters["category"]
    )
    # One aggregate over every branch of the scope; the page, the lists and the
    # distribution all come from it (scoring.summaries.BranchTable).
    table = summaries.branch_table(scope)
    distribution = table.distribution
    paginator = Paginator(table.ordered(filters["sort"], filters["branch"]), OVERVIEW_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    shown = table.summaries(page.object_list)
    badges = selectors.review_badges([summary.organization_id for summary in shown], year)
    top_branches = [
        summary
        for summary in table.summaries(table.ordered("-fortress_index", limit=5))
        if summary.fortress_index is not None
    ]
    bottom_branches = [
        summary
        for summary in table.summaries(table.ordered("fortress_index", limit=5))
        if summary.fortress_index is not None
    ]
    query = {
        "year": year,
        "quarter": quarter,
        "organization": organization.pk,
        "category": filters["category"],
        "branch": filters["branch"],
        "sort": filters["sort"],
    }
    query = {key: value for key, value in query.items() if value != ""}
    export_query = {
        "kind": "quarterly_ranking" if quarter else "annual_ranking",
        "organization": organization.pk,
        "year": year,
        "quarter": quarter,
        "category": filters["category"],
    }
    return render(
        request,
        "members/overview.html",
        {
            "form": form,
            "filter_errors": form.error_messages(),
            "filters": filters,
            "organization": organization,
            "organization_choices": form.fields["organization"].widget.choices,
            "quarter_choices": QUARTER_CHOICES,
            "category_choices": form.fields["category"].choices,
            "year": year,
            "quarter": quarter,
            "period_label": dict(QUARTER_CHOICES)[str(quarter)],
            "scope": scope,
            "distribution": distribution,
            "branch_count": len(table),
            "page": page,
            "rows": [(summary, badges[summary.organization_id]) for summary in shown],
            "sort_links": _sort_links(query, filters["sort"]),
            "page_query": urlencode(query),
            "page_numbers": [
                None if number == Paginator.ELLIPSIS else number
                for number in page.paginator.get_elided_page_range(page.number, on_ends=1)
            ],
            "focus_query": urlencode(
                {k: v for k, v in query.items() if k not in ("organization", "branch", "sort")}
            ),
            "export_query": urlencode(export_query),
            "may_export": can(request.user, Action.EXPORT_RANKING, organization),
            "top_branches": top_branches,
            "bottom_branches": bottom_branches,
            "top_members": summaries.top_members(scope, 10),
            "bottom_members": summaries.bottom_members(scope, 10),
            "star_chart": charts.row_chart(list(distribution.star_counts.items()))
            if distribution.star_counts
            else None,
            "grade_chart": charts.row_chart(list(distribution.grade_counts.items()))
            if distribution.grade_counts
            else None,
            "score_chart": charts.column_chart(
                distribution.score_buckets,
                edge_labels=[str(bound) for bound in summaries.BUCKET_BOUNDS],
            ),
        },
    )


OVERVIEW_PAGE_SIZE = 50


def _sort_links(query: dict, current: str) -> dict[str, dict]:
    """For each sortable column ("fortress_index", "average", "name"): the link that sorts by
    it (descending first for figures, a second click reverses) and its current direction."""
    links = {}
    for column, first in (("fortress_index", "-"), ("average", "-"), ("name", "")):
        if current.lstrip("-") == column:
            direction = "desc" if current.startswith("-") else "asc"
            target = column if current.startswith("-") else f"-{column}"
            if column == "name":
                target, direction = ("path", "asc") if current == "name" else ("name", "")
        else:
            direction, target = "", f"{first}{column}"
        links[column] = {
            "url": "?" + urlencode({**query, "sort": target}),
            "direction": direction,
        }
    return links


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


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    """操作记录: who changed what in an organization, newest first (members/audit.py)."""
    default = audit_selectors.audit_default(request.user)
    if default is None:
        raise Http404
    form = AuditFilterForm(request.GET, kind_choices=audit_selectors.kind_choices())
    form.is_valid()
    chosen = form.value("organization")
    organization = (
        get_organization_or_404(request.user, Action.VIEW_AUDIT, chosen) if chosen else default
    )
    filters = audit_selectors.Filters(
        kind=form.value("kind") or "",
        date_from=form.value("date_from"),
        date_to=form.value("date_to"),
        actor=(form.value("actor") or "").strip(),
    )
    page = audit_selectors.audit_page(organization, filters, form.value("page") or 1)
    query = {
        "organization": organization.pk,
        "kind": filters.kind,
        "date_from": filters.date_from.isoformat() if filters.date_from else "",
        "date_to": filters.date_to.isoformat() if filters.date_to else "",
        "actor": filters.actor,
    }
    choices = audit_selectors.audit_choices(request.user)
    if organization not in choices:
        choices.append(organization)
    return render(
        request,
        "members/audit.html",
        {
            "form": form,
            "organization": organization,
            "organization_choices": choices,
            "kind_choices": form.fields["kind"].choices,
            "filters": filters,
            "page": page,
            "page_query": urlencode({key: value for key, value in query.items() if value}),
        },
    )
