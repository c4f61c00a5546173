"""Objections during publicity: raise → recheck → (accept | appeal → examine → rule).

Each service is one transaction, checks the caller's post through the permission module
(``PermissionDenied`` for the wrong user), locks the objection row, says in Chinese why a
step is refused, and then changes nothing. An upheld objection becomes a correction in the
ledger through the scoring services — a reversal of the entry objected to and, where
needed, a new entry — whose recomputes run on commit, so totals and ranks follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, Organization, Role
from members.permissions import Action, can
from reviews.models import ReviewCycle
from reviews.services import period_bounds
from scoring import services as scoring_services
from scoring.models import Entry, Rule

from .models import Objection

State = Objection.State
MAX_TEXT = 2000
# Entry.reason holds at most 500 characters.
MAX_ENTRY_REASON = 500


@dataclass(frozen=True)
class Correction:
    """The new entry that replaces what was wrong (optional when the objection is about an
    entry that should simply be cancelled)."""

    rule: Rule
    points: Decimal | None
    description: str


# --- helpers -------------------------------------------------------------------------------


def _require(user: User, action: Action, organization: Organization) -> None:
    if not can(user, action, organization):
        raise PermissionDenied(_("您没有在“%(org)s”进行此操作的权限。") % {"org": organization})


def _clean_text(text: str, *, required: str, too_long: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError(required, code="text_required")
    if len(text) > MAX_TEXT:
        raise ValidationError(too_long, code="text_too_long")
    return text


def raise_window_problem(cycle: ReviewCycle, today: date | None = None) -> str | None:
    """Why a member cannot raise an objection in this cycle today (None: they can)."""
    today = today or timezone.localdate()
    if cycle.state == ReviewCycle.State.FINALIZED:
        return _("本期评议已确认归档，不能再提出异议。")
    if cycle.state != ReviewCycle.State.PUBLICITY or cycle.publicity_starts_on is None:
        return _("本期积分尚未公示，暂不能提出异议。")
    if today < cycle.publicity_starts_on:
        return _("公示将于 %(start)s 开始，届时才能提出异议。") % {
            "start": cycle.publicity_starts_on.isoformat()
        }
    if cycle.publicity_ends_on is not None and today > cycle.publicity_ends_on:
        return _("公示期已于 %(end)s 结束，不能再提出异议。") % {
            "end": cycle.publicity_ends_on.isoformat()
        }
    return None


def _locked_cycle(cycle: ReviewCycle) -> ReviewCycle:
    # Finalizing (reviews.services.cycle_advance) locks the same row and then counts the open
    # objections; locking it here first means an objection can never slip in behind that count.
    return (
        ReviewCycle.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=cycle.pk)
    )


def _locked_objection(objection: Objection) -> Objection:
    return (
        # Only the objection's row: PostgreSQL cannot lock the nullable side of the outer
        # join to the entry, and the entry is locked by entry_reverse when it is reversed.
        Objection.objects.select_for_update(of=("self",))
        .select_related("cycle__organization", "member__organization", "entry")
        .get(pk=objection.pk)
    )


def _is_own(objection: Objection, user: User) -> bool:
    return objection.raised_by_id == user.pk or (
        objection.member.user_id is not None and objection.member.user_id == user.pk
    )


def _require_state(objection: Objection, state: str, step: str) -> None:
    if objection.state != state:
        raise ValidationError(
            _("这件异议目前为“%(state)s”，不能%(step)s。请刷新页面查看最新情况。")
            % {"state": objection.get_state_display(), "step": step},
            code="wrong_state",
        )


def _require_publicity(objection: Objection) -> None:
    if objection.cycle.state != ReviewCycle.State.PUBLICITY:
        raise ValidationError(
            _("本期评议目前为“%(state)s”，不在公示阶段，不能再办理异议。")
            % {"state": objection.cycle.get_state_display()},
            code="not_in_publicity",
        )


def _correction_date(objection: Objection) -> date:
    """The original entry's date; for an objection about the total, the period's last day
    (today if the period is still running: nothing is recorded in the future)."""
    if objection.entry is not None:
        return objection.entry.occurred_on
    _first, last = period_bounds(objection.cycle.year, objection.cycle.quarter)
    return min(last, timezone.localdate())


def _apply_correction(
    *, user: User, objection: Objection, reason: str, correction: Correction | None
) -> None:
    """Write the correction of an upheld objection into the ledger, as ``user``.

    The entry objected to is reversed (dated on its own date, so the corrected period is the
    one being published) unless it is itself a reversal or has been reversed already; the
    correction, if any, is recorded for the member. Refused — with nothing written — when
    there is nothing to correct or ``user`` may not make the reversal."""
    entry = objection.entry
    must_reverse = (
        entry is not None
        and not entry.is_reversal
        and not Entry.objects.filter(reverses_id=entry.pk).exists()
    )
    if correction is None and not must_reverse and (entry is None or entry.is_reversal):
        raise ValidationError(_("请填写更正后的积分"), code="correction_required")
    if must_reverse and not can(user, Action.REVERSE_ENTRY, entry.member.organization):
        raise PermissionDenied(
            _(
                "认定这件异议成立需要冲销原积分记录，您没有冲销权限。"
                "请由支部书记或副书记复核认定这件异议。"
            )
        )
    if must_reverse:
        objection.reversal_entry = scoring_services.entry_reverse(
            user=user,
            entry=entry,
            reason=(_("异议成立：%(reason)s") % {"reason": reason})[:MAX_ENTRY_REASON],
            occurred_on=entry.occurred_on,
        )
    if correction is not None:
        objection.correction_entry = scoring_services.entry_record(
            user=user,
            member=objection.member,
            rule=correction.rule,
            occurred_on=_correction_date(objection),
            description=correction.description,
            points=correction.points,
        )


def _notify(users, text: str, objection: Objection) -> None:
    """Tell these users about the objection once the transaction commits (never fails it)."""
    from reviews.notifications import notify

    url = reverse("publicity:objections", kwargs={"pk": objection.cycle_id})
    key = f"objection-{objection.pk}-{objection.state}"
    user_ids = list(users.values_list("pk", flat=True))
    transaction.on_commit(
        lambda: notify(User.objects.filter(pk__in=user_ids), text, url=url, key=key), robust=True
    )


def _officers(branch: Organization, posts: list[str]):
    return User.objects.filter(
        party_roles__organization=branch, party_roles__post__in=posts, is_active=True
    ).distinct()


def _member_user(objection: Objection):
    return User.objects.filter(pk=objection.member.user_id, is_active=True)


def _subject(objection: Objection) -> dict[str, str]:
    return {"name": objection.member.name, "period": objection.cycle.period_label}


# --- the steps -----------------------------------------------------------------------------


@transaction.atomic
def objection_raise(
    *, user: User, cycle: ReviewCycle, text: str, entry: Entry | None = None
) -> Objection:
    """A member objects, during the publicity window, to one of their own entries of the
    period or (``entry`` None) to their total. One open objection per entry (or total)."""
    member = Member.objects.filter(user=user, organization_id=cycle.organization_id).first()
    if (
        member is None
        or member.status == Member.Status.TRANSFERRED_OUT
        or not can(user, Action.RAISE_OBJECTION, cycle.organization)
    ):
        raise PermissionDenied(_("只有本支部党员可以对本人的公示积分提出异议。"))
    if entry is not None and entry.member_id != member.pk:
        raise PermissionDenied(_("只能对本人的积分记录提出异议。"))
    cycle = _locked_cycle(cycle)
    problem = raise_window_problem(cycle)
    if problem:
        raise ValidationError(problem, code="window_closed")
    if entry is not None:
        first, last = period_bounds(cycle.year, cycle.quarter)
        if not first <= entry.occurred_on <= last:
            raise ValidationError(
                _("这条积分记录不在本期（%(period)s）公示范围内。")
                % {"period": cycle.period_label},
                code="entry_outside_period",
            )
    text = _clean_text(
        text, required=_("请填写异议内容。"), too_long=_("异议内容不能超过 2000 字。")
    )
    pending = Objection.objects.filter(
        cycle=cycle, member=member, entry=entry, state__in=Objection.OPEN_STATES
    )
    if pending.exists():
        raise ValidationError(
            _("您对这条记录的异议正在办理中，请等待答复。")
            if entry is not None
            else _("您对本期总分的异议正在办理中，请等待答复。"),
            code="already_pending",
        )
    objection = Objection.objects.create(
        cycle=cycle, member=member, entry=entry, text=text, raised_by=user
    )
    _notify(
        _officers(
            cycle.organization,
            [Role.Post.RECORDER, Role.Post.SECRETARY, Role.Post.DEPUTY_SECRETARY],
        ).exclude(pk=user.pk),
        _("%(name)s对%(period)s公示积分提出异议，请复核。") % _subject(objection),
        objection,
    )
    return objection


@transaction.atomic
def objection_recheck(
    *,
    user: User,
    objection: Objection,
    answer: str,
    uphold: bool,
    correction: Correction | None = None,
) -> Objection:
    """复核: the recorder (or a branch leader) answers a raised objection. Upheld, the
    correction goes into the ledger at once; otherwise the result stands (answered) and the
    member may accept it or appeal. Nobody rechecks their own objection."""
    locked = _locked_objection(objection)
    _require(user, Action.RECHECK_OBJECTION, locked.cycle.organization)
    if _is_own(locked, user):
        raise PermissionDenied(_("不能复核本人提出的异议。"))
    _require_state(locked, State.RAISED, _("复核"))
    _require_publicity(locked)
    answer = _clean_text(
        answer, required=_("请填写复核答复。"), too_long=_("复核答复不能超过 2000 字。")
    )
    if not uphold and correction is not None:
        raise ValidationError(_("维持原结果时不能登记更正积分。"), code="correction_not_upheld")
    if uphold:
        _apply_correction(user=user, objection=locked, reason=answer, correction=correction)
    locked.state = State.UPHELD if uphold else State.ANSWERED
    locked.recheck_answer = answer
    locked.rechecked_by = user
    locked.rechecked_at = timezone.now()
    locked.save(
        update_fields=[
            "state",
            "recheck_answer",
            "rechecked_by",
            "rechecked_at",
            "reversal_entry",
            "correction_entry",
        ]
    )
    _notify(
        _member_user(locked),
        (
            _("您对%(period)s公示积分的异议经复核成立，积分已更正。")
            if uphold
            else _("您对%(period)s公示积分的异议已复核答复，如仍有异议可向纪检委员申诉。")
        )
        % _subject(locked),
        locked,
    )
    return locked


@transaction.atomic
def objection_accept(*, user: User, objection: Objection) -> Objection:
    """The member accepts the recheck answer; the objection is settled."""
    locked = _locked_objection(objection)
    if locked.member.user_id != user.pk:
        raise PermissionDenied(_("只能处理本人提出的异议。"))
    _require_state(locked, State.ANSWERED, _("接受复核结果"))
    locked.state = State.ACCEPTED
    locked.save(update_fields=["state"])
    return locked


@transaction.atomic
def objection_appeal(*, user: User, objection: Objection, text: str) -> Objection:
    """申诉: a member who disagrees with the recheck answer appeals to the discipline
    commissioner, while the cycle is still in publicity."""
    # The cycle first, then the objection (the order finalizing takes them in).
    cycle = _locked_cycle(objection.cycle)
    locked = _locked_objection(objection)
    if locked.member.user_id != user.pk or not can(
        user, Action.RAISE_OBJECTION, cycle.organization
    ):
        raise PermissionDenied(_("只能对本人的异议提出申诉。"))
    _require_state(locked, State.ANSWERED, _("申诉"))
    if cycle.state != ReviewCycle.State.PUBLICITY:
        raise ValidationError(
            _("本期评议已不在公示阶段（目前为“%(state)s”），不能再申诉。")
            % {"state": cycle.get_state_display()},
            code="not_in_publicity",
        )
    text = _clean_text(
        text, required=_("请填写申诉理由。"), too_long=_("申诉理由不能超过 2000 字。")
    )
    locked.state = State.APPEALED
    locked.appeal_text = text
    locked.appealed_at = timezone.now()
    locked.save(update_fields=["state", "appeal_text", "appealed_at"])
    _notify(
        _officers(cycle.organization, [Role.Post.DISCIPLINE_COMMISSIONER]).exclude(pk=user.pk),
        _("%(name)s对%(period)s异议复核结果提出申诉，请审查。") % _subject(locked),
        locked,
    )
    return locked


@transaction.atomic
def objection_examine(*, user: User, objection: Objection, opinion: str) -> Objection:
    """The discipline commissioner examines an appeal and forwards it, with an opinion, to
    the branch committee for the final ruling."""
    locked = _locked_objection(objection)
    _require(user, Action.HANDLE_APPEAL, locked.cycle.organization)
    if _is_own(locked, user):
        raise PermissionDenied(_("不能审查本人的申诉。"))
    _require_state(locked, State.APPEALED, _("审查"))
    _require_publicity(locked)
    opinion = _clean_text(
        opinion,
        required=_("请填写纪检委员意见。"),
        too_long=_("纪检委员意见不能超过 2000 字。"),
    )
    locked.state = State.FORWARDED
    locked.commissioner_opinion = opinion
    locked.commissioner_by = user
    locked.commissioner_at = timezone.now()
    locked.save(
        update_fields=["state", "commissioner_opinion", "commissioner_by", "commissioner_at"]
    )
    _notify(
        _officers(
            locked.cycle.organization, [Role.Post.SECRETARY, Role.Post.DEPUTY_SECRETARY]
        ).exclude(pk=user.pk),
        _("%(name)s的申诉已经纪检委员审查，请提交支委会认定。") % _subject(locked),
        locked,
    )
    return locked


@transaction.atomic
def objection_rule(
    *,
    user: User,
    objection: Objection,
    uphold: bool,
    reason: str,
    correction: Correction | None = None,
) -> Objection:
    """认定: the branch committee's final ruling, recorded by the secretary or deputy.
    Upheld, the correction goes into the ledger; rejected, the published result stands."""
    locked = _locked_objection(objection)
    _require(user, Action.RULE_OBJECTION, locked.cycle.organization)
    if _is_own(locked, user):
        raise PermissionDenied(_("不能认定本人提出的异议。"))
    _require_state(locked, State.FORWARDED, _("认定"))
    _require_publicity(locked)
    reason = _clean_text(
        reason, required=_("请填写认定理由。"), too_long=_("认定理由不能超过 2000 字。")
    )
    if not uphold and correction is not None:
        raise ValidationError(_("认定异议不成立时不能登记更正积分。"), code="correction_not_upheld")
    if uphold:
        _apply_correction(user=user, objection=locked, reason=reason, correction=correction)
    locked.state = State.UPHELD if uphold else State.REJECTED
    locked.ruling_reason = reason
    locked.ruled_by = user
    locked.ruled_at = timezone.now()
    locked.save(
        update_fields=[
            "state",
            "ruling_reason",
            "ruled_by",
            "ruled_at",
            "reversal_entry",
            "correction_entry",
        ]
    )
    _notify(
        _member_user(locked),
        (
            _("支委会认定您对%(period)s公示积分的异议成立，积分已更正。")
            if uphold
            else _("支委会认定您对%(period)s公示积分的异议不成立。")
        )
        % _subject(locked),
        locked,
    )
    return locked
