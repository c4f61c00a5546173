"""Fixtures of the scoring tests: a committee with branches, a five-star scheme with the
sources' example rules, a recorder who may do everything, and helpers to record through the
services with the on-commit recompute run in-process (eager Celery).

Tests marked ``postgres`` (they need ``transactional_db``: the append-only ledger makes
SQLite's teardown flush fail) and ``worker`` (a real Celery worker on a real broker) are
deselected where their backend is missing; pytest reports them as deselected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from members.models import Member, Organization, Role
from members.services import member_create
from scoring import services
from scoring.models import Entry, PeriodScore, Rule, RuleCategory, Scheme
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import RoleFactory, Tree, UserFactory, build_tree

# A whole past year: no date of it is "in the future", whatever day the suite runs.
YEAR = 2025


def in_quarter(quarter: int, month_in_quarter: int = 1, day: int = 1, year: int = YEAR) -> date:
    return date(year, 3 * (quarter - 1) + month_in_quarter, day)


@dataclass
class Rules:
    speech: Rule  # 研讨发言 +5, at most twice a quarter, self-declarable
    lecture: Rule  # 微党课 +50
    suggestion: Rule  # 提出建议 +10, self-declarable
    adopted: Rule  # 建议被采纳 +20
    volunteer: Rule  # 志愿服务 +1..+10, at most 20 a year, self-declarable
    party_only: Rule  # 缴纳党费 +2, only full and probationary members
    cadre_only: Rule  # 领学 +3, only cadres
    criticism: Rule  # 通报批评 −150
    task: Rule  # 未完成支部任务 −10..−2
    veto: Rule  # 违法违纪 一票否决


def make_rules(scheme: Scheme) -> Rules:
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    service = RuleCategory.objects.create(scheme=scheme, name="志愿奉献", position=2)
    discipline = RuleCategory.objects.create(scheme=scheme, name="纪律规矩不严明", position=3)
    veto = RuleCategory.objects.create(scheme=scheme, name="一票否决", position=4)

    def rule(category, code, name, kind, low, high, **extra) -> Rule:
        return Rule.objects.create(
            scheme=scheme,
            category=category,
            code=code,
            name=name,
            kind=kind,
            points_min=Decimal(low),
            points_max=Decimal(high),
            **extra,
        )

    bonus, deduction = Rule.Kind.BONUS, Rule.Kind.DEDUCTION
    return Rules(
        speech=rule(
            study, "B01", "研讨发言", bonus, "5", "5", max_times_per_quarter=2, self_declarable=True
        ),
        lecture=rule(study, "B02", "讲微党课", bonus, "50", "50"),
        suggestion=rule(study, "B03", "提出建议", bonus, "10", "10", self_declarable=True),
        adopted=rule(study, "B04", "建议被采纳", bonus, "20", "20"),
        volunteer=rule(
            service,
            "B05",
            "志愿服务",
            bonus,
            "1",
            "10",
            max_points_per_year=Decimal("20"),
            self_declarable=True,
        ),
        party_only=rule(
            study, "B06", "按时缴纳党费", bonus, "2", "2", applies_to=["full", "probationary"]
        ),
        cadre_only=rule(study, "B07", "领学", bonus, "3", "3", audience=Rule.Audience.CADRES),
        criticism=rule(discipline, "D01", "通报批评", deduction, "-150", "-150"),
        task=rule(discipline, "D02", "未完成支部任务", deduction, "-10", "-2"),
        veto=rule(veto, "V01", "违法违纪", Rule.Kind.VETO, "0", "0"),
    )


@dataclass
class World:
    """committee → general branch → branches A and B; branch C directly under the committee,
    all on one five-star scheme (base 100) adopted by the committee for ``YEAR``."""

    tree: Tree
    scheme: Scheme
    rules: Rules
    recorder: User  # secretary of the committee: every right on every branch
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def committee(self) -> Organization:
        return self.tree.committee

    def member(
        self,
        name: str,
        branch: Organization | None = None,
        *,
        category: str = Member.Category.FULL,
        **fields,
    ) -> Member:
        self.counter[0] += 1
        if fields.get("status") == Member.Status.EXEMPT:
            fields.setdefault("exempt_reason", "长期患病")
        return member_create(
            organization=branch or self.tree.branch_a,
            name=name,
            phone=f"136{self.counter[0]:08d}",
            category=category,
            **fields,
        )


def build_world(**scheme_fields) -> World:
    tree = build_tree()
    scheme = scheme_create_from_preset(
        owner=tree.committee,
        year=YEAR,
        name="五星积分细则",
        preset="five_stars_base_100",
        **scheme_fields,
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    recorder = UserFactory(username="committee_secretary")
    RoleFactory(user=recorder, organization=tree.committee, post=Role.Post.SECRETARY)
    return World(tree=tree, scheme=scheme, rules=make_rules(scheme), recorder=recorder)


@pytest.fixture
def world(db) -> World:
    # Flags at the very top and bottom only, no excellent share cap: the tests that need
    # other values change the scheme themselves.
    return build_world(top_n_flag=1, bottom_n_flag=1)


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable:
    """``committed(service, **kwargs)``: call a service and run what it enqueued on commit
    (the recompute, eager), as after a real commit."""

    def run(service: Callable, /, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return run


@pytest.fixture
def record(world: World, committed: Callable) -> Callable[..., Entry]:
    """``record(member, rule, day, points=None)``: the recorder records one entry."""

    def run(member: Member, rule: Rule, day: date, points: Decimal | str | None = None) -> Entry:
        return committed(
            services.entry_record,
            user=world.recorder,
            member=member,
            rule=rule,
            occurred_on=day,
            description=f"{rule.name}（{day.isoformat()}）",
            points=Decimal(points) if points is not None else None,
        )

    return run


@pytest.fixture
def veto(world: World, committed: Callable) -> Callable[..., Entry]:
    """``veto(member, day)``: a veto confirmed by 6 of 8 attending (9 with a vote)."""

    def run(member: Member, day: date) -> Entry:
        return committed(
            services.veto_record,
            user=world.recorder,
            member=member,
            rule=world.rules.veto,
            occurred_on=day,
            description="受到党纪处分",
            meeting_date=day,
            voting_members=9,
            attendance=8,
            votes_for=6,
            votes_against=1,
            votes_abstain=1,
        )

    return run


@pytest.fixture
def reverse(world: World, committed: Callable) -> Callable[..., Entry]:
    def run(entry: Entry, day: date, reason: str = "记录有误") -> Entry:
        return committed(
            services.entry_reverse, user=world.recorder, entry=entry, reason=reason, occurred_on=day
        )

    return run


SCORE_FIELDS = (
    "bonus",
    "deduction",
    "net",
    "year_to_date_total",
    "total",
    "uncounted_points",
    "is_vetoed",
    "ranking_group",
    "rank_in_branch",
    "rank_in_committee",
    "star",
    "grade",
    "is_top_flagged",
    "is_bottom_flagged",
)


def scores_of(member: Member, year: int = YEAR) -> dict[int, PeriodScore]:
    """{quarter (0 = the year): PeriodScore} of a member."""
    return {score.quarter: score for score in PeriodScore.objects.filter(member=member, year=year)}


def score_table(year: int = YEAR) -> dict[tuple[int, int], tuple]:
    """Every stored PeriodScore of ``year`` as comparable values (no ids, no timestamps)."""
    return {
        (score.member_id, score.quarter): (
            score.organization_id,
            score.scheme_id,
            score.base_score,
            *(getattr(score, name) for name in SCORE_FIELDS),
        )
        for score in PeriodScore.objects.filter(year=year)
    }
