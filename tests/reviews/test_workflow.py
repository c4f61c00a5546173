"""The whole quarterly review of one branch, start to finish, through the services only:
open → self-assessment → committee review → general meeting → publicity (with an objection
taken through recheck, appeal, examination and an upheld ruling that corrects the ledger) →
finalized (locked, reported, acknowledged) → reopened by the committee's staff."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from publicity.models import Objection
from reviews import services as reviews
from reviews.models import (
    Acknowledgement,
    CommitteeMeeting,
    CycleEvent,
    GeneralMeeting,
    Notification,
    ReviewCycle,
    ScoreAgreement,
    SelfAssessment,
)
from scoring import services as scoring
from scoring.models import Declaration, Entry, PeriodLock, PeriodScore
from scoring.recompute import stored_totals_mismatches
from scoring.tasks import recompute_organization_task

from .conftest import (
    WITH_LOGIN,
    World,
    end_window,
    fresh,
    period_start,
    record,
    snapshot,
    timeline,
    today,
)

pytestmark = pytest.mark.django_db

State = ReviewCycle.State
Action = CycleEvent.Action


def quarter_score(world: World, key: str) -> tuple[Decimal, int | None]:
    """(total, rank in branch) of a member's quarter under review."""
    score = PeriodScore.objects.get(
        member=world.branch.member(key), year=world.year, quarter=world.quarter
    )
    return score.total, score.rank_in_branch


def told_about(objection: Objection) -> list[str]:
    """Who was notified of the objection's current state."""
    return sorted(
        Notification.objects.filter(key=f"objection-{objection.pk}-{objection.state}").values_list(
            "user__username", flat=True
        )
    )


def branch_table(world: World) -> dict[str, tuple[Decimal, int | None]]:
    return {key: quarter_score(world, key) for key in world.branch.members}


def test_a_full_quarter_from_opening_to_reopening(world: World, committed) -> None:
    from publicity.services import (
        Correction,
        objection_appeal,
        objection_examine,
        objection_raise,
        objection_recheck,
        objection_rule,
    )

    branch = world.branch
    rules = world.rules
    secretary, recorder = branch.secretary, branch.recorder
    day, start = today(), period_start()
    label = f"{world.year}年第{world.quarter}季度"

    # --- the quarter's ledger, recorded as it happened -------------------------------------
    with committed():
        record(world, branch, "secretary", rules.lecture)  # +50 → 150
        record(world, branch, "recorder", rules.suggestion)  # +10 → 110
        record(world, branch, "committee_member", rules.speech)  # +5 → 105
        disputed = record(world, branch, "zhang", rules.task, "-10")  # −10 → 90

    # --- 1. open: recorders record, members declare ----------------------------------------
    cycle = reviews.cycle_open(
        user=secretary, branch=branch.organization, year=world.year, quarter=world.quarter
    )
    assert (cycle.state, cycle.organization_id) == (State.OPEN, branch.organization.pk)
    assert timeline(cycle) == [
        (Action.ADVANCE, "", State.OPEN, secretary.username, f"开始{label}评议")
    ]
    # opening again finds the same cycle and writes nothing
    assert (
        reviews.cycle_open(
            user=secretary, branch=branch.organization, year=world.year, quarter=world.quarter
        )
        == cycle
    )
    assert CycleEvent.objects.filter(cycle=cycle).count() == 1

    declared_suggestion = scoring.declaration_submit(
        user=branch.user("zhang"),
        member=branch.member("zhang"),
        rule=rules.suggestion,
        occurred_on=start,
        description="提出改进组织生活的建议",
    )
    declared_volunteer = scoring.declaration_submit(
        user=branch.user("li"),
        member=branch.member("li"),
        rule=rules.volunteer,
        occurred_on=start,
        description="社区志愿服务 8 小时",
        points=Decimal("8"),
    )
    declared_speech = scoring.declaration_submit(
        user=branch.committee_member,
        member=branch.member("committee_member"),
        rule=rules.speech,
        occurred_on=start,
        description="研讨会上发言",
    )

    # --- 2. self-assessment, by a deadline -------------------------------------------------
    deadline = day + timedelta(days=3)
    reviews.cycle_set_deadline(user=secretary, cycle=cycle, deadline=deadline)
    cycle = reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=State.OPEN)
    assert fresh(cycle).state == State.SELF_ASSESSMENT
    assert fresh(cycle).self_assessment_deadline == deadline

    for key in ("zhang", "li", "sun", "secretary"):
        reviews.self_assessment_submit(
            user=branch.user(key), cycle=cycle, text=f"{branch.member(key).name}本季度自评"
        )
    # rewriting before the deadline replaces the text, it adds no second assessment
    reviews.self_assessment_submit(user=branch.user("zhang"), cycle=cycle, text="张三修改后的自评")
    assert SelfAssessment.objects.filter(cycle=cycle).count() == 4
    assert SelfAssessment.objects.get(cycle=cycle, member=branch.member("zhang")).text == (
        "张三修改后的自评"
    )

    cycle = reviews.cycle_advance(
        user=secretary,
        cycle=cycle,
        expected_state=State.SELF_ASSESSMENT,
        note="自评结束，进入支委初评",
    )
    assert fresh(cycle).state == State.COMMITTEE_REVIEW

    # --- 3. committee review: pending declarations block the advance ----------------------
    before = snapshot(cycle)
    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW)
    assert refused.value.messages == [
        "还有 3 条积分申报未审核，请在支委初评中逐条处理。",
        "请先记录支委会（日期、出席支委）。",
        "还有 8 名党员的初评积分未经支委会确认。",
    ]
    assert snapshot(cycle) == before

    with committed():
        approved = scoring.declaration_approve(
            user=branch.committee_member, declaration=declared_suggestion
        )
        adjusted = scoring.declaration_approve(
            user=branch.commissioner,
            declaration=declared_volunteer,
            points=Decimal("5"),
            reason="佐证材料只能证明 5 小时",
        )
    # nobody decides on their own declaration, not even a committee member
    with pytest.raises(PermissionDenied) as own:
        scoring.declaration_reject(
            user=branch.committee_member, declaration=declared_speech, reason="重复"
        )
    assert own.value.args == ("不能审核本人的申报。",)
    assert Declaration.objects.get(pk=declared_speech.pk).status == Declaration.Status.PENDING
    scoring.declaration_reject(
        user=secretary, declaration=declared_speech, reason="该发言已由记录员登记，不能重复申报"
    )

    decisions = {
        declaration.member.name: (
            declaration.status,
            declaration.decided_by.username,
            declaration.decision_reason,
        )
        for declaration in Declaration.objects.select_related("member", "decided_by")
    }
    assert decisions == {
        "张三": (Declaration.Status.APPROVED, branch.committee_member.username, ""),
        "李四": (
            Declaration.Status.APPROVED,
            branch.commissioner.username,
            "佐证材料只能证明 5 小时",
        ),
        "钱支委": (
            Declaration.Status.REJECTED,
            secretary.username,
            "该发言已由记录员登记，不能重复申报",
        ),
    }
    assert (approved.points, approved.approved_by, approved.recorded_by) == (
        Decimal("10.00"),
        branch.committee_member,
        branch.user("zhang"),
    )
    assert (adjusted.points, adjusted.approved_by, adjusted.reason) == (
        Decimal("5.00"),
        branch.commissioner,
        "审核调整：申报 +8 分，核定 +5 分。佐证材料只能证明 5 小时",
    )
    assert Entry.objects.filter(declaration=declared_speech).count() == 0
    assert reviews.pending_declarations(cycle).count() == 0

    meeting = reviews.committee_meeting_record(
        user=secretary,
        cycle=cycle,
        meeting_date=day,
        attendees=[branch.member(key) for key in ("secretary", "commissioner", "committee_member")],
        notes="逐条审核申报，确认初评积分",
    )
    assert CommitteeMeeting.objects.get(cycle=cycle) == meeting
    assert sorted(meeting.attendees.values_list("name", flat=True)) == sorted(
        ["李书记", "赵纪检", "钱支委"]
    )

    # the quarter table's "recompute", then the committee agrees every member's score
    recompute_organization_task.delay(branch.organization.pk, world.year)
    agreements = reviews.scores_agree(
        user=secretary,
        cycle=cycle,
        members=list(branch.members.values()),
        notes={branch.member("zhang").pk: "扣分事项待公示核实"},
    )
    assert len(agreements) == 8
    assert {
        agreement.member.name: agreement.proposed_total
        for agreement in ScoreAgreement.objects.filter(cycle=cycle).select_related("member")
    } == {
        "李书记": Decimal("150.00"),
        "王记录": Decimal("110.00"),
        "赵纪检": Decimal("100.00"),
        "钱支委": Decimal("105.00"),
        "张三": Decimal("100.00"),
        "李四": Decimal("105.00"),
        "孙七": Decimal("100.00"),
        "王五": Decimal("100.00"),
    }
    assert ScoreAgreement.objects.get(cycle=cycle, member=branch.member("zhang")).note == (
        "扣分事项待公示核实"
    )

    cycle = reviews.cycle_advance(
        user=secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW
    )
    assert fresh(cycle).state == State.GENERAL_MEETING

    # --- 4. general meeting: without a quorum it does not count ---------------------------
    reviews.general_meeting_record(
        user=secretary,
        cycle=cycle,
        meeting_date=day,
        voting_members=8,
        attendance=4,
        votes_for=4,
        votes_against=0,
        votes_abstain=0,
    )
    before = snapshot(cycle)
    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=State.GENERAL_MEETING)
    assert refused.value.messages == [
        "党员大会实到 4 人，未超过有表决权党员 8 人的半数，会议无效。"
    ]
    assert snapshot(cycle) == before

    reviews.general_meeting_record(
        user=secretary,
        cycle=cycle,
        meeting_date=day,
        voting_members=8,
        attendance=7,
        votes_for=6,
        votes_against=1,
        votes_abstain=0,
    )
    assert GeneralMeeting.objects.filter(cycle=cycle).count() == 1
    general = GeneralMeeting.objects.get(cycle=cycle)
    assert (general.attendance, general.votes_for, general.has_quorum, general.passed) == (
        7,
        6,
        True,
        True,
    )

    # --- 5. publicity: five days from today, every member with a login is told ------------
    with committed():
        cycle = reviews.cycle_advance(
            user=secretary, cycle=cycle, expected_state=State.GENERAL_MEETING
        )
    cycle = fresh(cycle)
    window_end = day + timedelta(days=4)
    assert (cycle.state, cycle.publicity_starts_on, cycle.publicity_ends_on) == (
        State.PUBLICITY,
        day,
        window_end,
    )
    told = Notification.objects.filter(key=f"publicity-open-{cycle.pk}-{day.isoformat()}")
    assert sorted(told.values_list("user__username", flat=True)) == sorted(
        branch.user(key).username for key in WITH_LOGIN
    )
    assert told.count() == 7
    assert {notice.text for notice in told} == {
        f"第一党支部{label}积分公示中（{day.isoformat()} 至 {window_end.isoformat()}），"
        "如有异议请在公示期内提出。"
    }
    assert Notification.objects.count() == 7

    assert branch_table(world) == {
        "secretary": (Decimal("150.00"), 1),
        "recorder": (Decimal("110.00"), 2),
        "committee_member": (Decimal("105.00"), 3),
        "li": (Decimal("105.00"), 3),
        "zhang": (Decimal("100.00"), 5),
        "commissioner": (Decimal("100.00"), 5),
        "sun": (Decimal("100.00"), 5),
        "wang": (Decimal("100.00"), 5),
    }

    # --- 6. objection → recheck → appeal → examination → ruling ---------------------------
    zhang = branch.user("zhang")
    with committed():
        objection = objection_raise(
            user=zhang, cycle=cycle, text="我按时完成了支部分配的任务，不应扣 10 分", entry=disputed
        )
    assert (objection.state, objection.member, objection.entry, objection.raised_by) == (
        Objection.State.RAISED,
        branch.member("zhang"),
        disputed,
        zhang,
    )
    assert told_about(objection) == [recorder.username, secretary.username]

    with committed():
        objection = objection_recheck(
            user=recorder, objection=objection, answer="经复核，任务确未按期完成", uphold=False
        )
    assert (objection.state, objection.recheck_answer, objection.rechecked_by) == (
        Objection.State.ANSWERED,
        "经复核，任务确未按期完成",
        recorder,
    )
    assert objection.rechecked_at is not None
    assert objection.reversal_entry is None
    assert told_about(objection) == [zhang.username]

    with committed():
        objection = objection_appeal(
            user=zhang, objection=objection, text="任务因故延期，已报支部同意"
        )
    assert (objection.state, objection.appeal_text) == (
        Objection.State.APPEALED,
        "任务因故延期，已报支部同意",
    )
    assert objection.appealed_at is not None
    assert told_about(objection) == [branch.commissioner.username]

    with committed():
        objection = objection_examine(
            user=branch.commissioner, objection=objection, opinion="延期属实，建议按最低档扣分"
        )
    assert (objection.state, objection.commissioner_opinion, objection.commissioner_by) == (
        Objection.State.FORWARDED,
        "延期属实，建议按最低档扣分",
        branch.commissioner,
    )
    assert objection.commissioner_at is not None
    assert told_about(objection) == [secretary.username]
    # the whole time the ledger and the totals stood as published
    assert branch_table(world)["zhang"] == (Decimal("100.00"), 5)

    ledger_before = Entry.objects.count()
    with committed():
        objection = objection_rule(
            user=secretary,
            objection=objection,
            uphold=True,
            reason="支委会认定：延期经同意，按最低档扣 2 分",
            correction=Correction(
                rule=rules.task, points=Decimal("-2"), description="未按期完成支部任务（认定更正）"
            ),
        )
    objection = Objection.objects.get(pk=objection.pk)
    assert (objection.state, objection.ruling_reason, objection.ruled_by) == (
        Objection.State.UPHELD,
        "支委会认定：延期经同意，按最低档扣 2 分",
        secretary,
    )
    assert objection.ruled_at is not None
    assert Entry.objects.count() == ledger_before + 2
    reversal, correction = objection.reversal_entry, objection.correction_entry
    assert (
        reversal.reverses,
        reversal.points,
        reversal.occurred_on,
        reversal.member,
        reversal.recorded_by,
        reversal.reason,
    ) == (
        disputed,
        Decimal("10.00"),
        disputed.occurred_on,
        branch.member("zhang"),
        secretary,
        "异议成立：支委会认定：延期经同意，按最低档扣 2 分",
    )
    assert (
        correction.rule,
        correction.points,
        correction.member,
        correction.description,
        correction.occurred_on,
        correction.recorded_by,
    ) == (
        rules.task,
        Decimal("-2.00"),
        branch.member("zhang"),
        "未按期完成支部任务（认定更正）",
        disputed.occurred_on,
        secretary,
    )
    assert told_about(objection) == [zhang.username]

    # totals and ranks follow: 张三 100 → 108, from fifth to third
    assert branch_table(world) == {
        "secretary": (Decimal("150.00"), 1),
        "recorder": (Decimal("110.00"), 2),
        "zhang": (Decimal("108.00"), 3),
        "committee_member": (Decimal("105.00"), 4),
        "li": (Decimal("105.00"), 4),
        "commissioner": (Decimal("100.00"), 6),
        "sun": (Decimal("100.00"), 6),
        "wang": (Decimal("100.00"), 6),
    }
    assert stored_totals_mismatches(world.year) == []

    # --- 7. the window ends: finalize, lock, report ---------------------------------------
    end_window(cycle)
    cycle = reviews.cycle_advance(
        user=secretary, cycle=fresh(cycle), expected_state=State.PUBLICITY
    )
    cycle = fresh(cycle)
    assert cycle.state == State.FINALIZED
    assert cycle.finalized_at is not None
    assert cycle.reported_at == cycle.finalized_at
    lock = PeriodLock.objects.get()
    assert (lock.organization, lock.year, lock.quarter, lock.locked_by, lock.reason) == (
        branch.organization,
        world.year,
        world.quarter,
        secretary,
        f"{label}评议确认归档",
    )

    for key in ("zhang", "li"):
        acknowledgement = reviews.acknowledge(user=branch.user(key), cycle=cycle)
        assert acknowledgement.member == branch.member(key)
        assert acknowledgement.acknowledged_at is not None
    # acknowledging twice keeps the first time
    again = reviews.acknowledge(user=branch.user("zhang"), cycle=cycle)
    assert (
        again.acknowledged_at
        == Acknowledgement.objects.get(cycle=cycle, member=branch.member("zhang")).acknowledged_at
    )
    assert Acknowledgement.objects.filter(cycle=cycle).count() == 2

    ledger_before = Entry.objects.count()
    with pytest.raises(ValidationError) as locked:
        scoring.entry_record(
            user=recorder,
            member=branch.member("sun"),
            rule=rules.suggestion,
            occurred_on=period_start(),
            description="补记的建议",
        )
    assert locked.value.code == "period_locked"
    assert locked.value.messages == [
        f"{world.year}年第{world.quarter}季度已确认归档并锁定，不能再记入该期间。"
        "如需更正，请记入当前开放的期间，并在说明中注明所更正的记录。"
    ]
    assert Entry.objects.count() == ledger_before

    # --- 8. the committee's staff reopen it, with a reason ---------------------------------
    reason = "孙七本季度建议漏记，需更正后重新公示"
    cycle = reviews.cycle_reopen(user=world.staff, cycle=cycle, reason=reason)
    cycle = fresh(cycle)
    assert (cycle.state, cycle.finalized_at) == (State.COMMITTEE_REVIEW, None)
    assert PeriodLock.objects.count() == 0

    end = window_end.isoformat()
    assert timeline(cycle) == [
        (Action.ADVANCE, "", State.OPEN, secretary.username, f"开始{label}评议"),
        (Action.DEADLINE, "", "", secretary.username, f"自评截止日期：{deadline.isoformat()}"),
        (Action.ADVANCE, State.OPEN, State.SELF_ASSESSMENT, secretary.username, ""),
        (
            Action.ADVANCE,
            State.SELF_ASSESSMENT,
            State.COMMITTEE_REVIEW,
            secretary.username,
            "自评结束，进入支委初评",
        ),
        (
            Action.COMMITTEE_MEETING,
            "",
            "",
            secretary.username,
            f"支委会 {day.isoformat()}，出席 3 人",
        ),
        (Action.ADVANCE, State.COMMITTEE_REVIEW, State.GENERAL_MEETING, secretary.username, ""),
        (
            Action.GENERAL_MEETING,
            "",
            "",
            secretary.username,
            f"党员大会 {day.isoformat()}：应到 8 人，实到 4 人；赞成 4，反对 0，弃权 0",
        ),
        (
            Action.GENERAL_MEETING,
            "",
            "",
            secretary.username,
            f"党员大会 {day.isoformat()}：应到 8 人，实到 7 人；赞成 6，反对 1，弃权 0",
        ),
        (
            Action.ADVANCE,
            State.GENERAL_MEETING,
            State.PUBLICITY,
            secretary.username,
            f"公示 {day.isoformat()} 至 {end}",
        ),
        (Action.ADVANCE, State.PUBLICITY, State.FINALIZED, secretary.username, ""),
        (Action.REPORT, "", "", secretary.username, "已报备测试党委"),
        (Action.REOPEN, State.FINALIZED, State.COMMITTEE_REVIEW, world.staff.username, reason),
    ]

    # the period is open again: the missed entry can now be recorded
    with committed():
        record(world, branch, "sun", rules.suggestion)
    assert quarter_score(world, "sun") == (Decimal("110.00"), 2)
    assert stored_totals_mismatches(world.year) == []
