"""A recorded change marks its branch's totals as waiting for a recompute, in the recording's
own transaction; the recompute that covers the branch takes the mark; while it is there the
pages say the totals are being updated; and the scheduled sweep recomputes whatever the
after-commit task did not (a broker outage, a lost worker)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scoring import services
from scoring.models import PeriodScore, StaleTotals
from scoring.tasks import sweep_stale_totals_task
from tests.factories import UserFactory

from .conftest import YEAR, World, in_quarter

UPDATING = "积分正在更新：刚记录的变动还没有计入下面的合计与排名，稍后刷新即可看到。"


def record_lecture(world: World, member, django_capture_on_commit_callbacks, *, run_tasks: bool):
    with django_capture_on_commit_callbacks(execute=run_tasks):
        return services.entry_record(
            user=world.recorder,
            member=member,
            rule=world.rules.lecture,
            points=None,
            occurred_on=in_quarter(2),
            description="讲微党课",
        )


def total_of(member) -> Decimal:
    return PeriodScore.objects.get(member=member, year=YEAR, quarter=0).total


def marks() -> list[tuple[int, int]]:
    return list(StaleTotals.objects.values_list("organization_id", "year"))


def page(world: World, name: str, *args) -> str:
    client = Client()
    client.force_login(world.recorder)
    return client.get(reverse(name, args=args), {"year": YEAR}).content.decode()


def test_recording_marks_the_branch_and_the_recompute_takes_the_mark(
    world: World, django_capture_on_commit_callbacks
):
    member = world.member("甲")

    record_lecture(world, member, django_capture_on_commit_callbacks, run_tasks=True)

    assert marks() == []
    assert total_of(member) == Decimal("150.00")


def test_a_change_whose_recompute_never_ran_is_shown_as_updating(
    world: World, django_capture_on_commit_callbacks
):
    # given: the after-commit recompute is lost (as when the broker is down)
    member = world.member("甲")
    record_lecture(world, member, django_capture_on_commit_callbacks, run_tasks=False)
    branch = world.tree.branch_a

    # then: the mark is there, and every page with totals says so
    assert marks() == [(branch.pk, YEAR)]
    for name in ("scoring:branch_ledger", "scoring:branch_table", "scoring:branch_entries"):
        assert UPDATING in page(world, name, branch.pk), name
    assert UPDATING not in page(world, "scoring:branch_record", branch.pk)
    assert UPDATING not in page(world, "scoring:branch_ledger", world.tree.branch_b.pk)


def test_the_sweep_recomputes_old_marks_and_leaves_fresh_ones(
    world: World, django_capture_on_commit_callbacks, settings
):
    # given: two branches whose recomputes never ran; A's change is 3 minutes old, B's new
    settings.STALE_TOTALS_GRACE_SECONDS = 120
    first = world.member("甲")
    second = world.member("乙", world.tree.branch_b)
    record_lecture(world, first, django_capture_on_commit_callbacks, run_tasks=False)
    record_lecture(world, second, django_capture_on_commit_callbacks, run_tasks=False)
    StaleTotals.objects.filter(organization=world.tree.branch_a).update(
        requested_at=timezone.now() - timedelta(minutes=3)
    )

    # when
    swept = sweep_stale_totals_task()

    # then: A is recomputed (totals and committee rank) and unmarked; B waits its turn
    assert swept == 1
    assert marks() == [(world.tree.branch_b.pk, YEAR)]
    annual = PeriodScore.objects.get(member=first, year=YEAR, quarter=0)
    assert (annual.total, annual.rank_in_branch, annual.rank_in_committee) == (
        Decimal("150.00"),
        1,
        1,
    )
    assert not PeriodScore.objects.filter(member=second, year=YEAR).exists()
    assert UPDATING not in page(world, "scoring:branch_ledger", world.tree.branch_a.pk)


def test_the_member_page_says_the_totals_are_being_updated_until_they_are(
    world: World, django_capture_on_commit_callbacks, settings
):
    settings.STALE_TOTALS_GRACE_SECONDS = 0
    member = world.member("甲", user=UserFactory(username="jia"))
    client = Client()
    client.force_login(member.user)
    record_lecture(world, member, django_capture_on_commit_callbacks, run_tasks=False)

    assert UPDATING in client.get(reverse("scoring:my_points"), {"year": YEAR}).content.decode()

    sweep_stale_totals_task()

    page = client.get(reverse("scoring:my_points"), {"year": YEAR}).content.decode()
    assert UPDATING not in page
    assert total_of(member) == Decimal("150.00")
