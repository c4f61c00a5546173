"""Every free text a user can enter is rendered escaped: a member's name, an entry's
description, a self-assessment and an objection carrying script payloads appear on every
page that shows them as text, never as markup."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from members.models import Member
from publicity import services as publicity
from reviews import services as reviews
from reviews.models import ReviewCycle
from scoring import recompute
from scoring import services as scoring
from tests.reviews.conftest import World, build_world, drive_to, open_cycle, period_start

State = ReviewCycle.State
NAME = '<script>alert("name")</script>'
DESCRIPTION = '"><img src=x onerror=alert("description")>'
ASSESSMENT = "<svg onload=alert('assessment')>\n第二行"
OBJECTION = "</textarea><script>alert('objection')</script>"
PAYLOADS = (NAME, DESCRIPTION, ASSESSMENT.splitlines()[0], OBJECTION)


@pytest.fixture
def hostile(db) -> tuple[World, ReviewCycle]:
    world = build_world()
    branch = world.branch
    Member.objects.filter(pk=branch.member("li").pk).update(name=NAME)
    for key in ("zhang", "li"):
        scoring.entry_record(
            user=branch.secretary,
            member=branch.member(key),
            rule=world.rules.task,
            points=Decimal("-2"),
            occurred_on=period_start(),
            description=DESCRIPTION,
        )
    recompute.recompute_organization(branch.organization, world.year)
    cycle = drive_to(world, open_cycle(world), State.SELF_ASSESSMENT)
    reviews.self_assessment_submit(user=branch.user("zhang"), cycle=cycle, text=ASSESSMENT)
    cycle = drive_to(world, cycle, State.PUBLICITY)
    publicity.objection_raise(user=branch.user("zhang"), cycle=cycle, text=OBJECTION)
    return world, cycle


def pages(world: World, cycle: ReviewCycle) -> dict[str, tuple[str, str, list[str]]]:
    """page → (who looks, URL, the payloads it shows)."""
    branch = world.branch
    pk = branch.organization.pk
    li = branch.member("li").pk
    everything_but_objection = [NAME, DESCRIPTION]
    return {
        "bulk record": ("secretary", reverse("scoring:branch_record_bulk", args=[pk]), [NAME]),
        "record": ("secretary", reverse("scoring:branch_record", args=[pk]), [NAME]),
        "entries": (
            "secretary",
            reverse("scoring:branch_entries", args=[pk]),
            everything_but_objection,
        ),
        "quarter table": ("secretary", reverse("scoring:branch_table", args=[pk]), [NAME]),
        "roster": ("secretary", reverse("members:roster", args=[pk]), [NAME]),
        "member detail": ("secretary", reverse("members:member_detail", args=[li]), [NAME]),
        "committee review": (
            "secretary",
            reverse("reviews:committee_review", args=[cycle.pk]),
            [NAME, ASSESSMENT.splitlines()[0]],
        ),
        "self-assessment": (
            "zhang",
            reverse("reviews:self_assessment", args=[cycle.pk]),
            [ASSESSMENT.splitlines()[0]],
        ),
        "publicity board": (
            "zhang",
            reverse("publicity:board", args=[cycle.pk]),
            [NAME, DESCRIPTION],
        ),
        "objections": ("secretary", reverse("publicity:objections", args=[cycle.pk]), [OBJECTION]),
        "my points": ("zhang", reverse("scoring:my_points"), [DESCRIPTION]),
    }


PAGE_NAMES = [
    "bulk record",
    "record",
    "entries",
    "quarter table",
    "roster",
    "member detail",
    "committee review",
    "self-assessment",
    "publicity board",
    "objections",
    "my points",
]


@pytest.mark.parametrize("page", PAGE_NAMES)
def test_script_payloads_are_rendered_as_text(hostile, page: str):
    world, cycle = hostile
    who, url, shown = pages(world, cycle)[page]
    user = world.branch.user(who)
    client = Client()
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    for payload in shown:
        assert escape(payload) in html, f"{page} does not show {payload!r}"
    for payload in PAYLOADS:
        assert payload not in html, f"{page} renders {payload!r} as markup"
