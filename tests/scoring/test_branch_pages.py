"""The branch secretary's and recorder's ledger pages: record one, bulk, grid, veto, the
declarations queue, reversal, the quarter table and its recompute button.

Every refused submission shows the service's exact Chinese message, keeps what was typed and
writes nothing; another branch's pages answer 404.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config import celery_app
from members.models import Member, Organization
from scoring import services
from scoring.models import Declaration, Entry, PeriodLock, PeriodScore, Rule, RuleCategory, VetoVote
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import MemberFactory, Tree

pytestmark = pytest.mark.django_db

# A whole past year: none of its days is "in the future", whatever day the suite runs.
YEAR = 2025
DAY = date(2025, 5, 12)  # in the second quarter
DUPLICATE = "这张表单已经提交过，记录已保存，请勿重复提交。"
LOCKED = (
    "2025年第2季度已确认归档并锁定，不能再记入该期间。"
    "如需更正，请记入当前开放的期间，并在说明中注明所更正的记录。"
)
RECOMPUTING = "正在重新计算，稍后刷新即可看到最新结果。"


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@dataclass
class Ledger:
    """Branch A (张三, 李四 the secretary and a cadre, 王芳 probationary) on a five-star
    scheme (base 100) adopted by the committee for ``YEAR``."""

    tree: Tree
    users: dict[str, User]
    members: dict[str, Member]
    speech: Rule  # 研讨发言 +5, self-declarable
    lecture: Rule  # 微党课 +3..+10, self-declarable
    meeting: Rule  # 参加主题党日 +2
    cadre_only: Rule  # 领学 +3, only cadres
    task: Rule  # 未完成支部任务 −10..−2
    veto: Rule  # 违法违纪 一票否决

    @property
    def branch(self) -> Organization:
        return self.tree.branch_a

    @property
    def zhang(self) -> Member:
        return self.members["member_a"]

    @property
    def li(self) -> Member:
        return self.members["secretary_a"]

    @property
    def wang(self) -> Member:
        return self.members["other_a"]


@pytest.fixture
def ledger(tree: Tree, users: dict[str, User], members: dict[str, Member]) -> Ledger:
    scheme = scheme_create_from_preset(
        owner=tree.committee, year=YEAR, name="五星积分细则", preset="five_stars_base_100"
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    life = RuleCategory.objects.create(scheme=scheme, name="组织生活", position=2)
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
    return Ledger(
        tree=tree,
        users=users,
        members=members,
        speech=rule(study, "B01", "研讨发言", bonus, "5", "5", self_declarable=True),
        lecture=rule(study, "B02", "微党课", bonus, "3", "10", self_declarable=True),
        meeting=rule(life, "B03", "参加主题党日", bonus, "2", "2"),
        cadre_only=rule(life, "B04", "领学", bonus, "3", "3", audience=Rule.Audience.CADRES),
        task=rule(discipline, "D01", "未完成支部任务", Rule.Kind.DEDUCTION, "-10", "-2"),
        veto=rule(discipline, "V01", "违法违纪", Rule.Kind.VETO, "0", "0"),
    )


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable:
    """``committed(call)``: run ``call`` and then what it enqueued on commit (the recompute)."""

    def run(call: Callable[[], object]) -> object:
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


@pytest.fixture
def record(ledger: Ledger, committed: Callable) -> Callable[..., Entry]:
    """``record(member, rule, points=None, day=DAY)``: the secretary records through the service."""

    def run(member: Member, rule: Rule, points: str | None = None, day: date = DAY) -> Entry:
        return committed(
            lambda: services.entry_record(
                user=ledger.users["secretary_a"],
                member=member,
                rule=rule,
                occurred_on=day,
                description=f"{rule.name}（{day.isoformat()}）",
                points=Decimal(points) if points is not None else None,
            )
        )

    return run


def url(name: str, branch: Organization, query: str = "", **kwargs: object) -> str:
    path = reverse(f"scoring:{name}", kwargs={"pk": branch.pk, **kwargs})
    return f"{path}?{query}" if query else path


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def form_errors(response) -> list[str]:
    """The messages of the page's error box (the services' and the form's own)."""
    box = re.search(r'data-testid="form-errors">(.*?)</ul>', response.content.decode(), re.S)
    assert box is not None, "no error box on the page"
    return re.findall(r"<li>(.*?)</li>", box.group(1))


def ledger_state() -> tuple:
    return (
        list(Entry.objects.order_by("id").values()),
        list(VetoVote.objects.order_by("id").values()),
        list(Declaration.objects.order_by("id").values("id", "status", "decided_by")),
    )


# --- who reaches which page -----------------------------------------------------------------

PAGES = (
    "branch_ledger",
    "branch_record",
    "branch_points_field",
    "branch_record_bulk",
    "branch_record_grid",
    "branch_record_veto",
    "branch_declarations",
    "branch_entries",
    "branch_entry_reverse",
    "branch_table",
)


@pytest.fixture
def page_url(ledger: Ledger, record) -> Callable[[str], str]:
    entry = record(ledger.zhang, ledger.speech)

    def make(name: str) -> str:
        extra = {"entry_pk": entry.pk} if name == "branch_entry_reverse" else {}
        return url(name, ledger.branch, f"year={YEAR}", **extra)

    return make


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_for_the_branch_secretary(name, page_url, client_for) -> None:
    # when
    response = client_for("secretary_a").get(page_url(name))

    # then
    assert response.status_code == 200


@pytest.mark.parametrize("user", ["secretary_b", "member_a", "member_b", "no_role"])
@pytest.mark.parametrize("name", PAGES)
def test_every_page_is_404_for_people_of_another_branch_and_plain_members(
    name, user, page_url, client_for
) -> None:
    # when
    response = client_for(user).get(page_url(name))

    # then
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("branch_ledger", 200),
        ("branch_record", 200),
        ("branch_record_bulk", 200),
        ("branch_record_grid", 200),
        ("branch_entries", 200),
        ("branch_table", 200),
        ("branch_record_veto", 404),
        ("branch_declarations", 404),
        ("branch_entry_reverse", 404),
    ],
)
def test_the_recorder_records_and_reads_but_neither_vetoes_reviews_nor_reverses(
    name, status, page_url, client_for
) -> None:
    # when
    response = client_for("recorder_a").get(page_url(name))

    # then
    assert response.status_code == status


def test_an_anonymous_visitor_is_sent_to_the_login_page(page_url, client_for) -> None:
    # when
    response = client_for("anonymous").get(page_url("branch_ledger"))

    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("user", "links"),
    [
        ("secretary_a", ["记录积分", "批量记录", "表格登记", "一票否决", "申报审核"]),
        ("recorder_a", ["记录积分", "批量记录", "表格登记"]),
        ("discipline_a", ["申报审核"]),
        ("committee_staff", []),
    ],
)
def test_the_ledger_home_offers_the_actions_the_user_may_take(
    ledger: Ledger, client_for, user: str, links: list[str]
) -> None:
    # when
    response = client_for(user).get(url("branch_ledger", ledger.branch, f"year={YEAR}"))

    # then
    html = response.content.decode()
    tabs = re.search(r'data-testid="ledger-tabs">(.*?)</ul>', html, re.S).group(1)
    assert re.findall(r'class="nav-link[^"]*" href="[^"]*">([^<]*)</a>', tabs) == [
        "首页",
        *links,
        "台账明细",
        "积分排名表",
    ]


def test_the_ledger_home_counts_the_pending_declarations(ledger: Ledger, client_for) -> None:
    # given
    for points in ("4", "6"):
        services.declaration_submit(
            user=ledger.users["member_a"],
            member=ledger.zhang,
            rule=ledger.lecture,
            occurred_on=DAY,
            description="讲了一次微党课",
            points=Decimal(points),
        )

    # when
    response = client_for("secretary_a").get(url("branch_ledger", ledger.branch, f"year={YEAR}"))

    # then
    assert response.context["pending_count"] == 2
    assert '<span class="stat" data-testid="pending-count">2</span>' in response.content.decode()
    assert (
        '<p class="text-muted" data-testid="scheme">适用细则：五星积分细则（基础分 100）</p>'
        in (response.content.decode())
    )


# --- record one entry -----------------------------------------------------------------------


def record_form(ledger: Ledger, **overrides: object) -> dict:
    data = {
        "year": YEAR,
        "form_token": str(uuid.uuid4()),
        "member": ledger.zhang.pk,
        "rule": ledger.speech.pk,
        "points": "",
        "occurred_on": DAY.isoformat(),
        "description": "在专题研讨会上发言",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("user", ["secretary_a", "recorder_a"])
def test_recording_one_entry_writes_exactly_that_entry(ledger: Ledger, client_for, user) -> None:
    # given
    data = record_form(ledger)

    # when
    response = client_for(user).post(url("branch_record", ledger.branch), data)

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_record", ledger.branch, f"year={YEAR}")
    assert messages_of(response) == ["已为张三记录“研讨发言”+5 分。"]
    assert list(
        Entry.objects.values(
            "member",
            "organization",
            "rule",
            "kind",
            "points",
            "occurred_on",
            "year",
            "quarter",
            "description",
            "recorded_by",
            "approved_by",
            "reverses",
            "form_token",
        )
    ) == [
        {
            "member": ledger.zhang.pk,
            "organization": ledger.branch.pk,
            "rule": ledger.speech.pk,
            "kind": "bonus",
            "points": Decimal("5.00"),
            "occurred_on": DAY,
            "year": 2025,
            "quarter": 2,
            "description": "在专题研讨会上发言",
            "recorded_by": ledger.users[user].pk,
            "approved_by": None,
            "reverses": None,
            "form_token": uuid.UUID(data["form_token"]),
        }
    ]


def test_a_range_rule_records_the_points_typed(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").post(
        url("branch_record", ledger.branch),
        record_form(ledger, member=ledger.wang.pk, rule=ledger.task.pk, points="－3.5"),
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == ["已为王芳记录“未完成支部任务”-3.5 分。"]
    assert list(Entry.objects.values_list("member", "kind", "points")) == [
        (ledger.wang.pk, "deduction", Decimal("-3.50"))
    ]


def test_a_double_submit_of_one_form_records_once(ledger: Ledger, client_for) -> None:
    # given
    client = client_for("secretary_a")
    data = record_form(ledger)

    # when
    first = client.post(url("branch_record", ledger.branch), data)
    second = client.post(url("branch_record", ledger.branch), data)

    # then
    assert first.status_code == 302
    assert second.status_code == 422
    assert form_errors(second) == [DUPLICATE]
    assert Entry.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"rule": "lecture", "points": "15"},
            "分值 +15 超出细则项“微党课”的范围 +3 ~ +10。",
        ),
        (
            {"rule": "lecture", "points": "2"},
            "分值 +2 超出细则项“微党课”的范围 +3 ~ +10。",
        ),
        ({"rule": "lecture", "points": "0"}, "分值不能为 0。"),
        ({"rule": "lecture", "points": ""}, "请填写分值（范围 +3 ~ +10）。"),
        ({"rule": "speech", "points": "6"}, "分值 +6 超出细则项“研讨发言”的范围 +5。"),
        ({"rule": "cadre_only"}, "细则项“领学”不适用于张三（正式党员）。"),
        ({"description": "  "}, "请填写事项说明。"),
        ({"occurred_on": "tomorrow"}, "发生日期不能晚于今天。"),
        (
            {"occurred_on": "2024-06-01"},
            "甲党支部 2024 年度尚未采用积分细则，请先由党委工作人员设定。",
        ),
    ],
)
def test_a_refused_entry_shows_the_message_keeps_the_input_and_writes_nothing(
    ledger: Ledger, client_for, overrides: dict, message: str
) -> None:
    # given
    if "rule" in overrides:
        overrides["rule"] = getattr(ledger, overrides["rule"]).pk
    if overrides.get("occurred_on") == "tomorrow":
        overrides["occurred_on"] = (timezone.localdate() + timedelta(days=1)).isoformat()
    data = record_form(ledger, **overrides)

    # when
    response = client_for("secretary_a").post(url("branch_record", ledger.branch), data)

    # then
    assert response.status_code == 422
    assert form_errors(response) == [message]
    assert Entry.objects.count() == 0
    form = response.context["form"]
    assert {name: form[name].value() for name in data} == {
        name: str(value) for name, value in data.items()
    }


@pytest.mark.parametrize(
    ("points", "message"),
    [("abc", "分值“abc”不是有效数字。"), ("1.234", "分值最多保留两位小数。")],
)
def test_unreadable_points_are_shown_beside_the_field(
    ledger: Ledger, client_for, points: str, message: str
) -> None:
    # when
    response = client_for("secretary_a").post(
        url("branch_record", ledger.branch),
        record_form(ledger, rule=ledger.lecture.pk, points=points),
    )

    # then
    assert response.status_code == 422
    assert response.context["form"].errors == {"points": [message]}
    assert f'value="{points}"' in response.content.decode()
    assert Entry.objects.count() == 0


def test_an_entry_in_a_locked_period_is_refused_with_the_exact_message(
    ledger: Ledger, client_for
) -> None:
    # given
    PeriodLock.objects.create(
        organization=ledger.branch, year=YEAR, quarter=2, locked_by=ledger.users["secretary_a"]
    )

    # when
    response = client_for("secretary_a").post(
        url("branch_record", ledger.branch), record_form(ledger)
    )

    # then
    assert response.status_code == 422
    assert form_errors(response) == [LOCKED]
    assert Entry.objects.count() == 0


def test_a_member_of_another_branch_cannot_be_picked(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").post(
        url("branch_record", ledger.branch),
        record_form(ledger, member=ledger.members["member_b"].pk),
    )

    # then
    assert response.status_code == 422
    assert response.context["form"].errors == {"member": ["所选党员不在本支部名册中。"]}
    assert Entry.objects.count() == 0


@pytest.mark.parametrize(
    ("rule", "html"),
    [
        (
            "speech",
            '<input type="text" name="points" id="id_points" class="form-control" value="5" readonly>',
        ),
        ("lecture", 'placeholder="+3 ~ +10"'),
    ],
)
def test_the_points_input_fits_the_chosen_rule(ledger: Ledger, client_for, rule: str, html: str):
    # when
    response = client_for("secretary_a").get(
        url("branch_points_field", ledger.branch, f"year={YEAR}&rule={getattr(ledger, rule).pk}")
    )

    # then
    assert response.status_code == 200
    assert html in response.content.decode()


def test_choosing_a_rule_fetches_the_points_input_that_fits_it(ledger: Ledger, client_for):
    # when
    response = client_for("secretary_a").get(url("branch_record", ledger.branch, f"year={YEAR}"))

    # then
    points_url = url("branch_points_field", ledger.branch, f"year={YEAR}")
    assert (
        f'<select name="rule" class="form-select" hx-get="{points_url}" hx-trigger="change" '
        'hx-target="#points-field" hx-swap="outerHTML" required id="id_rule">'
    ) in response.content.decode()


def test_a_year_without_a_scheme_says_so_instead_of_a_form(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(url("branch_record", ledger.branch, "year=2024"))

    # then
    html = response.content.decode()
    assert (
        "甲党支部 2024 年度尚未采用积分细则（或细则中没有可用的细则项），请联系党委工作人员设定。"
        in html
    )
    assert 'name="form_token"' not in html


# --- bulk record ----------------------------------------------------------------------------


def bulk_form(ledger: Ledger, ticked: list[Member], **overrides: object) -> dict:
    data = {
        "year": YEAR,
        "form_token": str(uuid.uuid4()),
        "rule": ledger.meeting.pk,
        "points": "",
        "occurred_on": DAY.isoformat(),
        "description": "5月主题党日",
        "members": [member.pk for member in ticked],
    }
    data.update(overrides)
    return data


def test_the_bulk_page_lists_the_roster_all_ticked_without_the_transferred_out(
    ledger: Ledger, client_for
) -> None:
    # given
    MemberFactory(organization=ledger.branch, name="周转出", status=Member.Status.TRANSFERRED_OUT)

    # when
    response = client_for("secretary_a").get(
        url("branch_record_bulk", ledger.branch, f"year={YEAR}")
    )

    # then
    html = response.content.decode()
    assert re.findall(r'<label for="member-\d+">([^<]+)</label>', html) == ["张三", "李四", "王芳"]
    assert len(re.findall(r'name="members" value="\d+" id="member-\d+" checked>', html)) == 3
    assert 'data-check-all="#bulk-member-rows" checked' in html


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        (["member_a"], ["张三"]),
        (["member_a", "other_a"], ["张三", "王芳"]),
        (["member_a", "secretary_a", "other_a"], ["张三", "李四", "王芳"]),
    ],
)
def test_bulk_recording_writes_one_entry_per_ticked_member(
    ledger: Ledger, client_for, keys: list[str], names: list[str]
) -> None:
    # given
    data = bulk_form(ledger, [ledger.members[key] for key in keys])

    # when
    response = client_for("secretary_a").post(url("branch_record_bulk", ledger.branch), data)

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_entries", ledger.branch, "year=2025&quarter=2")
    assert messages_of(response) == [
        f"已为 {len(keys)} 名党员记录“参加主题党日”+2 分（2025-05-12）。"
    ]
    assert sorted(
        Entry.objects.values_list("member__name", "points", "description", "occurred_on")
    ) == sorted((name, Decimal("2.00"), "5月主题党日", DAY) for name in names)


def test_bulk_recording_lists_the_members_skipped_and_why(ledger: Ledger, client_for) -> None:
    # given
    data = bulk_form(ledger, [ledger.zhang, ledger.li, ledger.wang], rule=ledger.cadre_only.pk)

    # when
    response = client_for("secretary_a").post(url("branch_record_bulk", ledger.branch), data)

    # then
    assert response.status_code == 302
    assert messages_of(response) == [
        "已为 1 名党员记录“领学”+3 分（2025-05-12）。",
        "张三 未记录：细则项“领学”不适用于张三（正式党员）。",
        "王芳 未记录：细则项“领学”不适用于王芳（预备党员）。",
    ]
    assert list(Entry.objects.values_list("member__name", flat=True)) == ["李四"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"members": []}, "请至少选择一名党员。"),
        ({"rule": "lecture", "points": ""}, "请填写分值（范围 +3 ~ +10）。"),
        (
            {"rule": "lecture", "points": "11"},
            "分值 +11 超出细则项“微党课”的范围 +3 ~ +10。",
        ),
        ({"description": ""}, "请填写事项说明。"),
        ({"occurred_on": "locked"}, LOCKED),
    ],
)
def test_a_refused_bulk_form_keeps_the_ticks_and_writes_nothing(
    ledger: Ledger, client_for, overrides: dict, message: str
) -> None:
    # given
    if "rule" in overrides:
        overrides["rule"] = getattr(ledger, overrides["rule"]).pk
    if overrides.get("occurred_on") == "locked":
        PeriodLock.objects.create(
            organization=ledger.tree.committee,
            year=YEAR,
            quarter=0,
            locked_by=ledger.users["committee_staff"],
        )
        overrides["occurred_on"] = DAY.isoformat()
    data = bulk_form(ledger, [ledger.zhang, ledger.wang], **overrides)

    # when
    response = client_for("secretary_a").post(url("branch_record_bulk", ledger.branch), data)

    # then
    assert response.status_code == 422
    assert form_errors(response) == [message]
    assert Entry.objects.count() == 0
    ticked = re.findall(
        r'<input class="form-check-input" type="checkbox" name="members" value="(\d+)" '
        r'id="member-\d+" checked>',
        response.content.decode(),
    )
    assert ticked == [str(pk) for pk in data["members"]]


def test_a_double_submit_of_the_bulk_form_records_once(ledger: Ledger, client_for) -> None:
    # given
    client = client_for("secretary_a")
    data = bulk_form(ledger, [ledger.zhang, ledger.li])

    # when
    first = client.post(url("branch_record_bulk", ledger.branch), data)
    second = client.post(url("branch_record_bulk", ledger.branch), data)

    # then
    assert (first.status_code, second.status_code) == (302, 422)
    assert form_errors(second) == [DUPLICATE]
    assert Entry.objects.count() == 2


# --- the grid ------------------------------------------------------------------------------


def grid_url(ledger: Ledger, *rules: Rule) -> str:
    query = "&".join([f"year={YEAR}", *(f"rules={rule.pk}" for rule in rules)])
    return url("branch_record_grid", ledger.branch, query)


def grid_form(ledger: Ledger, rules: list[Rule], cells: dict[tuple[Member, Rule], str]) -> dict:
    data = {
        "year": YEAR,
        "form_token": str(uuid.uuid4()),
        "rules": [rule.pk for rule in rules],
        "occurred_on": DAY.isoformat(),
        "description": "5月支部党员大会",
    }
    data.update({f"cell-{member.pk}-{rule.pk}": value for (member, rule), value in cells.items()})
    return data


def test_the_grid_has_a_cell_per_member_and_rule_that_applies(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(grid_url(ledger, ledger.speech, ledger.cadre_only))

    # then
    rows = response.context["rows"]
    assert [
        (member.name, [cell.field is not None for cell in cells]) for member, cells in rows
    ] == [("张三", [True, False]), ("李四", [True, True]), ("王芳", [True, False])]
    assert response.content.decode().count("不适用") == 2


def test_more_than_four_grid_rules_are_refused(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(
        grid_url(
            ledger, ledger.speech, ledger.lecture, ledger.meeting, ledger.cadre_only, ledger.task
        )
    )

    # then
    assert response.status_code == 422
    assert response.context["rules_form"].errors == {"rules": ["最多选择 4 个细则项。"]}
    assert response.context["form"] is None


def test_a_filled_grid_records_every_filled_cell(ledger: Ledger, client_for) -> None:
    # given
    rules = [ledger.speech, ledger.lecture]
    data = grid_form(
        ledger,
        rules,
        {
            (ledger.zhang, ledger.speech): "on",
            (ledger.zhang, ledger.lecture): "8",
            (ledger.li, ledger.speech): "on",
            (ledger.wang, ledger.lecture): "",
        },
    )

    # when
    response = client_for("secretary_a").post(grid_url(ledger, *rules), data)

    # then
    assert response.status_code == 302
    assert messages_of(response) == ["已记录 3 条积分，涉及 2 名党员（2025-05-12）。"]
    assert sorted(Entry.objects.values_list("member__name", "rule__code", "points")) == [
        ("张三", "B01", Decimal("5.00")),
        ("张三", "B02", Decimal("8.00")),
        ("李四", "B01", Decimal("5.00")),
    ]


def test_a_grid_with_bad_cells_records_nothing_lists_every_problem_and_keeps_the_values(
    ledger: Ledger, client_for
) -> None:
    # given
    rules = [ledger.speech, ledger.lecture]
    data = grid_form(
        ledger,
        rules,
        {
            (ledger.zhang, ledger.speech): "on",
            (ledger.zhang, ledger.lecture): "8",
            (ledger.li, ledger.lecture): "15",
            (ledger.wang, ledger.lecture): "0",
        },
    )

    # when
    response = client_for("secretary_a").post(grid_url(ledger, *rules), data)

    # then
    assert response.status_code == 422
    assert response.context["problems"] == [
        "李四 · 微党课：分值 +15 超出细则项“微党课”的范围 +3 ~ +10。",
        "王芳 · 微党课：分值不能为 0。",
    ]
    assert Entry.objects.count() == 0
    html = response.content.decode()
    assert f'name="cell-{ledger.zhang.pk}-{ledger.speech.pk}"' in html
    assert re.search(rf'name="cell-{ledger.zhang.pk}-{ledger.speech.pk}"[^>]*checked', html)
    for member, value in ((ledger.zhang, "8"), (ledger.li, "15"), (ledger.wang, "0")):
        assert re.search(rf'name="cell-{member.pk}-{ledger.lecture.pk}" value="{value}"', html)


def test_an_unreadable_cell_is_listed_with_the_problems_of_the_other_cells(
    ledger: Ledger, client_for
) -> None:
    # given
    rules = [ledger.lecture]
    data = grid_form(
        ledger,
        rules,
        {(ledger.zhang, ledger.lecture): "abc", (ledger.li, ledger.lecture): "15"},
    )

    # when
    response = client_for("secretary_a").post(grid_url(ledger, *rules), data)

    # then
    assert response.status_code == 422
    assert response.context["problems"] == [
        "张三 · 微党课：分值“abc”不是有效数字。",
        "李四 · 微党课：分值 +15 超出细则项“微党课”的范围 +3 ~ +10。",
    ]
    assert Entry.objects.count() == 0


def test_an_empty_grid_is_refused(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").post(
        grid_url(ledger, ledger.speech), grid_form(ledger, [ledger.speech], {})
    )

    # then
    assert response.status_code == 422
    assert response.context["problems"] == ["表格中没有填写任何分值。"]
    assert Entry.objects.count() == 0


# --- veto ----------------------------------------------------------------------------------


def veto_form(ledger: Ledger, **votes: int) -> dict:
    data = {
        "year": YEAR,
        "member": ledger.zhang.pk,
        "rule": ledger.veto.pk,
        "occurred_on": DAY.isoformat(),
        "description": "受到党纪处分",
        "meeting_date": date(2025, 5, 20).isoformat(),
        "voting_members": 9,
        "attendance": 8,
        "votes_for": 6,
        "votes_against": 1,
        "votes_abstain": 1,
        "form_token": str(uuid.uuid4()),
    }
    data.update(votes)
    return data


def test_a_double_submitted_veto_form_records_one_veto(ledger: Ledger, client_for) -> None:
    # given
    client = client_for("secretary_a")
    form = veto_form(ledger)

    # when
    first = client.post(url("branch_record_veto", ledger.branch), form)
    second = client.post(url("branch_record_veto", ledger.branch), form)

    # then
    assert (first.status_code, second.status_code) == (302, 422)
    assert form_errors(second) == ["这张表单已经提交过，记录已保存，请勿重复提交。"]
    assert (Entry.objects.count(), VetoVote.objects.count()) == (1, 1)


def test_a_passed_veto_vote_records_the_veto_and_the_vote(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").post(
        url("branch_record_veto", ledger.branch), veto_form(ledger)
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == ["已登记对张三的一票否决（违法违纪），经党员大会表决通过。"]
    entry = Entry.objects.get()
    assert (entry.member, entry.kind, entry.points, entry.reason) == (
        ledger.zhang,
        "veto",
        Decimal("0.00"),
        "经支部党员大会表决通过（2025-05-20）",
    )
    assert list(
        VetoVote.objects.values_list(
            "entry", "voting_members", "attendance", "votes_for", "votes_against", "votes_abstain"
        )
    ) == [(entry.pk, 9, 8, 6, 1, 1)]


@pytest.mark.parametrize(
    ("votes", "message"),
    [
        (
            {"votes_for": 4, "votes_against": 3, "votes_abstain": 1},
            "表决未通过：赞成 4 票，未超过实到 8 人的半数，不予认定一票否决。",
        ),
        ({"attendance": 10}, "实到人数不能多于应到人数。"),
        ({"votes_for": 7, "votes_against": 2}, "赞成、反对、弃权票数之和不能多于实到人数。"),
    ],
)
def test_a_veto_vote_that_fails_writes_nothing(
    ledger: Ledger, client_for, votes: dict, message: str
) -> None:
    # when
    response = client_for("secretary_a").post(
        url("branch_record_veto", ledger.branch), veto_form(ledger, **votes)
    )

    # then
    assert response.status_code == 422
    assert form_errors(response) == [message]
    assert (Entry.objects.count(), VetoVote.objects.count()) == (0, 0)
    assert response.context["form"]["votes_for"].value() == str(votes.get("votes_for", 6))


def test_the_veto_page_suggests_the_full_members_as_voters(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(
        url("branch_record_veto", ledger.branch, f"year={YEAR}")
    )

    # then
    form = response.context["form"]
    assert (form["voting_members"].value(), form["rule"].value()) == (2, str(ledger.veto.pk))


# --- declarations ---------------------------------------------------------------------------


@pytest.fixture
def declaration(ledger: Ledger) -> Declaration:
    """张三 declares 6 points for a micro-lecture."""
    return services.declaration_submit(
        user=ledger.users["member_a"],
        member=ledger.zhang,
        rule=ledger.lecture,
        occurred_on=DAY,
        description="讲了一次微党课",
        points=Decimal("6"),
    )


def decide(client: Client, ledger: Ledger, declaration: Declaration, **data: str):
    return client.post(
        url("branch_declaration_decide", ledger.branch, declaration_pk=declaration.pk), data
    )


def test_the_queue_lists_pending_declarations_with_their_evidence(
    ledger: Ledger, client_for, settings, tmp_path
) -> None:
    # given
    settings.MEDIA_ROOT = tmp_path
    photo = SimpleUploadedFile("签到表.png", b"\x89PNG\r\n\x1a\n" + b"0" * 32, "image/png")
    declaration = services.declaration_submit(
        user=ledger.users["member_a"],
        member=ledger.zhang,
        rule=ledger.speech,
        occurred_on=DAY,
        description="研讨发言",
        files=[photo],
    )

    # when
    response = client_for("secretary_a").get(url("branch_declarations", ledger.branch))

    # then
    evidence = declaration.evidence.get()
    link = reverse("scoring:evidence", kwargs={"pk": evidence.pk})
    assert [row["declaration"] for row in response.context["rows"]] == [declaration]
    assert f'<a href="{link}" target="_blank" rel="noopener">签到表.png</a>' in (
        response.content.decode()
    )


def test_approving_a_declaration_records_the_declared_points(
    ledger: Ledger, client_for, declaration: Declaration
) -> None:
    # when
    response = decide(
        client_for("secretary_a"), ledger, declaration, decision="approve", points="6"
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == url("branch_declarations", ledger.branch)
    assert messages_of(response) == ["已通过张三的申报（微党课），记入 +6 分。"]
    declaration.refresh_from_db()
    assert (declaration.status, declaration.decided_by) == ("approved", ledger.users["secretary_a"])
    assert list(
        Entry.objects.values_list("member", "points", "declaration", "approved_by", "reason")
    ) == [(ledger.zhang.pk, Decimal("6.00"), declaration.pk, ledger.users["secretary_a"].pk, "")]


def test_adjusting_a_declaration_records_the_points_set_with_the_reason(
    ledger: Ledger, client_for, declaration: Declaration
) -> None:
    # when
    response = decide(
        client_for("discipline_a"),
        ledger,
        declaration,
        decision="approve",
        points="4",
        reason="时长不足",
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == ["已通过张三的申报（微党课），核定为 +4 分（申报 +6 分）。"]
    assert list(Entry.objects.values_list("points", "reason")) == [
        (Decimal("4.00"), "审核调整：申报 +6 分，核定 +4 分。时长不足")
    ]


def test_rejecting_a_declaration_records_nothing_and_keeps_the_reason(
    ledger: Ledger, client_for, declaration: Declaration
) -> None:
    # when
    response = decide(
        client_for("secretary_a"), ledger, declaration, decision="reject", reason="不属于本项"
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == ["已不予通过张三的申报（微党课）。"]
    declaration.refresh_from_db()
    assert (declaration.status, declaration.decision_reason) == ("rejected", "不属于本项")
    assert Entry.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"decision": "approve", "points": "5", "reason": ""}, "调整分值时请填写调整原因。"),
        (
            {"decision": "approve", "points": "12", "reason": "多讲一次"},
            "分值 +12 超出细则项“微党课”的范围 +3 ~ +10。",
        ),
        ({"decision": "reject", "points": "6", "reason": ""}, "请填写不予通过的原因。"),
        ({"decision": "", "points": "6", "reason": ""}, "请选择审核结果。"),
    ],
)
def test_a_refused_decision_shows_the_message_keeps_the_input_and_changes_nothing(
    ledger: Ledger, client_for, declaration: Declaration, data: dict, message: str
) -> None:
    # given
    before = ledger_state()

    # when
    response = decide(client_for("secretary_a"), ledger, declaration, **data)

    # then
    assert response.status_code == 422
    assert response.context["failed"]["errors"] == [message]
    row = response.context["rows"][0]
    assert (row["points"], row["reason"], row["errors"]) == (
        data["points"],
        data["reason"],
        [message],
    )
    assert ledger_state() == before


def test_the_declarer_cannot_approve_their_own_declaration(ledger: Ledger, client_for) -> None:
    # given
    own = services.declaration_submit(
        user=ledger.users["secretary_a"],
        member=ledger.li,
        rule=ledger.lecture,
        occurred_on=DAY,
        description="讲了一次微党课",
        points=Decimal("6"),
    )
    before = ledger_state()

    # when
    response = decide(client_for("secretary_a"), ledger, own, decision="approve", points="6")

    # then
    assert response.status_code == 403
    assert response.context["failed"]["errors"] == ["不能审核本人的申报。"]
    assert "<li>不能审核本人的申报。</li>" in response.content.decode()
    own.refresh_from_db()
    assert own.status == "pending"
    assert ledger_state() == before


def test_the_queue_offers_no_decision_on_ones_own_declaration(ledger: Ledger, client_for) -> None:
    # given
    own = services.declaration_submit(
        user=ledger.users["secretary_a"],
        member=ledger.li,
        rule=ledger.speech,
        occurred_on=DAY,
        description="研讨发言",
    )

    # when
    response = client_for("secretary_a").get(url("branch_declarations", ledger.branch))

    # then
    assert [(row["declaration"], row["is_own"]) for row in response.context["rows"]] == [
        (own, True)
    ]
    assert "本人的申报，须由其他支委审核。" in response.content.decode()
    assert 'name="decision"' not in response.content.decode()


@pytest.mark.parametrize("user", ["secretary_b", "recorder_a", "member_a"])
def test_deciding_outside_ones_reach_is_404_and_changes_nothing(
    ledger: Ledger, client_for, declaration: Declaration, user: str
) -> None:
    # given
    before = ledger_state()

    # when
    response = decide(client_for(user), ledger, declaration, decision="approve", points="6")

    # then
    assert response.status_code == 404
    assert ledger_state() == before


# --- reversal -------------------------------------------------------------------------------


def test_reversing_an_entry_writes_the_opposite_entry_once(ledger: Ledger, client_for, record):
    # given
    entry = record(ledger.zhang, ledger.speech)
    client = client_for("secretary_a")
    reverse_url = url("branch_entry_reverse", ledger.branch, entry_pk=entry.pk)

    # when
    first = client.post(reverse_url, {"reason": "记错了人"})
    second = client.post(reverse_url, {"reason": "再冲一次"})

    # then
    assert first.status_code == 302
    assert messages_of(first) == ["已冲销张三 2025-05-12 的“研讨发言”+5 分。"]
    assert second.status_code == 422
    assert form_errors(second) == ["这条记录已经冲销过了。"]
    reversal = Entry.objects.exclude(pk=entry.pk).get()
    today = timezone.localdate()
    assert (
        reversal.reverses_id,
        reversal.member,
        reversal.kind,
        reversal.points,
        reversal.reason,
        reversal.occurred_on,
        reversal.recorded_by,
    ) == (
        entry.pk,
        ledger.zhang,
        "bonus",
        Decimal("-5.00"),
        "记错了人",
        today,
        ledger.users["secretary_a"],
    )
    assert Entry.objects.count() == 2


def test_a_reversal_needs_a_reason(ledger: Ledger, client_for, record) -> None:
    # given
    entry = record(ledger.zhang, ledger.speech)

    # when
    response = client_for("secretary_a").post(
        url("branch_entry_reverse", ledger.branch, entry_pk=entry.pk), {"reason": " "}
    )

    # then
    assert response.status_code == 422
    assert form_errors(response) == ["请填写冲销原因。"]
    assert Entry.objects.count() == 1


def test_a_reversal_cannot_itself_be_reversed(ledger: Ledger, client_for, record, committed):
    # given
    entry = record(ledger.zhang, ledger.speech)
    reversal = committed(
        lambda: services.entry_reverse(
            user=ledger.users["secretary_a"], entry=entry, reason="记错了", occurred_on=DAY
        )
    )

    # when
    response = client_for("secretary_a").post(
        url("branch_entry_reverse", ledger.branch, entry_pk=reversal.pk), {"reason": "恢复"}
    )

    # then
    assert response.status_code == 422
    assert form_errors(response) == ["冲销记录本身不能再被冲销；如需恢复，请重新登记。"]
    assert Entry.objects.count() == 2


def test_the_entries_list_marks_reversed_entries_and_offers_reversal_of_the_others(
    ledger: Ledger, client_for, record, committed
) -> None:
    # given
    reversed_entry = record(ledger.zhang, ledger.speech)
    kept = record(ledger.li, ledger.meeting)
    committed(
        lambda: services.entry_reverse(
            user=ledger.users["secretary_a"], entry=reversed_entry, reason="记错了", occurred_on=DAY
        )
    )

    # when
    response = client_for("secretary_a").get(
        url("branch_entries", ledger.branch, f"year={YEAR}&quarter=2")
    )

    # then
    html = response.content.decode()
    assert response.context["page"].paginator.count == 3
    assert html.count(">已冲销</span>") == 1
    assert html.count(">冲销记录</span>") == 1
    reverse_links = re.findall(r'href="/branches/\d+/ledger/entries/(\d+)/reverse/"', html)
    assert reverse_links == [str(kept.pk)]


def test_reversing_an_entry_of_another_branch_is_404(ledger: Ledger, client_for, record) -> None:
    # given
    entry = record(ledger.zhang, ledger.speech)

    # when
    response = client_for("secretary_b").post(
        url("branch_entry_reverse", ledger.tree.branch_b, entry_pk=entry.pk), {"reason": "x"}
    )

    # then
    assert response.status_code == 404
    assert Entry.objects.count() == 1


# --- the quarter table ----------------------------------------------------------------------


def table_rows(response) -> dict[str, list[tuple]]:
    """Each section of the table: (name, bonus, deduction, net, total, rank, star, grade)."""
    return {
        section["group"]: [
            (
                score.member.name,
                str(score.bonus),
                str(score.deduction),
                str(score.net),
                str(score.total),
                score.rank_in_branch,
                score.star,
                score.grade,
            )
            for score in section["scores"]
        ]
        for section in response.context["sections"]
    }


@pytest.fixture
def scored(ledger: Ledger, record) -> Ledger:
    """A quarter of branch A, with a candidate and an exempt member beside the three."""
    ledger.members["activist"] = MemberFactory(
        organization=ledger.branch, name="赵敏", category=Member.Category.ACTIVIST
    )
    ledger.members["exempt"] = MemberFactory(
        organization=ledger.branch,
        name="钱多",
        status=Member.Status.EXEMPT,
        exempt_reason="长期患病",
    )
    record(ledger.zhang, ledger.speech)
    record(ledger.zhang, ledger.lecture, "8")
    record(ledger.li, ledger.meeting)
    record(ledger.wang, ledger.task, "-3")
    record(ledger.members["activist"], ledger.meeting)
    record(ledger.members["exempt"], ledger.meeting)
    return ledger


def test_the_quarter_table_ranks_party_members_and_candidates_apart_unranked_last(
    scored: Ledger, client_for
) -> None:
    # when
    response = client_for("secretary_a").get(
        url("branch_table", scored.branch, f"year={YEAR}&quarter=2")
    )

    # then
    assert response.status_code == 200
    assert table_rows(response) == {
        "party": [
            ("张三", "13.00", "0.00", "13.00", "113.00", 1, "四星", ""),
            ("李四", "2.00", "0.00", "2.00", "102.00", 2, "三星", ""),
            ("王芳", "0.00", "3.00", "-3.00", "97.00", 3, "二星", ""),
        ],
        "candidate": [("赵敏", "2.00", "0.00", "2.00", "102.00", 1, "三星", "")],
        "unranked": [("钱多", "2.00", "0.00", "2.00", "102.00", None, "", "")],
    }
    html = response.content.decode()
    assert [title for title in re.findall(r'<h2 class="h5 mt-3">([^<]+)</h2>', html)] == [
        "党员",
        "发展对象、入党积极分子",
        "不参与排名（不列入积分考核、已转出）",
    ]


def test_the_annual_table_shows_the_grades(scored: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(
        url("branch_table", scored.branch, f"year={YEAR}&quarter=0")
    )

    # then
    assert [(row[0], row[4], row[5], row[7]) for row in table_rows(response)["party"]] == [
        ("张三", "113.00", 1, "合格"),
        ("李四", "102.00", 2, "合格"),
        ("王芳", "97.00", 3, "合格"),
    ]


def test_the_quarter_table_follows_entries_recorded_through_the_pages(
    ledger: Ledger, client_for, django_capture_on_commit_callbacks
) -> None:
    # given
    client = client_for("secretary_a")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("branch_record", ledger.branch), record_form(ledger))
        client.post(
            url("branch_record_bulk", ledger.branch),
            bulk_form(ledger, [ledger.zhang, ledger.li, ledger.wang]),
        )

    # when
    response = client.get(url("branch_table", ledger.branch, f"year={YEAR}&quarter=2"))

    # then
    assert [(row[0], row[4], row[5]) for row in table_rows(response)["party"]] == [
        ("张三", "107.00", 1),
        ("李四", "102.00", 2),
        ("王芳", "102.00", 2),
    ]


@pytest.mark.parametrize(
    ("query", "year", "quarter"),
    [
        ("year=2025&quarter=3", 2025, 3),
        ("year=2025&quarter=9", 2025, 0),
        ("year=2025", 2025, 0),
        ("year=abc&quarter=0", None, 0),
    ],
)
def test_the_table_shows_the_period_asked_for_or_a_sensible_default(
    ledger: Ledger, client_for, query: str, year: int | None, quarter: int
) -> None:
    # when
    response = client_for("secretary_a").get(url("branch_table", ledger.branch, query))

    # then
    assert response.status_code == 200
    assert (response.context["year"], response.context["quarter"]) == (
        year or timezone.localdate().year,
        quarter,
    )


def test_the_recompute_button_enqueues_and_eager_celery_completes_it(
    ledger: Ledger, client_for, django_capture_on_commit_callbacks
) -> None:
    # given
    client = client_for("secretary_a")
    assert PeriodScore.objects.count() == 0

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            url("branch_recompute", ledger.branch), {"year": YEAR, "quarter": "2"}
        )

    # then
    assert len(callbacks) == 1
    assert response.status_code == 302
    assert response["Location"] == url("branch_table", ledger.branch, "year=2025&quarter=2")
    assert messages_of(response) == [RECOMPUTING]
    # Three members of branch A, each with four quarters and the year.
    assert PeriodScore.objects.filter(organization=ledger.branch).count() == 15
    table = client.get(response["Location"])
    assert [(row[0], row[4], row[5]) for row in table_rows(table)["party"]] == [
        ("张三", "100.00", 1),
        ("李四", "100.00", 1),
        ("王芳", "100.00", 1),
    ]


@pytest.mark.parametrize(("user", "status"), [("recorder_a", 404), ("secretary_b", 404)])
def test_recomputing_needs_the_right_and_writes_nothing_without_it(
    ledger: Ledger, client_for, django_capture_on_commit_callbacks, user: str, status: int
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).post(url("branch_recompute", ledger.branch), {"year": YEAR})

    # then
    assert response.status_code == status
    assert PeriodScore.objects.count() == 0


def test_recompute_answers_only_post(ledger: Ledger, client_for) -> None:
    # when
    response = client_for("secretary_a").get(url("branch_recompute", ledger.branch))

    # then
    assert response.status_code == 405


# --- a constant number of queries -----------------------------------------------------------


def grow_branch(branch: Organization, to: int) -> None:
    present = Member.objects.filter(organization=branch).count()
    for number in range(present, to):
        MemberFactory(
            organization=branch,
            name=f"党员{number:02d}",
            category=Member.Category.ACTIVIST if number % 5 == 0 else Member.Category.FULL,
        )


def queries_of(client: Client, page: str) -> int:
    client.get(page)  # warm up whatever is cached per process
    with CaptureQueriesContext(connection) as captured:
        assert client.get(page).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    "name", ["branch_record_bulk", "branch_table", "branch_entries", "branch_record_grid"]
)
def test_a_page_costs_the_same_queries_for_3_and_30_members(
    ledger: Ledger, client_for, django_assert_num_queries, name: str
) -> None:
    # given
    client = client_for("secretary_a")
    query = f"year={YEAR}&quarter=2&rules={ledger.speech.pk}&rules={ledger.lecture.pk}"
    page = url(name, ledger.branch, query)

    def fill() -> None:
        for member in Member.objects.filter(organization=ledger.branch):
            if not Entry.objects.filter(member=member).exists():
                services.entry_record(
                    user=ledger.users["secretary_a"],
                    member=member,
                    rule=ledger.meeting,
                    occurred_on=DAY,
                    description="主题党日",
                )
        recompute_organization(ledger.branch, YEAR)

    fill()
    with_three = queries_of(client, page)
    grow_branch(ledger.branch, 30)
    fill()
    client.get(page)

    # when / then
    with django_assert_num_queries(with_three):
        response = client.get(page)
    assert response.status_code == 200
    assert Member.objects.filter(organization=ledger.branch).count() == 30


def test_bulk_recording_costs_the_same_queries_for_3_and_30_members(
    ledger: Ledger, client_for
) -> None:
    """Recording a meeting's attendance is one form for the whole branch: validating and
    writing 30 members must cost what 3 do (one INSERT for all the entries)."""
    client = client_for("secretary_a")

    def post_for(members: list[Member]) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                url("branch_record_bulk", ledger.branch), bulk_form(ledger, members)
            )
        assert response.status_code == 302
        return len(captured.captured_queries)

    # given: the rule's first use warms up whatever is cached per process
    post_for([ledger.zhang])
    three = [ledger.zhang, ledger.li, ledger.wang]
    with_three = post_for(three)
    grow_branch(ledger.branch, 30)
    everyone = list(
        Member.objects.filter(organization=ledger.branch)
        .exclude(status=Member.Status.TRANSFERRED_OUT)
        .order_by("pk")
    )

    # when
    with_thirty = post_for(everyone)

    # then
    assert with_thirty == with_three
    assert Entry.objects.filter(rule=ledger.meeting).count() == 1 + 3 + len(everyone)
    assert len(everyone) == 30
