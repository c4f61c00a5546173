"""Every move a review cycle must refuse: wrong post, skipped step, stale screen, missing
prerequisite, wrong time. Each refusal says why, in Chinese, and changes nothing — not the
state, not the timeline, not the period locks."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from publicity.models import Objection
from reviews import services as reviews
from reviews.models import (
    Acknowledgement,
    CommitteeMeeting,
    CycleEvent,
    GeneralMeeting,
    ReviewCycle,
    SelfAssessment,
)
from scoring import services as scoring
from scoring.models import PeriodLock

from .conftest import (
    Branch,
    World,
    build_world,
    drive_to,
    end_window,
    fresh,
    open_cycle,
    period_start,
    record,
    snapshot,
    today,
)

pytestmark = pytest.mark.django_db

State = ReviewCycle.State
FORBIDDEN = "您没有在“第一党支部”进行此操作的权限。"
METHODS = {
    State.OPEN: "start_self_assessment",
    State.SELF_ASSESSMENT: "start_committee_review",
    State.COMMITTEE_REVIEW: "start_general_meeting",
    State.GENERAL_MEETING: "start_publicity",
    State.PUBLICITY: "finalize",
    State.FINALIZED: "reopen",
}


def user_of(world: World, key: str) -> User:
    return world.staff if key == "staff" else world.branch.user(key)


def ready_cycle(world: World, state: str) -> ReviewCycle:
    """A cycle in ``state`` that its secretary could move on right now."""
    cycle = drive_to(world, open_cycle(world), state)
    if state == State.OPEN:
        reviews.cycle_set_deadline(user=world.branch.secretary, cycle=cycle, deadline=today())
    if state == State.PUBLICITY:
        end_window(cycle)
    return fresh(cycle)


# --- who -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.OPEN, State.PUBLICITY])
@pytest.mark.parametrize("key", ["recorder", "zhang", "commissioner", "committee_member", "staff"])
def test_only_the_branch_leaders_advance_a_cycle(world: World, key: str, state: str) -> None:
    # given: a cycle the secretary could move on
    cycle = ready_cycle(world, state)
    before = snapshot(cycle)

    # when
    with pytest.raises(PermissionDenied) as refused:
        reviews.cycle_advance(user=user_of(world, key), cycle=cycle, expected_state=state)

    # then
    assert refused.value.args == (FORBIDDEN,)
    assert snapshot(cycle) == before


def test_the_secretary_of_another_branch_cannot_advance(two_branches: World) -> None:
    world = two_branches
    cycle = ready_cycle(world, State.OPEN)
    before = snapshot(cycle)

    with pytest.raises(PermissionDenied) as refused:
        reviews.cycle_advance(
            user=world.branches[1].secretary, cycle=cycle, expected_state=State.OPEN
        )

    assert refused.value.args == (FORBIDDEN,)
    assert snapshot(cycle) == before


@pytest.mark.parametrize("key", ["recorder", "zhang", "commissioner", "staff"])
def test_only_the_branch_leaders_record_the_review(world: World, key: str) -> None:
    cycle = drive_to(world, open_cycle(world), State.COMMITTEE_REVIEW)
    before = snapshot(cycle)
    user = user_of(world, key)

    with pytest.raises(PermissionDenied):
        reviews.cycle_set_deadline(user=user, cycle=cycle, deadline=today())
    with pytest.raises(PermissionDenied):
        reviews.committee_meeting_record(
            user=user,
            cycle=cycle,
            meeting_date=today(),
            attendees=[world.branch.member("secretary")],
        )
    with pytest.raises(PermissionDenied):
        reviews.scores_agree(user=user, cycle=cycle, members=[world.branch.member("zhang")])

    assert snapshot(cycle) == before
    assert CommitteeMeeting.objects.filter(cycle=cycle).count() == 0


@pytest.mark.parametrize("key", ["secretary", "recorder", "zhang"])
def test_only_the_committee_staff_reopen_a_finalized_period(world: World, key: str) -> None:
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)
    before = snapshot(cycle)
    assert before.locks == 1

    with pytest.raises(PermissionDenied) as refused:
        reviews.cycle_reopen(user=user_of(world, key), cycle=cycle, reason="要改")

    assert refused.value.args == (FORBIDDEN,)
    assert snapshot(cycle) == before


def test_reopening_needs_a_reason(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_reopen(user=world.staff, cycle=cycle, reason="   ")

    assert refused.value.messages == ["重新打开已归档的期间须填写原因。"]
    assert snapshot(cycle) == before


def test_only_a_finalized_cycle_can_be_reopened(world: World) -> None:
    cycle = ready_cycle(world, State.PUBLICITY)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_reopen(user=world.staff, cycle=cycle, reason="要改")

    assert refused.value.code == "not_finalized"
    assert refused.value.messages == ["只有已确认归档的评议才能重新打开，该评议目前处于“公示”。"]
    assert snapshot(cycle) == before


@pytest.mark.parametrize("key", ["recorder", "zhang", "commissioner", "staff"])
def test_only_the_branch_leaders_open_a_review(world: World, key: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        reviews.cycle_open(
            user=user_of(world, key),
            branch=world.branch.organization,
            year=world.year,
            quarter=world.quarter,
        )

    assert refused.value.args == (FORBIDDEN,)
    assert ReviewCycle.objects.count() == 0
    assert CycleEvent.objects.count() == 0


def test_a_review_is_held_by_a_branch_for_a_quarter_or_the_year(world: World) -> None:
    superuser = User.objects.create_superuser("root", password="x")

    with pytest.raises(ValidationError) as not_a_branch:
        reviews.cycle_open(user=superuser, branch=world.committee, year=world.year, quarter=1)
    with pytest.raises(ValidationError) as bad_quarter:
        reviews.cycle_open(
            user=superuser, branch=world.branch.organization, year=world.year, quarter=5
        )
    with pytest.raises(ValidationError) as no_scheme:
        reviews.cycle_open(
            user=superuser, branch=world.branch.organization, year=world.year + 1, quarter=1
        )

    assert not_a_branch.value.messages == ["评议只能在党支部开展。"]
    assert bad_quarter.value.messages == ["季度应为 1–4，年度评议为 0。"]
    assert no_scheme.value.messages == [
        f"第一党支部 {world.year + 1} 年度尚未采用积分细则，不能开展评议。"
    ]
    assert ReviewCycle.objects.count() == 0


# --- one step at a time ---------------------------------------------------------------------


@pytest.mark.parametrize("state", list(METHODS))
def test_the_state_machine_allows_only_the_next_step(world: World, state: str) -> None:
    cycle = ready_cycle(world, state)
    before = snapshot(cycle)

    for method in set(METHODS.values()) - {METHODS[state]}:
        with pytest.raises(TransitionNotAllowed):
            getattr(cycle, method)()
        assert cycle.state == state
    with pytest.raises(AttributeError):
        cycle.state = State.FINALIZED  # protected: only the transitions move it

    assert snapshot(cycle) == before


def test_an_advance_moves_exactly_one_step(world: World) -> None:
    cycle = ready_cycle(world, State.OPEN)
    events = CycleEvent.objects.filter(cycle=cycle).count()

    moved = reviews.cycle_advance(
        user=world.branch.secretary, cycle=cycle, expected_state=State.OPEN
    )

    assert moved.state == fresh(cycle).state == State.SELF_ASSESSMENT
    assert CycleEvent.objects.filter(cycle=cycle).count() == events + 1


@pytest.mark.parametrize(
    "seen", [State.OPEN, State.COMMITTEE_REVIEW, State.PUBLICITY, State.FINALIZED]
)
def test_an_advance_from_a_stale_screen_is_refused(world: World, seen: str) -> None:
    # given: the secretary's screen shows ``seen``, the cycle is in self-assessment
    cycle = drive_to(world, open_cycle(world), State.SELF_ASSESSMENT)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(user=world.branch.secretary, cycle=cycle, expected_state=seen)

    assert refused.value.code == "stale_state"
    assert refused.value.messages == [
        "该评议已由他人推进到“党员自评”，您的操作没有执行，请刷新页面查看。"
    ]
    assert snapshot(cycle) == before


# --- what each step needs ---------------------------------------------------------------------


def test_leaving_open_needs_a_deadline(world: World) -> None:
    cycle = open_cycle(world)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(user=world.branch.secretary, cycle=cycle, expected_state=State.OPEN)

    assert refused.value.messages == ["请先设定党员自评截止日期。"]
    assert snapshot(cycle) == before


def test_a_deadline_cannot_be_in_the_past_nor_set_after_the_stage(world: World) -> None:
    secretary = world.branch.secretary
    cycle = open_cycle(world)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as past:
        reviews.cycle_set_deadline(
            user=secretary, cycle=cycle, deadline=today() - timedelta(days=1)
        )
    assert past.value.messages == ["截止日期不能早于今天。"]
    assert snapshot(cycle) == before

    cycle = drive_to(world, cycle, State.COMMITTEE_REVIEW)
    before = snapshot(cycle)
    with pytest.raises(ValidationError) as late:
        reviews.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today())
    assert late.value.messages == ["自评阶段结束后不能再修改截止日期。"]
    assert snapshot(cycle) == before


def test_no_self_assessment_after_the_deadline(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.SELF_ASSESSMENT)
    yesterday = today() - timedelta(days=1)
    ReviewCycle.objects.filter(pk=cycle.pk).update(self_assessment_deadline=yesterday)

    with pytest.raises(ValidationError) as refused:
        reviews.self_assessment_submit(user=world.branch.user("zhang"), cycle=cycle, text="自评")

    assert refused.value.code == "closed"
    assert refused.value.messages == [f"自评已于 {yesterday.isoformat()} 截止。"]
    assert SelfAssessment.objects.count() == 0


@pytest.mark.parametrize("state", [State.COMMITTEE_REVIEW, State.PUBLICITY, State.FINALIZED])
def test_no_self_assessment_after_the_stage(world: World, state: str) -> None:
    cycle = drive_to(world, open_cycle(world), state)

    with pytest.raises(ValidationError) as refused:
        reviews.self_assessment_submit(user=world.branch.user("zhang"), cycle=cycle, text="自评")

    assert refused.value.messages == ["自评阶段已结束，不能再提交或修改自评。"]
    assert SelfAssessment.objects.count() == 0


def test_only_a_member_of_the_branch_writes_a_self_assessment(two_branches: World) -> None:
    world = two_branches
    cycle = drive_to(world, open_cycle(world), State.SELF_ASSESSMENT)

    for user in (world.staff, world.branches[1].user("zhang")):
        with pytest.raises(PermissionDenied) as refused:
            reviews.self_assessment_submit(user=user, cycle=cycle, text="自评")
        assert refused.value.args == ("只有本支部党员可以提交本人的自评。",)
    assert SelfAssessment.objects.count() == 0


def test_leaving_committee_review_needs_the_meeting_and_every_agreed_score(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.COMMITTEE_REVIEW)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW
        )

    assert refused.value.messages == [
        "请先记录支委会（日期、出席支委）。",
        "还有 8 名党员的初评积分未经支委会确认。",
    ]
    assert snapshot(cycle) == before


def test_scores_are_agreed_only_once_computed(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.COMMITTEE_REVIEW)

    with pytest.raises(ValidationError) as refused:
        reviews.scores_agree(
            user=world.branch.secretary, cycle=cycle, members=[world.branch.member("zhang")]
        )

    assert refused.value.messages == ["张三本期积分尚未计算，请先在季度积分表中重新计算。"]
    assert cycle.agreements.count() == 0


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ((8, 9, 5, 0, 0), "实到人数不能多于有表决权党员人数。"),
        ((8, 6, 4, 2, 1), "赞成、反对、弃权票数之和不能多于实到人数。"),
        ((0, 0, 0, 0, 0), "有表决权党员人数不能为 0。"),
        ((8, -1, 0, 0, 0), "人数须为非负整数。"),
        ((8, 6, None, 0, 0), "人数须为非负整数。"),
    ],
)
def test_general_meeting_counts_must_be_consistent(
    world: World, counts: tuple, message: str
) -> None:
    cycle = drive_to(world, open_cycle(world), State.GENERAL_MEETING)
    before = snapshot(cycle)
    voting, attendance, votes_for, against, abstain = counts

    with pytest.raises(ValidationError) as refused:
        reviews.general_meeting_record(
            user=world.branch.secretary,
            cycle=cycle,
            meeting_date=today(),
            voting_members=voting,
            attendance=attendance,
            votes_for=votes_for,
            votes_against=against,
            votes_abstain=abstain,
        )

    assert refused.value.messages == [message]
    assert GeneralMeeting.objects.count() == 0
    assert snapshot(cycle) == before


def test_a_general_meeting_cannot_be_dated_in_the_future(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.GENERAL_MEETING)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.general_meeting_record(
            user=world.branch.secretary,
            cycle=cycle,
            meeting_date=today() + timedelta(days=1),
            voting_members=8,
            attendance=7,
            votes_for=7,
            votes_against=0,
            votes_abstain=0,
        )

    assert refused.value.messages == ["会议日期不能晚于今天。"]
    assert GeneralMeeting.objects.count() == 0
    assert snapshot(cycle) == before


@pytest.mark.parametrize("state", [State.OPEN, State.COMMITTEE_REVIEW, State.PUBLICITY])
def test_a_general_meeting_is_recorded_only_in_its_stage(world: World, state: str) -> None:
    cycle = drive_to(world, open_cycle(world), state)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.general_meeting_record(
            user=world.branch.secretary,
            cycle=cycle,
            meeting_date=today(),
            voting_members=8,
            attendance=7,
            votes_for=7,
            votes_against=0,
            votes_abstain=0,
        )

    assert refused.value.messages == ["只有在党员大会评定阶段才能记录党员大会。"]
    assert snapshot(cycle) == before
    assert GeneralMeeting.objects.filter(cycle=cycle).count() == (
        1 if state == State.PUBLICITY else 0
    )


def test_leaving_the_general_meeting_needs_a_meeting_that_passed(world: World) -> None:
    secretary = world.branch.secretary
    cycle = drive_to(world, open_cycle(world), State.GENERAL_MEETING)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as missing:
        reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=State.GENERAL_MEETING)
    assert missing.value.messages == ["请先记录党员大会（日期、应到和实到人数、表决结果）。"]
    assert snapshot(cycle) == before

    reviews.general_meeting_record(
        user=secretary,
        cycle=cycle,
        meeting_date=today(),
        voting_members=8,
        attendance=3,
        votes_for=1,
        votes_against=1,
        votes_abstain=1,
    )
    before = snapshot(cycle)
    with pytest.raises(ValidationError) as failed:
        reviews.cycle_advance(user=secretary, cycle=cycle, expected_state=State.GENERAL_MEETING)
    assert failed.value.messages == [
        "党员大会实到 3 人，未超过有表决权党员 8 人的半数，会议无效。",
        "党员大会表决未通过（赞成 1 票，未超过实到人数的半数）。",
    ]
    assert snapshot(cycle) == before


def test_publicity_cannot_start_in_the_past(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.GENERAL_MEETING)
    reviews.general_meeting_record(
        user=world.branch.secretary,
        cycle=cycle,
        meeting_date=today(),
        voting_members=8,
        attendance=7,
        votes_for=7,
        votes_against=0,
        votes_abstain=0,
    )
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary,
            cycle=cycle,
            expected_state=State.GENERAL_MEETING,
            publicity_starts_on=today() - timedelta(days=1),
        )

    assert refused.value.messages == ["公示开始日期不能早于今天。"]
    assert snapshot(cycle) == before


# --- finalizing -------------------------------------------------------------------------------


@pytest.mark.parametrize("day_of_window", [0, 4])
def test_no_finalizing_before_the_window_ended(world: World, day_of_window: int) -> None:
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    before = snapshot(cycle)
    end = cycle.publicity_ends_on
    assert end == today() + timedelta(days=4)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary,
            cycle=cycle,
            expected_state=State.PUBLICITY,
            today=today() + timedelta(days=day_of_window),
        )

    assert refused.value.messages == [f"公示期到 {end.isoformat()} 结束，结束后才能确认归档。"]
    assert snapshot(cycle) == before
    assert PeriodLock.objects.count() == 0


def test_finalizing_the_day_after_the_window(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)

    reviews.cycle_advance(
        user=world.branch.secretary,
        cycle=cycle,
        expected_state=State.PUBLICITY,
        today=cycle.publicity_ends_on + timedelta(days=1),
    )

    assert fresh(cycle).state == State.FINALIZED
    assert PeriodLock.objects.count() == 1


def raise_objection_row(world: World, cycle: ReviewCycle, state: str) -> Objection:
    return Objection.objects.create(
        cycle=cycle,
        member=world.branch.member("zhang"),
        text="对总分有异议",
        state=state,
        raised_by=world.branch.user("zhang"),
    )


@pytest.mark.parametrize("state", [state.value for state in Objection.OPEN_STATES])
def test_no_finalizing_with_an_open_objection(world: World, state: str) -> None:
    cycle = ready_cycle(world, State.PUBLICITY)
    raise_objection_row(world, cycle, state)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary, cycle=cycle, expected_state=State.PUBLICITY
        )

    assert refused.value.messages == ["还有 1 件异议尚未办结，办结后才能确认归档。"]
    assert snapshot(cycle) == before
    assert PeriodLock.objects.count() == 0


@pytest.mark.parametrize(
    "state",
    [
        Objection.State.ANSWERED,
        Objection.State.ACCEPTED,
        Objection.State.UPHELD,
        Objection.State.REJECTED,
    ],
)
def test_settled_objections_do_not_hold_up_finalizing(world: World, state: str) -> None:
    cycle = ready_cycle(world, State.PUBLICITY)
    raise_objection_row(world, cycle, state)

    reviews.cycle_advance(user=world.branch.secretary, cycle=cycle, expected_state=State.PUBLICITY)

    assert fresh(cycle).state == State.FINALIZED
    assert PeriodLock.objects.count() == 1


def test_a_finalized_cycle_goes_no_further(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)
    before = snapshot(cycle)

    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary, cycle=cycle, expected_state=State.FINALIZED
        )

    assert refused.value.messages == ["该评议已确认归档。如需更正，须由党委工作人员重新打开。"]
    assert snapshot(cycle) == before


@pytest.mark.parametrize("state", [State.SELF_ASSESSMENT, State.PUBLICITY])
def test_no_acknowledging_before_finalized(world: World, state: str) -> None:
    cycle = drive_to(world, open_cycle(world), state)

    with pytest.raises(ValidationError) as refused:
        reviews.acknowledge(user=world.branch.user("zhang"), cycle=cycle)

    assert refused.value.messages == ["评议确认归档后才能签字确认。"]
    assert Acknowledgement.objects.count() == 0


def test_only_a_member_of_the_branch_acknowledges(two_branches: World) -> None:
    world = two_branches
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)

    for user in (world.staff, world.branches[1].user("zhang")):
        with pytest.raises(PermissionDenied) as refused:
            reviews.acknowledge(user=user, cycle=cycle)
        assert refused.value.args == ("只有本支部党员可以确认本人的结果。",)
    assert Acknowledgement.objects.count() == 0


# --- objections only in the window --------------------------------------------------------------


def _objection_refused(world: World, cycle: ReviewCycle) -> ValidationError:
    from publicity.services import objection_raise

    before = snapshot(cycle)
    with pytest.raises(ValidationError) as refused:
        objection_raise(user=world.branch.user("zhang"), cycle=cycle, text="对总分有异议")
    assert refused.value.code == "window_closed"
    assert Objection.objects.count() == 0
    assert snapshot(cycle) == before
    return refused.value


@pytest.mark.parametrize(
    "state", [State.OPEN, State.SELF_ASSESSMENT, State.COMMITTEE_REVIEW, State.GENERAL_MEETING]
)
def test_no_objection_before_publicity(world: World, state: str) -> None:
    cycle = drive_to(world, open_cycle(world), state)

    refused = _objection_refused(world, cycle)

    assert refused.messages == ["本期积分尚未公示，暂不能提出异议。"]


def test_no_objection_before_the_window_opens(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.GENERAL_MEETING)
    reviews.general_meeting_record(
        user=world.branch.secretary,
        cycle=cycle,
        meeting_date=today(),
        voting_members=8,
        attendance=7,
        votes_for=7,
        votes_against=0,
        votes_abstain=0,
    )
    tomorrow = today() + timedelta(days=1)
    reviews.cycle_advance(
        user=world.branch.secretary,
        cycle=cycle,
        expected_state=State.GENERAL_MEETING,
        publicity_starts_on=tomorrow,
    )

    refused = _objection_refused(world, fresh(cycle))

    assert refused.messages == [f"公示将于 {tomorrow.isoformat()} 开始，届时才能提出异议。"]


def test_no_objection_after_the_window(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    end_window(cycle)
    ended = fresh(cycle).publicity_ends_on

    refused = _objection_refused(world, fresh(cycle))

    assert refused.messages == [f"公示期已于 {ended.isoformat()} 结束，不能再提出异议。"]


def test_no_objection_after_finalizing(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)

    refused = _objection_refused(world, cycle)

    assert refused.messages == ["本期评议已确认归档，不能再提出异议。"]


def test_an_objection_on_the_last_day_of_the_window_is_taken(world: World, committed) -> None:
    from publicity.services import objection_raise

    with committed():
        entry = record(world, world.branch, "zhang", world.rules.task, "-10")
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    end_window(cycle, days_ago=0)

    objection = objection_raise(
        user=world.branch.user("zhang"), cycle=fresh(cycle), text="扣分有误", entry=entry
    )

    assert (objection.state, objection.entry) == (Objection.State.RAISED, entry)
    assert entry.occurred_on == period_start()


def test_an_appeal_after_the_window_ended_is_refused(world: World, committed) -> None:
    """An answered objection is settled unless appealed while the cycle is in publicity."""
    from publicity.services import objection_appeal, objection_raise, objection_recheck

    branch = world.branch
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    objection = objection_raise(user=branch.user("zhang"), cycle=cycle, text="总分有误")
    objection = objection_recheck(
        user=branch.recorder, objection=objection, answer="经复核无误", uphold=False
    )
    # the member's days to appeal after the answer have passed
    Objection.objects.filter(pk=objection.pk).update(
        rechecked_at=timezone.now() - timedelta(days=reviews.APPEAL_DAYS + 1)
    )
    drive_to(world, cycle, State.FINALIZED)

    with pytest.raises(ValidationError) as refused:
        objection_appeal(user=branch.user("zhang"), objection=objection, text="仍有异议")

    assert refused.value.messages == ["本期评议已不在公示阶段（目前为“确认归档”），不能再申诉。"]
    assert Objection.objects.get(pk=objection.pk).state == Objection.State.ANSWERED


# --- two secretaries at once (real row locks) ------------------------------------------------


@pytest.mark.postgres
def test_two_simultaneous_advances_one_wins(transactional_db) -> None:
    # given: a committed cycle ready to leave "open", seen in "open" by two people at once
    world = build_world()
    branch: Branch = world.branch
    cycle = open_cycle(world)
    reviews.cycle_set_deadline(user=branch.secretary, cycle=cycle, deadline=today())
    events = CycleEvent.objects.filter(cycle=cycle).count()
    barrier = threading.Barrier(2)
    outcomes: list[object] = []
    lock = threading.Lock()

    def advance() -> None:
        try:
            user = User.objects.get(pk=branch.secretary.pk)
            seen = ReviewCycle.objects.get(pk=cycle.pk)
            barrier.wait(timeout=10)
            reviews.cycle_advance(user=user, cycle=seen, expected_state=State.OPEN)
            result: object = "moved"
        except BaseException as error:  # reported by the main thread
            result = error
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    # when
    threads = [threading.Thread(target=advance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then
    assert len(outcomes) == 2
    assert outcomes.count("moved") == 1
    (error,) = [outcome for outcome in outcomes if outcome != "moved"]
    assert isinstance(error, ValidationError), error
    assert error.code == "stale_state"
    assert error.messages == ["该评议已由他人推进到“党员自评”，您的操作没有执行，请刷新页面查看。"]
    assert fresh(cycle).state == State.SELF_ASSESSMENT
    assert CycleEvent.objects.filter(cycle=cycle).count() == events + 1
    assert (
        CycleEvent.objects.filter(
            cycle=cycle, from_state=State.OPEN, to_state=State.SELF_ASSESSMENT
        ).count()
        == 1
    )


def test_recording_is_still_possible_while_publicity_runs(world: World, committed) -> None:
    """Publicity does not lock the period: a correction can still go in before finalizing."""
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)

    with committed():
        entry = scoring.entry_record(
            user=world.branch.recorder,
            member=world.branch.member("sun"),
            rule=world.rules.suggestion,
            occurred_on=period_start(),
            description="公示期内补记",
        )

    assert entry.quarter == cycle.quarter
    assert PeriodLock.objects.count() == 0


def test_after_a_reopening_the_committee_agrees_again_and_a_new_general_meeting_is_held(
    world: World,
) -> None:
    # given: a finalized quarter, reopened by the committee staff
    cycle = drive_to(world, open_cycle(world), State.FINALIZED)
    cycle = reviews.cycle_reopen(user=world.staff, cycle=cycle, reason="发现漏记")

    # when: the committee tries to move on with the agreements made before the reopening
    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=world.branch.secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW
        )

    # then
    assert refused.value.messages[-1].endswith("名党员的初评积分未经支委会确认。")
    assert ReviewCycle.objects.get(pk=cycle.pk).state == State.COMMITTEE_REVIEW
