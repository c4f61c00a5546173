"""Every move of a review cycle and every record made along the way.

Each service is one transaction, checks the caller's post through the permission module,
says in Chinese why a move is refused (and then changes nothing), and writes the timeline.
Two people moving the same cycle at once: the row is locked and the state compared with
the one the mover saw, so exactly one succeeds and the other is told what happened.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from members.models import Member, Organization
from members.permissions import Action, can
from scoring.models import Declaration, PeriodLock, PeriodScore
from scoring.schemes import effective_scheme

from .models import (
    Acknowledgement,
    Appraisal,
    CommitteeMeeting,
    CycleEvent,
    GeneralMeeting,
    ReviewCycle,
    ScoreAgreement,
    SelfAssessment,
)

State = ReviewCycle.State
# Days a member has to appeal after the recheck answer, even past the publicity window.
APPEAL_DAYS = 2


def _require(user: User, action: Action, organization: Organization) -> None:
    if not can(user, action, organization):
        raise PermissionDenied(_("您没有在“%(org)s”进行此操作的权限。") % {"org": organization})


def period_bounds(year: int, quarter: int) -> tuple[date, date]:
    """First and last day of a quarter (1–4) or of the year (0)."""
    if quarter == 0:
        return date(year, 1, 1), date(year, 12, 31)
    first = date(year, 3 * quarter - 2, 1)
    last = (date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)) - timedelta(
        days=1
    )
    return first, last


def scored_members(branch: Organization):
    """Members the review covers: on the roster and not transferred out."""
    return Member.objects.filter(organization=branch).exclude(status=Member.Status.TRANSFERRED_OUT)


def ranked_members(branch: Organization):
    return Member.objects.filter(organization=branch).exclude(status__in=Member.UNRANKED_STATUSES)


def pending_declarations(cycle: ReviewCycle):
    first, last = period_bounds(cycle.year, cycle.quarter)
    return Declaration.objects.filter(
        member__organization=cycle.organization,
        status=Declaration.Status.PENDING,
        occurred_on__range=(first, last),
    )


@transaction.atomic
def cycle_open(*, user: User, branch: Organization, year: int, quarter: int) -> ReviewCycle:
    """Start (or find) the review of a quarter (1–4) or the year (0) for a branch."""
    _require(user, Action.ADVANCE_CYCLE, branch)
    if not branch.is_branch:
        raise ValidationError(_("评议只能在党支部开展。"))
    if quarter not in (0, 1, 2, 3, 4):
        raise ValidationError(_("季度应为 1–4，年度评议为 0。"))
    if effective_scheme(branch, year) is None:
        raise ValidationError(
            _("%(branch)s %(year)s 年度尚未采用积分细则，不能开展评议。")
            % {"branch": branch.name, "year": year}
        )
    cycle, created = ReviewCycle.objects.get_or_create(
        organization=branch, year=year, quarter=quarter
    )
    if created:
        CycleEvent.objects.create(
            cycle=cycle,
            action=CycleEvent.Action.ADVANCE,
            to_state=State.OPEN,
            user=user,
            note=_("开始%(period)s评议") % {"period": cycle.period_label},
        )
    return cycle


def _locked(cycle: ReviewCycle, expected_state: str | None) -> ReviewCycle:
    """The cycle row locked for this transaction, in the state the caller saw."""
    fresh = ReviewCycle.objects.select_for_update().select_related("organization").get(pk=cycle.pk)
    if expected_state is not None and fresh.state != expected_state:
        raise ValidationError(
            _("该评议已由他人推进到“%(state)s”，您的操作没有执行，请刷新页面查看。")
            % {"state": fresh.get_state_display()},
            code="stale_state",
        )
    return fresh


def _move(
    cycle: ReviewCycle,
    method: str,
    *,
    user: User | None,
    note: str,
    action=CycleEvent.Action.ADVANCE,
) -> ReviewCycle:
    before = cycle.state
    try:
        getattr(cycle, method)()
        cycle.save()
    except (TransitionNotAllowed, ConcurrentTransition) as error:
        raise ValidationError(
            _("该评议的状态已变化，您的操作没有执行，请刷新页面查看。"), code="stale_state"
        ) from error
    CycleEvent.objects.create(
        cycle=cycle, action=action, from_state=before, to_state=cycle.state, user=user, note=note
    )
    return cycle


def cycle_blockers(cycle: ReviewCycle, today: date) -> list[str]:
    """Why the cycle cannot leave its current state yet (empty: it can). Reads only."""
    problems: list[str] = []
    if cycle.state == State.OPEN:
        if cycle.self_assessment_deadline is None:
            problems.append(_("请先设定党员自评截止日期。"))
    elif cycle.state == State.COMMITTEE_REVIEW:
        pending = pending_declarations(cycle).count()
        if pending:
            problems.append(
                _("还有 %(count)s 条积分申报未审核，请在支委初评中逐条处理。") % {"count": pending}
            )
        if not hasattr(cycle, "committee_meeting"):
            problems.append(_("请先记录支委会（日期、出席支委）。"))
        ranked = set(ranked_members(cycle.organization).values_list("id", flat=True))
        agreements = cycle.agreements.all()
        if cycle.reopened_at:  # agreed before the reopening: to be agreed again
            agreements = agreements.filter(agreed_at__gte=cycle.reopened_at)
        agreed = set(agreements.values_list("member_id", flat=True))
        missing = len(ranked - agreed)
        if missing:
            problems.append(
                _("还有 %(count)s 名党员的初评积分未经支委会确认。") % {"count": missing}
            )
        scheme = effective_scheme(cycle.organization, cycle.year)
        if cycle.is_annual and scheme is not None and scheme.weights_appraisals:
            appraised = set(cycle.appraisals.values_list("member_id", flat=True))
            if ranked - appraised:
                problems.append(
                    _("本年度细则按民主评议和群众评议加权，还有 %(count)s 名党员未录入评议等次。")
                    % {"count": len(ranked - appraised)}
                )
    elif cycle.state == State.GENERAL_MEETING:
        meeting = getattr(cycle, "general_meeting", None)
        if meeting is not None and cycle.reopened_at and meeting.recorded_at < cycle.reopened_at:
            problems.append(_("本期评议重新打开后，须重新召开党员大会并记录表决结果。"))
        elif meeting is None:
            problems.append(_("请先记录党员大会（日期、应到和实到人数、表决结果）。"))
        else:
            if not meeting.has_quorum:
                problems.append(
                    _(
                        "党员大会实到 %(attendance)s 人，未超过有表决权党员 %(voting)s 人的半数，会议无效。"
                    )
                    % {"attendance": meeting.attendance, "voting": meeting.voting_members}
                )
            if not meeting.passed:
                problems.append(
                    _("党员大会表决未通过（赞成 %(for)s 票，未超过实到人数的半数）。")
                    % {"for": meeting.votes_for}
                )
    elif cycle.state == State.PUBLICITY:
        from publicity.models import Objection

        if cycle.publicity_ends_on is None or today <= cycle.publicity_ends_on:
            problems.append(
                _("公示期到 %(end)s 结束，结束后才能确认归档。")
                % {"end": cycle.publicity_ends_on.isoformat() if cycle.publicity_ends_on else "—"}
            )
        # An objection answered on recheck stays open for the member's appeal for a few days.
        appeal_deadline = timezone.now() - timedelta(days=APPEAL_DAYS)
        open_objections = Objection.objects.filter(
            Q(state__in=Objection.OPEN_STATES)
            | Q(state=Objection.State.ANSWERED, rechecked_at__gt=appeal_deadline),
            cycle=cycle,
        ).count()
        if open_objections:
            problems.append(
                _("还有 %(count)s 件异议尚未办结，办结后才能确认归档。")
                % {"count": open_objections}
            )
    elif cycle.state == State.FINALIZED:
        problems.append(_("该评议已确认归档。如需更正，须由党委工作人员重新打开。"))
    return problems


@transaction.atomic
def cycle_advance(
    *,
    user: User | None,
    cycle: ReviewCycle,
    expected_state: str | None,
    note: str = "",
    publicity_starts_on: date | None = None,
    today: date | None = None,
) -> ReviewCycle:
    """Move the cycle one step forward, if the user may and everything it needs is there.

    ``user`` None is the scheduled job (closing a publicity window that has ended)."""
    today = today or timezone.localdate()
    if user is not None:
        _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, expected_state)
    problems = cycle_blockers(cycle, today)
    if problems:
        raise ValidationError([ValidationError(problem, code="not_ready") for problem in problems])
    note = (note or "").strip()[:500]
    if cycle.state == State.OPEN:
        return _move(cycle, "start_self_assessment", user=user, note=note)
    if cycle.state == State.SELF_ASSESSMENT:
        return _move(cycle, "start_committee_review", user=user, note=note)
    if cycle.state == State.COMMITTEE_REVIEW:
        return _move(cycle, "start_general_meeting", user=user, note=note)
    if cycle.state == State.GENERAL_MEETING:
        starts = publicity_starts_on or today
        if starts < today:
            raise ValidationError(_("公示开始日期不能早于今天。"), code="not_ready")
        cycle.publicity_starts_on = starts
        cycle.publicity_ends_on = starts + timedelta(days=cycle.publicity_days - 1)
        moved = _move(
            cycle,
            "start_publicity",
            user=user,
            note=note
            or _("公示 %(start)s 至 %(end)s")
            % {"start": starts.isoformat(), "end": cycle.publicity_ends_on.isoformat()},
        )
        from .notifications import notify_publicity_open

        transaction.on_commit(lambda: notify_publicity_open(moved.pk), robust=True)
        return moved
    # PUBLICITY → FINALIZED: lock the period and report to the committee.
    # Saved with the transition itself, so the audit history has one row for the move.
    now = timezone.now()
    cycle.finalized_at = now
    cycle.reported_at = now
    moved = _move(cycle, "finalize", user=user, note=note)
    PeriodLock.objects.get_or_create(
        organization=moved.organization,
        year=moved.year,
        quarter=moved.quarter,
        defaults={
            "locked_by": user,
            "reason": _("%(period)s评议确认归档") % {"period": moved.period_label},
        },
    )
    CycleEvent.objects.create(
        cycle=moved,
        action=CycleEvent.Action.REPORT,
        user=user,
        note=_("已报备%(committee)s") % {"committee": _committee_name(moved.organization)},
    )
    return moved


def _committee_name(branch: Organization) -> str:
    root = Organization.objects.filter(path=branch.path[: Organization.steplen]).first()
    return root.name if root else ""


@transaction.atomic
def cycle_reopen(*, user: User, cycle: ReviewCycle, reason: str) -> ReviewCycle:
    """Committee staff reopen a finalized period, with a reason kept in the timeline; the
    period unlocks and the review returns to the committee."""
    _require(user, Action.REOPEN_CYCLE, cycle.organization)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("重新打开已归档的期间须填写原因。"), code="reason_required")
    cycle = _locked(cycle, None)
    if cycle.state != State.FINALIZED:
        raise ValidationError(
            _("只有已确认归档的评议才能重新打开，该评议目前处于“%(state)s”。")
            % {"state": cycle.get_state_display()},
            code="not_finalized",
        )
    PeriodLock.objects.filter(
        organization=cycle.organization, year=cycle.year, quarter=cycle.quarter
    ).delete()
    cycle.finalized_at = None
    cycle.reopened_at = timezone.now()
    return _move(cycle, "reopen", user=user, note=reason[:500], action=CycleEvent.Action.REOPEN)


@transaction.atomic
def cycle_set_deadline(*, user: User, cycle: ReviewCycle, deadline: date) -> ReviewCycle:
    _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, None)
    if cycle.state not in (State.OPEN, State.SELF_ASSESSMENT):
        raise ValidationError(_("自评阶段结束后不能再修改截止日期。"))
    if deadline < timezone.localdate():
        raise ValidationError(_("截止日期不能早于今天。"))
    cycle.self_assessment_deadline = deadline
    cycle.save(update_fields=["self_assessment_deadline"])  # a save: the audit history sees it
    CycleEvent.objects.create(
        cycle=cycle,
        action=CycleEvent.Action.DEADLINE,
        user=user,
        note=_("自评截止日期：%(date)s") % {"date": deadline.isoformat()},
    )
    return cycle


@transaction.atomic
def self_assessment_submit(*, user: User, cycle: ReviewCycle, text: str) -> SelfAssessment:
    """A member writes (or rewrites) their self-assessment, up to the deadline."""
    member = Member.objects.filter(user=user, organization=cycle.organization).first()
    if member is None or not can(user, Action.SELF_ASSESS, cycle.organization):
        raise PermissionDenied(_("只有本支部党员可以提交本人的自评。"))
    cycle = _locked(cycle, None)
    if cycle.state not in (State.OPEN, State.SELF_ASSESSMENT):
        raise ValidationError(_("自评阶段已结束，不能再提交或修改自评。"), code="closed")
    if cycle.self_assessment_deadline and timezone.localdate() > cycle.self_assessment_deadline:
        raise ValidationError(
            _("自评已于 %(date)s 截止。") % {"date": cycle.self_assessment_deadline.isoformat()},
            code="closed",
        )
    text = (text or "").strip()
    if not text:
        raise ValidationError(_("请填写自评内容。"), code="text_required")
    if len(text) > 2000:
        raise ValidationError(_("自评内容不能超过 2000 字。"))
    assessment, _created = SelfAssessment.objects.update_or_create(
        cycle=cycle, member=member, defaults={"text": text}
    )
    return assessment


def _require_state(cycle: ReviewCycle, state: str, message: str) -> None:
    if cycle.state != state:
        raise ValidationError(message, code="wrong_state")


@transaction.atomic
def committee_meeting_record(
    *, user: User, cycle: ReviewCycle, meeting_date: date, attendees: list[Member], notes: str = ""
) -> CommitteeMeeting:
    _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, None)
    _require_state(cycle, State.COMMITTEE_REVIEW, _("只有在支委初评阶段才能记录支委会。"))
    if meeting_date > timezone.localdate():
        raise ValidationError(_("会议日期不能晚于今天。"))
    if not attendees:
        raise ValidationError(_("请选择出席会议的支委。"))
    if any(member.organization_id != cycle.organization_id for member in attendees):
        raise ValidationError(_("出席人员须是本支部党员。"))
    meeting, _created = CommitteeMeeting.objects.update_or_create(
        cycle=cycle,
        defaults={
            "meeting_date": meeting_date,
            "notes": (notes or "").strip()[:2000],
            "recorded_by": user,
        },
    )
    meeting.attendees.set(attendees)
    CycleEvent.objects.create(
        cycle=cycle,
        action=CycleEvent.Action.COMMITTEE_MEETING,
        user=user,
        note=_("支委会 %(date)s，出席 %(count)s 人")
        % {"date": meeting_date.isoformat(), "count": len(attendees)},
    )
    return meeting


def _period_total(member: Member, cycle: ReviewCycle) -> Decimal:
    score = PeriodScore.objects.filter(
        member=member, year=cycle.year, quarter=cycle.quarter
    ).first()
    if score is None:
        raise ValidationError(
            _("%(name)s本期积分尚未计算，请先在季度积分表中重新计算。") % {"name": member.name}
        )
    return score.total


@transaction.atomic
def scores_agree(
    *, user: User, cycle: ReviewCycle, members: list[Member], notes: dict[int, str] | None = None
) -> list[ScoreAgreement]:
    """The committee agrees the proposed scores of these members (as computed now)."""
    _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, None)
    _require_state(cycle, State.COMMITTEE_REVIEW, _("只有在支委初评阶段才能确认初评积分。"))
    if not members:
        raise ValidationError(_("请勾选要确认初评积分的党员。"), code="nobody")
    notes = notes or {}
    agreements = []
    for member in members:
        if member.organization_id != cycle.organization_id:
            raise PermissionDenied(_("只能确认本支部党员的初评积分。"))
        agreement, _created = ScoreAgreement.objects.update_or_create(
            cycle=cycle,
            member=member,
            defaults={
                "proposed_total": _period_total(member, cycle),
                "note": (notes.get(member.pk) or "").strip()[:500],
                "agreed_by": user,
            },
        )
        agreements.append(agreement)
    return agreements


@transaction.atomic
def appraisal_record(
    *, user: User, cycle: ReviewCycle, member: Member, democratic: str, mass: str
) -> Appraisal:
    """Annual review: a member's democratic and mass appraisal ratings."""
    _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, None)
    if not cycle.is_annual:
        raise ValidationError(_("评议等次只在年度评议中录入。"))
    _require_state(cycle, State.COMMITTEE_REVIEW, _("只有在支委初评阶段才能录入评议等次。"))
    if member.organization_id != cycle.organization_id:
        raise PermissionDenied(_("只能为本支部党员录入评议等次。"))
    valid = set(Appraisal.Rating.values)
    if democratic not in valid or mass not in valid:
        raise ValidationError(_("评议等次应为优秀、合格、基本合格或不合格。"))
    appraisal, _created = Appraisal.objects.update_or_create(
        cycle=cycle,
        member=member,
        defaults={"democratic": democratic, "mass": mass, "recorded_by": user},
    )
    from scoring.tasks import recompute_members_task

    transaction.on_commit(
        lambda: recompute_members_task.delay([member.pk], cycle.year), robust=True
    )
    return appraisal


@transaction.atomic
def general_meeting_record(
    *,
    user: User,
    cycle: ReviewCycle,
    meeting_date: date,
    voting_members: int,
    attendance: int,
    votes_for: int,
    votes_against: int,
    votes_abstain: int,
) -> GeneralMeeting:
    """Record the general meeting; quorum and the vote are checked when the cycle moves on."""
    _require(user, Action.ADVANCE_CYCLE, cycle.organization)
    cycle = _locked(cycle, None)
    _require_state(cycle, State.GENERAL_MEETING, _("只有在党员大会评定阶段才能记录党员大会。"))
    counts = [voting_members, attendance, votes_for, votes_against, votes_abstain]
    if any(value is None or value < 0 for value in counts):
        raise ValidationError(_("人数须为非负整数。"))
    if meeting_date > timezone.localdate():
        raise ValidationError(_("会议日期不能晚于今天。"))
    if voting_members == 0:
        raise ValidationError(_("有表决权党员人数不能为 0。"))
    # Full members have the vote; probationary members, activists and targets do not.
    with_vote = Member.objects.filter(
        organization=cycle.organization, category=Member.Category.FULL
    ).exclude(status=Member.Status.TRANSFERRED_OUT)
    if voting_members > with_vote.count():
        raise ValidationError(
            _("有表决权党员人数（%(given)s）多于本支部正式党员人数（%(count)s）。")
            % {"given": voting_members, "count": with_vote.count()}
        )
    active_with_vote = with_vote.filter(status=Member.Status.ACTIVE).count()
    if voting_members < active_with_vote:
        raise ValidationError(
            _("有表决权党员人数（%(given)s）少于本支部在册正式党员人数（%(count)s）。")
            % {"given": voting_members, "count": active_with_vote}
        )
    if attendance > voting_members:
        raise ValidationError(_("实到人数不能多于有表决权党员人数。"))
    if votes_for + votes_against + votes_abstain > attendance:
        raise ValidationError(_("赞成、反对、弃权票数之和不能多于实到人数。"))
    meeting, _created = GeneralMeeting.objects.update_or_create(
        cycle=cycle,
        defaults={
            "meeting_date": meeting_date,
            "voting_members": voting_members,
            "attendance": attendance,
            "votes_for": votes_for,
            "votes_against": votes_against,
            "votes_abstain": votes_abstain,
            "recorded_by": user,
        },
    )
    CycleEvent.objects.create(
        cycle=cycle,
        action=CycleEvent.Action.GENERAL_MEETING,
        user=user,
        note=_(
            "党员大会 %(date)s：应到 %(voting)s 人，实到 %(attendance)s 人；赞成 %(for)s，反对 %(against)s，弃权 %(abstain)s"
        )
        % {
            "date": meeting_date.isoformat(),
            "voting": voting_members,
            "attendance": attendance,
            "for": votes_for,
            "against": votes_against,
            "abstain": votes_abstain,
        },
    )
    return meeting


@transaction.atomic
def acknowledge(*, user: User, cycle: ReviewCycle) -> Acknowledgement:
    """签字确认: a member acknowledges their result of a finalized period (once)."""
    member = Member.objects.filter(user=user, organization=cycle.organization).first()
    if member is None or not can(user, Action.ACKNOWLEDGE, cycle.organization):
        raise PermissionDenied(_("只有本支部党员可以确认本人的结果。"))
    cycle = _locked(cycle, None)
    _require_state(cycle, State.FINALIZED, _("评议确认归档后才能签字确认。"))
    acknowledgement, created = Acknowledgement.objects.get_or_create(
        cycle=cycle, member=member, defaults={"user": user}
    )
    if not created and cycle.reopened_at and acknowledgement.acknowledged_at < cycle.reopened_at:
        # The result changed after the reopening: this is a new acknowledgement.
        CycleEvent.objects.create(
            cycle=cycle,
            action=CycleEvent.Action.REPORT,
            user=user,
            note=_("%(name)s重新签字确认（原确认时间 %(time)s）")
            % {
                "name": member.name,
                "time": timezone.localtime(acknowledgement.acknowledged_at).strftime(
                    "%Y-%m-%d %H:%M"
                ),
            },
        )
        now = timezone.now()
        Acknowledgement.objects.filter(pk=acknowledgement.pk).update(acknowledged_at=now, user=user)
        acknowledgement.acknowledged_at = now
    return acknowledgement


@transaction.atomic
def appraisals_record(
    *, user: User, cycle: ReviewCycle, ratings: list[tuple[Member, str, str]]
) -> list[Appraisal]:
    """Several members' appraisal ratings at once: all of them, or none with every reason."""
    if not ratings:
        raise ValidationError(_("请为党员选择评议等次。"), code="nobody")
    problems: list[str] = []
    recorded: list[Appraisal] = []
    for member, democratic, mass in ratings:
        try:
            with transaction.atomic():
                recorded.append(
                    appraisal_record(
                        user=user, cycle=cycle, member=member, democratic=democratic, mass=mass
                    )
                )
        except ValidationError as error:
            problems.extend(
                _("%(name)s：%(reason)s") % {"name": member.name, "reason": message}
                for message in error.messages
            )
    if problems:
        raise ValidationError(problems, code="appraisals_invalid")
    return recorded
