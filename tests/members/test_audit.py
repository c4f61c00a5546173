"""The audit history 操作记录: django-simple-history rows written by the real services and
pages, the ledger merged into the same timeline, and who may read which organization's."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from members.models import Member, Organization, Role
from members.services import organization_add, role_assign
from publicity import services as publicity
from publicity.models import Objection
from reviews import services as reviews
from reviews.models import CommitteeMeeting, GeneralMeeting, ReviewCycle, SelfAssessment
from scoring import services as scoring
from scoring.models import (
    Declaration,
    OutcomeBand,
    PeriodLock,
    Rule,
    RuleCategory,
    Scheme,
    SchemeAdoption,
)
from scoring.schemes import rule_revise
from tests.factories import UserFactory
from tests.reviews.conftest import (
    World,
    build_world,
    drive_to,
    fresh,
    open_cycle,
    period_start,
    record,
    today,
)

AUDIT = reverse("members:audit")


@pytest.fixture
def world(db) -> World:
    """A committee with its staff, two branches (第一党支部 = A, 第二党支部 = B)."""
    return build_world(branch_count=2)


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def types(model, **lookup) -> list[str]:
    return list(
        model.history.filter(**lookup)
        .order_by("history_date", "history_id")
        .values_list("history_type", flat=True)
    )


def page_rows(response) -> list[tuple[str, str, str, str, list[str]]]:
    """(actor, kind, label, change, [field：old → new…]) of each row of the audit table."""
    html = response.content.decode()
    rows = []
    for row in re.findall(r'<tr data-testid="audit-row">(.*?)</tr>', html, re.S):
        actor = re.search(r'data-testid="audit-actor">(.*?)</td>', row, re.S).group(1)
        kind = re.search(r'class="badge[^"]*">(.*?)</span>', row, re.S).group(1)
        label = re.search(r'data-testid="audit-label">(.*?)</span>', row, re.S).group(1)
        change = re.search(r'data-testid="audit-change">(.*?)</td>', row, re.S).group(1)
        diffs = re.findall(r'data-testid="audit-diff">(.*?)</li>', row, re.S)
        rows.append((unescape(actor), unescape(kind), unescape(label), change, diffs))
    return rows


def admin_edit_member(client: Client, member: Member, **changes) -> None:
    data = {
        "organization": member.organization_id,
        "user": member.user_id or "",
        "name": member.name,
        "gender": member.gender,
        "phone": member.phone,
        "birth_date": "",
        "joined_on": "",
        "category": member.category,
        "status": member.status,
        "exempt_reason": member.exempt_reason,
    }
    if member.is_cadre:
        data["is_cadre"] = "on"
    data.update(changes)
    response = client.post(reverse("admin:members_member_change", args=[member.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]


# --- history rows through the real services and pages ---------------------------------------


def test_every_registered_model_keeps_its_history_through_the_services(world: World) -> None:
    branch = world.branch
    # Built by the services above: organizations, members, roles, scheme with bands,
    # categories and rules, the adoption — each one history row of its creation.
    assert types(Organization, id=branch.organization.pk) == ["+"]
    assert types(Member, id=branch.member("zhang").pk) == ["+"]
    assert types(Role, user=branch.secretary) == ["+"]
    assert types(Scheme, id=world.scheme.pk) == ["+"]
    assert types(OutcomeBand, scheme_id=world.scheme.pk) == ["+"] * 8  # 5 stars, 3 grades
    assert types(RuleCategory, scheme_id=world.scheme.pk) == ["+"] * 4
    assert types(SchemeAdoption, scheme_id=world.scheme.pk) == ["+"]

    # A rule nobody used is revised in place; one in use becomes a new version.
    rule_revise(rule=world.rules.lecture, name="讲专题党课")
    assert types(Rule, id=world.rules.lecture.pk) == ["+", "~"]
    record(world, branch, "zhang", world.rules.adopted)
    revised = rule_revise(rule=Rule.objects.get(pk=world.rules.adopted.pk), name="建议被党委采纳")
    # The old version is retired (is_current off) by a save of its own: a row for that too.
    assert types(Rule, id=world.rules.adopted.pk) == ["+", "~"]
    retired = Rule.history.filter(id=world.rules.adopted.pk).order_by("history_id").last()
    assert (retired.is_current, retired.version) == (False, 1)
    assert types(Rule, id=revised.pk) == ["+"]
    # Each revision bumps the scheme's version, and that is in the scheme's history.
    assert list(
        Scheme.history.filter(id=world.scheme.pk)
        .order_by("history_id")
        .values_list("version", flat=True)
    ) == [1, 2, 3]
    assert (revised.code, revised.version) == ("B04", 2)

    # A declaration, then its approval.
    declaration = scoring.declaration_submit(
        user=branch.user("zhang"),
        member=branch.member("zhang"),
        rule=world.rules.suggestion,
        occurred_on=period_start(),
        description="提出改进学习制度的建议",
    )
    scoring.declaration_approve(user=branch.secretary, declaration=declaration)
    assert types(Declaration, id=declaration.pk) == ["+", "~"]
    approved = Declaration.history.filter(id=declaration.pk).order_by("history_id").last()
    assert (approved.status, approved.decided_by_id) == ("approved", branch.secretary.pk)

    # A role assigned later.
    newcomer = UserFactory(username="newcomer")
    role_assign(user=newcomer, organization=branch.organization, post=Role.Post.RECORDER)
    assert types(Role, user=newcomer) == ["+"]

    # A review cycle through publicity, with its self-assessment and meetings, an objection
    # raised and rechecked, then finalized (which locks the period).
    cycle = open_cycle(world)
    reviews.cycle_set_deadline(user=branch.secretary, cycle=cycle, deadline=today())
    reviews.cycle_advance(user=branch.secretary, cycle=fresh(cycle), expected_state="open")
    reviews.self_assessment_submit(user=branch.user("zhang"), cycle=fresh(cycle), text="按时学习")
    cycle = drive_to(world, cycle, ReviewCycle.State.PUBLICITY)
    objection = publicity.objection_raise(
        user=branch.user("zhang"), cycle=cycle, text="讲微党课的分数漏记了"
    )
    publicity.objection_recheck(
        user=branch.recorder, objection=objection, answer="经核对无误", uphold=False
    )
    publicity.objection_accept(user=branch.user("zhang"), objection=objection)
    cycle = drive_to(world, cycle, ReviewCycle.State.FINALIZED)

    assert types(ReviewCycle, id=cycle.pk) == ["+", "~", "~", "~", "~", "~", "~"]
    assert list(
        ReviewCycle.history.filter(id=cycle.pk)
        .order_by("history_id")
        .values_list("state", flat=True)
    ) == [
        "open",
        "open",  # the self-assessment deadline
        "self_assessment",
        "committee_review",
        "general_meeting",
        "publicity",
        "finalized",
    ]
    assert types(SelfAssessment, cycle_id=cycle.pk) == ["+"]
    assert types(CommitteeMeeting, cycle_id=cycle.pk) == ["+"]
    assert types(GeneralMeeting, cycle_id=cycle.pk) == ["+"]
    assert types(Objection, id=objection.pk) == ["+", "~", "~"]
    assert list(
        Objection.history.filter(id=objection.pk)
        .order_by("history_id")
        .values_list("state", flat=True)
    ) == ["raised", "answered", "accepted"]
    assert types(PeriodLock, organization=branch.organization) == ["+"]
    finalized = ReviewCycle.history.filter(id=cycle.pk).order_by("history_id").last()
    assert finalized.finalized_at is not None
    assert finalized.reported_at == finalized.finalized_at


def test_a_cycle_transition_writes_a_readable_history_row(world: World) -> None:
    """ReviewCycle.state is a protected FSMField: its history rows are written and read back."""
    branch = world.branch
    cycle = open_cycle(world)
    reviews.cycle_set_deadline(user=branch.secretary, cycle=cycle, deadline=today())
    reviews.cycle_advance(user=branch.secretary, cycle=fresh(cycle), expected_state="open")

    first, deadline, second = ReviewCycle.history.filter(id=cycle.pk).order_by("history_id")
    assert (deadline.state, deadline.self_assessment_deadline) == ("open", today())
    delta = second.diff_against(deadline, included_fields=["state"])
    assert [(c.field, c.old, c.new) for c in delta.changes] == [
        ("state", "open", "self_assessment")
    ]
    assert second.instance.state == "self_assessment"
    assert second.instance.pk == cycle.pk

    response = client_of(branch.commissioner).get(AUDIT, {"kind": "cycle"})
    label = f"第一党支部 {world.year}年第{world.quarter}季度"
    assert page_rows(response) == [
        ("系统任务", "评议", label, "修改", ["状态：记录中 → 党员自评"]),
        ("系统任务", "评议", label, "修改", [f"自评截止日期：（空） → {today().isoformat()}"]),
        ("系统任务", "评议", label, "新增", []),
    ]


def test_a_change_made_through_a_page_records_who_made_it(world: World) -> None:
    branch = world.branch
    cycle = open_cycle(world)
    reviews.cycle_set_deadline(user=branch.secretary, cycle=cycle, deadline=today())

    response = client_of(branch.secretary).post(
        reverse("reviews:cycle_advance", args=[cycle.pk]), {"expected_state": "open", "note": ""}
    )

    assert response.status_code == 302
    latest = ReviewCycle.history.filter(id=cycle.pk).order_by("history_id").last()
    assert (latest.history_type, latest.state, latest.history_user) == (
        "~",
        "self_assessment",
        branch.secretary,
    )
    rows = page_rows(client_of(branch.commissioner).get(AUDIT, {"kind": "cycle"}))
    assert [(actor, change) for actor, _kind, _label, change, _diffs in rows] == [
        ("a_secretary", "修改"),
        ("系统任务", "修改"),  # the deadline, set by the service outside a request
        ("系统任务", "新增"),
    ]


def test_the_page_shows_an_edit_with_old_and_new_values(world: World) -> None:
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    zhang = world.branch.member("zhang")

    admin_edit_member(
        client_of(admin), zhang, name="张三丰", phone="13700000000", category="probationary"
    )

    rows = page_rows(client_of(world.branch.commissioner).get(AUDIT, {"kind": "member"}))
    assert rows[0] == (
        "admin",
        "党员",
        "张三丰",
        "修改",
        [
            "类别：正式党员 → 预备党员",
            "姓名：张三 → 张三丰",
            f"手机号：{zhang.phone} → 13700000000",
        ],
    )
    # Then the creations of A's eight members, by the set-up (no request: 系统任务).
    assert [(row[0], row[3]) for row in rows[1:]] == [("系统任务", "新增")] * 8
    assert sorted(row[2] for row in rows[1:]) == sorted(
        ["张三", "李书记", "王记录", "赵纪检", "钱支委", "李四", "孙七", "王五"]
    )


def test_ledger_entries_and_reversals_are_merged_into_the_timeline(world: World) -> None:
    branch = world.branch
    entry = record(world, branch, "zhang", world.rules.lecture)
    scoring.entry_reverse(user=branch.secretary, entry=entry, reason="重复记录")

    rows = page_rows(client_of(branch.commissioner).get(AUDIT, {"kind": "entry"}))

    assert rows == [
        ("a_secretary", "积分记录", "张三 · B02 讲微党课 -50", "冲销", []),
        ("a_recorder", "积分记录", "张三 · B02 讲微党课 +50", "新增", []),
    ]
    # Unfiltered, the same two rows head the merged timeline (newest first), above the
    # history rows of the set-up.
    merged = page_rows(client_of(branch.commissioner).get(AUDIT))
    assert merged[:2] == rows
    # 2 entries + A's 8 members, 4 roles and the branch itself + the committee's scheme with
    # its 4 categories, 10 rules, 8 bands and 1 adoption.
    assert len(merged) == 2 + 8 + 4 + 1 + 1 + 4 + 10 + 8 + 1
    html = client_of(branch.commissioner).get(AUDIT, {"kind": "entry"}).content.decode()
    notes = re.findall(r'data-testid="audit-note">(.*?)</span>', html)
    assert notes == [
        f"记录人：a_secretary；原因：重复记录；冲销第 {entry.pk} 号记录",
        "记录人：a_recorder",
    ]


# --- who may read what -----------------------------------------------------------------------


def _labels(client: Client, **params) -> set[str]:
    response = client.get(AUDIT, params)
    assert response.status_code == 200
    return {row[2] for row in page_rows(response)}


def test_the_commissioner_sees_only_their_branch(world: World) -> None:
    a, b = world.branches
    record(world, a, "zhang", world.rules.lecture)
    record(world, b, "zhang", world.rules.adopted)
    commissioner = client_of(a.commissioner)

    members = _labels(commissioner, kind="member")
    assert "张三" in members and "张三b" not in members
    assert len(members) == 8
    assert _labels(commissioner, kind="entry") == {"张三 · B02 讲微党课 +50"}
    assert _labels(commissioner, kind="organization") == {"第一党支部"}
    # The committee's scheme applies to the branch: its rules and adoption are shown.
    assert _labels(commissioner, kind="scheme") == {f"{world.year} 五星积分细则"}
    assert len(_labels(commissioner, kind="rule")) == 10
    assert _labels(commissioner, kind="adoption") == {f"测试党委 · {world.year} · 五星积分细则"}
    roles = _labels(commissioner, kind="role")
    assert roles == {
        "a_secretary · 书记 · 第一党支部",
        "a_recorder · 积分记录员 · 第一党支部",
        "a_commissioner · 纪检委员 · 第一党支部",
        "a_committee_member · 支委委员 · 第一党支部",
    }

    # B's organization, and the committee above, are out of reach: 404.
    assert commissioner.get(AUDIT, {"organization": b.organization.pk}).status_code == 404
    assert commissioner.get(AUDIT, {"organization": world.committee.pk}).status_code == 404


def test_committee_staff_see_every_branch_below(world: World) -> None:
    a, b = world.branches
    record(world, a, "zhang", world.rules.lecture)
    record(world, b, "zhang", world.rules.adopted)
    staff = client_of(world.staff)

    assert _labels(staff, kind="entry") == {"张三 · B02 讲微党课 +50", "张三b · B04 建议被采纳 +20"}
    assert len(_labels(staff, kind="member")) == 16
    assert _labels(staff, kind="organization") == {"测试党委", "第一党支部", "第二党支部"}
    assert _labels(staff, kind="entry", organization=b.organization.pk) == {
        "张三b · B04 建议被采纳 +20"
    }


def test_posts_without_the_audit_right_get_404(world: World) -> None:
    branch = world.branch
    nobody = UserFactory(username="nobody")
    for user in (branch.secretary, branch.recorder, branch.user("zhang"), nobody):
        client = client_of(user)
        assert client.get(AUDIT).status_code == 404
        assert client.get(AUDIT, {"organization": branch.organization.pk}).status_code == 404
    assert Client().get(AUDIT).status_code == 302  # to the sign-in page


def test_the_top_bar_links_the_page_for_those_who_may_read_it(world: World) -> None:
    branch = world.branch
    link = 'data-testid="nav-audit"'
    my_points = reverse("scoring:my_points")
    assert link in client_of(branch.commissioner).get(my_points).content.decode()
    assert link in client_of(world.staff).get(AUDIT).content.decode()
    assert link not in client_of(branch.secretary).get(my_points).content.decode()
    assert link not in client_of(branch.user("zhang")).get(my_points).content.decode()


# --- filters, paging and escaping ---------------------------------------------------------


def test_filters_by_kind_date_and_actor(world: World) -> None:
    branch = world.branch
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    admin_edit_member(client_of(admin), branch.member("li"), name="李四海")
    record(world, branch, "zhang", world.rules.lecture)
    # The set-up happened ten days ago.
    long_ago = timezone.now() - timedelta(days=10)
    for model in (Member, Role, Organization):
        model.history.filter(history_user__isnull=True).update(history_date=long_ago)
    commissioner = client_of(branch.commissioner)
    today_text = today().isoformat()

    assert _labels(commissioner, actor="admin") == {"李四海"}
    assert _labels(commissioner, actor="RECORDER") == {"张三 · B02 讲微党课 +50"}
    assert len(_labels(commissioner, actor="系统", kind="member")) == 8
    assert _labels(commissioner, kind="member", date_from=today_text) == {"李四海"}
    assert _labels(commissioner, kind="member", date_to=(today() - timedelta(days=1)).isoformat()) == {
        "张三", "李书记", "王记录", "赵纪检", "钱支委", "李四", "孙七", "王五"
    }  # fmt: skip
    # An invalid filter is dropped and said so; the page still answers.
    response = commissioner.get(AUDIT, {"date_from": "not-a-date", "kind": "nonsense"})
    assert response.status_code == 200
    assert 'data-testid="audit-filter-errors"' in response.content.decode()


def test_pages_of_fifty_newest_first(world: World) -> None:
    branch = world.branch
    # 60 role changes at A: a new recorder each time.
    for number in range(60):
        role_assign(
            user=UserFactory(username=f"helper{number:02d}"),
            organization=branch.organization,
            post=Role.Post.RECORDER,
        )
    commissioner = client_of(branch.commissioner)

    first = page_rows(commissioner.get(AUDIT, {"kind": "role"}))
    second = page_rows(commissioner.get(AUDIT, {"kind": "role", "page": 2}))

    assert len(first) == 50 and len(second) == 14  # 64 roles in A
    assert first[0][2] == "helper59 · 积分记录员 · 第一党支部"
    assert first[49][2] == "helper10 · 积分记录员 · 第一党支部"
    assert second[0][2] == "helper09 · 积分记录员 · 第一党支部"


def test_a_script_in_a_name_is_shown_escaped(world: World) -> None:
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    payload = "<script>alert(1)</script>"
    admin_edit_member(client_of(admin), world.branch.member("wang"), name=payload)

    html = client_of(world.branch.commissioner).get(AUDIT, {"kind": "member"}).content.decode()

    assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "王五 → &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_organization_added_later_is_in_its_parents_history(world: World) -> None:
    added = organization_add(parent=world.committee, name="新党支部", kind="branch")
    assert types(Organization, id=added.pk) == ["+"]
    assert "新党支部" in _labels(client_of(world.staff), kind="organization")
