"""The ledger is a ledger: the database refuses to edit or remove a row, and every service
validates, checks rights and writes nothing when it refuses."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from members.models import Member, Role
from scoring import services
from scoring.models import Declaration, Entry, PeriodLock, PeriodScore, VetoVote
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import RoleFactory, UserFactory

from .conftest import YEAR, World, in_quarter, make_rules

pytestmark = pytest.mark.django_db


def ledger_state() -> tuple:
    """Everything a refused service must leave as it was."""
    return (
        list(Entry.objects.order_by("id").values()),
        list(VetoVote.objects.order_by("id").values()),
        list(Declaration.objects.order_by("id").values()),
        PeriodScore.objects.count(),
    )


@pytest.fixture
def member(world: World) -> Member:
    return world.member("张三")


@pytest.fixture
def entry(world: World, member: Member, record) -> Entry:
    return record(member, world.rules.suggestion, in_quarter(1, day=10))


@pytest.fixture
def vote(world: World, member: Member, veto) -> VetoVote:
    return veto(member, in_quarter(2, day=5)).veto_vote


# --- the database refuses UPDATE and DELETE -------------------------------------------------


def _refused(action: Callable[[], object]) -> IntegrityError:
    """Run ``action`` in a savepoint and return the database's refusal."""
    with pytest.raises(IntegrityError) as refusal, transaction.atomic():
        action()
    return refusal.value


def _raw(sql: str, params: list) -> Callable[[], None]:
    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    return run


def _save_changed(instance, **changes) -> Callable[[], None]:
    def run() -> None:
        for name, value in changes.items():
            setattr(instance, name, value)
        instance.save()

    return run


ENTRY_WRITES: dict[str, Callable[[Entry], Callable[[], object]]] = {
    "raw UPDATE": lambda e: _raw("UPDATE scoring_entry SET points = %s WHERE id = %s", [99, e.pk]),
    "raw DELETE": lambda e: _raw("DELETE FROM scoring_entry WHERE id = %s", [e.pk]),
    "raw DELETE of every row": lambda e: _raw("DELETE FROM scoring_entry", []),
    "queryset update": lambda e: lambda: Entry.objects.filter(pk=e.pk).update(points=Decimal("99")),
    "queryset delete": lambda e: lambda: Entry.objects.filter(pk=e.pk).delete(),
    "instance save": lambda e: _save_changed(e, description="改过的说明"),
    "instance delete": lambda e: e.delete,
}


@pytest.mark.parametrize("write", ENTRY_WRITES.values(), ids=ENTRY_WRITES.keys())
def test_the_database_refuses_to_change_an_entry(entry: Entry, write) -> None:
    # given
    before = list(Entry.objects.filter(pk=entry.pk).values())

    # when
    refusal = _refused(write(Entry.objects.get(pk=entry.pk)))

    # then
    assert "append-only" in str(refusal)
    assert list(Entry.objects.filter(pk=entry.pk).values()) == before
    assert before[0]["points"] == Decimal("10.00")


VOTE_WRITES: dict[str, Callable[[VetoVote], Callable[[], object]]] = {
    "raw UPDATE": lambda v: _raw(
        "UPDATE scoring_vetovote SET votes_for = %s WHERE id = %s", [8, v.pk]
    ),
    "raw DELETE": lambda v: _raw("DELETE FROM scoring_vetovote WHERE id = %s", [v.pk]),
    "queryset update": lambda v: lambda: VetoVote.objects.filter(pk=v.pk).update(votes_against=0),
    "queryset delete": lambda v: lambda: VetoVote.objects.filter(pk=v.pk).delete(),
    "instance save": lambda v: _save_changed(v, votes_for=8),
    "instance delete": lambda v: v.delete,
}


@pytest.mark.parametrize("write", VOTE_WRITES.values(), ids=VOTE_WRITES.keys())
def test_the_database_refuses_to_change_a_veto_vote(vote: VetoVote, write) -> None:
    before = list(VetoVote.objects.filter(pk=vote.pk).values())

    refusal = _refused(write(VetoVote.objects.get(pk=vote.pk)))

    assert "append-only" in str(refusal)
    assert list(VetoVote.objects.filter(pk=vote.pk).values()) == before
    assert (before[0]["votes_for"], before[0]["votes_against"]) == (6, 1)


def test_new_entries_can_still_be_added_after_a_refusal(world: World, entry: Entry, record):
    _refused(ENTRY_WRITES["queryset delete"](entry))

    record(entry.member, world.rules.adopted, in_quarter(1, day=11))

    assert Entry.objects.filter(member=entry.member).count() == 2


# --- what a recorded entry must be ----------------------------------------------------------


def _record(world: World, member: Member, rule, points=None, day: date | None = None) -> Entry:
    return services.entry_record(
        user=world.recorder,
        member=member,
        rule=rule,
        occurred_on=day or in_quarter(1, day=10),
        description="测试事项",
        points=points,
    )


@pytest.mark.parametrize(
    ("rule_key", "points", "code"),
    [
        ("volunteer", Decimal("0"), "zero_points"),
        ("volunteer", Decimal("0.00"), "zero_points"),
        ("task", Decimal("0"), "zero_points"),
        ("volunteer", Decimal("10.01"), "points_out_of_range"),
        ("volunteer", Decimal("0.99"), "points_out_of_range"),
        ("volunteer", Decimal("-5"), "points_out_of_range"),
        ("task", Decimal("-11"), "points_out_of_range"),
        ("task", Decimal("-1"), "points_out_of_range"),
        ("task", Decimal("5"), "points_out_of_range"),
        ("lecture", Decimal("49"), "points_out_of_range"),
        ("volunteer", None, "points_required"),
    ],
)
def test_points_must_be_in_the_rules_range_and_not_zero(
    world: World, member: Member, rule_key: str, points, code: str
) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        _record(world, member, getattr(world.rules, rule_key), points=points)

    assert refusal.value.code == code
    assert ledger_state() == before


@pytest.mark.parametrize("text", ["5.555", "1.001", "3.3333"])
def test_points_with_more_than_two_decimals_are_refused_when_parsed(text: str) -> None:
    with pytest.raises(ValidationError) as refusal:
        services.parse_points(text)

    assert refusal.value.messages == ["分值最多保留两位小数。"]


@pytest.mark.parametrize(
    ("text", "points"),
    [("5", Decimal("5.00")), ("＋5.5", Decimal("5.50")), ("－2.25", Decimal("-2.25"))],
)
def test_points_with_up_to_two_decimals_are_parsed_exactly(text: str, points: Decimal) -> None:
    assert services.parse_points(text) == points


def test_a_service_refuses_points_with_more_than_two_decimals(world: World, member: Member):
    before = ledger_state()

    try:
        _record(world, member, world.rules.volunteer, points=Decimal("5.555"))
    except ValidationError:
        pass
    else:
        raise AssertionError("5.555 points were accepted")

    assert ledger_state() == before


def test_a_future_date_is_refused(world: World, member: Member) -> None:
    before = ledger_state()
    tomorrow = timezone.localdate() + timedelta(days=1)

    with pytest.raises(ValidationError) as refusal:
        _record(world, member, world.rules.suggestion, day=tomorrow)

    assert refusal.value.code == "future_date"
    assert refusal.value.messages == ["发生日期不能晚于今天。"]
    assert ledger_state() == before


def test_today_is_not_in_the_future(world: World, member: Member) -> None:
    # The scheme of the current year is needed to record today.
    this_year = timezone.localdate().year
    scheme = scheme_create_from_preset(
        owner=world.committee, year=this_year, name="本年细则", preset="five_stars_base_100"
    )
    scheme_adopt(organization=world.committee, scheme=scheme)
    rules = make_rules(scheme)

    entry = _record(world, member, rules.suggestion, day=timezone.localdate())

    assert (entry.year, entry.points) == (this_year, Decimal("10"))


@pytest.mark.parametrize(
    ("lock_on", "quarter"),
    [("branch_a", 1), ("general_branch", 1), ("committee", 1), ("branch_a", 0)],
    ids=["the branch's quarter", "a general branch's quarter", "the committee's quarter", "year"],
)
def test_an_entry_in_a_locked_period_is_refused_with_the_exact_message(
    world: World, member: Member, lock_on: str, quarter: int
) -> None:
    # given
    PeriodLock.objects.create(
        organization=world.tree.by_key(lock_on),
        year=YEAR,
        quarter=quarter,
        locked_by=world.recorder,
    )
    before = ledger_state()

    # when
    with pytest.raises(ValidationError) as refusal:
        _record(world, member, world.rules.suggestion, day=date(YEAR, 2, 14))

    # then
    assert refusal.value.code == "period_locked"
    assert refusal.value.messages == [
        "2025年第1季度已确认归档并锁定，不能再记入该期间。"
        "如需更正，请记入当前开放的期间，并在说明中注明所更正的记录。"
    ]
    assert ledger_state() == before


def test_a_lock_on_another_quarter_or_branch_does_not_refuse(world: World, member: Member):
    for organization, quarter in ((world.tree.branch_a, 2), (world.tree.branch_b, 1)):
        PeriodLock.objects.create(
            organization=organization, year=YEAR, quarter=quarter, locked_by=world.recorder
        )

    entry = _record(world, member, world.rules.suggestion, day=date(YEAR, 2, 14))

    assert (entry.quarter, entry.points) == (1, Decimal("10"))


@pytest.mark.parametrize(
    ("rule_key", "category", "is_cadre"),
    [
        ("party_only", Member.Category.ACTIVIST, False),
        ("party_only", Member.Category.DEVELOPMENT_TARGET, False),
        ("cadre_only", Member.Category.FULL, False),
    ],
)
def test_a_rule_that_does_not_apply_to_the_member_is_refused(
    world: World, rule_key: str, category: str, is_cadre: bool
) -> None:
    member = world.member("王五", category=category, is_cadre=is_cadre)
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        _record(world, member, getattr(world.rules, rule_key))

    assert refusal.value.code == "rule_not_applicable"
    assert ledger_state() == before


def test_a_transferred_out_member_cannot_be_scored(world: World) -> None:
    member = world.member("转出者", status=Member.Status.TRANSFERRED_OUT)
    before = ledger_state()

    with pytest.raises(ValidationError):
        _record(world, member, world.rules.suggestion)

    assert ledger_state() == before


def test_a_recorded_entry_keeps_rule_and_scheme_versions_and_who(world, member, record):
    entry = record(member, world.rules.suggestion, in_quarter(2, day=3))

    assert (entry.kind, entry.points, entry.year, entry.quarter) == (
        "bonus",
        Decimal("10"),
        2025,
        2,
    )
    assert (entry.rule_version, entry.scheme_id, entry.scheme_version) == (1, world.scheme.pk, 1)
    assert (entry.recorded_by, entry.approved_by, entry.organization) == (
        world.recorder,
        None,
        world.tree.branch_a,
    )


# --- declarations ---------------------------------------------------------------------------


@pytest.fixture
def member_user(member: Member) -> User:
    user = UserFactory(username="zhangsan")
    Member.objects.filter(pk=member.pk).update(user=user)
    member.refresh_from_db()
    return user


@pytest.fixture
def reviewer(world: World) -> User:
    user = UserFactory(username="committee_member_a")
    RoleFactory(user=user, organization=world.tree.branch_a, post=Role.Post.COMMITTEE_MEMBER)
    return user


def _declare(world: World, member: Member, user: User, rule=None, points=None) -> Declaration:
    return services.declaration_submit(
        user=user,
        member=member,
        rule=rule or world.rules.volunteer,
        occurred_on=in_quarter(1, day=20),
        description="社区志愿服务半天",
        points=Decimal("6") if points is None and rule is None else points,
    )


@pytest.mark.parametrize("rule_key", ["criticism", "task", "veto", "lecture"])
def test_deductions_vetoes_and_undeclarable_rules_cannot_be_declared(
    world: World, member: Member, member_user: User, rule_key: str
) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        _declare(world, member, member_user, rule=getattr(world.rules, rule_key))

    assert refusal.value.code == "not_declarable"
    assert ledger_state() == before


def test_a_member_declares_for_themself_only(world, member, member_user) -> None:
    other = world.member("李四")
    before = ledger_state()

    with pytest.raises(PermissionDenied):
        _declare(world, other, member_user)

    assert ledger_state() == before


def test_an_approved_declaration_writes_one_entry(
    world: World, member: Member, member_user: User, reviewer: User, committed
) -> None:
    declaration = _declare(world, member, member_user)

    entry = committed(services.declaration_approve, user=reviewer, declaration=declaration)

    declaration.refresh_from_db()
    assert (declaration.status, declaration.decided_by) == ("approved", reviewer)
    assert (entry.points, entry.recorded_by, entry.approved_by, entry.declaration) == (
        Decimal("6"),
        member_user,
        reviewer,
        declaration,
    )
    assert PeriodScore.objects.get(member=member, year=YEAR, quarter=0).total == Decimal("106")


def test_the_declarer_cannot_approve_their_own_declaration(
    world: World, member: Member, member_user: User
) -> None:
    # given: the member is also on the branch committee
    RoleFactory(user=member_user, organization=world.tree.branch_a, post=Role.Post.COMMITTEE_MEMBER)
    declaration = _declare(world, member, member_user)
    before = ledger_state()

    # when
    with pytest.raises(PermissionDenied):
        services.declaration_approve(user=member_user, declaration=declaration)

    # then
    assert ledger_state() == before
    assert Declaration.objects.get(pk=declaration.pk).status == "pending"


def test_the_member_cannot_approve_a_declaration_made_in_their_name(
    world: World, member: Member, member_user: User, reviewer: User
) -> None:
    # given: a declaration for the member entered by someone else (e.g. before the login
    # was linked), and the member on the branch committee
    RoleFactory(user=member_user, organization=world.tree.branch_a, post=Role.Post.COMMITTEE_MEMBER)
    declaration = Declaration.objects.create(
        member=member,
        rule=world.rules.suggestion,
        points=Decimal("10"),
        occurred_on=in_quarter(1, day=20),
        description="提出建议",
        declared_by=reviewer,
    )
    before = ledger_state()

    for user in (member_user, reviewer):
        with pytest.raises(PermissionDenied):
            services.declaration_approve(user=user, declaration=declaration)
        with pytest.raises(PermissionDenied):
            services.declaration_reject(user=user, declaration=declaration, reason="不符合")

    assert ledger_state() == before
    assert Declaration.objects.get(pk=declaration.pk).status == "pending"


def test_adjusting_a_declaration_needs_a_reason(world, member, member_user, reviewer) -> None:
    declaration = _declare(world, member, member_user)
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.declaration_approve(
            user=reviewer, declaration=declaration, points=Decimal("4"), reason="  "
        )

    assert refusal.value.code == "reason_required"
    assert ledger_state() == before
    assert Declaration.objects.get(pk=declaration.pk).status == "pending"


def test_an_adjustment_outside_the_rules_range_is_refused(world, member, member_user, reviewer):
    declaration = _declare(world, member, member_user)
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.declaration_approve(
            user=reviewer, declaration=declaration, points=Decimal("12"), reason="超出"
        )

    assert refusal.value.code == "points_out_of_range"
    assert ledger_state() == before


def test_an_adjusted_declaration_writes_the_adjusted_points_and_why(
    world, member, member_user, reviewer
) -> None:
    declaration = _declare(world, member, member_user)

    entry = services.declaration_approve(
        user=reviewer, declaration=declaration, points=Decimal("4"), reason="只参加了半天"
    )

    declaration.refresh_from_db()
    assert entry.points == Decimal("4")
    assert entry.reason == "审核调整：申报 +6 分，核定 +4 分。只参加了半天"
    assert (declaration.status, declaration.decision_reason) == ("approved", "只参加了半天")


def test_a_decided_declaration_cannot_be_decided_again(world, member, member_user, reviewer):
    declaration = _declare(world, member, member_user)
    services.declaration_reject(user=reviewer, declaration=declaration, reason="佐证不足")
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.declaration_approve(user=reviewer, declaration=declaration)

    assert refusal.value.code == "already_decided"
    assert ledger_state() == before


# --- reversals ------------------------------------------------------------------------------


def test_a_reversal_cancels_the_entry_and_says_why(world, entry: Entry, reverse) -> None:
    reversal = reverse(entry, in_quarter(3, day=2), reason="重复登记")

    assert (reversal.reverses, reversal.points, reversal.kind) == (entry, Decimal("-10"), "bonus")
    assert (reversal.reason, reversal.year, reversal.quarter) == ("重复登记", YEAR, 3)
    assert Entry.objects.get(pk=entry.pk).points == Decimal("10")


def test_a_second_reversal_is_refused(world: World, entry: Entry, reverse) -> None:
    reverse(entry, in_quarter(2, day=2))
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entry_reverse(
            user=world.recorder, entry=entry, reason="又一次", occurred_on=in_quarter(2, day=3)
        )

    assert refusal.value.code == "already_reversed"
    assert ledger_state() == before


def test_a_reversal_of_a_reversal_is_refused(world: World, entry: Entry, reverse) -> None:
    reversal = reverse(entry, in_quarter(2, day=2))
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entry_reverse(
            user=world.recorder, entry=reversal, reason="撤销冲销", occurred_on=in_quarter(2, day=3)
        )

    assert refusal.value.code == "reverse_reversal"
    assert ledger_state() == before


def test_a_reversal_needs_a_reason(world: World, entry: Entry) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entry_reverse(
            user=world.recorder, entry=entry, reason=" ", occurred_on=in_quarter(2, day=3)
        )

    assert refusal.value.code == "reason_required"
    assert ledger_state() == before


def test_a_reversal_into_a_locked_period_is_refused_and_goes_into_the_open_one(
    world: World, entry: Entry, reverse
) -> None:
    PeriodLock.objects.create(
        organization=world.tree.branch_a, year=YEAR, quarter=1, locked_by=world.recorder
    )
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entry_reverse(
            user=world.recorder, entry=entry, reason="更正", occurred_on=in_quarter(1, day=20)
        )
    assert refusal.value.code == "period_locked"
    assert ledger_state() == before

    reversal = reverse(entry, in_quarter(2, day=1), reason="更正第一季度记录")
    assert (reversal.quarter, reversal.reverses_id) == (2, entry.pk)


def test_a_reversal_cannot_be_dated_in_the_future(world: World, entry: Entry) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entry_reverse(
            user=world.recorder,
            entry=entry,
            reason="更正",
            occurred_on=timezone.localdate() + timedelta(days=1),
        )

    assert refusal.value.code == "future_date"
    assert ledger_state() == before


# --- vetoes ---------------------------------------------------------------------------------


def test_a_veto_cannot_be_recorded_as_a_plain_entry(world: World, member: Member) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        _record(world, member, world.rules.veto)

    assert refusal.value.code == "veto_needs_vote"
    assert ledger_state() == before


def _veto(world: World, member: Member, **counts) -> Entry:
    return services.veto_record(
        user=world.recorder,
        member=member,
        rule=world.rules.veto,
        occurred_on=in_quarter(2, day=5),
        description="受到党纪处分",
        meeting_date=in_quarter(2, day=10),
        **counts,
    )


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ({"voting_members": 12, "attendance": 10, "votes_for": 5}, "vote_failed"),
        ({"voting_members": 10, "attendance": 10, "votes_for": 5}, "vote_failed"),
        ({"voting_members": 9, "attendance": 8, "votes_for": 3}, "vote_failed"),
        ({"voting_members": 9, "attendance": 10, "votes_for": 9}, "vote_invalid"),
        (
            {"voting_members": 9, "attendance": 8, "votes_for": 8, "votes_against": 1},
            "vote_invalid",
        ),
    ],
    ids=["exactly half", "exactly half, all attend", "a minority", "more than invited", "too many"],
)
def test_a_veto_vote_that_does_not_pass_writes_nothing(world, member, counts, code) -> None:
    before = ledger_state()
    counts = {"votes_against": 0, "votes_abstain": 0, **counts}

    with pytest.raises(ValidationError) as refusal:
        _veto(world, member, **counts)

    assert refusal.value.code == code
    assert ledger_state() == before


def test_a_veto_on_a_bonus_rule_is_refused(world: World, member: Member) -> None:
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.veto_record(
            user=world.recorder,
            member=member,
            rule=world.rules.criticism,
            occurred_on=in_quarter(2, day=5),
            description="x",
            meeting_date=in_quarter(2, day=10),
            voting_members=9,
            attendance=9,
            votes_for=9,
            votes_against=0,
            votes_abstain=0,
        )

    assert refusal.value.code == "not_veto"
    assert ledger_state() == before


def test_a_passing_veto_writes_the_entry_and_the_vote(world: World, member: Member) -> None:
    # 6 of 11 attending is more than half
    entry = _veto(
        world,
        member,
        voting_members=12,
        attendance=11,
        votes_for=6,
        votes_against=4,
        votes_abstain=1,
    )

    assert (entry.kind, entry.points, entry.quarter) == ("veto", Decimal("0"), 2)
    assert (entry.recorded_by, entry.approved_by) == (world.recorder, world.recorder)
    assert entry.reason == f"经支部党员大会表决通过（{YEAR}-04-10）"
    vote = VetoVote.objects.get(entry=entry)
    assert (
        vote.meeting_date,
        vote.voting_members,
        vote.attendance,
        vote.votes_for,
        vote.votes_against,
        vote.votes_abstain,
    ) == (date(YEAR, 4, 10), 12, 11, 6, 4, 1)


# --- double submission ----------------------------------------------------------------------


def test_a_form_submitted_twice_writes_one_entry(world: World, member: Member) -> None:
    token = uuid.uuid4()
    arguments = {
        "user": world.recorder,
        "member": member,
        "rule": world.rules.suggestion,
        "occurred_on": in_quarter(1, day=10),
        "description": "提出建议",
        "form_token": token,
    }
    first = services.entry_record(**arguments)

    with pytest.raises(ValidationError) as refusal:
        services.entry_record(**arguments)

    assert refusal.value.code == "duplicate_submission"
    assert list(Entry.objects.values_list("id", flat=True)) == [first.pk]


def test_a_veto_form_submitted_twice_writes_one_entry_and_one_vote(world, member) -> None:
    arguments = {
        "user": world.recorder,
        "member": member,
        "rule": world.rules.veto,
        "occurred_on": in_quarter(2, day=5),
        "description": "受到党纪处分",
        "meeting_date": in_quarter(2, day=10),
        "voting_members": 9,
        "attendance": 8,
        "votes_for": 6,
        "votes_against": 1,
        "votes_abstain": 1,
        "form_token": uuid.uuid4(),
    }
    services.veto_record(**arguments)

    with pytest.raises(ValidationError) as refusal:
        services.veto_record(**arguments)

    assert refusal.value.code == "duplicate_submission"
    assert (Entry.objects.count(), VetoVote.objects.count()) == (1, 1)


def test_a_bulk_form_submitted_twice_writes_its_entries_once(world: World) -> None:
    members = [world.member("甲"), world.member("乙")]
    token = uuid.uuid4()
    arguments = {
        "user": world.recorder,
        "branch": world.tree.branch_a,
        "rule": world.rules.suggestion,
        "members": members,
        "occurred_on": in_quarter(1, day=10),
        "description": "主题党日",
        "form_token": token,
    }
    services.entries_record_bulk(**arguments)

    with pytest.raises(ValidationError) as refusal:
        services.entries_record_bulk(**arguments)

    assert refusal.value.code == "duplicate_submission"
    assert Entry.objects.count() == 2


# --- rights: every service × every post -----------------------------------------------------

POSTS = (
    "secretary",
    "deputy_secretary",
    "organization_commissioner",
    "discipline_commissioner",
    "committee_member",
    "recorder",
    "committee_staff",
    "secretary_of_branch_b",
    "member",
    "no_role",
    "anonymous",
    "superuser",
)
RECORDERS = {"secretary", "deputy_secretary", "organization_commissioner", "recorder", "superuser"}
LEADERS = {"secretary", "deputy_secretary", "superuser"}
BRANCH_COMMITTEE = {
    "secretary",
    "deputy_secretary",
    "organization_commissioner",
    "discipline_commissioner",
    "committee_member",
    "superuser",
}
# service → the posts (of branch A, where the scored member is) that may use it
ALLOWED = {
    "entry_record": RECORDERS,
    "entries_record_bulk": RECORDERS,
    "entries_record_grid": RECORDERS,
    "veto_record": LEADERS,
    "entry_reverse": LEADERS,
    "declaration_submit": {"member"},
    "declaration_approve": BRANCH_COMMITTEE,
    "declaration_reject": BRANCH_COMMITTEE,
}


@pytest.fixture
def people(world: World) -> dict[str, User | AnonymousUser]:
    people: dict[str, User | AnonymousUser] = {"anonymous": AnonymousUser()}
    for post in POSTS[:6]:
        people[post] = UserFactory(username=post)
        RoleFactory(user=people[post], organization=world.tree.branch_a, post=post)
    people["committee_staff"] = UserFactory(username="committee_staff")
    RoleFactory(user=people["committee_staff"], organization=world.committee, post=Role.Post.STAFF)
    people["secretary_of_branch_b"] = UserFactory(username="secretary_b")
    RoleFactory(
        user=people["secretary_of_branch_b"],
        organization=world.tree.branch_b,
        post=Role.Post.SECRETARY,
    )
    people["member"] = UserFactory(username="member")
    people["no_role"] = UserFactory(username="no_role")
    people["superuser"] = UserFactory(username="root", is_superuser=True, is_staff=True)
    return people


def _service_calls(world: World, people: dict) -> dict[str, Callable[[User], object]]:
    scored = world.member("张三", user=people["member"])
    other = world.member("李四")
    existing = services.entry_record(
        user=world.recorder,
        member=other,
        rule=world.rules.suggestion,
        occurred_on=in_quarter(1, day=5),
        description="提出建议",
    )
    pending = services.declaration_submit(
        user=people["member"],
        member=scored,
        rule=world.rules.volunteer,
        occurred_on=in_quarter(1, day=6),
        description="志愿服务",
        points=Decimal("5"),
    )
    day = in_quarter(1, day=15)
    return {
        "entry_record": lambda user: services.entry_record(
            user=user, member=scored, rule=world.rules.adopted, occurred_on=day, description="采纳"
        ),
        "entries_record_bulk": lambda user: services.entries_record_bulk(
            user=user,
            branch=world.tree.branch_a,
            rule=world.rules.suggestion,
            members=[scored, other],
            occurred_on=day,
            description="主题党日",
        ),
        "entries_record_grid": lambda user: services.entries_record_grid(
            user=user,
            branch=world.tree.branch_a,
            cells=[
                services.GridCell(member=scored, rule=world.rules.speech, points=None),
                services.GridCell(member=other, rule=world.rules.task, points=Decimal("-3")),
            ],
            occurred_on=day,
            description="支部会议",
        ),
        "veto_record": lambda user: services.veto_record(
            user=user,
            member=scored,
            rule=world.rules.veto,
            occurred_on=day,
            description="违纪",
            meeting_date=day,
            voting_members=5,
            attendance=5,
            votes_for=5,
            votes_against=0,
            votes_abstain=0,
        ),
        "entry_reverse": lambda user: services.entry_reverse(
            user=user, entry=existing, reason="重复", occurred_on=day
        ),
        "declaration_submit": lambda user: services.declaration_submit(
            user=user,
            member=scored,
            rule=world.rules.suggestion,
            occurred_on=day,
            description="提出建议",
        ),
        "declaration_approve": lambda user: services.declaration_approve(
            user=user, declaration=pending
        ),
        "declaration_reject": lambda user: services.declaration_reject(
            user=user, declaration=pending, reason="佐证不足"
        ),
    }


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("service", ALLOWED.keys())
def test_every_service_refuses_a_user_without_the_right_and_writes_nothing(
    world: World, people: dict, service: str, post: str
) -> None:
    # given
    call = _service_calls(world, people)[service]
    before = ledger_state()

    # when / then
    if post in ALLOWED[service]:
        call(people[post])
        assert ledger_state() != before
    else:
        with pytest.raises(PermissionDenied):
            call(people[post])
        assert ledger_state() == before


def test_a_branch_recorder_cannot_score_another_branchs_member(world: World, people: dict) -> None:
    member_b = world.member("赵六", world.tree.branch_b)
    before = ledger_state()

    with pytest.raises(PermissionDenied):
        services.entry_record(
            user=people["recorder"],
            member=member_b,
            rule=world.rules.suggestion,
            occurred_on=in_quarter(1, day=5),
            description="提出建议",
        )

    assert ledger_state() == before


def test_bulk_recording_refuses_members_of_another_branch(world: World, people: dict) -> None:
    members = [world.member("甲"), world.member("赵六", world.tree.branch_b)]
    before = ledger_state()

    with pytest.raises(PermissionDenied):
        services.entries_record_bulk(
            user=people["recorder"],
            branch=world.tree.branch_a,
            rule=world.rules.suggestion,
            members=members,
            occurred_on=in_quarter(1, day=5),
            description="主题党日",
        )

    assert ledger_state() == before


def test_bulk_recording_skips_members_the_rule_does_not_apply_to(world: World) -> None:
    full = world.member("甲")
    activist = world.member("乙", category=Member.Category.ACTIVIST)

    result = services.entries_record_bulk(
        user=world.recorder,
        branch=world.tree.branch_a,
        rule=world.rules.party_only,
        members=[full, activist],
        occurred_on=in_quarter(1, day=5),
        description="按时缴纳党费",
    )

    assert [entry.member for entry in result.entries] == [full]
    assert [member for member, _reason in result.skipped] == [activist]
    assert Entry.objects.count() == 1


def test_an_invalid_grid_cell_refuses_the_whole_grid(world: World) -> None:
    first, second = world.member("甲"), world.member("乙")
    before = ledger_state()

    with pytest.raises(ValidationError) as refusal:
        services.entries_record_grid(
            user=world.recorder,
            branch=world.tree.branch_a,
            cells=[
                services.GridCell(member=first, rule=world.rules.speech, points=None),
                services.GridCell(member=second, rule=world.rules.task, points=Decimal("-30")),
            ],
            occurred_on=in_quarter(1, day=5),
            description="支部会议",
        )

    # one problem, naming the cell; the valid cell is not written either
    assert refusal.value.messages == [
        "乙 · 未完成支部任务：分值 -30 超出细则项“未完成支部任务”的范围 -10 ~ -2。"
    ]
    assert ledger_state() == before
