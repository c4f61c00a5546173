"""操作记录: the audit history of an organization, newest first, scoped by permission.

Every save of the registered models (``HistoricalRecords`` of django-simple-history) leaves a
snapshot row with the acting user; rows written outside a request (Celery jobs) have none and
read as 系统任务. The points ledger (``scoring.Entry``) and its veto votes are append-only —
the database refuses UPDATE and DELETE — so their history *is* the ledger: each entry, with
who recorded and who approved it, and each reversal, is merged into the same timeline from
the ledger table itself rather than doubled into a history table.

What belongs to an organization X (the page's scope, X and everything below it):
members, roles, period locks, review cycles (with their meetings, self-assessments and
objections), declarations of X's members and X's ledger entries; and the schemes (with their
categories, rules and bands) and adoptions owned by X, by an organization below it, or by an
ancestor of X — an ancestor's scheme applies to X.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, models
from django.db.models import CharField, F, Q, QuerySet, Value
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import Member, Organization, Role
from .permissions import Action, organizations_where

PAGE_SIZE = 50
SYSTEM_ACTOR = gettext_lazy("系统任务")
CHANGE_LABELS = {
    "+": gettext_lazy("新增"),
    "~": gettext_lazy("修改"),
    "-": gettext_lazy("删除"),
    "reversal": gettext_lazy("冲销"),
}


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    model: Callable[[], type[models.Model]]  # the historical model (or Entry)
    scope: Callable[[Organization], Q]  # the rows of this kind that belong to X's subtree
    label_of: Callable[[models.Model], str]
    prefetch: tuple[str, ...] = ()


@dataclass
class Change:
    field: str
    old: str
    new: str


@dataclass
class Row:
    at: datetime
    actor: str
    kind: str
    label: str
    change: str
    changes: list[Change] = field(default_factory=list)
    note: str = ""


def _subtree_ids(organization: Organization) -> QuerySet:
    return Organization.objects.filter(path__startswith=organization.path).values("pk")


def _ancestor_paths(organization: Organization) -> list[str]:
    step = Organization.steplen
    return [organization.path[: step * depth] for depth in range(1, organization.depth + 1)]


def _scheme_owner_ids(organization: Organization) -> QuerySet:
    return Organization.objects.filter(
        Q(path__startswith=organization.path) | Q(path__in=_ancestor_paths(organization))
    ).values("pk")


def _scheme_ids(organization: Organization) -> QuerySet:
    from scoring.models import Scheme

    # From the history table, so rows of a scheme deleted since remain in scope.
    return (
        Scheme.history.filter(owner_id__in=_scheme_owner_ids(organization)).values("id").distinct()
    )


def _cycle_ids(organization: Organization) -> QuerySet:
    from reviews.models import ReviewCycle

    return ReviewCycle.objects.filter(organization_id__in=_subtree_ids(organization)).values("pk")


def _period(year: int, quarter: int) -> str:
    if quarter == 0:
        return _("%(year)s年度") % {"year": year}
    return _("%(year)s年第%(quarter)s季度") % {"year": year, "quarter": quarter}


def _name(obj, attribute: str = "name") -> str:
    return getattr(obj, attribute) if obj is not None else "—"


def _cycle_label(cycle) -> str:
    if cycle is None:
        return "—"
    return f"{cycle.organization.name} {_period(cycle.year, cycle.quarter)}"


def _signed(value) -> str:
    from scoring.formatting import signed

    return signed(value)


def _kinds() -> list[Kind]:
    from publicity.models import Objection
    from reviews.models import CommitteeMeeting, GeneralMeeting, ReviewCycle, SelfAssessment
    from scoring.models import (
        Declaration,
        Entry,
        OutcomeBand,
        PeriodLock,
        Rule,
        RuleCategory,
        Scheme,
        SchemeAdoption,
    )

    def in_subtree(attribute: str) -> Callable[[Organization], Q]:
        return lambda org: Q(**{f"{attribute}__in": _subtree_ids(org)})

    def in_schemes(org: Organization) -> Q:
        return Q(scheme_id__in=_scheme_ids(org))

    def in_cycles(org: Organization) -> Q:
        return Q(cycle_id__in=_cycle_ids(org))

    return [
        Kind(
            "organization",
            _("党组织"),
            lambda: Organization.history.model,
            lambda org: Q(path__startswith=org.path),
            lambda row: row.name,
        ),
        Kind(
            "member",
            _("党员"),
            lambda: Member.history.model,
            in_subtree("organization_id"),
            lambda row: row.name,
        ),
        Kind(
            "role",
            _("职务"),
            lambda: Role.history.model,
            in_subtree("organization_id"),
            lambda row: " · ".join(
                [
                    _user_name(row.user) if row.user else "—",
                    str(dict(Role.Post.choices).get(row.post, row.post)),
                    _name(row.organization),
                ]
            ),
            ("user", "organization"),
        ),
        Kind(
            "scheme",
            _("细则"),
            lambda: Scheme.history.model,
            lambda org: Q(owner_id__in=_scheme_owner_ids(org)),
            lambda row: f"{row.year} {row.name}",
        ),
        Kind(
            "category",
            _("积分类别"),
            lambda: RuleCategory.history.model,
            in_schemes,
            lambda row: f"{_name(row.scheme)} · {row.name}",
            ("scheme",),
        ),
        Kind(
            "rule",
            _("细则项"),
            lambda: Rule.history.model,
            in_schemes,
            lambda row: (
                _("%(code)s %(name)s（第 %(version)s 版）")
                % {"code": row.code, "name": row.name, "version": row.version}
            ),
        ),
        Kind(
            "band",
            _("星级/等次档"),
            lambda: OutcomeBand.history.model,
            in_schemes,
            lambda row: f"{_name(row.scheme)} · {row.label}",
            ("scheme",),
        ),
        Kind(
            "adoption",
            _("细则采用"),
            lambda: SchemeAdoption.history.model,
            lambda org: Q(organization_id__in=_scheme_owner_ids(org)),
            lambda row: f"{_name(row.organization)} · {row.year} · {_name(row.scheme)}",
            ("organization", "scheme"),
        ),
        Kind(
            "declaration",
            _("申报"),
            lambda: Declaration.history.model,
            lambda org: Q(
                member_id__in=Member.objects.filter(organization_id__in=_subtree_ids(org)).values(
                    "pk"
                )
            ),
            lambda row: f"{_name(row.member)} · {_name(row.rule, 'code')} {_name(row.rule)}",
            ("member", "rule"),
        ),
        Kind(
            "lock",
            _("锁定期间"),
            lambda: PeriodLock.history.model,
            in_subtree("organization_id"),
            lambda row: f"{_name(row.organization)} {_period(row.year, row.quarter)}",
            ("organization",),
        ),
        Kind(
            "cycle",
            _("评议"),
            lambda: ReviewCycle.history.model,
            in_subtree("organization_id"),
            lambda row: f"{_name(row.organization)} {_period(row.year, row.quarter)}",
            ("organization",),
        ),
        Kind(
            "self_assessment",
            _("党员自评"),
            lambda: SelfAssessment.history.model,
            in_cycles,
            lambda row: f"{_name(row.member)} · {_cycle_label(row.cycle)}",
            ("member", "cycle__organization"),
        ),
        Kind(
            "committee_meeting",
            _("支委会"),
            lambda: CommitteeMeeting.history.model,
            in_cycles,
            lambda row: _cycle_label(row.cycle),
            ("cycle__organization",),
        ),
        Kind(
            "general_meeting",
            _("党员大会"),
            lambda: GeneralMeeting.history.model,
            in_cycles,
            lambda row: _cycle_label(row.cycle),
            ("cycle__organization",),
        ),
        Kind(
            "objection",
            _("异议"),
            lambda: Objection.history.model,
            in_cycles,
            lambda row: f"{_name(row.member)} · {_cycle_label(row.cycle)}",
            ("member", "cycle__organization"),
        ),
        Kind(
            "entry",
            _("积分记录"),
            lambda: Entry,
            in_subtree("organization_id"),
            lambda row: (
                f"{_name(row.member)} · {row.rule.code} {row.rule.name} {_signed(row.points)}"
            ),
            ("member", "rule", "recorded_by", "approved_by"),
        ),
    ]


def kinds() -> dict[str, Kind]:
    return {kind.key: kind for kind in _kinds()}


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.key, kind.label) for kind in _kinds()]


def _user_name(user: User | None) -> str:
    if user is None:
        return str(SYSTEM_ACTOR)
    return user.get_full_name() or user.username


# --- which organizations -------------------------------------------------------------------


def audit_organizations(user: User | AnonymousUser) -> QuerySet[Organization]:
    return organizations_where(user, Action.VIEW_AUDIT)


def audit_default(user: User | AnonymousUser) -> Organization | None:
    """Where the page opens: the highest organization the user may audit."""
    return audit_organizations(user).order_by("depth", "path").first()


def audit_choices(user: User | AnonymousUser, limit: int = 300) -> list[Organization]:
    """The organizations offered in the filter: all of them when they are few, otherwise the
    committees and general branches (a branch is then reached from the overview's links)."""
    reachable = list(audit_organizations(user).order_by("path")[: limit + 1])
    if len(reachable) <= limit:
        return reachable
    return list(
        audit_organizations(user).exclude(kind=Organization.Kind.BRANCH).order_by("path")[:limit]
    )


# --- the timeline --------------------------------------------------------------------------


@dataclass
class Filters:
    kind: str = ""
    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _actor_q(prefixes: Iterable[str], text: str) -> Q:
    condition = Q()
    for prefix in prefixes:
        for name in ("username", "first_name", "last_name"):
            condition |= Q(**{f"{prefix}__{name}__icontains": text})
    if text in str(SYSTEM_ACTOR):
        condition |= Q(**{f"{next(iter(prefixes))}__isnull": True})
    return condition


def _part(kind: Kind, organization: Organization, filters: Filters, limit: int | None):
    is_entry = kind.key == "entry"
    date_field = "created_at" if is_entry else "history_date"
    rows = kind.model()._default_manager.filter(kind.scope(organization))
    if filters.date_from:
        rows = rows.filter(**{f"{date_field}__gte": _day_start(filters.date_from)})
    if filters.date_to:
        rows = rows.filter(**{f"{date_field}__lt": _day_start(filters.date_to + timedelta(1))})
    if filters.actor:
        prefixes = ("recorded_by", "approved_by") if is_entry else ("history_user",)
        rows = rows.filter(_actor_q(prefixes, filters.actor))
    rows = rows.annotate(
        a_kind=Value(kind.key, output_field=CharField()),
        a_row=F("id" if is_entry else "history_id"),
        a_at=F(date_field),
    ).values_list("a_kind", "a_row", "a_at")
    if limit is None:
        return rows.order_by()
    return rows.order_by("-a_at", "-a_row")[:limit]


@dataclass
class Page:
    number: int
    rows: list[Row]
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def audit_page(organization: Organization, filters: Filters, number: int = 1) -> Page:
    """One page of the timeline of ``organization`` (the caller has checked the user may
    audit it). Without a total count: the page asks for one row more than it shows to know
    whether there is a next page, so it costs the same with 10 million ledger lines."""
    number = max(1, number)
    offset = (number - 1) * PAGE_SIZE
    wanted = offset + PAGE_SIZE + 1
    # PostgreSQL sorts and limits each part first (LIMIT inside a UNION); SQLite cannot.
    selected = [kind for kind in _kinds() if not filters.kind or kind.key == filters.kind]
    limit = (
        wanted
        if len(selected) > 1 and connection.features.supports_slicing_ordering_in_compound
        else None
    )
    parts = [_part(kind, organization, filters, limit) for kind in selected]
    timeline = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    keys = list(timeline.order_by("-a_at", "-a_row")[offset:wanted])
    has_next = len(keys) > PAGE_SIZE
    keys = keys[:PAGE_SIZE]
    by_key = {kind.key: kind for kind in selected}
    return Page(number=number, rows=_materialize(keys, by_key), has_next=has_next)


def _materialize(keys: list[tuple[str, int, datetime]], by_key: dict[str, Kind]) -> list[Row]:
    ids_by_kind: dict[str, list[int]] = defaultdict(list)
    for key, row_id, _at in keys:
        ids_by_kind[key].append(row_id)
    built: dict[tuple[str, int], Row] = {}
    for key, ids in ids_by_kind.items():
        kind = by_key[key]
        if key == "entry":
            built.update(_entry_rows(kind, ids))
        else:
            built.update(_history_rows(kind, ids))
    return [built[(key, row_id)] for key, row_id, _at in keys]


def _entry_rows(kind: Kind, ids: list[int]) -> dict[tuple[str, int], Row]:
    entries = kind.model().objects.filter(pk__in=ids).prefetch_related(*kind.prefetch)
    rows = {}
    for entry in entries:
        note = _("记录人：%(recorder)s") % {"recorder": _user_name(entry.recorded_by)}
        if entry.approved_by_id:
            note += _("；审核人：%(approver)s") % {"approver": _user_name(entry.approved_by)}
        if entry.reason:
            note += _("；原因：%(reason)s") % {"reason": entry.reason}
        if entry.reverses_id:
            note += _("；冲销第 %(id)s 号记录") % {"id": entry.reverses_id}
        rows[("entry", entry.pk)] = Row(
            at=entry.created_at,
            actor=_user_name(entry.recorded_by),
            kind=kind.label,
            label=kind.label_of(entry),
            change=str(CHANGE_LABELS["reversal" if entry.reverses_id else "+"]),
            note=note,
        )
    return rows


def _tracked(record) -> list[str]:
    return [
        f.name
        for f in record.tracked_fields
        if not f.primary_key
        and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False)
    ]


def _history_rows(kind: Kind, ids: list[int]) -> dict[tuple[str, int], Row]:
    model = kind.model()
    records = list(
        model.objects.filter(history_id__in=ids).prefetch_related("history_user", *kind.prefetch)
    )
    previous = _previous_records(model, [r for r in records if r.history_type == "~"])
    pending: list[tuple[models.Model, object, object]] = []  # (field, old, new) to resolve
    deltas = {}
    for record in records:
        before = previous.get(record.history_id)
        if record.history_type == "~" and before is not None:
            delta = record.diff_against(before, included_fields=_tracked(record))
            deltas[record.history_id] = delta.changes
            for change in delta.changes:
                pending.append((model._meta.get_field(change.field), change.old, change.new))
    related = _resolve_related(pending)
    rows = {}
    for record in records:
        changes = [
            Change(
                field=str(model._meta.get_field(change.field).verbose_name),
                old=_display(model._meta.get_field(change.field), change.old, related),
                new=_display(model._meta.get_field(change.field), change.new, related),
            )
            for change in deltas.get(record.history_id, [])
        ]
        rows[(kind.key, record.history_id)] = Row(
            at=record.history_date,
            actor=_user_name(record.history_user),
            kind=kind.label,
            label=kind.label_of(record),
            change=str(CHANGE_LABELS[record.history_type]),
            changes=changes,
        )
    return rows


def _previous_records(model, records: list) -> dict[int, object]:
    """{history id: the record just before it of the same object}, one query per kind."""
    if not records:
        return {}
    object_ids = {record.id for record in records}
    latest = max(record.history_date for record in records)
    history = defaultdict(list)
    for record in model.objects.filter(id__in=object_ids, history_date__lte=latest).order_by(
        "history_date", "history_id"
    ):
        history[record.id].append(record)
    previous = {}
    for record in records:
        earlier = None
        for candidate in history[record.id]:
            if candidate.history_id == record.history_id:
                break
            earlier = candidate
        previous[record.history_id] = earlier
    return previous


def _resolve_related(pending) -> dict[tuple[type, object], str]:
    wanted: dict[type, set] = defaultdict(set)
    for field_meta, old, new in pending:
        if field_meta.is_relation and field_meta.many_to_one:
            for value in (old, new):
                if value is not None:
                    wanted[field_meta.related_model].add(value)
    resolved = {}
    for model, ids in wanted.items():
        for pk, obj in model._default_manager.in_bulk(list(ids)).items():
            resolved[(model, pk)] = _user_name(obj) if isinstance(obj, User) else str(obj)
    return resolved


def _display(field_meta, value, related: dict) -> str:
    if value is None or value == "":
        return str(_("（空）"))
    if field_meta.is_relation and field_meta.many_to_one:
        return related.get((field_meta.related_model, value), f"#{value}")
    if isinstance(value, bool):
        return str(_("是") if value else _("否"))
    if field_meta.choices:
        return str(dict(field_meta.flatchoices).get(value, value))
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return "、".join(str(item) for item in value) or str(_("（空）"))
    return str(value)
