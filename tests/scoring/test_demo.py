"""The demo 积分管理实施细则 and the demo ledger that ``seed_demo`` records through the services."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, F
from django.utils import timezone

from config import celery_app
from members.models import Member, Organization, Role
from reviews.models import ReviewCycle
from scoring.demo import build_demo_scheme, demo_scheme_name, seed_demo_ledger, tiny_png
from scoring.evidence import sniff
from scoring.models import (
    Declaration,
    Entry,
    EvidenceFile,
    OutcomeBand,
    PeriodLock,
    PeriodScore,
    Rule,
    RuleCategory,
    Scheme,
    SchemeAdoption,
    VetoVote,
)
from scoring.recompute import counted_points
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

FULL_YEAR = 2020  # a past year: every date of it may be recorded, whatever day the suite runs
CANDIDATES = ["probationary", "development_target", "activist"]

# (code, category, name, kind, min, max, times per quarter, points per year, evidence,
#  self-declarable, applies to)
EXPECTED_RULES = [
    ("B-STUDY-01", "学习教育", "研讨会、微讲堂发言", "bonus", "5.00", "5.00", 3, None, True, True, []),
    ("B-STUDY-02", "学习教育", "主讲微讲堂", "bonus", "50.00", "50.00", 1, None, True, True, []),
    ("B-STUDY-03", "学习教育", "讲党课、作辅导报告", "bonus", "10.00", "20.00", None, "40.00", True, True, []),
    ("B-STUDY-08", "学习教育", "撰写学习心得体会", "bonus", "2.00", "5.00", 2, None, True, True, []),
    ("B-ORG-01", "组织生活", "参加“三会一课”", "bonus", "0.50", "0.50", 6, "4.00", False, False, []),
    ("B-ORG-02", "组织生活", "参加主题党日活动", "bonus", "1.00", "1.00", 3, "6.00", False, False, []),
    ("B-ORG-03", "组织生活", "按时足额交纳党费", "bonus", "0.50", "0.50", 1, None, False, False, []),
    ("B-ORG-04", "组织生活", "按时向党组织汇报思想", "bonus", "2.00", "2.00", 1, None, True, True, CANDIDATES),
    ("B-DUTY-02", "履职尽责", "参加抢险救灾等急难险重任务", "bonus", "10.00", "30.00", None, None, True, True, []),
    ("B-DUTY-04", "履职尽责", "个人获评先进、获得荣誉", "bonus", "10.00", "20.00", None, None, True, True, []),
    ("B-VOL-01", "志愿奉献", "参加志愿服务、公益活动", "bonus", "3.00", "10.00", None, "30.00", True, True, []),
    ("B-VOL-03", "志愿奉献", "结对帮扶困难群众", "bonus", "5.00", "5.00", None, None, True, True, []),
    ("B-INNOV-01", "创新服务", "提出意见建议", "bonus", "10.00", "10.00", None, None, True, True, []),
    ("B-INNOV-02", "创新服务", "意见建议被采纳", "bonus", "20.00", "20.00", None, None, True, False, []),
    ("D-POL-02", "政治立场不坚定", "参加党内政治活动不积极", "deduction", "-10.00", "-5.00", None, None, False, False, []),
    ("D-DISC-01", "纪律规矩不严明", "无故缺席“三会一课”、主题党日", "deduction", "-5.00", "-1.00", None, None, False, False, []),
    ("D-DISC-02", "纪律规矩不严明", "未按时交纳党费", "deduction", "-5.00", "-1.00", None, None, False, False, []),
    ("D-DUTY-01", "工作履职不认真", "未完成支部安排的任务", "deduction", "-10.00", "-5.00", None, None, False, False, []),
    ("D-DUTY-02", "工作履职不认真", "未完成年初理论学习计划", "deduction", "-5.00", "-5.00", None, None, False, False, []),
    ("D-DUTY-03", "工作履职不认真", "被通报批评", "deduction", "-150.00", "-150.00", None, None, False, False, []),
    ("V-LAW-01", "违法违纪", "违法违纪", "veto", "0.00", "0.00", None, None, False, False, []),
]  # fmt: skip


@pytest.fixture(autouse=True)
def celery_eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def seed() -> str:
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    return output.getvalue()


def ledger_counts() -> dict[str, int]:
    return {
        "entries": Entry.objects.count(),
        "declarations": Declaration.objects.count(),
        "evidence": EvidenceFile.objects.count(),
        "veto_votes": VetoVote.objects.count(),
        "schemes": Scheme.objects.count(),
        "rules": Rule.objects.count(),
        "adoptions": SchemeAdoption.objects.count(),
        "period_scores": PeriodScore.objects.count(),
    }


def rule_rows(scheme: Scheme) -> list[tuple]:
    return [
        (
            rule.code,
            rule.category.name,
            rule.name,
            rule.kind,
            str(rule.points_min),
            str(rule.points_max),
            rule.max_times_per_quarter,
            None if rule.max_points_per_year is None else str(rule.max_points_per_year),
            rule.evidence_required,
            rule.self_declarable,
            rule.applies_to,
        )
        for rule in scheme.rules.select_related("category").order_by("position")
    ]


def test_build_demo_scheme_is_the_five_star_rule_book_of_the_seeds():
    # given
    committee = OrganizationFactory(name="测试党委")

    # when
    scheme = build_demo_scheme(committee, 2031)
    again = build_demo_scheme(committee, 2031)

    # then
    assert again.pk == scheme.pk
    assert Scheme.objects.count() == 1
    assert scheme.name == "城关镇党委党员积分管理实施细则（2031）" == demo_scheme_name(2031)
    assert (scheme.owner, scheme.year, scheme.base_score) == (committee, 2031, Decimal("100.00"))
    assert scheme.excellent_share_cap == Decimal("0.400")
    assert (scheme.top_n_flag, scheme.bottom_n_flag) == (5, 3)
    assert scheme.veto_effect == Scheme.VetoEffect.ZERO_AND_FAIL
    assert list(
        scheme.bands.order_by("dimension", F("min_total").desc(nulls_last=True)).values_list(
            "dimension", "label", "min_total"
        )
    ) == [
        (OutcomeBand.Dimension.GRADE, "优秀", Decimal("120.00")),
        (OutcomeBand.Dimension.GRADE, "合格", Decimal("90.00")),
        (OutcomeBand.Dimension.GRADE, "不合格", None),
        (OutcomeBand.Dimension.STAR, "五星", Decimal("120.00")),
        (OutcomeBand.Dimension.STAR, "四星", Decimal("110.00")),
        (OutcomeBand.Dimension.STAR, "三星", Decimal("100.00")),
        (OutcomeBand.Dimension.STAR, "二星", Decimal("90.00")),
        (OutcomeBand.Dimension.STAR, "一星", None),
    ]
    assert list(RuleCategory.objects.filter(scheme=scheme).values_list("name", flat=True)) == [
        "学习教育",
        "组织生活",
        "履职尽责",
        "志愿奉献",
        "创新服务",
        "政治立场不坚定",
        "纪律规矩不严明",
        "工作履职不认真",
        "违法违纪",
    ]
    assert rule_rows(scheme) == EXPECTED_RULES
    assert set(scheme.rules.values_list("version", "is_current")) == {(1, True)}


def test_build_demo_scheme_builds_one_scheme_per_year_and_owner():
    # given
    committee = OrganizationFactory(name="测试党委")
    other = OrganizationFactory(name="另一党委")

    # when
    schemes = [
        build_demo_scheme(committee, 2030),
        build_demo_scheme(committee, 2031),
        build_demo_scheme(other, 2031),
    ]

    # then
    assert len({scheme.pk for scheme in schemes}) == 3
    assert [scheme.name for scheme in schemes] == [
        "城关镇党委党员积分管理实施细则（2030）",
        "城关镇党委党员积分管理实施细则（2031）",
        "城关镇党委党员积分管理实施细则（2031）",
    ]
    assert Rule.objects.count() == 3 * 21


def test_tiny_png_is_a_png_the_evidence_check_accepts():
    assert sniff(tiny_png()[:16]) == "image/png"


def test_seed_demo_twice_adds_nothing_the_second_time():
    # given
    seed()
    first = ledger_counts()

    # when
    output = seed()

    # then
    assert ledger_counts() == first
    today = timezone.localdate()
    assert f"演示积分 {today.year - 1} 年度：已有演示积分数据，未新增。" in output
    assert f"演示积分 {today.year} 年度：已有演示积分数据，未新增。" in output
    assert first["schemes"] == 2
    assert first["rules"] == 2 * 21
    assert first["adoptions"] == 2
    assert first["veto_votes"] == 1
    assert first["evidence"] == first["declarations"]
    assert first["period_scores"] == 2 * 5 * 80  # two years, five periods, the whole roster


def test_seed_demo_finalizes_past_reviews_and_opens_the_current_quarter():
    # given
    seed()
    today = timezone.localdate()
    quarter = (today.month - 1) // 3 + 1
    states = Counter(ReviewCycle.objects.values_list("state", flat=True))

    # when
    seed()

    # then: per branch, last year's four quarters and year plus this year's past quarters
    # are finalized and locked; the current quarter is at self-assessment
    finalized = 5 * (5 + quarter - 1)
    assert states == {"finalized": finalized, "self_assessment": 5}
    assert Counter(ReviewCycle.objects.values_list("state", flat=True)) == states
    assert PeriodLock.objects.count() == finalized
    assert ReviewCycle.objects.get(
        organization__name="机关第一党支部", year=today.year, quarter=quarter
    ).self_assessment_deadline == today + timedelta(days=7)


def test_seed_demo_adopts_the_demo_scheme_on_the_committee_for_last_year_and_this_year():
    # when
    seed()

    # then
    today = timezone.localdate()
    committee = Organization.objects.get(name="城关镇党委")
    assert list(
        SchemeAdoption.objects.order_by("year").values_list(
            "organization__name", "year", "scheme__name"
        )
    ) == [
        ("城关镇党委", today.year - 1, f"城关镇党委党员积分管理实施细则（{today.year - 1}）"),
        ("城关镇党委", today.year, f"城关镇党委党员积分管理实施细则（{today.year}）"),
    ]
    assert set(Entry.objects.values_list("scheme__owner", flat=True)) == {committee.pk}
    assert Entry.objects.filter(occurred_on__gt=today).count() == 0
    assert Declaration.objects.filter(occurred_on__gt=today).count() == 0
    assert Entry.objects.filter(year=today.year - 1).count() > 0
    assert Entry.objects.filter(year=today.year, occurred_on__lte=today).count() > 0


def test_seed_demo_has_declarations_in_every_state_declared_by_members_and_decided_by_secretaries():
    # when
    seed()

    # then
    declarations = Declaration.objects.select_related("member__organization", "rule")
    assert {d.status for d in declarations} == {"pending", "approved", "rejected"}
    assert {d.declared_by.username for d in declarations} == {
        "dangyuan1",
        "dangyuan1b",
        "dangyuan2",
        "dangyuan2b",
    }
    for declaration in declarations:
        assert declaration.member.user_id == declaration.declared_by_id
        assert declaration.rule.self_declarable
        assert declaration.evidence.count() == 1
        evidence = declaration.evidence.get()
        assert evidence.content_type == "image/png"
        with evidence.file.open("rb") as handle:
            assert handle.read() == tiny_png()
        if declaration.status == Declaration.Status.PENDING:
            assert declaration.decided_by is None
            continue
        assert declaration.decided_by_id != declaration.declared_by_id
        assert Role.objects.filter(
            user=declaration.decided_by,
            organization=declaration.member.organization,
            post=Role.Post.SECRETARY,
        ).exists()
    rejected = declarations.filter(status="rejected")
    assert rejected.filter(decision_reason="").count() == 0
    assert Entry.objects.filter(declaration__in=rejected).count() == 0
    approved = declarations.filter(status="approved")
    assert Entry.objects.filter(declaration__in=approved).count() == approved.count()
    adjusted = [
        d for d in approved if d.entry.points != d.points and d.decision_reason and d.entry.reason
    ]
    assert len(adjusted) >= 2  # one a year, at least, in each of the two branches with logins
    assert {(d.rule.code, d.entry.points) for d in adjusted} == {("B-VOL-01", Decimal("5.00"))}
    # Pending ones are the latest: dated in the quarter that is still open.
    today = timezone.localdate()
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    pending = declarations.filter(status="pending")
    assert pending.count() >= 4
    assert pending.filter(occurred_on__lt=quarter_start).count() == 0


def test_seed_demo_has_one_notified_criticism_one_confirmed_veto_and_one_reversal():
    # when
    seed()

    # then
    last_year = timezone.localdate().year - 1
    criticism = Entry.objects.get(points=Decimal("-150"))
    assert (criticism.rule.code, criticism.kind, criticism.year) == (
        "D-DUTY-03",
        "deduction",
        last_year,
    )
    assert criticism.member.organization.name == "机关第一党支部"
    veto = Entry.objects.get(kind=Entry.Kind.VETO)
    assert (veto.rule.code, veto.points, veto.year) == ("V-LAW-01", Decimal("0.00"), last_year)
    assert veto.member.organization.name == "机关第二党支部"
    assert veto.member_id != criticism.member_id
    vote = VetoVote.objects.get()
    assert vote.entry_id == veto.pk
    assert (
        vote.voting_members,
        vote.attendance,
        vote.votes_for,
        vote.votes_against,
        vote.votes_abstain,
    ) == (12, 11, 10, 0, 1)
    assert vote.votes_for * 2 > vote.attendance
    assert vote.meeting_date == date(last_year, 9, 26)
    vetoed_year = PeriodScore.objects.get(member=veto.member, year=last_year, quarter=0)
    assert (vetoed_year.total, vetoed_year.is_vetoed, vetoed_year.grade) == (
        Decimal("0.00"),
        True,
        "不合格",
    )
    reversal = Entry.objects.get(reverses__isnull=False)
    assert reversal.points == -reversal.reverses.points == Decimal("-8.00")
    assert reversal.reason.startswith("误记：")
    assert reversal.recorded_by.username == "shuji3"


def test_seed_demo_records_a_capped_rule_past_its_cap():
    # when
    seed()

    # then
    last_year = timezone.localdate().year - 1
    speeches = Counter(
        Entry.objects.filter(year=last_year, rule__code="B-STUDY-01").values_list(
            "member_id", "quarter"
        )
    )
    past_cap = [key for key, times in speeches.items() if times > 3]
    assert past_cap
    member_id, quarter = past_cap[0]
    counted = counted_points([member_id], last_year)
    entries = Entry.objects.filter(
        member_id=member_id, year=last_year, quarter=quarter, rule__code="B-STUDY-01"
    ).order_by("occurred_on", "id")
    assert [counted[entry.pk] for entry in entries] == [Decimal("5.00")] * 3 + [Decimal("0.00")] * (
        entries.count() - 3
    )
    quarter_entries = Entry.objects.filter(
        member_id=member_id, year=last_year, quarter=quarter, reverses__isnull=True
    )
    assert PeriodScore.objects.get(
        member_id=member_id, year=last_year, quarter=quarter
    ).uncounted_points == sum(entry.points - counted[entry.pk] for entry in quarter_entries)


def test_seed_demo_ledger_has_about_eight_to_fifteen_entries_per_member_quarter():
    # when
    seed()

    # then
    last_year = timezone.localdate().year - 1
    per_member_quarter = (
        Entry.objects.filter(year=last_year, reverses__isnull=True)
        .exclude(member__status=Member.Status.EXEMPT)
        .values("member", "quarter")
        .annotate(total=Count("id"))
    )
    totals = sorted(row["total"] for row in per_member_quarter)
    assert len(totals) == 4 * 73  # every scored member, every quarter
    median = totals[len(totals) // 2]
    assert 8 <= median <= 15
    with_deduction = (
        Entry.objects.filter(year=last_year, kind=Entry.Kind.DEDUCTION)
        .values("member", "quarter")
        .distinct()
        .count()
    )
    assert 0.12 <= with_deduction / len(totals) <= 0.3


def test_verify_ledger_passes_after_seed_demo():
    # given
    seed()
    output = io.StringIO()

    # when
    call_command("verify_ledger", stdout=output)

    # then
    today = timezone.localdate()
    assert output.getvalue().strip() == (
        f"台账核对通过：{today.year - 1}, {today.year} 年度的期间积分均与台账一致。"
    )


def test_seed_demo_ledger_of_a_fixed_year_is_always_the_same_ledger():
    # given
    seed()
    before = Entry.objects.count()

    # when
    result = seed_demo_ledger(FULL_YEAR, date(FULL_YEAR, 12, 31))
    again = seed_demo_ledger(FULL_YEAR, date(FULL_YEAR, 12, 31))

    # then
    entries = Entry.objects.filter(year=FULL_YEAR)
    assert (result.year, result.skipped) == (FULL_YEAR, "")
    assert result.entries == entries.count() == Entry.objects.count() - before
    assert again.skipped == "已有演示积分数据"
    assert again.entries == 0
    assert (entries.count(), dict(Counter(entries.values_list("kind", flat=True)))) == (
        2614,
        {"bonus": 2563, "deduction": 51},
    )
    assert result.declarations == {
        "approved": 17,
        "adjusted": 2,
        "rejected": 7,
        "pending": 8,  # as of 31 December the fourth quarter is still open
    }
    assert dict(
        Counter(
            Declaration.objects.filter(occurred_on__year=FULL_YEAR).values_list("status", flat=True)
        )
    ) == {"approved": 19, "rejected": 7, "pending": 8}


def test_seed_demo_ledger_records_nothing_after_its_until_day():
    # given
    seed()
    until = date(2021, 5, 15)

    # when
    result = seed_demo_ledger(2021, until)

    # then
    entries = Entry.objects.filter(year=2021)
    assert result.entries == entries.count() > 0
    assert entries.filter(occurred_on__gt=until).count() == 0
    assert entries.filter(quarter=2).count() > 0
    declarations = Declaration.objects.filter(occurred_on__year=2021)
    assert declarations.filter(occurred_on__gt=until).count() == 0
    # The quarter open on ``until`` waits for the branch committee; earlier ones are decided.
    assert set(
        declarations.filter(status="pending").values_list("occurred_on__month", flat=True)
    ) <= {4, 5}
    assert declarations.filter(status="pending").count() == result.declarations["pending"] > 0
    assert declarations.filter(occurred_on__lt=date(2021, 4, 1), status="pending").count() == 0


def test_seed_demo_ledger_leaves_a_year_alone_where_the_committee_adopted_another_scheme():
    # given
    seed()
    committee = Organization.objects.get(name="城关镇党委")
    own = Scheme.objects.create(owner=committee, year=2022, name="自定细则", base_score=60)
    SchemeAdoption.objects.create(organization=committee, year=2022, scheme=own)

    # when
    result = seed_demo_ledger(2022, date(2022, 12, 31))

    # then
    assert result.skipped == "城关镇党委2022年度已采用其他积分细则"
    assert SchemeAdoption.objects.get(organization=committee, year=2022).scheme == own
    assert Entry.objects.filter(year=2022).count() == 0
    assert Scheme.objects.filter(year=2022).get() == own
