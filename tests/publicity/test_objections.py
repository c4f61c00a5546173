"""Objections: raise → recheck → accept / appeal → examine → rule, the correction in the
ledger with totals and ranks following, the publicity window, and who may take each step."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from publicity import services
from publicity.models import Objection
from publicity.services import Correction
from reviews.models import ReviewCycle
from scoring.models import Entry
from tests.conftest import logged_in_client
from tests.publicity.conftest import (
    QUARTER,
    YEAR,
    Board,
    drive_cycle,
    in_quarter,
    score_of,
)

pytestmark = pytest.mark.django_db

State = Objection.State


def raise_about_lecture(board: Board, cycle: ReviewCycle) -> Objection:
    return services.objection_raise(
        user=board.users["member_a"],
        cycle=cycle,
        text="这堂微党课是李四讲的，我只是参加了讨论。",
        entry=board.lecture,
    )


def to_forwarded(board: Board, objection: Objection) -> Objection:
    """Recheck answered (result stands) → appealed → forwarded by the commissioner."""
    services.objection_recheck(
        user=board.users["recorder_a"], objection=objection, answer="经核实记录无误。", uphold=False
    )
    member_user = objection.member.user
    services.objection_appeal(user=member_user, objection=objection, text="请核对会议记录。")
    return services.objection_examine(
        user=board.users["discipline_a"], objection=objection, opinion="建议支委会核对会议记录。"
    )


def snapshot(objection: Objection) -> tuple:
    fresh = Objection.objects.get(pk=objection.pk)
    return (
        fresh.state,
        fresh.recheck_answer,
        fresh.rechecked_by_id,
        fresh.appeal_text,
        fresh.commissioner_opinion,
        fresh.ruling_reason,
        fresh.ruled_by_id,
        fresh.reversal_entry_id,
        fresh.correction_entry_id,
    )


# --- the whole path --------------------------------------------------------------------------


def test_the_full_path_ends_in_a_correction_and_the_totals_and_ranks_follow(
    board: Board, cycle: ReviewCycle, committed
):
    # given: 张三 155 (rank 1, 五星), 李四 150 (rank 2), 王芳 105 (rank 3)
    zhang, li = board.members["member_a"], board.members["secretary_a"]
    assert (score_of(zhang).total, score_of(zhang).rank_in_branch) == (Decimal("155.00"), 1)
    assert (score_of(li).total, score_of(li).rank_in_branch) == (Decimal("150.00"), 2)

    # when: raised, rechecked and answered, appealed, examined, ruled upheld with a correction
    objection = raise_about_lecture(board, cycle)
    assert objection.state == State.RAISED
    answered = services.objection_recheck(
        user=board.users["recorder_a"],
        objection=objection,
        answer="经核实，会议记录显示由张三主讲。",
        uphold=False,
    )
    assert answered.state == State.ANSWERED
    appealed = services.objection_appeal(
        user=board.users["member_a"], objection=objection, text="会议记录有误，请核对签到表。"
    )
    assert appealed.state == State.APPEALED
    forwarded = services.objection_examine(
        user=board.users["discipline_a"], objection=objection, opinion="签到表显示主讲人为李四。"
    )
    assert forwarded.state == State.FORWARDED
    ruled = committed(
        services.objection_rule,
        user=board.users["secretary_a"],
        objection=objection,
        uphold=True,
        reason="支委会认定：张三为参加讨论，应记研讨发言。",
        correction=Correction(rule=board.rules.speech, points=None, description="参加微党课讨论"),
    )

    # then: the lecture is reversed on its own date and the speech recorded in its place
    ruled = Objection.objects.get(pk=objection.pk)
    assert ruled.state == State.UPHELD
    assert ruled.ruled_by == board.users["secretary_a"]
    assert ruled.ruling_reason == "支委会认定：张三为参加讨论，应记研讨发言。"
    assert ruled.recheck_answer == "经核实，会议记录显示由张三主讲。"
    assert ruled.appeal_text == "会议记录有误，请核对签到表。"
    assert ruled.commissioner_opinion == "签到表显示主讲人为李四。"
    reversal = ruled.reversal_entry
    assert reversal.reverses_id == board.lecture.pk
    assert reversal.points == Decimal("-50.00")
    assert reversal.occurred_on == in_quarter(1, 15)
    assert reversal.recorded_by == board.users["secretary_a"]
    assert reversal.reason == "异议成立：支委会认定：张三为参加讨论，应记研讨发言。"
    correction = ruled.correction_entry
    assert (correction.member, correction.rule, correction.points) == (
        zhang,
        board.rules.speech,
        Decimal("5.00"),
    )
    assert correction.occurred_on == in_quarter(1, 15)
    assert correction.description == "参加微党课讨论"
    assert correction.recorded_by == board.users["secretary_a"]
    # 张三: 100 + 5 + 5 = 110, now second; 李四 first
    assert score_of(zhang).net == Decimal("10.00")
    assert score_of(zhang).total == Decimal("110.00")
    assert score_of(zhang).rank_in_branch == 2
    assert score_of(zhang).star == "四星"
    assert score_of(li).rank_in_branch == 1
    assert score_of(board.members["other_a"]).rank_in_branch == 3


def test_a_secretary_upholds_at_recheck_and_the_entry_is_cancelled(
    board: Board, cycle: ReviewCycle, committed
):
    # given
    objection = raise_about_lecture(board, cycle)

    # when: upheld with no correction — the entry should simply be cancelled
    committed(
        services.objection_recheck,
        user=board.users["secretary_a"],
        objection=objection,
        answer="核实无误，这条记录登记错了，予以冲销。",
        uphold=True,
    )

    # then
    objection.refresh_from_db()
    assert objection.state == State.UPHELD
    assert objection.rechecked_by == board.users["secretary_a"]
    assert objection.reversal_entry.reverses_id == board.lecture.pk
    assert objection.correction_entry is None
    zhang = score_of(board.members["member_a"])
    assert (zhang.net, zhang.total, zhang.star) == (Decimal("5.00"), Decimal("105.00"), "三星")
    # 李四 150 first; 张三 and 王芳 tie at 105 and share the second rank
    assert score_of(board.members["secretary_a"]).rank_in_branch == 1
    assert zhang.rank_in_branch == 2
    assert score_of(board.members["other_a"]).rank_in_branch == 2


def test_the_recorder_upholds_an_objection_about_the_total_with_a_correction(
    board: Board, cycle: ReviewCycle, committed
):
    # given: 张三 says two volunteer days are missing from his total
    objection = services.objection_raise(
        user=board.users["member_a"], cycle=cycle, text="我在十月参加了两次志愿服务，没有记分。"
    )

    # when
    committed(
        services.objection_recheck,
        user=board.users["recorder_a"],
        objection=objection,
        answer="经核实漏记，补记志愿服务 8 分。",
        uphold=True,
        correction=Correction(
            rule=board.rules.volunteer, points=Decimal("8"), description="补记志愿服务"
        ),
    )

    # then: recorded on the period's last day, no reversal
    objection.refresh_from_db()
    assert objection.state == State.UPHELD
    assert objection.reversal_entry is None
    assert objection.correction_entry.points == Decimal("8.00")
    assert objection.correction_entry.occurred_on == in_quarter(3, 31)
    assert objection.correction_entry.recorded_by == board.users["recorder_a"]
    assert score_of(board.members["member_a"]).total == Decimal("163.00")


def test_the_recorder_may_not_cancel_an_entry_and_is_told_the_secretary_must_decide(
    board: Board, cycle: ReviewCycle
):
    # given
    objection = raise_about_lecture(board, cycle)
    before, entries = snapshot(objection), Entry.objects.count()

    # when
    with pytest.raises(PermissionDenied) as refused:
        services.objection_recheck(
            user=board.users["recorder_a"],
            objection=objection,
            answer="确实记错了。",
            uphold=True,
            correction=Correction(rule=board.rules.speech, points=None, description="改记发言"),
        )

    # then
    assert str(refused.value) == (
        "认定这件异议成立需要冲销原积分记录，您没有冲销权限。请由支部书记或副书记复核认定这件异议。"
    )
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


def test_upholding_an_objection_about_the_total_needs_a_correction(
    board: Board, cycle: ReviewCycle
):
    objection = services.objection_raise(
        user=board.users["member_a"], cycle=cycle, text="总分不对。"
    )
    before, entries = snapshot(objection), Entry.objects.count()

    with pytest.raises(ValidationError) as refused:
        services.objection_recheck(
            user=board.users["secretary_a"], objection=objection, answer="成立。", uphold=True
        )

    assert refused.value.messages == ["请填写更正后的积分"]
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


def test_a_correction_the_ledger_refuses_writes_nothing(board: Board, cycle: ReviewCycle):
    # given: the secretary upholds but types points outside the rule's range
    objection = raise_about_lecture(board, cycle)
    before, entries = snapshot(objection), Entry.objects.count()

    # when
    with pytest.raises(ValidationError) as refused:
        services.objection_recheck(
            user=board.users["secretary_a"],
            objection=objection,
            answer="改记志愿服务。",
            uphold=True,
            correction=Correction(
                rule=board.rules.volunteer, points=Decimal("12"), description="志愿服务"
            ),
        )

    # then: the reversal made before the refused entry is rolled back too
    assert refused.value.messages == ["分值 +12 超出细则项“志愿服务”的范围 +1 ~ +10。"]
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


def test_the_member_accepts_the_answer(board: Board, cycle: ReviewCycle):
    objection = raise_about_lecture(board, cycle)
    services.objection_recheck(
        user=board.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
    )

    accepted = services.objection_accept(user=board.users["member_a"], objection=objection)

    assert accepted.state == State.ACCEPTED
    assert Objection.objects.get(pk=objection.pk).state == State.ACCEPTED


def test_the_committee_rejects_and_nothing_changes_in_the_ledger(
    board: Board, cycle: ReviewCycle, committed
):
    objection = to_forwarded(board, raise_about_lecture(board, cycle))
    entries = Entry.objects.count()

    committed(
        services.objection_rule,
        user=board.users["secretary_a"],
        objection=objection,
        uphold=False,
        reason="支委会认定记录无误。",
    )

    objection.refresh_from_db()
    assert objection.state == State.REJECTED
    assert (objection.reversal_entry, objection.correction_entry) == (None, None)
    assert Entry.objects.count() == entries
    assert score_of(board.members["member_a"]).total == Decimal("155.00")


def test_an_open_objection_keeps_the_cycle_from_being_finalized(board: Board, cycle: ReviewCycle):
    from reviews.services import cycle_advance

    raise_about_lecture(board, cycle)

    with pytest.raises(ValidationError) as refused:
        cycle_advance(
            user=board.users["secretary_a"],
            cycle=cycle,
            expected_state=ReviewCycle.State.PUBLICITY,
            today=cycle.publicity_ends_on + timedelta(days=1),
        )

    assert refused.value.messages == ["还有 1 件异议尚未办结，办结后才能确认归档。"]


# --- the window --------------------------------------------------------------------------------


def _after_the_window(board: Board) -> ReviewCycle:
    cycle = drive_cycle(board, ReviewCycle.State.PUBLICITY)
    today = timezone.localdate()
    ReviewCycle.objects.filter(pk=cycle.pk).update(
        publicity_starts_on=today - timedelta(days=6), publicity_ends_on=today - timedelta(days=2)
    )
    return ReviewCycle.objects.get(pk=cycle.pk)


def _before_the_window(board: Board) -> ReviewCycle:
    return drive_cycle(
        board,
        ReviewCycle.State.PUBLICITY,
        publicity_starts_on=timezone.localdate() + timedelta(days=3),
    )


WINDOW_CASES = {
    "open": (lambda board: drive_cycle(board, "open"), "本期积分尚未公示，暂不能提出异议。"),
    "general_meeting": (
        lambda board: drive_cycle(board, "general_meeting"),
        "本期积分尚未公示，暂不能提出异议。",
    ),
    "before_the_start_date": (
        _before_the_window,
        "公示将于 {start} 开始，届时才能提出异议。",
    ),
    "after_the_end_date": (_after_the_window, "公示期已于 {end} 结束，不能再提出异议。"),
    "finalized": (
        lambda board: drive_cycle(board, "finalized"),
        "本期评议已确认归档，不能再提出异议。",
    ),
}


@pytest.mark.parametrize("case", list(WINDOW_CASES))
@pytest.mark.parametrize("about_an_entry", [True, False], ids=["entry", "total"])
def test_an_objection_outside_the_window_is_refused(board: Board, case: str, about_an_entry):
    # given
    make_cycle, message = WINDOW_CASES[case]
    cycle = make_cycle(board)

    # when
    with pytest.raises(ValidationError) as refused:
        services.objection_raise(
            user=board.users["member_a"],
            cycle=cycle,
            text="有异议。",
            entry=board.lecture if about_an_entry else None,
        )

    # then
    assert refused.value.messages == [
        message.format(
            start=cycle.publicity_starts_on.isoformat() if cycle.publicity_starts_on else "",
            end=cycle.publicity_ends_on.isoformat() if cycle.publicity_ends_on else "",
        )
    ]
    assert Objection.objects.count() == 0


def test_the_last_day_of_the_window_is_still_open(board: Board):
    cycle = drive_cycle(board, ReviewCycle.State.PUBLICITY)
    today = timezone.localdate()
    ReviewCycle.objects.filter(pk=cycle.pk).update(
        publicity_starts_on=today - timedelta(days=4), publicity_ends_on=today
    )

    objection = services.objection_raise(
        user=board.users["member_a"], cycle=ReviewCycle.objects.get(pk=cycle.pk), text="有异议。"
    )

    assert objection.state == State.RAISED


def test_an_appeal_after_the_cycle_is_finalized_is_refused(board: Board, cycle: ReviewCycle):
    # given: answered (not open), so the cycle can be finalized
    from reviews.services import APPEAL_DAYS, cycle_advance

    objection = raise_about_lecture(board, cycle)
    services.objection_recheck(
        user=board.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
    )
    # the member's days to appeal after the answer have passed
    Objection.objects.filter(pk=objection.pk).update(
        rechecked_at=timezone.now() - timedelta(days=APPEAL_DAYS + 1)
    )
    cycle_advance(
        user=board.users["secretary_a"],
        cycle=cycle,
        expected_state=ReviewCycle.State.PUBLICITY,
        today=cycle.publicity_ends_on + timedelta(days=1),
    )
    objection.refresh_from_db()
    before = snapshot(objection)

    # when
    with pytest.raises(ValidationError) as refused:
        services.objection_appeal(user=board.users["member_a"], objection=objection, text="不服。")

    # then
    assert refused.value.messages == ["本期评议已不在公示阶段（目前为“确认归档”），不能再申诉。"]
    assert snapshot(objection) == before


# --- what may be objected to -------------------------------------------------------------------


def test_raising_about_another_members_entry_is_refused(board: Board, cycle: ReviewCycle):
    with pytest.raises(PermissionDenied) as refused:
        services.objection_raise(
            user=board.users["member_a"],
            cycle=cycle,
            text="李四的微党课是我讲的。",
            entry=board.others["secretary_a"],
        )

    assert str(refused.value) == "只能对本人的积分记录提出异议。"
    assert Objection.objects.count() == 0


def test_raising_about_an_entry_outside_the_period_is_refused(
    board: Board, cycle: ReviewCycle, committed
):
    # given: an entry of the third quarter, not the one in publicity
    from tests.publicity.conftest import record

    earlier = record(
        committed,
        board.users["secretary_a"],
        board.members["member_a"],
        board.rules.speech,
        in_quarter(1, 1) - timedelta(days=10),
    )

    with pytest.raises(ValidationError) as refused:
        services.objection_raise(
            user=board.users["member_a"], cycle=cycle, text="有异议。", entry=earlier
        )

    assert refused.value.messages == [
        f"这条积分记录不在本期（{YEAR}年第{QUARTER}季度）公示范围内。"
    ]
    assert Objection.objects.count() == 0


@pytest.mark.parametrize("user_key", ["recorder_a", "member_b", "committee_staff", "no_role"])
def test_only_members_of_the_branch_may_raise(board: Board, cycle: ReviewCycle, user_key: str):
    with pytest.raises(PermissionDenied) as refused:
        services.objection_raise(user=board.users[user_key], cycle=cycle, text="有异议。")

    assert str(refused.value) == "只有本支部党员可以对本人的公示积分提出异议。"
    assert Objection.objects.count() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [("  ", "请填写异议内容。"), ("异" * 2001, "异议内容不能超过 2000 字。")],
    ids=["blank", "too_long"],
)
def test_the_text_is_required_and_bounded(board: Board, cycle: ReviewCycle, text, message):
    with pytest.raises(ValidationError) as refused:
        services.objection_raise(user=board.users["member_a"], cycle=cycle, text=text)

    assert refused.value.messages == [message]
    assert Objection.objects.count() == 0


def test_one_open_objection_per_entry(board: Board, cycle: ReviewCycle):
    raise_about_lecture(board, cycle)

    with pytest.raises(ValidationError) as refused:
        raise_about_lecture(board, cycle)

    assert refused.value.messages == ["您对这条记录的异议正在办理中，请等待答复。"]
    assert Objection.objects.count() == 1


# --- who may take each step --------------------------------------------------------------------


def test_the_objecting_member_cannot_recheck_their_own(board: Board, cycle: ReviewCycle):
    # given: 李四 is the secretary and a member of the branch; he objects to his own entry
    objection = services.objection_raise(
        user=board.users["secretary_a"],
        cycle=cycle,
        text="我的微党课分值不对。",
        entry=board.others["secretary_a"],
    )
    before, entries = snapshot(objection), Entry.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        services.objection_recheck(
            user=board.users["secretary_a"], objection=objection, answer="成立。", uphold=True
        )

    assert str(refused.value) == "不能复核本人提出的异议。"
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


def test_the_objecting_member_cannot_rule_on_their_own(board: Board, cycle: ReviewCycle):
    objection = services.objection_raise(
        user=board.users["secretary_a"],
        cycle=cycle,
        text="我的微党课分值不对。",
        entry=board.others["secretary_a"],
    )
    to_forwarded(board, objection)
    before, entries = snapshot(objection), Entry.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        services.objection_rule(
            user=board.users["secretary_a"], objection=objection, uphold=True, reason="成立。"
        )

    assert str(refused.value) == "不能认定本人提出的异议。"
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


def _raised(board, cycle):
    return raise_about_lecture(board, cycle)


def _answered(board, cycle):
    objection = raise_about_lecture(board, cycle)
    services.objection_recheck(
        user=board.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
    )
    return objection


def _appealed(board, cycle):
    objection = _answered(board, cycle)
    services.objection_appeal(user=board.users["member_a"], objection=objection, text="不服。")
    return objection


def _forwarded(board, cycle):
    return to_forwarded(board, raise_about_lecture(board, cycle))


STEPS = {
    "recheck": (
        _raised,
        lambda user, objection: services.objection_recheck(
            user=user, objection=objection, answer="答复。", uphold=False
        ),
    ),
    "accept": (
        _answered,
        lambda user, objection: services.objection_accept(user=user, objection=objection),
    ),
    "appeal": (
        _answered,
        lambda user, objection: services.objection_appeal(
            user=user, objection=objection, text="申诉。"
        ),
    ),
    "examine": (
        _appealed,
        lambda user, objection: services.objection_examine(
            user=user, objection=objection, opinion="意见。"
        ),
    ),
    "rule": (
        _forwarded,
        lambda user, objection: services.objection_rule(
            user=user, objection=objection, uphold=False, reason="理由。"
        ),
    ),
}

WRONG_POSTS = [
    ("recheck", "discipline_a"),
    ("recheck", "member_a"),
    ("recheck", "committee_staff"),
    ("recheck", "secretary_b"),
    ("recheck", "member_b"),
    ("accept", "secretary_a"),
    ("accept", "recorder_a"),
    ("appeal", "secretary_a"),
    ("appeal", "member_b"),
    ("examine", "recorder_a"),
    ("examine", "secretary_a"),
    ("examine", "member_a"),
    ("examine", "general_staff"),
    ("rule", "recorder_a"),
    ("rule", "discipline_a"),
    ("rule", "member_a"),
    ("rule", "committee_staff"),
    ("rule", "secretary_b"),
]


@pytest.mark.parametrize(("step", "user_key"), WRONG_POSTS)
def test_a_wrong_post_is_refused_and_nothing_changes(
    board: Board, cycle: ReviewCycle, step: str, user_key: str
):
    # given
    prepare, act = STEPS[step]
    objection = prepare(board, cycle)
    before, entries = snapshot(objection), Entry.objects.count()

    # when / then
    with pytest.raises(PermissionDenied):
        act(board.users[user_key], objection)
    assert snapshot(objection) == before
    assert Entry.objects.count() == entries


@pytest.mark.parametrize(
    ("step", "user_key", "message"),
    [
        (
            "recheck",
            "recorder_a",
            "这件异议目前为“已复核，维持原结果”，不能复核。请刷新页面查看最新情况。",
        ),
        (
            "examine",
            "discipline_a",
            "这件异议目前为“已复核，维持原结果”，不能审查。请刷新页面查看最新情况。",
        ),
        (
            "rule",
            "secretary_a",
            "这件异议目前为“已复核，维持原结果”，不能认定。请刷新页面查看最新情况。",
        ),
    ],
)
def test_a_step_out_of_turn_is_refused(
    board: Board, cycle: ReviewCycle, step: str, user_key: str, message: str
):
    objection = _answered(board, cycle)
    before = snapshot(objection)

    with pytest.raises(ValidationError) as refused:
        STEPS[step][1](board.users[user_key], objection)

    assert refused.value.messages == [message]
    assert snapshot(objection) == before


# --- the pages ---------------------------------------------------------------------------------


def _url(name: str, cycle: ReviewCycle, objection: Objection | None = None) -> str:
    kwargs = {"pk": cycle.pk}
    if objection is not None:
        kwargs["objection_pk"] = objection.pk
    return reverse(f"publicity:{name}", kwargs=kwargs)


def test_the_member_raises_through_the_form_and_is_redirected(board: Board, cycle: ReviewCycle):
    client = logged_in_client(board.users["member_a"])
    url = f"{_url('raise', cycle)}?entry={board.lecture.pk}"

    page = client.get(url)
    response = client.post(url, {"text": "这堂课不是我讲的。"})

    assert page.status_code == 200
    assert response.status_code == 302
    assert response["Location"] == _url("objections", cycle)
    objection = Objection.objects.get()
    assert (objection.entry, objection.text, objection.raised_by) == (
        board.lecture,
        "这堂课不是我讲的。",
        board.users["member_a"],
    )


def test_a_refused_raise_answers_422_and_keeps_the_text(board: Board):
    cycle = _after_the_window(board)
    client = logged_in_client(board.users["member_a"])

    response = client.post(_url("raise", cycle), {"text": "我的总分少算了五分。"})

    assert response.status_code == 422
    content = response.content.decode()
    assert "我的总分少算了五分。" in content
    assert f"公示期已于 {cycle.publicity_ends_on.isoformat()} 结束，不能再提出异议。" in content
    assert Objection.objects.count() == 0


def test_the_raise_page_of_another_members_entry_is_not_found(board: Board, cycle: ReviewCycle):
    client = logged_in_client(board.users["member_a"])

    response = client.get(f"{_url('raise', cycle)}?entry={board.others['secretary_a'].pk}")

    assert response.status_code == 404


def test_the_officers_walk_the_path_through_the_pages(board: Board, cycle: ReviewCycle):
    # given
    objection = raise_about_lecture(board, cycle)
    prefix = f"o{objection.pk}-"
    recorder = logged_in_client(board.users["recorder_a"])
    member = logged_in_client(board.users["member_a"])

    # when
    recheck = recorder.post(
        _url("recheck", cycle, objection),
        {f"{prefix}answer": "记录无误。", f"{prefix}decision": "dismiss"},
    )
    appeal = member.post(_url("appeal", cycle, objection), {f"{prefix}text": "请核对签到表。"})
    examine = logged_in_client(board.users["discipline_a"]).post(
        _url("examine", cycle, objection), {f"{prefix}opinion": "建议认定成立。"}
    )
    rule = logged_in_client(board.users["secretary_a"]).post(
        _url("rule", cycle, objection),
        {
            f"{prefix}decision": "uphold",
            f"{prefix}reason": "认定成立。",
            f"{prefix}correction_rule": str(board.rules.speech.pk),
            f"{prefix}correction_description": "改记研讨发言",
        },
    )

    # then
    assert [r.status_code for r in (recheck, appeal, examine, rule)] == [302, 302, 302, 302]
    objection.refresh_from_db()
    assert objection.state == State.UPHELD
    assert objection.correction_entry.description == "改记研讨发言"
    history = member.get(_url("objections", cycle)).content.decode()
    for text in (
        "这堂微党课是李四讲的",
        "记录无误。",
        "请核对签到表。",
        "建议认定成立。",
        "认定成立。",
    ):
        assert text in history
    assert f'data-testid="reversal-{objection.pk}"' in history
    assert f'data-testid="correction-{objection.pk}"' in history


def test_a_refused_recheck_page_answers_403_and_keeps_the_answer(board: Board, cycle: ReviewCycle):
    objection = raise_about_lecture(board, cycle)
    prefix = f"o{objection.pk}-"
    before = snapshot(objection)

    response = logged_in_client(board.users["recorder_a"]).post(
        _url("recheck", cycle, objection),
        {f"{prefix}answer": "确实记错了，应予冲销。", f"{prefix}decision": "uphold"},
    )

    assert response.status_code == 403
    content = response.content.decode()
    assert "确实记错了，应予冲销。" in content
    assert "请由支部书记或副书记复核认定这件异议。" in content
    assert snapshot(objection) == before


def test_an_invalid_ruling_answers_422_and_keeps_the_input(board: Board, cycle: ReviewCycle):
    objection = _forwarded(board, cycle)
    prefix = f"o{objection.pk}-"
    before = snapshot(objection)

    response = logged_in_client(board.users["secretary_a"]).post(
        _url("rule", cycle, objection),
        {f"{prefix}decision": "uphold", f"{prefix}reason": ""},
    )

    assert response.status_code == 422
    assert "请填写认定理由。" in response.content.decode()
    assert snapshot(objection) == before


def test_a_member_sees_only_their_own_objections(board: Board, cycle: ReviewCycle):
    mine = raise_about_lecture(board, cycle)
    theirs = services.objection_raise(
        user=board.users["secretary_a"], cycle=cycle, text="李四的异议。"
    )

    page = logged_in_client(board.users["member_a"]).get(_url("objections", cycle))
    officer_page = logged_in_client(board.users["recorder_a"]).get(_url("objections", cycle))

    assert page.status_code == 200
    assert [card.objection.pk for card in page.context["cards"]] == [mine.pk]
    assert [card.objection.pk for card in officer_page.context["cards"]] == [mine.pk, theirs.pk]
    # another member's objection cannot be acted on: 404
    other = logged_in_client(board.users["member_a"]).post(_url("accept", cycle, theirs))
    assert other.status_code == 404


@pytest.mark.parametrize("user_key", ["member_b", "secretary_b", "no_role"])
def test_the_objections_page_is_not_found_out_of_reach(
    board: Board, cycle: ReviewCycle, user_key: str
):
    response = logged_in_client(board.users[user_key]).get(_url("objections", cycle))

    assert response.status_code == 404


# --- two people at once (PostgreSQL row locks) -------------------------------------------------


def _race(first: Callable[[], object], second: Callable[[], object]) -> tuple[object, object]:
    """Run ``first`` in a transaction kept open until ``second`` (in another thread and
    connection) has had time to block on the same row lock; then commit and let it go.
    Returns what each returned or raised."""
    results: dict[str, object] = {}
    holding, release = threading.Event(), threading.Event()

    def run_first() -> None:
        try:
            with transaction.atomic():
                results["first"] = first()
                holding.set()
                release.wait(10)
        except Exception as error:
            results["first"] = error
            holding.set()
        finally:
            connection.close()

    def run_second() -> None:
        try:
            results["second"] = second()
        except Exception as error:
            results["second"] = error
        finally:
            connection.close()

    thread_a = threading.Thread(target=run_first)
    thread_a.start()
    assert holding.wait(10)
    thread_b = threading.Thread(target=run_second)
    thread_b.start()
    thread_b.join(0.5)
    blocked = thread_b.is_alive()
    release.set()
    thread_a.join(10)
    thread_b.join(10)
    assert blocked, "the second caller did not wait for the first one's lock"
    return results["first"], results["second"]


@pytest.mark.postgres
def test_two_officers_rechecking_at_once_exactly_one_succeeds(transactional_db, board: Board):
    # given
    cycle = drive_cycle(board, ReviewCycle.State.PUBLICITY)
    objection = raise_about_lecture(board, cycle)
    entries = Entry.objects.count()

    # when: the secretary upholds while the recorder answers
    first, second = _race(
        lambda: services.objection_recheck(
            user=board.users["secretary_a"], objection=objection, answer="予以冲销。", uphold=True
        ),
        lambda: services.objection_recheck(
            user=board.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
        ),
    )

    # then
    assert isinstance(first, Objection)
    assert isinstance(second, ValidationError)
    assert second.messages == [
        "这件异议目前为“异议成立，已更正”，不能复核。请刷新页面查看最新情况。"
    ]
    objection.refresh_from_db()
    assert (objection.state, objection.recheck_answer) == (State.UPHELD, "予以冲销。")
    assert Entry.objects.count() == entries + 1


@pytest.mark.postgres
def test_an_objection_cannot_slip_in_while_the_cycle_is_being_finalized(
    transactional_db, board: Board
):
    # given
    from reviews.services import cycle_advance

    cycle = drive_cycle(board, ReviewCycle.State.PUBLICITY)

    # when: finalizing (holding the cycle's lock) while the member raises
    first, second = _race(
        lambda: cycle_advance(
            user=board.users["secretary_a"],
            cycle=cycle,
            expected_state=ReviewCycle.State.PUBLICITY,
            today=cycle.publicity_ends_on + timedelta(days=1),
        ),
        lambda: raise_about_lecture(board, cycle),
    )

    # then
    assert isinstance(first, ReviewCycle)
    assert isinstance(second, ValidationError)
    assert second.messages == ["本期评议已确认归档，不能再提出异议。"]
    assert Objection.objects.count() == 0


# --- the admin ---------------------------------------------------------------------------------


def test_objections_are_read_only_in_the_admin(board: Board, cycle: ReviewCycle):
    objection = raise_about_lecture(board, cycle)
    client = logged_in_client(board.users["superuser"])

    changelist = client.get(reverse("admin:publicity_objection_changelist"))
    change = client.get(reverse("admin:publicity_objection_change", args=[objection.pk]))
    add = client.get(reverse("admin:publicity_objection_add"))
    post = client.post(
        reverse("admin:publicity_objection_change", args=[objection.pk]), {"state": "upheld"}
    )

    assert [changelist.status_code, change.status_code, add.status_code] == [200, 200, 403]
    assert post.status_code == 403
    assert Objection.objects.get(pk=objection.pk).state == State.RAISED


def test_finalizing_waits_for_the_members_days_to_appeal_an_answer(
    board: Board, cycle: ReviewCycle
):
    # given: an objection answered just now, with the publicity window already over
    from reviews.services import cycle_advance

    objection = raise_about_lecture(board, cycle)
    services.objection_recheck(
        user=board.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
    )

    # when
    with pytest.raises(ValidationError) as refused:
        cycle_advance(
            user=board.users["secretary_a"],
            cycle=cycle,
            expected_state=ReviewCycle.State.PUBLICITY,
            today=cycle.publicity_ends_on + timedelta(days=1),
        )

    # then
    assert refused.value.messages == ["还有 1 件异议尚未办结，办结后才能确认归档。"]
    assert ReviewCycle.objects.get(pk=cycle.pk).state == ReviewCycle.State.PUBLICITY
