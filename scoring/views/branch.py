"""The branch secretary's and recorder's ledger pages (desktop).

Each view finds the branch through the permission module (another branch's pages answer
404), parses the form, calls one service or selector and renders. The services judge; a
``ValidationError`` or ``PermissionDenied`` they raise is shown on the page with everything
the user typed, and nothing is written. A successful POST redirects with a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from members.models import Member, Organization
from members.permissions import Action, can, get_organization_or_404
from members.refusals import INVALID
from members.refusals import error_messages as _error_messages
from members.refusals import refusal_status as _refusal_status
from members.refusals import refuse as _refuse

from .. import selectors, services
from ..formatting import signed
from ..forms import (
    APPROVE,
    BulkEntryForm,
    DecisionForm,
    EntryForm,
    GridForm,
    GridRulesForm,
    PeriodForm,
    ReverseForm,
    VetoForm,
)
from ..models import Declaration, Entry, PeriodScore, Rule, quarter_of
from ..schemes import effective_scheme
from ..tasks import recompute_organization_task

BRANCH = [Organization.Kind.BRANCH]
ENTRIES_PER_PAGE = 100
QUARTERS = (1, 2, 3, 4)


# --- helpers -------------------------------------------------------------------------------


def _branch(request: HttpRequest, pk: int, action: Action) -> Organization:
    return get_organization_or_404(request.user, action, pk, kinds=BRANCH)


def _year(request: HttpRequest) -> int:
    """The year of the rule book a page works with: ?year= (or the posted one), else this year."""
    value = (request.POST if request.method == "POST" else request.GET).get("year", "")
    today = timezone.localdate()
    if not value.isdigit() or not 2000 <= int(value) <= 2100:
        return today.year
    return int(value)


def _default_quarter(year: int) -> int:
    """The open quarter in the current year; the whole year (0) for a past year."""
    today = timezone.localdate()
    return quarter_of(today) if year == today.year else 0


def _url(name: str, branch: Organization, **query: object) -> str:
    url = reverse(f"scoring:{name}", kwargs={"pk": branch.pk})
    query = {key: value for key, value in query.items() if value is not None}
    return f"{url}?{urlencode(query)}" if query else url


def _recordable_members(branch: Organization) -> list[Member]:
    """The branch's roster that can still be scored (not transferred out), by name."""
    return list(
        Member.objects.filter(organization=branch)
        .exclude(status=Member.Status.TRANSFERRED_OUT)
        .order_by("name", "id")
    )


def _rules(branch: Organization, year: int, *, veto: bool) -> list[Rule]:
    """The current rules of the branch's scheme: the veto rules, or every other rule."""
    return [
        rule
        for rule in selectors.current_rules(branch, year)
        if (rule.kind == Rule.Kind.VETO) == veto
    ]


def _context(request: HttpRequest, branch: Organization, year: int, **extra: object) -> dict:
    """What every ledger page shows around its content: the branch, the year, the tabs."""
    user = request.user
    context = {
        "branch": branch,
        "year": year,
        "may": {
            "view_ledger": can(user, Action.VIEW_LEDGER, branch),
            "record": can(user, Action.RECORD_ENTRY, branch),
            "veto": can(user, Action.RECORD_VETO, branch),
            "review": can(user, Action.REVIEW_DECLARATION, branch),
            "reverse": can(user, Action.REVERSE_ENTRY, branch),
            "recompute": can(user, Action.RECOMPUTE, branch),
            "export_ledger": can(user, Action.EXPORT_LEDGER, branch),
            "export_ranking": can(user, Action.EXPORT_RANKING, branch),
        },
        # Evaluated only by the pages that show totals (the template calls it).
        "totals_updating": lambda: selectors.totals_updating([branch.pk], year),
    }
    context.update(extra)
    return context


def _entries_url(branch: Organization, day: date) -> str:
    return _url("branch_entries", branch, year=day.year, quarter=quarter_of(day))


# --- the ledger home ----------------------------------------------------------------------


@login_required
def branch_ledger(request: HttpRequest, pk: int) -> HttpResponse:
    """积分台账首页: the actions, the year's quarters and what waits for review."""
    branch = _branch(request, pk, Action.VIEW_LEDGER)
    year = _year(request)
    entry_counts = dict(
        selectors.branch_entries(branch, year)
        .order_by()
        .values_list("quarter")
        .annotate(count=Count("id"))
        .values_list("quarter", "count")
    )
    today = timezone.localdate()
    context = _context(
        request,
        branch,
        year,
        scheme=effective_scheme(branch, year),
        pending_count=selectors.pending_declarations(branch).count(),
        quarters=[(quarter, entry_counts.get(quarter, 0)) for quarter in QUARTERS],
        current_quarter=quarter_of(today) if year == today.year else None,
        previous_year=year - 1,
        next_year=year + 1 if year < today.year else None,
    )
    return render(request, "scoring/branch/ledger.html", context)


# --- record one entry ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def branch_record(request: HttpRequest, pk: int) -> HttpResponse:
    """记录积分: one member, one rule → ``services.entry_record``."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    form = EntryForm(
        request.POST if request.method == "POST" else None,
        year=year,
        members=_recordable_members(branch),
        rules=_rules(branch, year, veto=False),
        points_field_url=_url("branch_points_field", branch, year=year),
    )
    status = 200
    if request.method == "POST":
        status = INVALID
        if form.is_valid():
            data = form.cleaned_data
            try:
                entry = services.entry_record(
                    user=request.user,
                    member=data["member"],
                    rule=data["rule"],
                    occurred_on=data["occurred_on"],
                    description=data["description"],
                    points=data["points"],
                    form_token=data["form_token"],
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                messages.success(
                    request,
                    _("已为%(name)s记录“%(rule)s”%(points)s 分。")
                    % {
                        "name": entry.member.name,
                        "rule": entry.rule.name,
                        "points": signed(entry.points),
                    },
                )
                return redirect(_url("branch_record", branch, year=year))
    return render(
        request,
        "scoring/branch/record.html",
        _context(request, branch, year, form=form, active="record"),
        status=status,
    )


@login_required
def branch_points_field(request: HttpRequest, pk: int) -> HttpResponse:
    """The points input that fits the chosen rule (htmx swaps it in beside the rule)."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    rule_id = request.GET.get("rule", "")
    rule = (
        selectors.current_rules(branch, year).filter(pk=int(rule_id)).first()
        if rule_id.isdigit()
        else None
    )
    return render(request, "scoring/branch/_points_field.html", {"rule": rule, "value": ""})


# --- bulk record (a meeting's attendance) --------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def branch_record_bulk(request: HttpRequest, pk: int) -> HttpResponse:
    """批量记录: one rule for the ticked members → ``services.entries_record_bulk``."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    members = _recordable_members(branch)
    form = BulkEntryForm(
        request.POST if request.method == "POST" else None,
        year=year,
        members=members,
        rules=_rules(branch, year, veto=False),
        points_field_url=_url("branch_points_field", branch, year=year),
    )
    status = 200
    if request.method == "POST":
        status = INVALID
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = services.entries_record_bulk(
                    user=request.user,
                    branch=branch,
                    rule=data["rule"],
                    members=data["members"],
                    occurred_on=data["occurred_on"],
                    description=data["description"],
                    points=data["points"],
                    form_token=data["form_token"],
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                skipped = [
                    _("%(name)s 未记录：%(reason)s") % {"name": member.name, "reason": reason}
                    for member, reason in result.skipped
                ]
                if not result.entries:
                    # Nothing was written: say why on the form, as typed.
                    form.add_error(None, [_("没有为任何党员记录积分。"), *skipped])
                else:
                    messages.success(
                        request,
                        _("已为 %(count)s 名党员记录“%(rule)s”%(points)s 分（%(date)s）。")
                        % {
                            "count": len(result.entries),
                            "rule": data["rule"].name,
                            "points": signed(result.entries[0].points),
                            "date": data["occurred_on"].isoformat(),
                        },
                    )
                    for line in skipped:
                        messages.warning(request, line)
                    return redirect(_entries_url(branch, data["occurred_on"]))
    members_field = form["members"]
    ticked = form.ticked_ids
    rows = [(member, str(member.pk) in ticked) for member in members]
    return render(
        request,
        "scoring/branch/bulk.html",
        _context(
            request,
            branch,
            year,
            form=form,
            rows=rows,
            members_field=members_field,
            ticked_count=sum(1 for _member, is_ticked in rows if is_ticked),
            active="bulk",
        ),
        status=status,
    )


# --- the grid after a meeting -------------------------------------------------------------


def _cell_problem(member: Member, rule: Rule, reasons: list[str]) -> str:
    return _("%(name)s · %(rule)s：%(reason)s") % {
        "name": member.name,
        "rule": rule.name,
        "reason": " ".join(reasons),
    }


def _grid_problems(form: GridForm) -> list[str]:
    """Every problem of a grid some of whose cells could not be read: those cells, and what
    the service would say of the others (checked without writing), in grid order."""
    unreadable = {(member.pk, rule.pk): errors for member, rule, errors in form.cell_errors()}
    filled = {(cell.member.pk, cell.rule.pk): cell for cell in form.filled_cells()}
    occurred_on = form.cleaned_data.get("occurred_on")
    problems = []
    for member, cells in form.rows():
        for spec in cells:
            key = (member.pk, spec.rule.pk)
            if key in unreadable:
                problems.append(_cell_problem(member, spec.rule, unreadable[key]))
            elif key in filled and occurred_on is not None:
                try:
                    services.validate_scoring(
                        member=member,
                        rule=spec.rule,
                        points=filled[key].points,
                        occurred_on=occurred_on,
                    )
                except ValidationError as error:
                    problems.append(_cell_problem(member, spec.rule, error.messages))
    return problems


@login_required
@require_http_methods(["GET", "POST"])
def branch_record_grid(request: HttpRequest, pk: int) -> HttpResponse:
    """表格登记: members × up to four rules (chosen by ?rules=), all or nothing →
    ``services.entries_record_grid``."""
    branch = _branch(request, pk, Action.RECORD_ENTRY)
    year = _year(request)
    rules = _rules(branch, year, veto=False)
    is_post = request.method == "POST"
    source = request.POST if is_post else request.GET
    rules_form = GridRulesForm(source if "rules" in source else None, rules=rules)
    form = None
    problems: list[str] = []
    status = 200
    if rules_form.is_bound and rules_form.is_valid():
        form = GridForm(
            request.POST if is_post else None,
            year=year,
            members=_recordable_members(branch),
            rules=rules_form.cleaned_data["rules"],
        )
    elif is_post or rules_form.is_bound:
        status = INVALID
    if is_post and form is not None:
        status = INVALID
        if form.is_valid():
            data = form.cleaned_data
            try:
                entries = services.entries_record_grid(
                    user=request.user,
                    branch=branch,
                    cells=form.filled_cells(),
                    occurred_on=data["occurred_on"],
                    description=data["description"],
                    form_token=data["form_token"],
                )
            except (ValidationError, PermissionDenied) as error:
                problems = _error_messages(error)
                status = _refusal_status(error)
            else:
                messages.success(
                    request,
                    _("已记录 %(count)s 条积分，涉及 %(members)s 名党员（%(date)s）。")
                    % {
                        "count": len(entries),
                        "members": len({entry.member_id for entry in entries}),
                        "date": data["occurred_on"].isoformat(),
                    },
                )
                return redirect(_entries_url(branch, data["occurred_on"]))
        else:
            problems = _grid_problems(form)
    return render(
        request,
        "scoring/branch/grid.html",
        _context(
            request,
            branch,
            year,
            rules_form=rules_form,
            form=form,
            rows=form.rows() if form is not None else [],
            problems=problems,
            active="grid",
        ),
        status=status,
    )


# --- veto ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def branch_record_veto(request: HttpRequest, pk: int) -> HttpResponse:
    """一票否决: the entry with the branch meeting's vote → ``services.veto_record``."""
    branch = _branch(request, pk, Action.RECORD_VETO)
    year = _year(request)
    members = _recordable_members(branch)
    form = VetoForm(
        request.POST if request.method == "POST" else None,
        year=year,
        members=members,
        rules=_rules(branch, year, veto=True),
        # A suggestion only: full members have the vote (probationary members do not).
        voting_members=sum(1 for member in members if member.category == Member.Category.FULL),
    )
    status = 200
    if request.method == "POST":
        status = INVALID
        if form.is_valid():
            data = form.cleaned_data
            try:
                entry = services.veto_record(
                    user=request.user,
                    member=data["member"],
                    rule=data["rule"],
                    occurred_on=data["occurred_on"],
                    description=data["description"],
                    meeting_date=data["meeting_date"],
                    form_token=data["form_token"],
                    **{name: data[name] for name in VetoForm.COUNT_FIELDS},
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                messages.success(
                    request,
                    _("已登记对%(name)s的一票否决（%(rule)s），经党员大会表决通过。")
                    % {"name": entry.member.name, "rule": entry.rule.name},
                )
                return redirect(_entries_url(branch, entry.occurred_on))
    return render(
        request,
        "scoring/branch/veto.html",
        _context(request, branch, year, form=form, active="veto"),
        status=status,
    )


# --- declarations -------------------------------------------------------------------------


def _render_declarations(
    request: HttpRequest,
    branch: Organization,
    *,
    failed: dict | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    rows = []
    for declaration in selectors.pending_declarations(branch):
        row = {
            "declaration": declaration,
            "is_own": declaration.declared_by_id == user.pk
            or declaration.member.user_id == user.pk,
            "points": declaration.points,
            "reason": "",
            "errors": [],
        }
        if failed and failed["pk"] == declaration.pk:
            row.update(points=failed["points"], reason=failed["reason"], errors=failed["errors"])
        rows.append(row)
    year = timezone.localdate().year
    return render(
        request,
        "scoring/branch/declarations.html",
        _context(request, branch, year, rows=rows, failed=failed, active="declarations"),
        status=status,
    )


@login_required
def branch_declarations(request: HttpRequest, pk: int) -> HttpResponse:
    """申报审核: the branch's pending declarations with their evidence."""
    branch = _branch(request, pk, Action.REVIEW_DECLARATION)
    return _render_declarations(request, branch)


@dataclass
class Decision:
    """What became of a decision on a declaration: a success message, or the refusal."""

    message: str = ""
    errors: list[str] = field(default_factory=list)
    status: int = INVALID

    def failed(self, request: HttpRequest, declaration: Declaration) -> dict:
        """The refused decision, for the page to show beside the declaration it concerns."""
        return {
            "pk": declaration.pk,
            "name": declaration.member.name,
            "rule": declaration.rule.name,
            "points": request.POST.get("points", ""),
            "reason": request.POST.get("reason", ""),
            "errors": self.errors,
        }


def decide_declaration(request: HttpRequest, declaration: Declaration) -> Decision:
    """Apply the posted decision (approve as declared, adjust with a reason, or reject) to
    ``declaration`` through the services; shared by the declaration queue and the
    committee review page."""
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return Decision(
            errors=[error for field_errors in form.errors.values() for error in field_errors]
        )
    data = form.cleaned_data
    names = {"name": declaration.member.name, "rule": declaration.rule.name}
    try:
        if data["decision"] == APPROVE:
            entry = services.declaration_approve(
                user=request.user,
                declaration=declaration,
                points=data["points"],
                reason=data["reason"],
            )
        else:
            services.declaration_reject(
                user=request.user, declaration=declaration, reason=data["reason"]
            )
    except (ValidationError, PermissionDenied) as error:
        return Decision(errors=_error_messages(error), status=_refusal_status(error))
    if data["decision"] != APPROVE:
        return Decision(message=_("已不予通过%(name)s的申报（%(rule)s）。") % names)
    if entry.points != declaration.points:
        return Decision(
            message=_(
                "已通过%(name)s的申报（%(rule)s），核定为 %(points)s 分（申报 %(declared)s 分）。"
            )
            % {**names, "points": signed(entry.points), "declared": signed(declaration.points)}
        )
    return Decision(
        message=_("已通过%(name)s的申报（%(rule)s），记入 %(points)s 分。")
        % {**names, "points": signed(entry.points)}
    )


@login_required
@require_POST
def branch_declaration_decide(request: HttpRequest, pk: int, declaration_pk: int) -> HttpResponse:
    """Approve (as declared, or adjusted within the range with a reason) or reject."""
    branch = _branch(request, pk, Action.REVIEW_DECLARATION)
    declaration = get_object_or_404(
        Declaration.objects.select_related("member", "rule"),
        pk=declaration_pk,
        member__organization=branch,
    )
    decision = decide_declaration(request, declaration)
    if decision.message:
        messages.success(request, decision.message)
        return redirect("scoring:branch_declarations", pk=branch.pk)
    return _render_declarations(
        request, branch, failed=decision.failed(request, declaration), status=decision.status
    )


# --- the ledger (台账) and reversals ---------------------------------------------------------


def _period(request: HttpRequest) -> tuple[int, int, int | None]:
    """(year, quarter — 0 for the whole year, member id or None) from the query string."""
    form = PeriodForm(request.GET)
    form.is_valid()  # what cannot be read falls back to the defaults below
    data = form.cleaned_data
    year = data.get("year") or timezone.localdate().year
    quarter = data.get("quarter")
    if quarter is None:
        quarter = _default_quarter(year)
    return year, quarter, data.get("member")


@login_required
def branch_entries(request: HttpRequest, pk: int) -> HttpResponse:
    """积分台账明细: every ledger line of the branch in a quarter or year."""
    branch = _branch(request, pk, Action.VIEW_LEDGER)
    year, quarter, member_id = _period(request)
    entries = selectors.branch_entries(branch, year, quarter or None).select_related(
        "reversal", "veto_vote"
    )
    if member_id:
        entries = entries.filter(member_id=member_id)
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    roster = Member.objects.filter(organization=branch).order_by("name", "id").only("id", "name")
    return render(
        request,
        "scoring/branch/entries.html",
        _context(
            request,
            branch,
            year,
            page=page,
            quarter=quarter,
            quarters=QUARTERS,
            member_id=member_id,
            roster=roster,
            active="entries",
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def branch_entry_reverse(request: HttpRequest, pk: int, entry_pk: int) -> HttpResponse:
    """冲销: cancel an entry with a reversal entry, with the reason → ``services.entry_reverse``."""
    branch = _branch(request, pk, Action.REVERSE_ENTRY)
    entry = get_object_or_404(
        Entry.objects.select_related(
            "member__organization", "rule", "recorded_by", "reversal", "reverses", "veto_vote"
        ),
        pk=entry_pk,
        member__organization=branch,
    )
    form = ReverseForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = INVALID
        if form.is_valid():
            try:
                reversal = services.entry_reverse(
                    user=request.user, entry=entry, reason=form.cleaned_data["reason"]
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                messages.success(
                    request,
                    _("已冲销%(name)s %(date)s 的“%(rule)s”%(points)s 分。")
                    % {
                        "name": entry.member.name,
                        "date": entry.occurred_on.isoformat(),
                        "rule": entry.rule.name,
                        "points": signed(entry.points),
                    },
                )
                return redirect(_entries_url(branch, reversal.occurred_on))
    return render(
        request,
        "scoring/branch/reverse.html",
        _context(request, branch, entry.year, entry=entry, form=form, active="entries"),
        status=status,
    )


# --- the quarter table --------------------------------------------------------------------

SECTION_TITLES = {
    PeriodScore.RankingGroup.PARTY: gettext_lazy("党员"),
    PeriodScore.RankingGroup.CANDIDATE: gettext_lazy("发展对象、入党积极分子"),
    PeriodScore.RankingGroup.UNRANKED: gettext_lazy("不参与排名（不列入积分考核、已转出）"),
}


@login_required
def branch_table(request: HttpRequest, pk: int) -> HttpResponse:
    """季度积分表: each member's bonus, deduction, net, year-to-date total, rank and star for a
    quarter; the annual table adds the grade. Party members and candidates are ranked apart;
    the unranked come last."""
    branch = _branch(request, pk, Action.VIEW_LEDGER)
    year, quarter, _member = _period(request)
    groups: dict[str, list[PeriodScore]] = {group: [] for group in PeriodScore.RankingGroup}
    for score in selectors.branch_period_scores(branch, year, quarter):
        groups[score.ranking_group].append(score)
    for scores in groups.values():
        # Ranked first by rank (ties share one), then by name; the same on every database.
        scores.sort(key=lambda score: (score.rank_in_branch is None, score.rank_in_branch or 0))
    sections = [
        {"group": group, "title": SECTION_TITLES[group], "scores": groups[group]}
        for group in PeriodScore.RankingGroup
    ]
    return render(
        request,
        "scoring/branch/table.html",
        _context(
            request,
            branch,
            year,
            quarter=quarter,
            quarters=QUARTERS,
            sections=sections,
            has_scores=any(section["scores"] for section in sections),
            active="table",
        ),
    )


@login_required
@require_POST
def branch_recompute(request: HttpRequest, pk: int) -> HttpResponse:
    """重新计算: enqueue the recompute of the branch's year (with eager Celery it is done
    before the redirect is followed)."""
    branch = _branch(request, pk, Action.RECOMPUTE)
    year = _year(request)
    quarter = request.POST.get("quarter", "")
    transaction.on_commit(lambda: recompute_organization_task.delay(branch.pk, year))
    messages.info(request, _("正在重新计算，稍后刷新即可看到最新结果。"))
    return redirect(
        _url(
            "branch_table",
            branch,
            year=year,
            quarter=quarter if quarter in {"0", "1", "2", "3", "4"} else None,
        )
    )


urlpatterns = [
    path("branches/<int:pk>/ledger/", branch_ledger, name="branch_ledger"),
    path("branches/<int:pk>/ledger/record/", branch_record, name="branch_record"),
    path("branches/<int:pk>/ledger/points-field/", branch_points_field, name="branch_points_field"),
    path("branches/<int:pk>/ledger/bulk/", branch_record_bulk, name="branch_record_bulk"),
    path("branches/<int:pk>/ledger/grid/", branch_record_grid, name="branch_record_grid"),
    path("branches/<int:pk>/ledger/veto/", branch_record_veto, name="branch_record_veto"),
    path("branches/<int:pk>/declarations/", branch_declarations, name="branch_declarations"),
    path(
        "branches/<int:pk>/declarations/<int:declaration_pk>/decide/",
        branch_declaration_decide,
        name="branch_declaration_decide",
    ),
    path("branches/<int:pk>/ledger/entries/", branch_entries, name="branch_entries"),
    path(
        "branches/<int:pk>/ledger/entries/<int:entry_pk>/reverse/",
        branch_entry_reverse,
        name="branch_entry_reverse",
    ),
    path("branches/<int:pk>/ledger/table/", branch_table, name="branch_table"),
    path("branches/<int:pk>/ledger/recompute/", branch_recompute, name="branch_recompute"),
]
