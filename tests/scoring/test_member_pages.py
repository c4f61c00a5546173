"""The member's own pages (phone-first): my points, declaring with evidence, my declarations,
the evidence download — and the growth chart drawn on the server."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config import celery_app
from members.models import Member, Organization, Role
from reviews.models import ReviewCycle
from scoring import services
from scoring.charts import AxisTick, ChartPoint, format_number, line_chart, nice_step, signed
from scoring.models import Declaration, Entry, EvidenceFile, Rule, RuleCategory, Scheme, quarter_of
from scoring.recompute import recompute_members
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import MemberFactory, OrganizationFactory, RoleFactory, Tree, UserFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
# A whole past year: none of its dates is in the future, whatever day the suite runs.
PAST_YEAR = TODAY.year - 1
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PDF = b"%PDF-1.4\n%test\n"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@dataclass
class SchemeRules:
    scheme: Scheme
    speech: Rule  # 研讨发言 +5, at most twice a quarter, self-declarable
    volunteer: Rule  # 志愿服务 +1..+10, at most 20 a year, self-declarable
    suggestion: Rule  # 提出建议 +10, self-declarable, evidence required
    lecture: Rule  # 讲微党课 +50, recorded by the branch only
    criticism: Rule  # 通报批评 −150
    veto: Rule  # 违法违纪 一票否决


def make_scheme(committee: Organization, year: int) -> SchemeRules:
    """A five-star scheme (base 100) with no top/bottom flags, adopted by the committee."""
    scheme = scheme_create_from_preset(
        owner=committee,
        year=year,
        name=f"{year} 积分细则",
        preset="five_stars_base_100",
        top_n_flag=0,
        bottom_n_flag=0,
    )
    scheme_adopt(organization=committee, scheme=scheme)
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    service = RuleCategory.objects.create(scheme=scheme, name="志愿奉献", position=2)
    discipline = RuleCategory.objects.create(scheme=scheme, name="纪律规矩不严明", position=3)

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

    bonus = Rule.Kind.BONUS
    return SchemeRules(
        scheme=scheme,
        speech=rule(
            study, "B01", "研讨发言", bonus, "5", "5", max_times_per_quarter=2, self_declarable=True
        ),
        volunteer=rule(
            service,
            "B02",
            "志愿服务",
            bonus,
            "1",
            "10",
            max_points_per_year=Decimal("20"),
            self_declarable=True,
        ),
        suggestion=rule(
            study,
            "B03",
            "提出建议",
            bonus,
            "10",
            "10",
            self_declarable=True,
            evidence_required=True,
        ),
        lecture=rule(study, "B04", "讲微党课", bonus, "50", "50"),
        criticism=rule(discipline, "D01", "通报批评", Rule.Kind.DEDUCTION, "-150", "-150"),
        veto=rule(discipline, "V01", "违法违纪", Rule.Kind.VETO, "0", "0"),
    )


@pytest.fixture
def past(tree: Tree) -> SchemeRules:
    return make_scheme(tree.committee, PAST_YEAR)


@pytest.fixture
def current(tree: Tree) -> SchemeRules:
    return make_scheme(tree.committee, TODAY.year)


@pytest.fixture
def record(users: dict[str, User], django_capture_on_commit_callbacks) -> Callable[..., Entry]:
    """``record(member, rule, day, points=None)``: branch A's secretary records an entry, and
    the recompute it enqueues runs as after a real commit."""

    def run(member: Member, rule: Rule, day: date, points: str | None = None) -> Entry:
        with django_capture_on_commit_callbacks(execute=True):
            return services.entry_record(
                user=users["secretary_a"],
                member=member,
                rule=rule,
                occurred_on=day,
                description=f"{rule.name}（{day.isoformat()}）",
                points=Decimal(points) if points is not None else None,
            )

    return run


@pytest.fixture
def declare(users: dict[str, User], members: dict[str, Member]) -> Callable[..., Declaration]:
    """``declare(key, rule, files)``: that member declares ``rule`` today through the service."""

    def run(key: str, rule: Rule, files: list[SimpleUploadedFile]) -> Declaration:
        return services.declaration_submit(
            user=users[key],
            member=members[key],
            rule=rule,
            occurred_on=TODAY,
            description="参加支部研讨并发言",
            files=files,
        )

    return run


# ------------------------------------------------------------------ helpers


class _TestIdTexts(HTMLParser):
    """The text of every element carrying a data-testid, tags stripped, whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._open: list[tuple[str | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in {"input", "br", "meta", "link", "img", "line", "circle"}:
            return
        self._open.append((dict(attrs).get("data-testid"), []))

    def handle_endtag(self, tag: str) -> None:
        if tag in {"input", "br", "meta", "link", "img", "line", "circle"} or not self._open:
            return
        testid, parts = self._open.pop()
        text = " ".join("".join(parts).split())
        if self._open:
            self._open[-1][1].append("".join(parts))
        if testid:
            self.found.append((testid, text))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)


def texts(html: str, testid: str) -> list[str]:
    parser = _TestIdTexts()
    parser.feed(html)
    return [text for key, text in parser.found if key == testid]


def ids_with_prefix(html: str, prefix: str) -> list[str]:
    """data-testid values of the form ``<prefix><number>``, in page order."""
    return re.findall(rf'data-testid="({prefix}\d+)"', html)


def png(name: str = "签到表.png", size: int | None = None) -> SimpleUploadedFile:
    content = PNG if size is None else PNG + b"\x00" * (size - len(PNG))
    return SimpleUploadedFile(name, content, content_type="image/png")


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def member_with_login(branch: Organization, username: str, **fields) -> tuple[User, Member]:
    user = UserFactory(username=username)
    return user, MemberFactory(organization=branch, user=user, **fields)


# ------------------------------------------------------------------ my points


def publish_annual_review(branch) -> None:
    """The branch's annual review of PAST_YEAR has reached publicity."""
    ReviewCycle.objects.create(
        organization=branch, year=PAST_YEAR, quarter=0, state=ReviewCycle.State.PUBLICITY
    )


def test_my_rank_and_grade_wait_for_the_annual_review_publicity(client_for, members, past, record):
    # given: totals computed, but the annual review not yet in publicity
    zhang = members["member_a"]
    record(zhang, past.speech, date(PAST_YEAR, 1, 10))

    # when
    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    # then: my own total, but not my branch rank or grade
    html = response.content.decode()
    assert texts(html, "year-total") == ["105"]
    assert texts(html, "rank") == ["年度评议公示后显示"]
    assert texts(html, "grade") == []


def test_my_points_shows_exactly_my_totals_rank_star_and_running_totals(
    client_for, members, past, record
):
    # given: 张三 (member_a) three speeches in Q1 (the third is past the cap of two),
    # volunteering in Q2–Q4 (the last one past the yearly cap of 20); 李四 a lecture.
    zhang, li = members["member_a"], members["secretary_a"]
    for month in (1, 2, 3):
        record(zhang, past.speech, date(PAST_YEAR, month, 10))
    record(zhang, past.volunteer, date(PAST_YEAR, 5, 1), "8")
    record(zhang, past.volunteer, date(PAST_YEAR, 8, 1), "10")
    record(zhang, past.volunteer, date(PAST_YEAR, 11, 1), "9")
    record(li, past.lecture, date(PAST_YEAR, 2, 1))
    publish_annual_review(zhang.organization)

    # when
    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert texts(html, "year-total") == ["130"]
    assert texts(html, "quarter-net") == ["+2"]  # the past year's headline is its Q4
    assert texts(html, "rank") == ["第 2 名"]
    assert texts(html, "star") == ["五星"]
    assert texts(html, "grade") == ["年度等次 优秀"]
    assert texts(html, "points") == ["+5", "+5", "+5", "+8", "+10", "+9"]
    assert texts(html, "counted") == [
        "计入 +5",
        "计入 +5",
        "计入 0",
        "计入 +8",
        "计入 +10",
        "计入 +2",
    ]
    assert texts(html, "running-total") == [
        "累计 105",
        "累计 110",
        "累计 110",
        "累计 118",
        "累计 128",
        "累计 130",
    ]
    assert "讲微党课" not in html
    assert response.context["years"] == [TODAY.year, PAST_YEAR]
    assert ids_with_prefix(html, "quarter-") == ["quarter-1", "quarter-2", "quarter-3", "quarter-4"]


def test_an_entry_past_a_cap_is_shown_as_not_counted_with_the_reason(
    client_for, members, past, record
):
    # given
    zhang = members["member_a"]
    for month in (1, 2, 3):
        record(zhang, past.speech, date(PAST_YEAR, month, 10))
    record(zhang, past.volunteer, date(PAST_YEAR, 5, 1), "10")
    record(zhang, past.volunteer, date(PAST_YEAR, 6, 1), "10")
    record(zhang, past.volunteer, date(PAST_YEAR, 7, 1), "4")

    # when
    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    # then
    assert texts(response.content.decode(), "not-counted") == [
        "不计分 本季度该项已达 2 次上限，此条不计分",
        "不计分 该项每年最多计 20 分，此条计入 0 分",
    ]


def test_a_partly_counted_entry_says_how_much_it_counts(client_for, members, past, record):
    zhang = members["member_a"]
    record(zhang, past.volunteer, date(PAST_YEAR, 5, 1), "10")
    record(zhang, past.volunteer, date(PAST_YEAR, 6, 1), "6")
    record(zhang, past.volunteer, date(PAST_YEAR, 7, 1), "9")

    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    html = response.content.decode()
    assert texts(html, "not-counted") == ["部分计分 该项每年最多计 20 分，此条计入 4 分"]
    assert texts(html, "running-total") == ["累计 110", "累计 116", "累计 120"]


def test_a_reversal_is_shown_as_such_and_a_veto_as_a_veto_not_a_deduction(
    client_for, users, members, past, record, django_capture_on_commit_callbacks
):
    # given: a criticism reversed in Q3, then a veto confirmed by the branch in Q4
    zhang = members["member_a"]
    record(zhang, past.speech, date(PAST_YEAR, 1, 10))
    criticism = record(zhang, past.criticism, date(PAST_YEAR, 4, 10))
    with django_capture_on_commit_callbacks(execute=True):
        reversal = services.entry_reverse(
            user=users["secretary_a"],
            entry=criticism,
            reason="认定有误",
            occurred_on=date(PAST_YEAR, 7, 1),
        )
        veto = services.veto_record(
            user=users["secretary_a"],
            member=zhang,
            rule=past.veto,
            occurred_on=date(PAST_YEAR, 10, 8),
            description="受到党纪处分",
            meeting_date=date(PAST_YEAR, 10, 20),
            voting_members=9,
            attendance=8,
            votes_for=6,
            votes_against=1,
            votes_abstain=1,
        )

    # when
    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    # then
    html = response.content.decode()
    assert texts(html, f"entry-{reversal.pk}") == [
        f"通报批评 {PAST_YEAR}-07-01 +150 冲销：通报批评（{PAST_YEAR}-04-10） "
        f"冲销 抵消 {PAST_YEAR}-04-10 的记录；原因：认定有误 计入 +150 累计 105"
    ]
    assert texts(html, f"entry-{criticism.pk}") == [
        f"通报批评 {PAST_YEAR}-04-10 -150 通报批评（{PAST_YEAR}-04-10） 已冲销 计入 -150 累计 -45"
    ]
    assert texts(html, "veto-badge") == ["一票否决"]
    assert texts(html, f"entry-{veto.pk}") == [
        f"违法违纪 {PAST_YEAR}-10-08 一票否决 受到党纪处分 "
        f"经支部党员大会表决通过（{PAST_YEAR}-10-20） · 年度积分清零，评定为不合格"
    ]
    assert texts(html, "points") == ["+5", "-150", "+150"]  # no points figure for the veto
    assert texts(html, "veto-note") == [
        "一票否决 · 本年度有经支部党员大会表决确认的一票否决：年度积分清零，评定为不合格。"
    ]
    assert texts(html, "year-total") == ["0"]
    assert texts(html, "grade") == []  # the grade waits for the annual review's publicity


def test_an_exempt_member_sees_the_ledger_with_a_note_that_they_are_not_ranked(
    client, tree, current, record
):
    # given
    user, member = member_with_login(
        tree.branch_a,
        "exempt_member",
        name="周九",
        status=Member.Status.EXEMPT,
        exempt_reason="年老体弱",
    )
    record(member, current.speech, TODAY)
    client.force_login(user)

    # when
    response = client.get(reverse("scoring:my_points"))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert texts(html, "unranked-note") == [
        "您目前为“不列入积分考核”，不参与排名和星级、等次评定；您的积分记录仍在下面列出。"
        "原因：年老体弱。"
    ]
    assert texts(html, "year-total") == ["105"]
    assert texts(html, "rank") == []
    assert texts(html, "star") == []
    assert texts(html, "running-total") == ["累计 105"]


def test_a_candidate_is_ranked_in_the_candidates_list(client, tree, past, record):
    user, member = member_with_login(
        tree.branch_a, "activist", name="吴十", category=Member.Category.ACTIVIST
    )
    record(member, past.speech, date(PAST_YEAR, 3, 1))
    publish_annual_review(tree.branch_a)
    client.force_login(user)

    response = client.get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    html = response.content.decode()
    assert texts(html, "rank") == ["第 1 名"]
    assert "发展对象/积极分子序列" in html


def test_a_user_without_a_roster_entry_is_sent_to_the_no_role_page(client_for):
    response = client_for("no_role").get(reverse("scoring:my_points"))

    assert response.status_code == 302
    assert response["Location"] == reverse("members:no_role")


def test_the_growth_chart_has_one_point_per_computed_quarter(client_for, members, past, record):
    # given
    record(members["member_a"], past.speech, date(PAST_YEAR, 1, 10))
    record(members["member_a"], past.volunteer, date(PAST_YEAR, 7, 1), "10")

    # when
    response = client_for("member_a").get(reverse("scoring:my_points"), {"year": PAST_YEAR})

    # then: y axis 100..115 over 136 px; columns of 67 px from x = 40
    html = response.content.decode()
    chart = response.context["chart"]
    assert chart.polyline == "73.5,110.7 140.5,110.7 207.5,20.0 274.5,20.0"
    assert html.count("<circle ") == 4
    assert f'<polyline points="{chart.polyline}"' in html
    assert [point.value_display for point in chart.points] == ["105", "105", "115", "115"]


def test_the_current_years_chart_stops_at_todays_quarter(client_for, members, current, record):
    record(members["member_a"], current.speech, TODAY)

    response = client_for("member_a").get(reverse("scoring:my_points"))

    html = response.content.decode()
    assert html.count("<circle ") == quarter_of(TODAY)
    assert ids_with_prefix(html, "quarter-") == [
        f"quarter-{q}" for q in range(1, quarter_of(TODAY) + 1)
    ]
    assert texts(html, "year-total") == ["105"]


def test_the_page_costs_the_same_queries_for_5_and_50_entries(
    client_for, users, members, past, django_assert_num_queries
):
    def ledger_of(member: Member, count: int) -> None:
        # Every fifth line reverses the one before it (a reversal reads what it cancels).
        previous = None
        for number in range(count):
            day = date(PAST_YEAR, 1 + number % 12, 1 + number % 28)
            if number % 5 == 4:
                services.entry_reverse(
                    user=users["secretary_a"], entry=previous, reason="更正", occurred_on=day
                )
                continue
            previous = services.entry_record(
                user=users["secretary_a"],
                member=member,
                rule=past.volunteer,
                occurred_on=day,
                description="志愿服务",
                points=Decimal("1"),
            )
        recompute_members([member.pk], PAST_YEAR)

    url = f"{reverse('scoring:my_points')}?year={PAST_YEAR}"
    client = client_for("member_a")
    ledger_of(members["member_a"], 5)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    ledger_of(members["member_a"], 45)
    assert Entry.objects.filter(member=members["member_a"]).count() == 50

    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(url)

    assert len(texts(response.content.decode(), "running-total")) == 50


# ------------------------------------------------------------------ declaring


def test_declaring_a_fixed_item_with_evidence_goes_to_my_declarations(client_for, members, current):
    # given
    client = client_for("member_a")

    # when
    response = client.post(
        reverse("scoring:declare"),
        {
            "rule": current.suggestion.pk,
            "points": "",
            "occurred_on": TODAY.isoformat(),
            "description": "建议优化党费收缴流程",
            "evidence": [png("建议书.png"), SimpleUploadedFile("附件.pdf", PDF)],
        },
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("scoring:my_declarations")
    declaration = Declaration.objects.get()
    assert (
        declaration.member,
        declaration.rule,
        declaration.points,
        declaration.occurred_on,
        declaration.description,
        declaration.status,
    ) == (
        members["member_a"],
        current.suggestion,
        Decimal("10.00"),
        TODAY,
        "建议优化党费收缴流程",
        "pending",
    )
    assert sorted(declaration.evidence.values_list("original_name", "content_type")) == [
        ("建议书.png", "image/png"),
        ("附件.pdf", "application/pdf"),
    ]
    page = client.get(response["Location"]).content.decode()
    assert texts(page, "status") == ["待审核"]
    for evidence in declaration.evidence.all():
        assert f'href="{reverse("scoring:evidence", args=[evidence.pk])}"' in page


def test_declaring_a_range_item_takes_the_points_typed(client_for, members, current):
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.volunteer.pk,
            "points": "7.5",
            "occurred_on": TODAY.isoformat(),
            "description": "社区志愿服务半天",
        },
    )

    assert response.status_code == 302
    assert Declaration.objects.get().points == Decimal("7.50")


@pytest.mark.parametrize(
    ("rule_key", "message"),
    [
        ("lecture", "细则项“讲微党课”不能由党员自行申报。"),
        ("criticism", "细则项“通报批评”不能由党员自行申报。"),
        ("veto", "细则项“违法违纪”不能由党员自行申报。"),
    ],
)
def test_an_item_members_may_not_declare_is_refused_with_the_reason(
    client_for, members, current, rule_key, message
):
    # when
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": getattr(current, rule_key).pk,
            "occurred_on": TODAY.isoformat(),
            "description": "我想申报这一项",
            "evidence": [png()],
        },
    )

    # then: refused, what was typed is kept, the file must be chosen again
    html = response.content.decode()
    assert response.status_code == 422
    assert response.context["form"].errors == {"rule": [message]}
    assert f'<div class="invalid-feedback" id="id_rule_error">{message}</div>' in html
    assert ">我想申报这一项</textarea>" in html
    assert f'value="{TODAY.isoformat()}"' in html
    assert texts(html, "files-dropped") == [
        "出于安全原因，浏览器不会保留已选的文件：如有佐证材料，请重新选择。"
    ]
    assert Declaration.objects.count() == 0
    assert EvidenceFile.objects.count() == 0


def test_the_form_offers_only_the_declarable_items(client_for, members, current):
    response = client_for("member_a").get(reverse("scoring:declare"))

    form = response.context["form"]
    assert response.status_code == 200
    assert form.rule_groups == [
        (
            "学习教育",
            [
                (current.speech.pk, "研讨发言（+5）", False),
                (current.suggestion.pk, "提出建议（+10）", False),
            ],
        ),
        ("志愿奉献", [(current.volunteer.pk, "志愿服务（+1 ~ +10）", False)]),
    ]


def test_points_out_of_the_range_are_refused_beside_the_points(client_for, members, current):
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.volunteer.pk,
            "points": "12",
            "occurred_on": TODAY.isoformat(),
            "description": "志愿服务",
        },
    )

    assert response.status_code == 422
    assert list(response.context["form"].errors) == ["points"]
    assert response.context["form"].errors["points"][0].startswith("分值 +12")
    assert 'value="12"' in response.content.decode()
    assert Declaration.objects.count() == 0


def test_evidence_that_is_not_what_its_name_says_is_refused_and_nothing_is_kept(
    client_for, members, current, media_root
):
    # given: a "photo" that is really text
    fake = SimpleUploadedFile("photo.jpg", b"this is only text", content_type="image/jpeg")

    # when
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.speech.pk,
            "occurred_on": TODAY.isoformat(),
            "description": "研讨发言",
            "evidence": [png(), fake],
        },
    )

    # then
    message = "佐证文件“photo.jpg”不是可接受的类型，请上传JPG、PNG、GIF 图片或 PDF 文件。"
    assert response.status_code == 422
    assert response.context["form"].errors == {"evidence": [message]}
    assert (
        f'<div class="invalid-feedback d-block" id="id_evidence_error">{message}</div>'
        in response.content.decode()
    )
    assert Declaration.objects.count() == 0
    assert EvidenceFile.objects.count() == 0
    assert stored_files(media_root) == []


def test_every_bad_evidence_file_is_named_at_once(client_for, members, current):
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.speech.pk,
            "occurred_on": TODAY.isoformat(),
            "description": "研讨发言",
            "evidence": [
                SimpleUploadedFile("a.jpg", b"text"),
                png("ok.png"),
                SimpleUploadedFile("b.pdf", b""),
            ],
        },
    )

    assert response.status_code == 422
    assert response.context["form"].errors == {
        "evidence": [
            "佐证文件“a.jpg”不是可接受的类型，请上传JPG、PNG、GIF 图片或 PDF 文件。",
            "佐证文件“b.pdf”是空文件。",
        ]
    }
    assert Declaration.objects.count() == 0


def test_a_too_large_evidence_file_is_refused(client_for, members, current, settings, media_root):
    # given
    settings.EVIDENCE_MAX_BYTES = 1024 * 1024

    # when
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.speech.pk,
            "occurred_on": TODAY.isoformat(),
            "description": "研讨发言",
            "evidence": [png("big.png", size=1024 * 1024 + 1)],
        },
    )

    # then
    assert response.status_code == 422
    assert response.context["form"].errors == {
        "evidence": ["佐证文件“big.png”太大（1.0 MB），单个文件不能超过 1 MB。"]
    }
    assert Declaration.objects.count() == 0
    assert stored_files(media_root) == []


def test_more_evidence_files_than_allowed_are_refused(client_for, members, current, settings):
    settings.EVIDENCE_MAX_FILES = 2

    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.speech.pk,
            "occurred_on": TODAY.isoformat(),
            "description": "研讨发言",
            "evidence": [png("1.png"), png("2.png"), png("3.png")],
        },
    )

    assert response.status_code == 422
    assert response.context["form"].errors == {
        "evidence": ["最多只能上传 2 个佐证文件，您选择了 3 个。"]
    }
    assert Declaration.objects.count() == 0


def test_an_item_that_requires_evidence_is_refused_without_it(client_for, members, current):
    response = client_for("member_a").post(
        reverse("scoring:declare"),
        {
            "rule": current.suggestion.pk,
            "occurred_on": TODAY.isoformat(),
            "description": "一条建议",
        },
    )

    assert response.status_code == 422
    assert response.context["form"].errors == {
        "evidence": ["该项须上传佐证材料（照片、签到表或文件）。"]
    }
    assert Declaration.objects.count() == 0


def test_the_rule_detail_shows_a_fixed_value_or_a_range_input(client_for, members, current):
    client = client_for("member_a")
    url = reverse("scoring:declare_rule")

    fixed = client.get(url, {"rule": current.speech.pk}, HTTP_HX_REQUEST="true")
    ranged = client.get(url, {"rule": current.volunteer.pk}, HTTP_HX_REQUEST="true")
    not_offered = client.get(url, {"rule": current.lecture.pk}, HTTP_HX_REQUEST="true")

    assert texts(fixed.content.decode(), "fixed-points") == ["+5"]
    assert 'name="points"' not in fixed.content.decode()
    assert 'name="points"' in ranged.content.decode()
    assert "请在 +1 ~ +10 范围内填写。" in ranged.content.decode()
    assert texts(not_offered.content.decode(), "rule-notes") == []


def test_a_member_who_may_not_declare_gets_404(client, tree, current):
    user, _member = member_with_login(
        tree.branch_a, "moved_away", status=Member.Status.TRANSFERRED_OUT
    )
    client.force_login(user)

    assert client.get(reverse("scoring:declare")).status_code == 404
    assert client.post(reverse("scoring:declare"), {"rule": current.speech.pk}).status_code == 404
    assert Declaration.objects.count() == 0


def test_my_declarations_show_status_reason_adjusted_points_and_evidence(
    client_for, users, members, current, declare, django_capture_on_commit_callbacks
):
    # given: one approved with adjusted points, one rejected, one pending
    adjusted = services.declaration_submit(
        user=users["member_a"],
        member=members["member_a"],
        rule=current.volunteer,
        occurred_on=TODAY,
        description="志愿服务",
        points=Decimal("8"),
    )
    rejected = declare("member_a", current.speech, [png("现场照片.png")])
    pending = declare("member_a", current.speech, [])
    with django_capture_on_commit_callbacks(execute=True):
        services.declaration_approve(
            user=users["secretary_a"], declaration=adjusted, points=Decimal("6"), reason="时长不足"
        )
    services.declaration_reject(user=users["secretary_a"], declaration=rejected, reason="未发言")
    declare("member_b", current.speech, [])  # someone else's

    # when
    response = client_for("member_a").get(reverse("scoring:my_declarations"))

    # then
    html = response.content.decode()
    assert ids_with_prefix(html, "declaration-") == [
        f"declaration-{pending.pk}",
        f"declaration-{rejected.pk}",
        f"declaration-{adjusted.pk}",
    ]
    assert texts(html, "status") == ["待审核", "未通过", "已通过"]
    assert texts(html, "points") == ["+5", "+5", "+8 +6"]
    assert texts(html, "adjusted") == ["审核调整：申报 +8 分，核定 +6 分。"]
    assert texts(html, "decision-reason") == ["审核意见：未发言", "审核意见：时长不足"]
    evidence = rejected.evidence.get()
    assert (
        f'<a class="d-inline-block text-break me-2" href="/evidence/{evidence.pk}/">现场照片.png</a>'
        in html
    )


def test_my_declarations_cost_the_same_queries_for_2_and_10(
    client_for, current, declare, django_assert_num_queries
):
    client = client_for("member_a")
    for _ in range(2):
        declare("member_a", current.speech, [png()])
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("scoring:my_declarations"))
    for _ in range(8):
        declare("member_a", current.speech, [png(), png("二.png")])

    with django_assert_num_queries(len(few.captured_queries)):
        response = client.get(reverse("scoring:my_declarations"))

    assert len(texts(response.content.decode(), "status")) == 10


# ------------------------------------------------------------------ evidence


@pytest.fixture
def evidence(current, declare) -> EvidenceFile:
    """张三's evidence (member_a, branch A): a PNG named 签到表.png."""
    return declare("member_a", current.speech, [png()]).evidence.get()


@pytest.mark.parametrize(
    "key",
    [
        "member_a",  # the declaring member
        "secretary_a",  # reviews branch A's declarations
        "discipline_a",  # on branch A's committee: reviews declarations
        "recorder_a",  # reads branch A's ledger
        "committee_staff",  # reads every branch's ledger below the committee
        "general_staff",
        "superuser",
    ],
)
def test_the_member_and_the_branch_reviewers_may_download_the_evidence(client_for, evidence, key):
    # when
    response = client_for(key).get(reverse("scoring:evidence", args=[evidence.pk]))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == (
        f'inline; filename="evidence-{evidence.pk}.png"; '
        "filename*=UTF-8''%E7%AD%BE%E5%88%B0%E8%A1%A8.png"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Length"] == str(len(PNG))
    assert b"".join(response.streaming_content) == PNG


@pytest.mark.parametrize("key", ["member_b", "secretary_b", "no_role"])
def test_anyone_else_gets_404_for_the_evidence(client_for, evidence, key):
    response = client_for(key).get(reverse("scoring:evidence", args=[evidence.pk]))

    assert response.status_code == 404


def test_another_member_of_the_same_branch_gets_404(client_for, members, current, declare):
    # 李四 (secretary_a's roster entry) declares; 张三 is a plain member of the same branch.
    theirs = declare("secretary_a", current.speech, [png()]).evidence.get()

    response = client_for("member_a").get(reverse("scoring:evidence", args=[theirs.pk]))

    assert response.status_code == 404


def test_staff_of_another_committee_get_404(client, evidence):
    other_committee = OrganizationFactory(name="另一党委")
    staff = UserFactory(username="other_staff", is_staff=True)
    RoleFactory(user=staff, organization=other_committee, post=Role.Post.STAFF)
    client.force_login(staff)

    response = client.get(reverse("scoring:evidence", args=[evidence.pk]))

    assert response.status_code == 404


def test_an_unknown_evidence_id_is_404_and_anonymous_users_must_sign_in(
    client, client_for, evidence
):
    missing = client_for("member_a").get(reverse("scoring:evidence", args=[evidence.pk + 1]))
    anonymous = client.get(reverse("scoring:evidence", args=[evidence.pk]))

    assert missing.status_code == 404
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/login/?next=/evidence/{evidence.pk}/"


def test_an_ascii_file_name_is_its_own_fallback(client_for, members, current, declare):
    pdf = SimpleUploadedFile("minutes 2026.pdf", PDF)
    evidence = declare("member_a", current.speech, [pdf]).evidence.get()

    response = client_for("member_a").get(reverse("scoring:evidence", args=[evidence.pk]))

    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        "inline; filename=\"minutes 2026.pdf\"; filename*=UTF-8''minutes%202026.pdf"
    )


# ------------------------------------------------------------------ phone pages


@pytest.mark.parametrize(
    "url_name", ["scoring:my_points", "scoring:declare", "scoring:my_declarations"]
)
def test_the_pages_are_made_for_a_phone_and_load_nothing_from_elsewhere(
    client_for, members, current, record, declare, url_name
):
    # given: something on every page
    record(members["member_a"], current.speech, TODAY)
    declare("member_a", current.speech, [png()])

    # when
    response = client_for("member_a").get(reverse(url_name))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert re.findall(r"https?://|(?:src|href|action)=\"//", html) == []
    assert re.findall(r"\sstyle=", html) == []
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []


# ------------------------------------------------------------------ charts.py


def test_line_chart_places_each_point_in_the_middle_of_its_column_on_round_axis_bounds():
    # when: three quarters computed, base 100
    chart = line_chart(
        [(1, Decimal("105")), (2, Decimal("112.50")), (3, Decimal("98"))],
        x_labels=["一季度", "二季度", "三季度", "四季度"],
        reference=Decimal("100"),
    )

    # then: plot x 40..308 (67 px a column), y 20..156; values 98..112.5 → axis 95..115 by 5
    assert chart.view_box == "0 0 320 180"
    assert chart.points == [
        ChartPoint(x=Decimal("73.5"), y=Decimal("88.0"), label="一季度", value=Decimal("105")),
        ChartPoint(x=Decimal("140.5"), y=Decimal("37.0"), label="二季度", value=Decimal("112.50")),
        ChartPoint(x=Decimal("207.5"), y=Decimal("135.6"), label="三季度", value=Decimal("98")),
    ]
    assert chart.polyline == "73.5,88.0 140.5,37.0 207.5,135.6"
    assert chart.x_ticks == [
        AxisTick(position=Decimal("73.5"), label="一季度"),
        AxisTick(position=Decimal("140.5"), label="二季度"),
        AxisTick(position=Decimal("207.5"), label="三季度"),
        AxisTick(position=Decimal("274.5"), label="四季度"),
    ]
    assert chart.y_ticks == [
        AxisTick(position=Decimal("156.0"), label="95"),
        AxisTick(position=Decimal("122.0"), label="100"),
        AxisTick(position=Decimal("88.0"), label="105"),
        AxisTick(position=Decimal("54.0"), label="110"),
        AxisTick(position=Decimal("20.0"), label="115"),
    ]
    assert chart.reference_y == Decimal("122.0")


def test_line_chart_of_one_flat_value_spans_one_point_either_side():
    chart = line_chart([(1, Decimal("100"))], x_labels=["Q1", "Q2", "Q3", "Q4"])

    assert chart.polyline == "73.5,88.0"
    assert [tick.label for tick in chart.y_ticks] == ["99", "100", "101"]
    assert chart.reference_y is None


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_line_chart_has_one_point_per_value(count):
    values = [(slot, Decimal(100 + 10 * slot)) for slot in range(1, count + 1)]

    chart = line_chart(values, x_labels=["Q1", "Q2", "Q3", "Q4"], reference=Decimal("100"))

    assert len(chart.points) == count
    assert len(chart.polyline.split()) == count


def test_line_chart_refuses_a_value_outside_the_slots():
    with pytest.raises(ValueError, match="slot 5 is outside 1..4"):
        line_chart([(5, Decimal("1"))], x_labels=["Q1", "Q2", "Q3", "Q4"])


@pytest.mark.parametrize(
    ("span", "intervals", "step"),
    [
        ("14.5", 4, "5"),
        ("150", 4, "50"),
        ("30", 4, "10"),
        ("4", 4, "1"),  # never below the minimum step of 1
        ("700", 4, "200"),
    ],
)
def test_nice_step(span, intervals, step):
    assert nice_step(Decimal(span), intervals, Decimal(1)) == Decimal(step)


@pytest.mark.parametrize(
    ("value", "plain", "with_sign"),
    [
        ("100.00", "100", "+100"),
        ("99.50", "99.5", "+99.5"),
        ("-150.00", "-150", "-150"),
        ("0.00", "0", "0"),
        ("1E+2", "100", "+100"),
    ],
)
def test_format_number_and_signed(value, plain, with_sign):
    assert format_number(Decimal(value)) == plain
    assert signed(Decimal(value)) == with_sign
