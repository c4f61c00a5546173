"""Concurrency on PostgreSQL with real parallel requests: each case sends two HTTP requests
to the live server at the same moment (threads released by a barrier) and checks that
nothing was duplicated, nothing was lost, and the request that lost was told why.

Committed data needs ``transactional_db``, which the append-only ledger allows on PostgreSQL
only: these tests are marked ``postgres`` and run in CI's PostgreSQL pass.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from reviews.models import CycleEvent, ReviewCycle
from scoring import services as scoring
from scoring.models import Declaration, Entry, PeriodScore, RankingState
from scoring.recompute import stored_totals_mismatches
from tests.reviews.conftest import World, build_world, drive_to, fresh, open_cycle, period_start

from .http import Session, hidden_value, post_together

pytestmark = pytest.mark.postgres

REPEATS = 3  # each race is run this many times: a lucky ordering must not pass the test


@pytest.fixture
def world(transactional_db) -> World:
    return build_world()


def signed_in(live_server, username: str) -> Session:
    session = Session(live_server.url)
    session.sign_in(username)
    return session


def test_a_double_submitted_recording_form_records_one_entry(live_server, world: World):
    branch = world.branch
    session = signed_in(live_server, branch.secretary.username)
    record = reverse("scoring:branch_record", args=[branch.organization.pk])
    for attempt in range(REPEATS):
        # given: one rendered form, submitted twice at the same moment (a double click)
        page = session.get(record)
        form = {
            "year": hidden_value(page.text, "year"),
            "form_token": hidden_value(page.text, "form_token"),
            "member": branch.member("zhang").pk,
            "rule": world.rules.suggestion.pk,
            "points": "10",
            "occurred_on": period_start().isoformat(),
            "description": f"提出改进建议 {attempt}",
        }

        # when
        answers = post_together((session, record, form), (session, record, form))

        # then: one entry; one request redirected to the ledger, the other told it was saved
        assert Entry.objects.filter(form_token=form["form_token"]).count() == 1
        assert sorted(answer.status for answer in answers) == [302, 422]
        loser = next(answer for answer in answers if answer.status == 422)
        assert "这张表单已经提交过，记录已保存，请勿重复提交。" in loser.text
    assert Entry.objects.filter(member=branch.member("zhang")).count() == REPEATS


def test_two_approvals_of_one_declaration_record_it_once(live_server, world: World):
    branch = world.branch
    secretary = signed_in(live_server, branch.secretary.username)
    committee_member = signed_in(live_server, branch.committee_member.username)
    for attempt in range(REPEATS):
        # given: a pending declaration, approved by two branch committee members at once
        declaration = scoring.declaration_submit(
            user=branch.user("zhang"),
            member=branch.member("zhang"),
            rule=world.rules.suggestion,
            points=None,
            occurred_on=period_start(),
            description=f"关于支部活动的建议 {attempt}",
            files=[],
        )
        decide = reverse(
            "scoring:branch_declaration_decide", args=[branch.organization.pk, declaration.pk]
        )
        approve = {"decision": "approve", "points": "10", "reason": ""}

        # when
        answers = post_together((secretary, decide, approve), (committee_member, decide, approve))

        # then: one entry from the declaration, approved; the other reviewer told why not
        assert Entry.objects.filter(declaration=declaration).count() == 1
        assert Declaration.objects.get(pk=declaration.pk).status == Declaration.Status.APPROVED
        assert sorted(answer.status for answer in answers) == [302, 422]
        loser = next(answer for answer in answers if answer.status == 422)
        approved = Declaration.Status.APPROVED.label
        assert f"这条申报已经{approved}，不能重复审核。" in loser.text


def test_two_recomputes_of_one_period_leave_the_totals_right(live_server, world: World):
    # given: a ledger with entries for three members
    branch = world.branch
    for key, rule in (("zhang", world.rules.lecture), ("li", world.rules.suggestion)):
        scoring.entry_record(
            user=branch.secretary,
            member=branch.member(key),
            rule=rule,
            points=None,
            occurred_on=period_start(),
            description="测试记录",
        )
    session = signed_in(live_server, branch.secretary.username)
    recompute = reverse("scoring:branch_recompute", args=[branch.organization.pk])
    state = RankingState.objects.filter(committee=world.committee, year=world.year).first()
    before = state.recompute_count if state else 0
    rows_before = PeriodScore.objects.filter(year=world.year).count()

    # when: two recomputes of the same year at the same moment
    answers = post_together(
        (session, recompute, {"year": world.year}), (session, recompute, {"year": world.year})
    )

    # then: both ran, one after the other, and the totals equal the ledger's
    assert [answer.status for answer in answers] == [302, 302]
    state = RankingState.objects.get(committee=world.committee, year=world.year)
    assert state.recompute_count == before + 2
    assert stored_totals_mismatches(world.year, world.committee) == []
    assert PeriodScore.objects.filter(year=world.year).count() == rows_before
    zhang = PeriodScore.objects.get(member=branch.member("zhang"), year=world.year, quarter=0)
    assert zhang.total == 150


def test_two_transitions_of_one_cycle_move_it_one_step(live_server, world: World):
    branch = world.branch
    # Two tabs of the secretary, each showing the cycle in the same state.
    first = signed_in(live_server, branch.secretary.username)
    second = signed_in(live_server, branch.secretary.username)
    cycle = drive_to(world, open_cycle(world), ReviewCycle.State.SELF_ASSESSMENT)
    advance = reverse("reviews:cycle_advance", args=[cycle.pk])
    events = CycleEvent.objects.filter(cycle=cycle).count()
    form = {"expected_state": ReviewCycle.State.SELF_ASSESSMENT, "note": ""}

    # when
    answers = post_together((first, advance, form), (second, advance, form))

    # then: one step forward, one event on the timeline, the other tab told why not
    assert fresh(cycle).state == ReviewCycle.State.COMMITTEE_REVIEW
    assert CycleEvent.objects.filter(cycle=cycle).count() == events + 1
    assert sorted(answer.status for answer in answers) == [302, 422]
    loser = next(answer for answer in answers if answer.status == 422)
    assert "该评议已由他人推进到“支委初评”，您的操作没有执行，请刷新页面查看。" in loser.text
