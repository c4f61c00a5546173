"""The member's own pages, phone-first: my points (ledger, totals, rank, growth chart),
declare an item with evidence, my declarations — and the evidence download shared with the
branch's reviewers.

Views parse input, ask the permission module, call one selector or service and render.
Anything outside the user's reach answers 404 (never 403).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from members.models import Member
from members.permissions import Action, can, member_of

from .. import selectors, services
from ..charts import LineChart, format_number, line_chart, signed
from ..member_forms import DeclarationForm, YearForm, rule_points_display
from ..models import Declaration, Entry, EvidenceFile, PeriodScore, Rule, quarter_of
from ..schemes import effective_scheme

QUARTER_NAMES = {
    1: gettext_lazy("第一季度"),
    2: gettext_lazy("第二季度"),
    3: gettext_lazy("第三季度"),
    4: gettext_lazy("第四季度"),
}
QUARTER_SHORT_NAMES = {
    1: gettext_lazy("一季度"),
    2: gettext_lazy("二季度"),
    3: gettext_lazy("三季度"),
    4: gettext_lazy("四季度"),
}


# ---------------------------------------------------------------- my points


@dataclass(frozen=True)
class LineRow:
    """One ledger line as the member reads it."""

    line: selectors.LedgerLine
    is_reversed: bool

    @property
    def entry(self) -> Entry:
        return self.line.entry

    @property
    def is_veto(self) -> bool:
        return self.entry.kind == Entry.Kind.VETO

    @property
    def is_reversal(self) -> bool:
        return self.entry.is_reversal

    @property
    def points_display(self) -> str:
        return signed(self.entry.points)

    @property
    def counted_display(self) -> str:
        return signed(self.line.counted)

    @property
    def running_total_display(self) -> str:
        return format_number(self.line.running_total)

    @property
    def is_partly_counted(self) -> bool:
        return not self.line.is_fully_counted and self.line.counted != 0


@dataclass(frozen=True)
class QuarterBlock:
    quarter: int
    rows: list[LineRow]
    score: PeriodScore | None

    @property
    def name(self) -> str:
        return str(QUARTER_NAMES[self.quarter])

    @property
    def net_display(self) -> str:
        return signed(self.score.net) if self.score else "—"

    @property
    def total_display(self) -> str:
        return format_number(self.score.total) if self.score else "—"


@dataclass(frozen=True)
class Headline:
    """The figures at the top of the page."""

    quarter: int
    quarter_score: PeriodScore | None
    annual: PeriodScore | None
    # Branch-wide ranks (and the grade, which depends on them) are shown to a member only
    # once the branch's annual review is in publicity; the totals, always.
    ranks_published: bool = False

    @property
    def quarter_name(self) -> str:
        return str(QUARTER_NAMES[self.quarter]) if self.quarter else ""

    @property
    def quarter_net_display(self) -> str:
        return signed(self.quarter_score.net) if self.quarter_score else "—"

    @property
    def quarter_total_display(self) -> str:
        return format_number(self.quarter_score.total) if self.quarter_score else "—"

    @property
    def year_total_display(self) -> str:
        return format_number(self.annual.total) if self.annual else "—"

    @property
    def is_ranked(self) -> bool:
        return bool(self.ranks_published and self.annual and self.annual.rank_in_branch is not None)

    @property
    def is_candidate(self) -> bool:
        return bool(self.annual and self.annual.ranking_group == PeriodScore.RankingGroup.CANDIDATE)


def _annual_review_published(member: Member, year: int) -> bool:
    from reviews.models import ReviewCycle

    return ReviewCycle.objects.filter(
        organization=member.organization,
        year=year,
        quarter=0,
        state__in=[ReviewCycle.State.PUBLICITY, ReviewCycle.State.FINALIZED],
    ).exists()


def _requested_year(request: HttpRequest, default: int) -> int:
    form = YearForm(request.GET)
    if form.is_valid() and form.cleaned_data["year"]:
        return form.cleaned_data["year"]
    return default


def _last_quarter_shown(year: int, today_year: int, today_quarter: int) -> int:
    """Quarters after today have nothing yet: the current year stops at today's quarter."""
    if year < today_year:
        return 4
    if year == today_year:
        return today_quarter
    return 0


def growth_chart(ledger: selectors.MemberLedger, last_quarter: int) -> LineChart | None:
    """成长线路图: the year-to-date total after each computed quarter up to ``last_quarter``."""
    growth = [(quarter, total) for quarter, total in ledger.growth if quarter <= last_quarter]
    if not growth:
        return None
    return line_chart(
        growth,
        x_labels=[str(QUARTER_SHORT_NAMES[quarter]) for quarter in (1, 2, 3, 4)],
        reference=ledger.scheme.base_score if ledger.scheme else None,
    )


@login_required
@require_GET
def my_points(request: HttpRequest) -> HttpResponse:
    member = member_of(request.user)
    if member is None:
        return redirect("members:no_role")
    today = timezone.localdate()
    year = _requested_year(request, today.year)
    ledger = selectors.member_ledger(member, year)
    last_quarter = _last_quarter_shown(year, today.year, quarter_of(today))
    reversed_ids = {
        line.entry.reverses_id
        for quarter in ledger.quarters
        for line in quarter.lines
        if line.entry.reverses_id is not None
    }
    quarters = [
        QuarterBlock(
            quarter=quarter.quarter,
            rows=[
                LineRow(line=line, is_reversed=line.entry.pk in reversed_ids)
                for line in quarter.lines
            ],
            score=quarter.score,
        )
        for quarter in ledger.quarters
        if quarter.quarter <= last_quarter or quarter.lines
    ]
    # order_by(): the model's ordering would otherwise join the DISTINCT.
    years = set(
        Entry.objects.filter(member=member).order_by().values_list("year", flat=True).distinct()
    )
    years |= {today.year, year}
    context = {
        "member": member,
        "year": year,
        "years": sorted(years, reverse=True),
        "ledger": ledger,
        "scheme": ledger.scheme,
        "base_score_display": format_number(ledger.scheme.base_score) if ledger.scheme else "",
        "headline": Headline(
            quarter=last_quarter,
            quarter_score=ledger.quarters[last_quarter - 1].score if last_quarter else None,
            annual=ledger.annual,
            ranks_published=_annual_review_published(member, year),
        ),
        "quarters": quarters,
        "has_entries": any(block.rows for block in quarters),
        "totals_updating": selectors.totals_updating([member.organization_id], year),
        "chart": growth_chart(ledger, last_quarter),
        "is_unranked": member.status in Member.UNRANKED_STATUSES,
        "may_declare": can(request.user, Action.DECLARE, member.organization),
    }
    return render(request, "scoring/member/my_points.html", context)


# ---------------------------------------------------------------- declare


def _declaring_member(request: HttpRequest) -> Member:
    """The user's own roster entry, if they may declare in its branch; else 404."""
    member = member_of(request.user)
    if member is None or not can(request.user, Action.DECLARE, member.organization):
        raise Http404
    return member


def _offered_rules(member: Member, year: int) -> list[Rule]:
    """The current self-declarable rules that apply to this member."""
    return [
        rule
        for rule in selectors.current_rules(member.organization, year, declarable_only=True)
        if rule.applies_to_member(member)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def declare(request: HttpRequest) -> HttpResponse:
    member = _declaring_member(request)
    year = timezone.localdate().year
    scheme = effective_scheme(member.organization, year)
    if scheme is None:
        return render(
            request,
            "scoring/member/declare.html",
            {"member": member, "form": None, "year": year},
        )
    initial = {}
    if request.method == "GET" and request.GET.get("rule", "").isdigit():
        initial["rule"] = request.GET["rule"]
    posted = request.method == "POST"
    form = DeclarationForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        initial=initial,
        rules=_offered_rules(member, year),
        scheme_rules=Rule.objects.filter(scheme=scheme),
    )
    if posted and form.is_valid():
        data = form.cleaned_data
        try:
            services.declaration_submit(
                user=request.user,
                member=member,
                rule=data["rule"],
                occurred_on=data["occurred_on"],
                description=data["description"],
                points=data["points"],
                files=data["evidence"],
            )
        except PermissionDenied as error:
            raise Http404 from error
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, _("申报已提交，请等待支部委员会审核。"))
            return redirect("scoring:my_declarations")
    return render(
        request,
        "scoring/member/declare.html",
        {
            "member": member,
            "form": form,
            "year": year,
            "rule": form.selected_rule,
            "points_range": rule_points_display(form.selected_rule) if form.selected_rule else "",
            "today": timezone.localdate(),
            "files_dropped": posted,
        },
        status=422 if posted else 200,
    )


@login_required
@require_GET
def declare_rule(request: HttpRequest) -> HttpResponse:
    """htmx: the points field (fixed value or range input) and the notes of the chosen rule."""
    member = _declaring_member(request)
    chosen = request.GET.get("rule", "")
    rules = _offered_rules(member, timezone.localdate().year)
    rule = next((rule for rule in rules if str(rule.pk) == chosen), None)
    return render(
        request,
        "scoring/member/_rule_detail.html",
        {"rule": rule, "points_range": rule_points_display(rule) if rule else ""},
    )


# ---------------------------------------------------------------- my declarations


@dataclass(frozen=True)
class DeclarationRow:
    declaration: Declaration
    entry: Entry | None

    @property
    def points_display(self) -> str:
        return signed(self.declaration.points)

    @property
    def is_adjusted(self) -> bool:
        return self.entry is not None and self.entry.points != self.declaration.points

    @property
    def approved_points_display(self) -> str:
        return signed(self.entry.points) if self.entry is not None else ""

    @property
    def status_class(self) -> str:
        return {
            Declaration.Status.PENDING: "text-bg-warning",
            Declaration.Status.APPROVED: "text-bg-success",
            Declaration.Status.REJECTED: "text-bg-secondary",
        }[self.declaration.status]


def _entry_of(declaration: Declaration) -> Entry | None:
    try:
        return declaration.entry
    except Entry.DoesNotExist:
        return None


@login_required
@require_GET
def my_declarations(request: HttpRequest) -> HttpResponse:
    member = member_of(request.user)
    if member is None:
        return redirect("members:no_role")
    rows = [
        DeclarationRow(declaration=declaration, entry=_entry_of(declaration))
        for declaration in selectors.member_declarations(member)
    ]
    return render(
        request,
        "scoring/member/my_declarations.html",
        {
            "member": member,
            "rows": rows,
            "may_declare": can(request.user, Action.DECLARE, member.organization),
        },
    )


# ---------------------------------------------------------------- evidence

ASCII_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,150}")
ASCII_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


def may_see_evidence(user: User | AnonymousUser, evidence: EvidenceFile) -> bool:
    """The declaring member, and whoever reviews declarations or reads the ledger of the
    member's branch."""
    member = evidence.declaration.member
    if user.is_authenticated and member.user_id == user.pk:
        return True
    return can(user, Action.REVIEW_DECLARATION, member.organization) or can(
        user, Action.VIEW_LEDGER, member.organization
    )


def inline_disposition(original_name: str, fallback_stem: str) -> str:
    """``inline`` with the original name: RFC 5987 ``filename*`` for every browser that reads
    it, and a plain ASCII ``filename`` for those that don't."""
    if ASCII_FILENAME.fullmatch(original_name):
        fallback = original_name
    else:
        suffix = PurePosixPath(original_name).suffix
        fallback = fallback_stem + (suffix if ASCII_SUFFIX.fullmatch(suffix) else "")
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(original_name, safe='')}"


@login_required
@require_safe
def evidence(request: HttpRequest, pk: int) -> FileResponse:
    evidence = (
        EvidenceFile.objects.select_related("declaration__member__organization")
        .filter(pk=pk)
        .first()
    )
    if evidence is None or not may_see_evidence(request.user, evidence):
        raise Http404
    try:
        handle = evidence.file.storage.open(evidence.file.name, "rb")
    except FileNotFoundError as error:
        raise Http404 from error
    response = FileResponse(handle, content_type=evidence.content_type)
    response["Content-Disposition"] = inline_disposition(
        evidence.original_name, f"evidence-{evidence.pk}"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-cache"
    return response


urlpatterns = [
    path("me/points/", my_points, name="my_points"),
    path("me/declare/", declare, name="declare"),
    path("me/declare/rule/", declare_rule, name="declare_rule"),
    path("me/declarations/", my_declarations, name="my_declarations"),
    path("evidence/<int:pk>/", evidence, name="evidence"),
]
