"""Reads for the ledger pages, scoped by the caller (views check rights first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from members.models import Member, Organization
from members.permissions import Action, organizations_where

from .formatting import format_number
from .models import Declaration, Entry, ExportJob, PeriodScore, Rule, Scheme, StaleTotals
from .recompute import counted_points
from .schemes import effective_scheme

ZERO = Decimal("0.00")


@dataclass
class LedgerLine:
    entry: Entry
    counted: Decimal
    running_total: Decimal
    not_counted_reason: str = ""

    @property
    def is_fully_counted(self) -> bool:
        return self.counted == self.entry.points


@dataclass
class LedgerQuarter:
    quarter: int
    lines: list[LedgerLine] = field(default_factory=list)
    score: PeriodScore | None = None


@dataclass
class MemberLedger:
    member: Member
    year: int
    scheme: Scheme | None
    quarters: list[LedgerQuarter]
    annual: PeriodScore | None

    @property
    def growth(self) -> list[tuple[int, Decimal]]:
        """(quarter, year-to-date total) for the quarters that have been computed."""
        return [(q.quarter, q.score.total) for q in self.quarters if q.score is not None]


def _not_counted_reason(entry: Entry, counted: Decimal) -> str:
    if counted == entry.points or entry.is_reversal:
        return ""
    rule = entry.rule
    if counted == 0 and rule.max_times_per_quarter:
        return _("本季度该项已达 %(times)s 次上限，此条不计分") % {
            "times": rule.max_times_per_quarter
        }
    if rule.max_points_per_year is not None:
        return _("该项每年最多计 %(cap)s 分，此条计入 %(counted)s 分") % {
            "cap": format_number(rule.max_points_per_year),
            "counted": format_number(counted),
        }
    return _("此条计入 %(counted)s 分") % {"counted": format_number(counted)}


def member_ledger(member: Member, year: int) -> MemberLedger:
    """A member's entries of a year by quarter, each with what it counts and the running total."""
    scheme = effective_scheme(member.organization, year)
    entries = list(
        Entry.objects.filter(member=member, year=year)
        .select_related("rule", "recorded_by", "approved_by", "reverses", "veto_vote")
        .order_by("occurred_on", "id")
    )
    counted = counted_points([member.pk], year) if entries else {}
    scores = {
        score.quarter: score for score in PeriodScore.objects.filter(member=member, year=year)
    }
    running = scheme.base_score if scheme else ZERO
    quarters = [LedgerQuarter(quarter=q, score=scores.get(q)) for q in (1, 2, 3, 4)]
    for entry in entries:
        value = counted.get(entry.pk, entry.points)
        running += value
        quarters[entry.quarter - 1].lines.append(
            LedgerLine(
                entry=entry,
                counted=value,
                running_total=running,
                not_counted_reason=_not_counted_reason(entry, value),
            )
        )
    return MemberLedger(
        member=member, year=year, scheme=scheme, quarters=quarters, annual=scores.get(0)
    )


def branch_period_scores(branch: Organization, year: int, quarter: int) -> QuerySet[PeriodScore]:
    """The branch's table for a quarter (1–4) or the year (0), ranked groups first."""
    return (
        PeriodScore.objects.filter(organization=branch, year=year, quarter=quarter)
        .select_related("member")
        .order_by("ranking_group", "rank_in_branch", "member__name")
    )


def pending_declarations(branch: Organization) -> QuerySet[Declaration]:
    return (
        Declaration.objects.filter(member__organization=branch, status=Declaration.Status.PENDING)
        .select_related("member", "rule", "declared_by")
        .prefetch_related("evidence")
        .order_by("declared_at", "id")
    )


def member_declarations(member: Member) -> QuerySet[Declaration]:
    return (
        Declaration.objects.filter(member=member)
        .select_related("rule", "decided_by", "entry")
        .prefetch_related("evidence")
        .order_by("-declared_at", "-id")
    )


def current_rules(
    branch: Organization, year: int, *, declarable_only: bool = False
) -> QuerySet[Rule]:
    """The current rules of the scheme the branch uses in ``year``."""
    scheme = effective_scheme(branch, year)
    if scheme is None:
        return Rule.objects.none()
    rules = Rule.objects.filter(scheme=scheme, is_current=True).select_related("category")
    if declarable_only:
        rules = rules.filter(self_declarable=True)
    return rules.order_by("category__position", "position", "code")


def branch_entries(branch: Organization, year: int, quarter: int | None = None) -> QuerySet[Entry]:
    """Every ledger line of a branch's current members in a year (the 台账)."""
    entries = Entry.objects.filter(member__organization=branch, year=year)
    if quarter:
        entries = entries.filter(quarter=quarter)
    return entries.select_related("member", "rule", "recorded_by", "approved_by").order_by(
        "occurred_on", "id"
    )


def export_jobs_for(user) -> QuerySet[ExportJob]:
    """The export jobs a user may see: their own, where they still hold the export right
    (the same rule as ``scoring.exports.may_download``), newest first."""
    if not user.is_authenticated or not user.is_active:
        return ExportJob.objects.none()
    rankings = organizations_where(user, Action.EXPORT_RANKING)
    ledgers = organizations_where(user, Action.EXPORT_LEDGER)
    return (
        ExportJob.objects.filter(requested_by=user)
        .filter(
            Q(
                kind__in=[ExportJob.Kind.ANNUAL_RANKING, ExportJob.Kind.QUARTERLY_RANKING],
                organization__in=rankings,
            )
            | Q(kind=ExportJob.Kind.BRANCH_LEDGER, organization__in=ledgers)
        )
        .select_related("organization")
        .order_by("-created_at", "-id")
    )


EXPORT_ORGANIZATIONS_LISTED = 500


def export_organizations(user, *, include: Organization | None = None) -> list[Organization]:
    """The organizations the exports page offers, in tree order: where the user may export,
    the committees and general branches only when they reach any (a committee's thousands of
    branches are reached from each branch's ledger page, which names its branch), plus
    ``include`` (the one the page was opened for, already checked by the caller)."""
    reachable = organizations_where(user, Action.EXPORT_RANKING) | organizations_where(
        user, Action.EXPORT_LEDGER
    )
    above_branches = reachable.exclude(kind=Organization.Kind.BRANCH)
    listed = above_branches if above_branches.exists() else reachable
    organizations = list(listed.distinct().order_by("path")[:EXPORT_ORGANIZATIONS_LISTED])
    if include is not None and include not in organizations:
        organizations = sorted([*organizations, include], key=lambda o: o.path)
    return organizations


def totals_updating(branch_ids: list[int], year: int) -> bool:
    """Whether a recorded change in these branches has not reached their totals yet."""
    return StaleTotals.objects.filter(organization_id__in=branch_ids, year=year).exists()
