"""The review's time-driven jobs (closing publicity windows, reminders), their notifications and
mails, and the annual appraisal weighting of the totals — run eagerly, in-process."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from publicity.models import Objection
from reviews import services as reviews
from reviews.models import Appraisal, CycleEvent, Notification, ReviewCycle
from reviews.tasks import (
    close_publicity_windows_task,
    remind_publicity_task,
    remind_self_assessments_task,
)
from scoring.models import PeriodLock, PeriodScore
from scoring.recompute import stored_totals_mismatches

from .conftest import (
    WITH_LOGIN,
    Branch,
    World,
    build_world,
    drive_to,
    end_window,
    fresh,
    open_cycle,
    record,
    snapshot,
    timeline,
    today,
)

pytestmark = pytest.mark.django_db

State = ReviewCycle.State
Action = CycleEvent.Action


@pytest.fixture
def three_branches(db) -> World:
    return build_world(branch_count=3)


def label(world: World, quarter: int | None = None) -> str:
    return f"{world.year}年第{world.quarter if quarter is None else quarter}季度"


def usernames(branch: Branch, keys: list[str]) -> list[str]:
    return sorted(branch.user(key).username for key in keys)


def test_the_schedule_names_the_review_jobs() -> None:
    from django.conf import settings

    from config import celery_app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    review_jobs = {
        "reviews.tasks.close_publicity_windows_task",
        "reviews.tasks.remind_self_assessments_task",
        "reviews.tasks.remind_publicity_task",
    }
    assert review_jobs <= scheduled
    assert review_jobs <= set(celery_app.tasks)


# --- closing publicity windows ------------------------------------------------------------------


def test_closing_windows_finalizes_the_ended_and_reminds_about_the_held_up(
    three_branches: World,
) -> None:
    # given: A's window ended yesterday with nothing open; B's too, with an open objection;
    # C's window runs until today + 4
    world = three_branches
    ended, held_up, running = (
        drive_to(world, open_cycle(world, branch), State.PUBLICITY, branch)
        for branch in world.branches
    )
    end_window(ended)
    end_window(held_up)
    Objection.objects.create(
        cycle=held_up,
        member=world.branches[1].member("zhang"),
        text="对总分有异议",
        raised_by=world.branches[1].user("zhang"),
    )
    events = {
        cycle.pk: CycleEvent.objects.filter(cycle=cycle).count() for cycle in (held_up, running)
    }
    running_before = snapshot(running)

    # when
    result = close_publicity_windows_task.delay().get()

    # then: A is finalized by the job (no user), locked and reported
    assert result == {"finalized": [ended.pk], "waiting": [held_up.pk]}
    finalized = fresh(ended)
    assert finalized.state == State.FINALIZED
    assert finalized.finalized_at is not None
    assert finalized.reported_at == finalized.finalized_at
    assert timeline(finalized)[-2:] == [
        (
            Action.ADVANCE,
            State.PUBLICITY,
            State.FINALIZED,
            None,
            "公示期结束且无未办结异议，系统自动确认归档。",
        ),
        (Action.REPORT, "", "", None, "已报备测试党委"),
    ]
    lock = PeriodLock.objects.get()
    assert (lock.organization, lock.year, lock.quarter, lock.locked_by, lock.reason) == (
        world.branches[0].organization,
        world.year,
        world.quarter,
        None,
        f"{label(world)}评议确认归档",
    )

    # B waits, and its secretary (the only leader) is told why
    assert fresh(held_up).state == State.PUBLICITY
    assert CycleEvent.objects.filter(cycle=held_up).count() == events[held_up.pk]
    notices = Notification.objects.all()
    assert [(notice.user, notice.text, notice.url, notice.key) for notice in notices] == [
        (
            world.branches[1].secretary,
            f"第二党支部{label(world)}公示期已结束，但还不能归档："
            "还有 1 件异议尚未办结，办结后才能确认归档。",
            reverse("reviews:cycle", kwargs={"pk": held_up.pk}),
            f"publicity-overdue-{held_up.pk}-{today().isoformat()}",
        )
    ]

    # C's window is still running: untouched
    assert snapshot(running) == running_before

    # when: the job runs again the same day
    again = close_publicity_windows_task.delay().get()

    # then: nothing new — A stays finalized once, B's secretary is not told twice
    assert again == {"finalized": [], "waiting": [held_up.pk]}
    assert Notification.objects.count() == 1
    assert CycleEvent.objects.filter(cycle=ended, action=Action.REPORT).count() == 1
    assert PeriodLock.objects.count() == 1
    assert mail.outbox == []


def test_the_held_up_cycle_is_finalized_by_the_job_once_its_objection_is_settled(
    world: World,
) -> None:
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)
    end_window(cycle)
    objection = Objection.objects.create(
        cycle=cycle,
        member=world.branch.member("zhang"),
        text="对总分有异议",
        raised_by=world.branch.user("zhang"),
    )
    assert close_publicity_windows_task.delay().get() == {"finalized": [], "waiting": [cycle.pk]}

    Objection.objects.filter(pk=objection.pk).update(state=Objection.State.ACCEPTED)

    assert close_publicity_windows_task.delay().get() == {"finalized": [cycle.pk], "waiting": []}
    assert fresh(cycle).state == State.FINALIZED
    assert PeriodLock.objects.filter(locked_by=None).count() == 1


# --- reminders ----------------------------------------------------------------------------------


def test_self_assessment_reminders_go_to_members_with_a_login_who_have_not_written(
    two_branches: World,
) -> None:
    # given: A's deadline in two days, two of its members have written; B's deadline is a
    # week away (too early to remind)
    world = two_branches
    first, second = world.branches
    cycle = drive_to(world, open_cycle(world, first), State.SELF_ASSESSMENT, first)
    deadline = today() + timedelta(days=2)
    reviews.cycle_set_deadline(user=first.secretary, cycle=cycle, deadline=deadline)
    for key in ("zhang", "secretary"):
        reviews.self_assessment_submit(user=first.user(key), cycle=cycle, text="自评")
    later = open_cycle(world, second)
    reviews.cycle_set_deadline(
        user=second.secretary, cycle=later, deadline=today() + timedelta(days=7)
    )

    # when
    sent = remind_self_assessments_task.delay().get()

    # then
    waiting = ["recorder", "commissioner", "committee_member", "li", "sun"]
    assert sent == 5
    reminded = Notification.objects.filter(key=f"self-assessment-{cycle.pk}-{today().isoformat()}")
    assert sorted(reminded.values_list("user__username", flat=True)) == usernames(first, waiting)
    assert {(notice.text, notice.url) for notice in reminded} == {
        (
            f"请在 {deadline.isoformat()} 前提交{label(world)}党员自评。",
            reverse("reviews:self_assessment", kwargs={"pk": cycle.pk}),
        )
    }
    assert Notification.objects.count() == 5
    assert mail.outbox == []  # no EMAIL_URL: in-app only

    # once a day
    assert remind_self_assessments_task.delay().get() == 0
    assert Notification.objects.count() == 5


def test_no_self_assessment_reminders_once_the_stage_is_over(world: World) -> None:
    cycle = drive_to(world, open_cycle(world), State.SELF_ASSESSMENT)
    reviews.cycle_set_deadline(
        user=world.branch.secretary, cycle=cycle, deadline=today() + timedelta(days=1)
    )
    drive_to(world, cycle, State.COMMITTEE_REVIEW)

    assert remind_self_assessments_task.delay().get() == 0
    assert Notification.objects.count() == 0


def test_publicity_reminders_go_out_once_per_window(two_branches: World) -> None:
    # given: A's window is open (its opening notice was not sent: no commit ran), B's ended
    world = two_branches
    first, second = world.branches
    cycle = drive_to(world, open_cycle(world, first), State.PUBLICITY, first)
    ended = drive_to(world, open_cycle(world, second), State.PUBLICITY, second)
    end_window(ended)

    # when
    sent = remind_publicity_task.delay().get()

    # then: every member of A with a login, once
    assert sent == 7
    assert sorted(Notification.objects.values_list("user__username", flat=True)) == usernames(
        first, WITH_LOGIN
    )
    assert set(Notification.objects.values_list("key", "url")) == {
        (
            f"publicity-open-{cycle.pk}-{cycle.publicity_starts_on.isoformat()}",
            reverse("publicity:board", kwargs={"pk": cycle.pk}),
        )
    }
    assert remind_publicity_task.delay().get() == 0
    assert Notification.objects.count() == 7


def test_the_opening_notice_counts_as_the_windows_reminder(world: World, committed) -> None:
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
    with committed():
        reviews.cycle_advance(
            user=world.branch.secretary, cycle=cycle, expected_state=State.GENERAL_MEETING
        )
    assert Notification.objects.count() == 7

    assert remind_publicity_task.delay().get() == 0
    assert Notification.objects.count() == 7


def test_reminders_are_mailed_when_mail_is_configured(world: World, settings) -> None:
    # given: a mail backend (EMAIL_URL set → EMAIL_ENABLED); of the branch's logins only the
    # secretary and 张三 have an e-mail address
    settings.EMAIL_ENABLED = True
    cycle = drive_to(world, open_cycle(world), State.PUBLICITY)

    # when
    sent = remind_publicity_task.delay().get()

    # then: everyone in-app, two by mail
    assert sent == 7
    text = Notification.objects.filter(user=world.branch.secretary).get().text
    url = reverse("publicity:board", kwargs={"pk": cycle.pk})
    assert sorted((message.to, message.subject, message.body) for message in mail.outbox) == sorted(
        (
            [address],
            "党员积分提醒",
            f"{text}\n{url}",
        )
        for address in ("secretary@example.org", "zhangsan@example.org")
    )

    # once per window, mails included
    assert remind_publicity_task.delay().get() == 0
    assert len(mail.outbox) == 2


def test_without_mail_configured_nothing_is_mailed(world: World) -> None:
    from django.conf import settings

    assert settings.EMAIL_ENABLED is False
    drive_to(world, open_cycle(world), State.PUBLICITY)

    assert remind_publicity_task.delay().get() == 7
    assert mail.outbox == []


# --- the annual appraisal weighting -----------------------------------------------------------

WEIGHTS = {
    "points_weight": Decimal("0.400"),
    "democratic_weight": Decimal("0.300"),
    "mass_weight": Decimal("0.300"),
}
RATINGS = {
    "secretary": ("excellent", "excellent"),
    "recorder": ("competent", "basic"),
    "zhang": ("failing", "competent"),
    "commissioner": ("basic", "failing"),
    "committee_member": ("competent", "competent"),
    "li": ("excellent", "competent"),
    "sun": ("competent", "excellent"),
    "wang": ("basic", "basic"),
}


@pytest.fixture
def weighted_world(db) -> World:
    return build_world(**WEIGHTS)


def test_the_annual_total_weights_points_and_appraisals(weighted_world: World, committed) -> None:
    # given: points of the year 150 (secretary), 110 (recorder), 90 (张三), 100 (the others)
    world = weighted_world
    branch = world.branch
    with committed():
        record(world, branch, "secretary", world.rules.lecture)
        record(world, branch, "recorder", world.rules.suggestion)
        record(world, branch, "zhang", world.rules.task, "-10")
    cycle = drive_to(world, open_cycle(world, quarter=0), State.COMMITTEE_REVIEW)
    reviews.committee_meeting_record(
        user=branch.secretary,
        cycle=cycle,
        meeting_date=today(),
        attendees=[branch.member("secretary")],
    )

    # the annual review cannot leave the committee without every member's appraisal
    with pytest.raises(ValidationError) as refused:
        reviews.cycle_advance(
            user=branch.secretary, cycle=cycle, expected_state=State.COMMITTEE_REVIEW
        )
    assert "本年度细则按民主评议和群众评议加权，还有 8 名党员未录入评议等次。" in (
        refused.value.messages
    )

    # when: the committee records the appraisals (each one recomputes its member)
    with committed():
        for key, (democratic, mass) in RATINGS.items():
            reviews.appraisal_record(
                user=branch.secretary,
                cycle=cycle,
                member=branch.member(key),
                democratic=democratic,
                mass=mass,
            )

    # then: annual total = 0.4 × points + 0.3 × democratic + 0.3 × mass, exactly
    assert Appraisal.objects.filter(cycle=cycle).count() == 8
    years = {
        key: PeriodScore.objects.get(member=branch.member(key), year=world.year, quarter=0)
        for key in RATINGS
    }
    for key, (democratic, mass) in RATINGS.items():
        points = years[key].year_to_date_total
        assert years[key].total == (
            Decimal("0.4") * points
            + Decimal("0.3") * Appraisal.SCORES[democratic]
            + Decimal("0.3") * Appraisal.SCORES[mass]
        ), key
    assert {key: (score.year_to_date_total, score.total) for key, score in years.items()} == {
        "secretary": (Decimal("150.00"), Decimal("120.00")),  # 60 + 30 + 30
        "recorder": (Decimal("110.00"), Decimal("86.00")),  # 44 + 24 + 18
        "zhang": (Decimal("90.00"), Decimal("72.00")),  # 36 + 12 + 24
        "commissioner": (Decimal("100.00"), Decimal("70.00")),  # 40 + 18 + 12
        "committee_member": (Decimal("100.00"), Decimal("88.00")),  # 40 + 24 + 24
        "li": (Decimal("100.00"), Decimal("94.00")),  # 40 + 30 + 24
        "sun": (Decimal("100.00"), Decimal("94.00")),  # 40 + 24 + 30
        "wang": (Decimal("100.00"), Decimal("76.00")),  # 40 + 18 + 18
    }
    # the ranks and grades follow the weighted total; the quarters are not weighted
    assert years["secretary"].rank_in_branch == 1
    assert (years["li"].rank_in_branch, years["sun"].rank_in_branch) == (2, 2)
    assert years["commissioner"].rank_in_branch == 8
    assert (years["secretary"].grade, years["recorder"].grade) == ("优秀", "不合格")
    quarter = PeriodScore.objects.get(
        member=branch.member("secretary"), year=world.year, quarter=world.quarter
    )
    assert quarter.total == Decimal("150.00")

    assert stored_totals_mismatches(world.year) == []
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert out.getvalue().strip() == f"台账核对通过：{world.year} 年度的期间积分均与台账一致。"

    # and with every appraisal in, the annual review moves on
    cycle = drive_to(world, cycle, State.GENERAL_MEETING)
    assert cycle.state == State.GENERAL_MEETING


def test_appraisals_belong_to_the_annual_review_only(weighted_world: World) -> None:
    world = weighted_world
    cycle = drive_to(world, open_cycle(world), State.COMMITTEE_REVIEW)

    with pytest.raises(ValidationError) as refused:
        reviews.appraisal_record(
            user=world.branch.secretary,
            cycle=cycle,
            member=world.branch.member("zhang"),
            democratic="excellent",
            mass="excellent",
        )

    assert refused.value.messages == ["评议等次只在年度评议中录入。"]
    assert Appraisal.objects.count() == 0


@pytest.mark.parametrize(("democratic", "mass"), [("great", "excellent"), ("excellent", "")])
def test_an_appraisal_takes_only_the_four_ratings(
    weighted_world: World, democratic: str, mass: str
) -> None:
    world = weighted_world
    cycle = drive_to(world, open_cycle(world, quarter=0), State.COMMITTEE_REVIEW)

    with pytest.raises(ValidationError) as refused:
        reviews.appraisal_record(
            user=world.branch.secretary,
            cycle=cycle,
            member=world.branch.member("zhang"),
            democratic=democratic,
            mass=mass,
        )

    assert refused.value.messages == ["评议等次应为优秀、合格、基本合格或不合格。"]
    assert Appraisal.objects.count() == 0
