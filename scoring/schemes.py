"""Which scheme applies where, the outcome presets, and guarded changes to schemes and rules."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from members.models import Organization

from .models import OutcomeBand, PeriodLock, Rule, Scheme, SchemeAdoption

# Outcome presets from the sources (domain.md, "Outcomes").
PRESETS: dict[str, dict] = {
    "five_stars_base_100": {
        "label": "五星制（基础分 100）",
        "base_score": Decimal("100"),
        "star": [("五星", "120"), ("四星", "110"), ("三星", "100"), ("二星", "90"), ("一星", None)],
        "grade": [("优秀", "120"), ("合格", "90"), ("不合格", None)],
    },
    "colour_stars_base_100": {
        "label": "四色星（基础分 100）",
        "base_score": Decimal("100"),
        "star": [
            ("红色示范星", "115"),
            ("黄色上进星", "100"),
            ("蓝色激励星", "90"),
            ("绿色警示星", None),
        ],
        "grade": [("优秀", "115"), ("合格", "90"), ("不合格", None)],
    },
    "grades_base_60": {
        "label": "优秀/合格/不合格（60+N）",
        "base_score": Decimal("60"),
        "star": [],
        "grade": [("优秀", "90"), ("合格", "60.01"), ("不合格", None)],
    },
}


def effective_schemes(branch_ids: list[int], year: int) -> dict[int, Scheme]:
    """The scheme each branch uses in ``year``: its own adoption, else its nearest ancestor's."""
    if not branch_ids:
        return {}
    adoptions = list(
        SchemeAdoption.objects.filter(year=year).select_related("organization", "scheme")
    )
    if not adoptions:
        return {}
    by_path = sorted(adoptions, key=lambda adoption: len(adoption.organization.path), reverse=True)
    result: dict[int, Scheme] = {}
    paths = Organization.objects.filter(id__in=branch_ids).values_list("id", "path")
    for branch_id, path in paths:
        for adoption in by_path:
            if path.startswith(adoption.organization.path):
                result[branch_id] = adoption.scheme
                break
    return result


def effective_scheme(organization: Organization, year: int) -> Scheme | None:
    ancestor_paths = [
        organization.path[:end]
        for end in range(Organization.steplen, len(organization.path) + 1, Organization.steplen)
    ]
    adoption = (
        SchemeAdoption.objects.filter(year=year, organization__path__in=ancestor_paths)
        .select_related("scheme", "organization")
        .order_by("-organization__depth")
        .first()
    )
    return adoption.scheme if adoption else None


def scheme_is_locked(scheme: Scheme) -> bool:
    """In use for a locked period: some organization using it has a locked period of its year."""
    adopters = SchemeAdoption.objects.filter(scheme=scheme).values_list(
        "organization__path", flat=True
    )
    condition = Q()
    for path in adopters:
        condition |= Q(organization__path__startswith=path)
    if not condition:
        return False
    return PeriodLock.objects.filter(condition, year=scheme.year).exists()


def ensure_scheme_editable(scheme: Scheme) -> None:
    if scheme.pk and scheme_is_locked(scheme):
        raise ValidationError(
            _(
                "“%(scheme)s”已用于已确认归档（锁定）的期间，不能再修改。如需调整，请为新年度制定新细则。"
            )
            % {"scheme": scheme}
        )


@transaction.atomic
def scheme_create_from_preset(
    *, owner: Organization, year: int, name: str, preset: str, **fields
) -> Scheme:
    """A new scheme with the star and grade bands of one of the presets."""
    spec = PRESETS[preset]
    scheme = Scheme.objects.create(
        owner=owner, year=year, name=name, base_score=spec["base_score"], **fields
    )
    for dimension in (OutcomeBand.Dimension.STAR, OutcomeBand.Dimension.GRADE):
        for label, minimum in spec[dimension]:
            OutcomeBand.objects.create(
                scheme=scheme,
                dimension=dimension,
                label=label,
                min_total=Decimal(minimum) if minimum is not None else None,
            )
    return scheme


@transaction.atomic
def scheme_adopt(*, organization: Organization, scheme: Scheme) -> SchemeAdoption:
    """``organization`` (and the branches below that have none of their own) uses ``scheme``."""
    existing = SchemeAdoption.objects.filter(organization=organization, year=scheme.year).first()
    if existing and existing.scheme_id != scheme.pk:
        ensure_scheme_editable(existing.scheme)
        existing.scheme = scheme
        existing.save(update_fields=["scheme"])
        return existing
    return existing or SchemeAdoption.objects.create(
        organization=organization, year=scheme.year, scheme=scheme
    )


@transaction.atomic
def scheme_bump_version(scheme: Scheme) -> None:
    ensure_scheme_editable(scheme)
    # A save, not an update(): the audit history records the new version.
    scheme.version += 1
    scheme.save(update_fields=["version", "updated_at"])


@transaction.atomic
def rule_revise(*, rule: Rule, **changes) -> Rule:
    """Change a rule. One the ledger or a declaration already uses is never edited in place:
    the revision becomes a new current row (same code, next version) and the old one is
    kept for the entries scored under it."""
    scheme = Scheme.objects.select_for_update().get(pk=rule.scheme_id)
    ensure_scheme_editable(scheme)
    in_use = rule.entries.exists() or rule.declarations.exists()
    if in_use:
        rule.is_current = False
        rule.save(update_fields=["is_current"])  # the old version, retired (audit history)
        rule.pk = None
        rule.version += 1
        rule.is_current = True
    for field, value in changes.items():
        setattr(rule, field, value)
    rule.full_clean(validate_unique=False)
    rule.save()
    scheme_bump_version(scheme)
    return rule
