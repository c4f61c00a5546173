"""Every change to the points ledger: record, declare, approve / adjust / reject, reverse.

Each service is one transaction, checks the caller's rights through the permission
module, validates before it writes, and enqueues the recompute of the affected members'
totals when the transaction commits. Messages are for the user, in Chinese.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, Organization
from members.permissions import Action, can

from .evidence import check_evidence
from .formatting import format_number, signed
from .models import (
    Declaration,
    Entry,
    EvidenceFile,
    PeriodLock,
    Rule,
    Scheme,
    StaleTotals,
    VetoVote,
    quarter_of,
)
from .schemes import effective_scheme

TWO_PLACES = Decimal("0.01")


def _require(user: User, action: Action, organization: Organization) -> None:
    if not can(user, action, organization):
        raise PermissionDenied(_("您没有在“%(org)s”进行此操作的权限。") % {"org": organization})


_deferred_recomputes: ContextVar[set[tuple[int, int]] | None] = ContextVar(
    "deferred_recomputes", default=None
)


@contextmanager
def recomputes_deferred() -> Iterator[set[tuple[int, int]]]:
    """Collect the (member, year) recomputes instead of enqueuing one per change.

    For bulk loads (the demo seed, imports): the caller recomputes once at the end, e.g.
    with ``scoring.recompute.recompute_organization``."""
    collected: set[tuple[int, int]] = set()
    token = _deferred_recomputes.set(collected)
    try:
        yield collected
    finally:
        _deferred_recomputes.reset(token)


def _enqueue_recompute(member_ids: Iterable[int], year: int) -> None:
    from .tasks import recompute_members_task

    ids = sorted(set(member_ids))
    deferred = _deferred_recomputes.get()
    if deferred is not None:
        deferred.update((member_id, year) for member_id in ids)
        return
    mark_totals_stale(
        Member.objects.filter(id__in=ids).order_by().values_list("organization_id", flat=True),
        year,
    )
    # robust: with the broker down the change is still saved, and so is the mark above; the
    # scheduled sweep recomputes the branch once the broker is back.
    transaction.on_commit(lambda: recompute_members_task.delay(ids, year), robust=True)


def mark_totals_stale(branch_ids: Iterable[int], year: int) -> None:
    """Record, in the caller's transaction, that these branches' totals for ``year`` wait for
    a recompute (one row per branch-year, its time moved forward)."""
    now = timezone.now()
    StaleTotals.objects.bulk_create(
        [
            StaleTotals(organization_id=branch_id, year=year, requested_at=now)
            for branch_id in sorted(set(branch_ids))  # one row each, in a fixed lock order
        ],
        update_conflicts=True,
        unique_fields=["organization", "year"],
        update_fields=["requested_at"],
    )


@dataclass
class _Lookups:
    """Answers remembered inside ``lookups_remembered``."""

    schemes: dict[tuple[int, int], Scheme | None] = field(default_factory=dict)
    locks: dict[tuple[int, int, int], PeriodLock | None] = field(default_factory=dict)
    capped: dict[tuple[int, str, int], list[_CapItem]] = field(default_factory=dict)


_lookups: ContextVar[_Lookups | None] = ContextVar("scoring_lookups", default=None)


@contextmanager
def lookups_remembered() -> Iterator[None]:
    """Within the block, the scheme a branch uses in a year, the locked periods and a
    member's capped entries of a rule are read once and remembered: an import checks
    thousands of rows against the same few answers instead of querying for each row.

    For one bulk check or load only: the block must not change schemes or locks itself.
    Entries written inside it (``_write_entry``) drop what was remembered of their caps."""
    token = _lookups.set(_Lookups())
    try:
        yield
    finally:
        _lookups.reset(token)


def locked_period(organization: Organization, day: date) -> PeriodLock | None:
    """The lock covering ``day`` for this branch (its own, or one set above it)."""
    lookups = _lookups.get()
    key = (organization.pk, day.year, quarter_of(day))
    if lookups is not None and key in lookups.locks:
        return lookups.locks[key]
    ancestor_paths = [
        organization.path[:end]
        for end in range(Organization.steplen, len(organization.path) + 1, Organization.steplen)
    ]
    lock = (
        PeriodLock.objects.filter(
            organization__path__in=ancestor_paths,
            year=day.year,
            quarter__in=[0, quarter_of(day)],
        )
        .order_by("quarter")
        .first()
    )
    if lookups is not None:
        lookups.locks[key] = lock
    return lock


def ensure_period_open(organization: Organization, day: date) -> None:
    lock = locked_period(organization, day)
    if lock is not None:
        raise ValidationError(
            _(
                "%(year)s年第%(quarter)s季度已确认归档并锁定，不能再记入该期间。"
                "如需更正，请记入当前开放的期间，并在说明中注明所更正的记录。"
            )
            % {"year": day.year, "quarter": quarter_of(day)},
            code="period_locked",
        )


def parse_points(value: object) -> Decimal | None:
    """Exact points from user input: up to two decimal places, never a float."""
    if value is None or value == "":
        return None
    try:
        points = Decimal(str(value).strip().replace("＋", "+").replace("－", "-"))
    except InvalidOperation as error:
        raise ValidationError(_("分值“%(value)s”不是有效数字。") % {"value": value}) from error
    if not points.is_finite():
        raise ValidationError(_("分值“%(value)s”不是有效数字。") % {"value": value})
    if points != points.quantize(TWO_PLACES):
        raise ValidationError(_("分值最多保留两位小数。"))
    return points.quantize(TWO_PLACES)


def ensure_not_future(occurred_on: date) -> None:
    if occurred_on > timezone.localdate():
        raise ValidationError(_("发生日期不能晚于今天。"), code="future_date")


def require_scheme(branch: Organization, year: int) -> Scheme:
    """The scheme ``branch`` uses in ``year``; refused when it has none."""
    lookups = _lookups.get()
    if lookups is not None and (branch.pk, year) in lookups.schemes:
        scheme = lookups.schemes[(branch.pk, year)]
    else:
        scheme = effective_scheme(branch, year)
        if lookups is not None:
            lookups.schemes[(branch.pk, year)] = scheme
    if scheme is None:
        raise ValidationError(
            _("%(branch)s %(year)s 年度尚未采用积分细则，请先由党委工作人员设定。")
            % {"branch": branch.name, "year": year},
            code="no_scheme",
        )
    return scheme


@dataclass(frozen=True)
class Scored:
    """A validated (member, rule, points, date) ready to be written."""

    member: Member
    rule: Rule
    scheme: Scheme
    points: Decimal
    occurred_on: date


def validate_scoring(
    *,
    member: Member,
    rule: Rule,
    points: Decimal | None,
    occurred_on: date,
    for_declaration: bool = False,
) -> Scored:
    """Everything that must be true before points for ``member`` under ``rule`` are written."""
    branch = member.organization
    if member.status == Member.Status.TRANSFERRED_OUT:
        raise ValidationError(_("%(name)s已转出，不能再记分。") % {"name": member.name})
    ensure_not_future(occurred_on)
    scheme = require_scheme(branch, occurred_on.year)
    if rule.scheme_id != scheme.pk:
        raise ValidationError(
            _("细则项“%(rule)s”不属于本支部 %(year)s 年度采用的积分细则。")
            % {"rule": rule.name, "year": occurred_on.year},
            code="wrong_scheme",
        )
    if not rule.is_current:
        raise ValidationError(
            _("细则项“%(rule)s”已修订，请选择现行版本。") % {"rule": rule.name}, code="rule_revised"
        )
    if not rule.applies_to_member(member):
        raise ValidationError(
            _("细则项“%(rule)s”不适用于%(name)s（%(category)s）。")
            % {"rule": rule.name, "name": member.name, "category": member.get_category_display()},
            code="rule_not_applicable",
        )
    if for_declaration and not rule.self_declarable:
        raise ValidationError(
            _("细则项“%(rule)s”不能由党员自行申报。") % {"rule": rule.name}, code="not_declarable"
        )
    if rule.kind == Rule.Kind.VETO:
        points = Decimal("0.00")
    else:
        if points is None:
            if not rule.is_fixed:
                raise ValidationError(
                    _("请填写分值（范围 %(range)s）。") % {"range": rule.points_display},
                    code="points_required",
                )
            points = rule.points_min
        if points == 0:
            raise ValidationError(_("分值不能为 0。"), code="zero_points")
        if points != points.quantize(TWO_PLACES):
            raise ValidationError(_("分值最多保留两位小数。"), code="too_many_decimals")
        if not rule.points_min <= points <= rule.points_max:
            raise ValidationError(
                _("分值 %(points)s 超出细则项“%(rule)s”的范围 %(range)s。")
                % {"points": signed(points), "rule": rule.name, "range": rule.points_display},
                code="points_out_of_range",
            )
    ensure_period_open(branch, occurred_on)
    return Scored(member=member, rule=rule, scheme=scheme, points=points, occurred_on=occurred_on)


def _new_entry(
    scored: Scored,
    *,
    recorded_by: User,
    description: str,
    approved_by: User | None = None,
    declaration: Declaration | None = None,
    reason: str = "",
    form_token: uuid.UUID | None = None,
) -> Entry:
    """The ledger line for ``scored``, not yet saved."""
    lookups = _lookups.get()
    if lookups is not None:
        lookups.capped.pop((scored.member.pk, scored.rule.code, scored.occurred_on.year), None)
    return Entry(
        member=scored.member,
        organization=scored.member.organization,
        rule=scored.rule,
        rule_version=scored.rule.version,
        scheme=scored.scheme,
        scheme_version=scored.scheme.version,
        kind=scored.rule.kind,
        points=scored.points,
        occurred_on=scored.occurred_on,
        year=scored.occurred_on.year,
        quarter=quarter_of(scored.occurred_on),
        description=description.strip(),
        reason=reason,
        recorded_by=recorded_by,
        approved_by=approved_by,
        declaration=declaration,
        form_token=form_token,
    )


def _write_entry(scored: Scored, **fields) -> Entry:
    entry = _new_entry(scored, **fields)
    entry.save(force_insert=True)
    return entry


def _insert_entries(entries: list[Entry], form_token: uuid.UUID | None) -> list[Entry]:
    """Insert a form's entries in one statement. A form submitted twice at once passes
    ``_claim_form_token`` in both requests; the unique form token stops the second here,
    and its sender is told the first one was saved."""
    try:
        with transaction.atomic():
            return Entry.objects.bulk_create(entries)
    except IntegrityError as error:
        if form_token is not None and Entry.objects.filter(form_token=form_token).exists():
            raise ValidationError(
                _("这张表单已经提交过，记录已保存，请勿重复提交。"), code="duplicate_submission"
            ) from error
        raise


def clean_description(description: str) -> str:
    description = (description or "").strip()
    if not description:
        raise ValidationError(_("请填写事项说明。"), code="description_required")
    if len(description) > 500:
        raise ValidationError(_("事项说明不能超过 500 字。"))
    return description


def _claim_form_token(form_token: uuid.UUID | None) -> None:
    if form_token is not None and Entry.objects.filter(form_token=form_token).exists():
        raise ValidationError(
            _("这张表单已经提交过，记录已保存，请勿重复提交。"), code="duplicate_submission"
        )


def validate_recording(
    *, member: Member, rule: Rule, points: Decimal | None, occurred_on: date, description: str
) -> tuple[Scored, str]:
    """What recording one entry checks before it writes (besides the recorder's rights and
    the form token): the scored entry and the cleaned description."""
    if rule.kind == Rule.Kind.VETO:
        raise ValidationError(
            _("一票否决须经支部党员大会表决，请使用“一票否决”登记并填写表决结果。"),
            code="veto_needs_vote",
        )
    description = clean_description(description)
    scored = validate_scoring(member=member, rule=rule, points=points, occurred_on=occurred_on)
    return scored, description


@dataclass(frozen=True)
class _CapItem:
    occurred_on: date
    order: tuple[int, int]  # ledger rows by id, then the ones still to be written in turn
    quarter: int
    points: Decimal
    max_times_per_quarter: int | None
    max_points_per_year: Decimal | None
    is_reversed: bool = False


def _capped_total(items: Sequence[_CapItem], *, with_yearly_cap: bool = True) -> Decimal:
    """What these entries (one member, one rule code, one year) count together under the caps,
    as ``scoring.recompute`` computes it: in date order, past ``max_times_per_quarter`` an
    entry counts 0; ``max_points_per_year`` clips the running sum. A reversed entry keeps its
    place but counts nothing (its reversal takes back what it counted)."""
    times: dict[int, int] = {}
    running = Decimal("0")
    total = Decimal("0")
    for item in sorted(items, key=lambda item: (item.occurred_on, item.order)):
        times[item.quarter] = times.get(item.quarter, 0) + 1
        value = item.points
        if (
            item.max_times_per_quarter is not None
            and times[item.quarter] > item.max_times_per_quarter
        ):
            value = Decimal("0")
        counted = value
        if with_yearly_cap and item.max_points_per_year is not None:
            counted = max(Decimal("0"), min(value, item.max_points_per_year - running))
        running += value
        if not item.is_reversed:
            total += counted
    return total


def _capped_entries(member: Member, code: str, year: int) -> list[_CapItem]:
    """The ledger's entries of ``member`` under capped rules with this code in ``year``."""
    lookups = _lookups.get()
    key = (member.pk, code, year)
    if lookups is not None and key in lookups.capped:
        return lookups.capped[key]
    capped = Q(rule__max_times_per_quarter__isnull=False) | Q(
        rule__max_points_per_year__isnull=False
    )
    ledger = Entry.objects.filter(
        capped, member=member, year=year, rule__code=code, reverses__isnull=True
    ).values_list(
        "id",
        "occurred_on",
        "quarter",
        "points",
        "rule__max_times_per_quarter",
        "rule__max_points_per_year",
        "reversal",
    )
    items = [
        _CapItem(day, (0, pk), quarter, points, times, cap, reversal is not None)
        for pk, day, quarter, points, times, cap, reversal in ledger
    ]
    if lookups is not None:
        lookups.capped[key] = items
    return items


def validate_caps(scored: Scored, *, earlier: Sequence[Scored] = ()) -> None:
    """Refuse an entry that would not count in full under its rule's caps, given the ledger
    and ``earlier`` (entries about to be written before it, e.g. the rows above it in an
    imported file). Recording one entry by hand does not ask this: an entry past a cap stays
    in the ledger, marked as not counted; an import refuses it instead."""
    rule = scored.rule
    if rule.max_times_per_quarter is None and rule.max_points_per_year is None:
        return
    year = scored.occurred_on.year
    items = [*_capped_entries(scored.member, rule.code, year)]
    items += [
        _CapItem(
            other.occurred_on,
            (1, index),
            quarter_of(other.occurred_on),
            other.points,
            other.rule.max_times_per_quarter,
            other.rule.max_points_per_year,
        )
        for index, other in enumerate(earlier)
        if other.member.pk == scored.member.pk
        and other.rule.code == rule.code
        and other.occurred_on.year == year
        and (other.rule.max_times_per_quarter, other.rule.max_points_per_year) != (None, None)
    ]
    candidate = _CapItem(
        scored.occurred_on,
        (1, len(earlier)),
        quarter_of(scored.occurred_on),
        scored.points,
        rule.max_times_per_quarter,
        rule.max_points_per_year,
    )
    with_candidate = [*items, candidate]
    if (
        _capped_total(with_candidate, with_yearly_cap=False)
        - _capped_total(items, with_yearly_cap=False)
        != scored.points
    ):
        quarter = quarter_of(scored.occurred_on)
        raise ValidationError(
            _(
                "细则项“%(rule)s”每季度最多计 %(times)s 次，%(name)s %(year)s年第%(quarter)s季度"
                "已达上限，此条不会计分。"
            )
            % {
                "rule": rule.name,
                "times": rule.max_times_per_quarter,
                "name": scored.member.name,
                "year": year,
                "quarter": quarter,
            },
            code="over_cap",
        )
    before = _capped_total(items)
    if _capped_total(with_candidate) - before != scored.points:
        raise ValidationError(
            _(
                "细则项“%(rule)s”每年最多计 %(cap)s 分，%(name)s %(year)s年已计 %(counted)s 分，"
                "此条 %(points)s 分超出上限。"
            )
            % {
                "rule": rule.name,
                "cap": format_number(rule.max_points_per_year),
                "name": scored.member.name,
                "year": year,
                "counted": format_number(before),
                "points": signed(scored.points),
            },
            code="over_cap",
        )


@transaction.atomic
def entry_record(
    *,
    user: User,
    member: Member,
    rule: Rule,
    occurred_on: date,
    description: str,
    points: Decimal | None = None,
    form_token: uuid.UUID | None = None,
) -> Entry:
    """Record points straight into the ledger (a recorder or the branch's leaders)."""
    _require(user, Action.RECORD_ENTRY, member.organization)
    scored, description = validate_recording(
        member=member, rule=rule, points=points, occurred_on=occurred_on, description=description
    )
    _claim_form_token(form_token)
    (entry,) = _insert_entries(
        [_new_entry(scored, recorded_by=user, description=description, form_token=form_token)],
        form_token,
    )
    _enqueue_recompute([member.pk], occurred_on.year)
    return entry


@dataclass
class BulkResult:
    entries: list[Entry]
    skipped: list[tuple[Member, str]]


@transaction.atomic
def entries_record_bulk(
    *,
    user: User,
    branch: Organization,
    rule: Rule,
    members: Sequence[Member],
    occurred_on: date,
    description: str,
    points: Decimal | None = None,
    form_token: uuid.UUID | None = None,
) -> BulkResult:
    """One rule for many members at once (a meeting's attendance): one entry each.

    Every member is validated first; members the rule cannot apply to are skipped with
    the reason, everyone else gets an entry. Nothing is written if the whole form is
    invalid (no members, locked period, bad points)."""
    _require(user, Action.RECORD_ENTRY, branch)
    if rule.kind == Rule.Kind.VETO:
        raise ValidationError(_("一票否决不能批量登记。"), code="veto_needs_vote")
    if not members:
        raise ValidationError(_("请至少选择一名党员。"), code="no_members")
    description = clean_description(description)
    ensure_period_open(branch, occurred_on)
    _claim_form_token(form_token)
    result = BulkResult(entries=[], skipped=[])
    # The branch's scheme and locks are read once for everyone; the entries are inserted in
    # one statement: a branch of 50 costs the queries a branch of 3 does.
    with lookups_remembered():
        for member in members:
            if member.organization_id != branch.pk:
                raise PermissionDenied(_("只能为本支部党员登记积分。"))
            member.organization = branch
            try:
                scored = validate_scoring(
                    member=member, rule=rule, points=points, occurred_on=occurred_on
                )
            except ValidationError as error:
                if error.code in {
                    "points_required",
                    "points_out_of_range",
                    "zero_points",
                    "too_many_decimals",
                    "period_locked",
                    "future_date",
                    "no_scheme",
                    "wrong_scheme",
                    "rule_revised",
                }:
                    raise
                result.skipped.append((member, " ".join(error.messages)))
                continue
            result.entries.append(
                _new_entry(
                    scored,
                    recorded_by=user,
                    description=description,
                    form_token=form_token if not result.entries else None,
                )
            )
    result.entries = _insert_entries(result.entries, form_token)
    if result.entries:
        _enqueue_recompute([entry.member_id for entry in result.entries], occurred_on.year)
    return result


@dataclass(frozen=True)
class GridCell:
    member: Member
    rule: Rule
    points: Decimal | None


@transaction.atomic
def entries_record_grid(
    *,
    user: User,
    branch: Organization,
    cells: Sequence[GridCell],
    occurred_on: date,
    description: str,
    form_token: uuid.UUID | None = None,
) -> list[Entry]:
    """After a meeting: members × a few rules, filled cells only, all or nothing.

    Any invalid cell refuses the whole grid, with every cell's problem listed, so the
    secretary fixes them and submits once."""
    _require(user, Action.RECORD_ENTRY, branch)
    if not cells:
        raise ValidationError(_("表格中没有填写任何分值。"), code="empty_grid")
    description = clean_description(description)
    _claim_form_token(form_token)
    problems: list[str] = []
    scored_cells: list[Scored] = []
    with lookups_remembered():  # one read of the branch's scheme and locks for every cell
        for cell in cells:
            if cell.member.organization_id != branch.pk:
                raise PermissionDenied(_("只能为本支部党员登记积分。"))
            cell.member.organization = branch
            if cell.rule.kind == Rule.Kind.VETO:
                problems.append(
                    _("%(name)s：一票否决不能在表格中登记。") % {"name": cell.member.name}
                )
                continue
            try:
                scored_cells.append(
                    validate_scoring(
                        member=cell.member,
                        rule=cell.rule,
                        points=cell.points,
                        occurred_on=occurred_on,
                    )
                )
            except ValidationError as error:
                problems.append(
                    _("%(name)s · %(rule)s：%(reason)s")
                    % {
                        "name": cell.member.name,
                        "rule": cell.rule.name,
                        "reason": " ".join(error.messages),
                    }
                )
    if problems:
        raise ValidationError(problems, code="grid_invalid")
    entries = _insert_entries(
        [
            _new_entry(
                scored,
                recorded_by=user,
                description=description,
                form_token=form_token if index == 0 else None,
            )
            for index, scored in enumerate(scored_cells)
        ],
        form_token,
    )
    _enqueue_recompute([entry.member_id for entry in entries], occurred_on.year)
    return entries


@transaction.atomic
def veto_record(
    *,
    user: User,
    member: Member,
    rule: Rule,
    occurred_on: date,
    description: str,
    meeting_date: date,
    voting_members: int,
    attendance: int,
    votes_for: int,
    votes_against: int,
    votes_abstain: int,
    form_token: uuid.UUID | None = None,
) -> Entry:
    """A veto, confirmed by the branch's show-of-hands vote: passes with more than half of
    those attending. A vote that does not pass writes nothing."""
    _require(user, Action.RECORD_VETO, member.organization)
    if rule.kind != Rule.Kind.VETO:
        raise ValidationError(_("请选择一票否决类细则项。"), code="not_veto")
    description = clean_description(description)
    counts = {
        "voting_members": voting_members,
        "attendance": attendance,
        "votes_for": votes_for,
        "votes_against": votes_against,
        "votes_abstain": votes_abstain,
    }
    if any(value is None or value < 0 for value in counts.values()):
        raise ValidationError(_("表决人数须为非负整数。"), code="vote_invalid")
    if meeting_date > timezone.localdate():
        raise ValidationError(_("表决日期不能晚于今天。"), code="vote_invalid")
    if attendance > voting_members:
        raise ValidationError(_("实到人数不能多于应到人数。"), code="vote_invalid")
    if votes_for + votes_against + votes_abstain > attendance:
        raise ValidationError(_("赞成、反对、弃权票数之和不能多于实到人数。"), code="vote_invalid")
    if votes_for * 2 <= attendance:
        raise ValidationError(
            _("表决未通过：赞成 %(for)s 票，未超过实到 %(attendance)s 人的半数，不予认定一票否决。")
            % {"for": votes_for, "attendance": attendance},
            code="vote_failed",
        )
    scored = validate_scoring(member=member, rule=rule, points=None, occurred_on=occurred_on)
    _claim_form_token(form_token)
    entry = _write_entry(
        scored,
        recorded_by=user,
        approved_by=user,
        description=description,
        reason=_("经支部党员大会表决通过（%(date)s）") % {"date": meeting_date.isoformat()},
        form_token=form_token,
    )
    VetoVote.objects.create(entry=entry, meeting_date=meeting_date, **counts)
    _enqueue_recompute([member.pk], occurred_on.year)
    return entry


@transaction.atomic
def entry_reverse(
    *, user: User, entry: Entry, reason: str, occurred_on: date | None = None
) -> Entry:
    """Cancel an entry with a reversal entry (at most one per entry), dated in an open period.

    The reversal is dated today unless given; if the original's period is locked, the
    reversal goes into the open period and points at what it corrects."""
    _require(user, Action.REVERSE_ENTRY, entry.member.organization)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写冲销原因。"), code="reason_required")
    original = Entry.objects.select_for_update().get(pk=entry.pk)
    if original.is_reversal:
        raise ValidationError(
            _("冲销记录本身不能再被冲销；如需恢复，请重新登记。"), code="reverse_reversal"
        )
    if Entry.objects.filter(reverses=original).exists():
        raise ValidationError(_("这条记录已经冲销过了。"), code="already_reversed")
    day = occurred_on or timezone.localdate()
    if day > timezone.localdate():
        raise ValidationError(_("冲销日期不能晚于今天。"), code="future_date")
    ensure_period_open(entry.member.organization, day)
    try:
        with transaction.atomic():
            reversal = Entry.objects.create(
                member=original.member,
                organization=original.member.organization,
                rule=original.rule,
                rule_version=original.rule_version,
                scheme=original.scheme,
                scheme_version=original.scheme_version,
                kind=original.kind,
                points=-original.points,
                occurred_on=day,
                year=day.year,
                quarter=quarter_of(day),
                description=_("冲销：%(description)s") % {"description": original.description},
                reason=reason,
                recorded_by=user,
                reverses=original,
            )
    except IntegrityError as error:
        raise ValidationError(_("这条记录已经冲销过了。"), code="already_reversed") from error
    _enqueue_recompute([original.member_id], original.year)
    if day.year != original.year:
        _enqueue_recompute([original.member_id], day.year)
    return reversal


@transaction.atomic
def declaration_submit(
    *,
    user: User,
    member: Member,
    rule: Rule,
    occurred_on: date,
    description: str,
    points: Decimal | None = None,
    files: Sequence[UploadedFile] = (),
) -> Declaration:
    """A member declares points for themself, with evidence files."""
    if member.user_id != user.pk or not can(user, Action.DECLARE, member.organization):
        raise PermissionDenied(_("只能为本人申报积分。"))
    description = (description or "").strip()
    if not description:
        raise ValidationError(_("请填写事项说明。"), code="description_required")
    if len(description) > 1000:
        raise ValidationError(_("事项说明不能超过 1000 字。"))
    scored = validate_scoring(
        member=member, rule=rule, points=points, occurred_on=occurred_on, for_declaration=True
    )
    if rule.evidence_required and not files:
        raise ValidationError(
            _("该项须上传佐证材料（照片、签到表或文件）。"), code="evidence_required"
        )
    checked = [check_evidence(upload) for upload in files]
    declaration = Declaration.objects.create(
        member=member,
        rule=rule,
        points=scored.points,
        occurred_on=occurred_on,
        description=description,
        declared_by=user,
    )
    for upload, content_type in checked:
        EvidenceFile.objects.create(
            declaration=declaration,
            file=upload,
            original_name=upload.name[:200],
            content_type=content_type,
            size=upload.size,
        )
    return declaration


def _lock_pending(declaration: Declaration, user: User) -> Declaration:
    locked = (
        Declaration.objects.select_for_update()
        .select_related("member__organization", "rule")
        .get(pk=declaration.pk)
    )
    _require(user, Action.REVIEW_DECLARATION, locked.member.organization)
    if locked.status != Declaration.Status.PENDING:
        raise ValidationError(
            _("这条申报已经%(status)s，不能重复审核。") % {"status": locked.get_status_display()},
            code="already_decided",
        )
    if locked.declared_by_id == user.pk or locked.member.user_id == user.pk:
        raise PermissionDenied(_("不能审核本人的申报。"))
    return locked


@transaction.atomic
def declaration_approve(
    *, user: User, declaration: Declaration, points: Decimal | None = None, reason: str = ""
) -> Entry:
    """Approve a declaration, possibly adjusting its points within the rule's range (then
    with a reason); approval writes the ledger entry."""
    locked = _lock_pending(declaration, user)
    adjusted = points is not None and points != locked.points
    reason = (reason or "").strip()
    if adjusted and not reason:
        raise ValidationError(_("调整分值时请填写调整原因。"), code="reason_required")
    scored = validate_scoring(
        member=locked.member,
        rule=locked.rule,
        points=points if adjusted else locked.points,
        occurred_on=locked.occurred_on,
        for_declaration=True,
    )
    locked.status = Declaration.Status.APPROVED
    locked.decided_by = user
    locked.decided_at = timezone.now()
    locked.decision_reason = reason
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    entry = _write_entry(
        scored,
        recorded_by=locked.declared_by,
        approved_by=user,
        description=locked.description[:500],
        declaration=locked,
        reason=(
            _("审核调整：申报 %(declared)s 分，核定 %(points)s 分。%(reason)s")
            % {"declared": signed(locked.points), "points": signed(scored.points), "reason": reason}
        )
        if adjusted
        else reason,
    )
    _enqueue_recompute([locked.member_id], locked.occurred_on.year)
    return entry


@transaction.atomic
def declaration_reject(*, user: User, declaration: Declaration, reason: str) -> Declaration:
    """Reject a declaration, with the reason the member will read."""
    locked = _lock_pending(declaration, user)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("请填写不予通过的原因。"), code="reason_required")
    locked.status = Declaration.Status.REJECTED
    locked.decided_by = user
    locked.decided_at = timezone.now()
    locked.decision_reason = reason[:500]
    locked.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    return locked
