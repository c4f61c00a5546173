"""Reads of the publicity board and the objections, at a constant number of queries.

Who may read the board: the branch's members (``VIEW_PUBLICITY``) once the scores are
published (publicity or finalized), and its officers and the committee staff above it
(``VIEW_LEDGER`` / ``VIEW_REVIEW``), who may also preview it earlier. Everyone else: 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from members.models import Member
from members.permissions import Action, can
from reviews.models import ReviewCycle
from reviews.services import period_bounds
from scoring.models import Entry, PeriodScore
from scoring.recompute import counted_points

from .models import Objection

PUBLISHED_STATES = (ReviewCycle.State.PUBLICITY, ReviewCycle.State.FINALIZED)
GROUP_ORDER = (
    PeriodScore.RankingGroup.PARTY,
    PeriodScore.RankingGroup.CANDIDATE,
    PeriodScore.RankingGroup.UNRANKED,
)
GROUP_TITLES = {
    PeriodScore.RankingGroup.PARTY: _("党员"),
    PeriodScore.RankingGroup.CANDIDATE: _("发展对象、入党积极分子"),
    PeriodScore.RankingGroup.UNRANKED: _("不参与排名（不列入积分考核）"),
}


@dataclass
class BoardLine:
    """One ledger entry behind a member's total, with what it counts (caps, reversals)."""

    entry: Entry
    counted: Decimal

    @property
    def is_reversed(self) -> bool:
        # ``reversal`` is selected with the entry: no query here.
        return getattr(self.entry, "reversal", None) is not None

    @property
    def is_fully_counted(self) -> bool:
        return self.counted == self.entry.points


@dataclass
class BoardRow:
    """A member on the board: their period score (None while not computed) and entries."""

    member: Member
    score: PeriodScore | None
    group: str
    lines: list[BoardLine] = field(default_factory=list)

    @property
    def rank(self) -> int | None:
        return self.score.rank_in_branch if self.score is not None else None


@dataclass
class BoardSection:
    group: str
    title: str
    rows: list[BoardRow]


def _group_of(member: Member) -> str:
    if not member.is_ranked:
        return PeriodScore.RankingGroup.UNRANKED
    if member.is_party_member:
        return PeriodScore.RankingGroup.PARTY
    return PeriodScore.RankingGroup.CANDIDATE


def board_rows(cycle: ReviewCycle) -> list[BoardRow]:
    """Every member the review covers (the branch roster, not transferred out), with their
    ``PeriodScore`` of the cycle's period and the entries of the period behind it: ranked
    groups first (party members, then candidates), by rank then name; the unranked last.

    Four queries whatever the size of the branch (members, scores, entries, counted points)."""
    members = list(
        Member.objects.filter(organization_id=cycle.organization_id)
        .exclude(status=Member.Status.TRANSFERRED_OUT)
        .order_by("name", "id")
    )
    member_ids = [member.pk for member in members]
    scores = {
        score.member_id: score
        for score in PeriodScore.objects.filter(
            member_id__in=member_ids, year=cycle.year, quarter=cycle.quarter
        ).select_related("scheme")
    }
    first, last = period_bounds(cycle.year, cycle.quarter)
    entries = list(
        Entry.objects.filter(member_id__in=member_ids, occurred_on__range=(first, last))
        .select_related("rule", "reverses", "reversal", "veto_vote")
        .order_by("occurred_on", "id")
    )
    counted = counted_points(member_ids, cycle.year) if entries else {}
    rows = {
        member.pk: BoardRow(
            member=member,
            score=scores.get(member.pk),
            group=scores[member.pk].ranking_group if member.pk in scores else _group_of(member),
        )
        for member in members
    }
    for entry in entries:
        rows[entry.member_id].lines.append(
            BoardLine(entry=entry, counted=counted.get(entry.pk, entry.points))
        )
    order = {group: index for index, group in enumerate(GROUP_ORDER)}
    return sorted(
        rows.values(),
        key=lambda row: (
            order.get(row.group, len(order)),
            row.rank is None,
            row.rank or 0,
            row.member.name,
            row.member.pk,
        ),
    )


def board_sections(rows: list[BoardRow]) -> list[BoardSection]:
    """The rows split by ranking group, in board order; empty groups left out."""
    sections = [
        BoardSection(
            group=group,
            title=str(GROUP_TITLES[group]),
            rows=[row for row in rows if row.group == group],
        )
        for group in GROUP_ORDER
    ]
    return [section for section in sections if section.rows]


def is_published(cycle: ReviewCycle) -> bool:
    return cycle.state in PUBLISHED_STATES


def may_preview_board(user: User | AnonymousUser, cycle: ReviewCycle) -> bool:
    """Officers of the branch and the staff above it see the board before it is published."""
    branch = cycle.organization
    return can(user, Action.VIEW_LEDGER, branch) or can(user, Action.VIEW_REVIEW, branch)


def may_read_board(user: User | AnonymousUser, cycle: ReviewCycle) -> bool:
    """May ``user`` read the cycle's board now? Members only once it is published."""
    if may_preview_board(user, cycle):
        return True
    return is_published(cycle) and can(user, Action.VIEW_PUBLICITY, cycle.organization)


def _objections() -> QuerySet[Objection]:
    return Objection.objects.select_related(
        "member",
        "entry__rule",
        "raised_by",
        "rechecked_by",
        "commissioner_by",
        "ruled_by",
        "reversal_entry__rule",
        "correction_entry__rule",
    ).order_by("raised_at", "id")


def cycle_objections(cycle: ReviewCycle) -> QuerySet[Objection]:
    """Every objection of the cycle with its whole history (for the branch's officers)."""
    return _objections().filter(cycle=cycle)


def member_objections(cycle: ReviewCycle, member: Member) -> QuerySet[Objection]:
    """A member's own objections in the cycle."""
    return _objections().filter(cycle=cycle, member=member)


def open_objection_targets(cycle: ReviewCycle, member: Member) -> tuple[set[int], bool]:
    """(ids of the entries the member has an open objection about, whether one is about
    their total) — so the board offers "提出异议" only where none is pending."""
    entry_ids: set[int] = set()
    about_total = False
    for entry_id in Objection.objects.filter(
        cycle=cycle, member=member, state__in=Objection.OPEN_STATES
    ).values_list("entry_id", flat=True):
        if entry_id is None:
            about_total = True
        else:
            entry_ids.add(entry_id)
    return entry_ids, about_total
