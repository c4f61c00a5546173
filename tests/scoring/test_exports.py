"""Excel exports: the ranking and ledger workbooks opened with openpyxl (headers, rows, ranks,
stars, grades, flags, the neutralized formula cell, frozen panes, filters, print setup), who
may export and download, the job's life in eager mode (done, failed, asked twice, stale), the
ledger page's direct download, and a job done by the real Celery worker on PostgreSQL + Redis.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook, load_workbook

from config import celery_app
from members.excel import XLSX_CONTENT_TYPE, Column, streamed_workbook, table_sheet
from members.models import Member, Role
from members.permissions import Action, can, organizations_where
from scoring import exports, selectors, services
from scoring.models import ExportJob
from tests.conftest import logged_in_client
from tests.factories import ORGANIZATION_KEYS, RoleFactory, UserFactory

from .conftest import YEAR, World, build_world, in_quarter
from .test_worker import Worker, celery_worker_process  # noqa: F401

pytestmark = pytest.mark.django_db

GENERATED_AT = timezone.make_aware(datetime(2026, 1, 5, 9, 30))
FORMULA_NAME = '=HYPERLINK("http://x")'
NEUTRALIZED_NAME = "'" + FORMULA_NAME
Kind = ExportJob.Kind
Status = ExportJob.Status

RANKING_NOTE = (
    "党员（正式、预备党员）与发展对象、入党积极分子分别排名，同分同名次；"
    "“党委排名”为在测试党委全体中的名次，“支部排名”为在所在支部的名次；"
    "不列入考核和转出的党员不参与排名，列在最后。"
)
ANNUAL_HEADERS = (
    "党委排名",
    "支部排名",
    "姓名",
    "所在支部",
    "党员类别",
    "排名序列",
    "基础分",
    "加分",
    "减分",
    "年度总分",
    "星级",
    "等次",
    "一票否决",
    "表扬对象（前 N 名）",
    "谈心谈话（后 N 名）",
)
# The committee's 2025 ranking of the ``ranked`` fixture, as the workbook shows it.
COMMITTEE_ROWS = [
    (1, 1, "甲", "甲党支部", "正式党员", "党员", 100, 50, 0, 150, "五星", "优秀", None, "是", None),
    (2, 1, "丙", "乙党支部", "正式党员", "党员", 100, 20, 0, 120, "五星", "优秀", None, "是", None),
    (3, 2, NEUTRALIZED_NAME, "甲党支部", "正式党员", "党员", 100, 10, 0, 110, "四星", "合格", None, None, "是"),
    (4, 1, "戊", "丙党支部", "预备党员", "党员", 100, 0, 0, 100, "三星", "合格", None, "是", None),
    (5, 2, "丁", "乙党支部", "正式党员", "党员", 100, 0, 4, 96, "二星", "合格", None, None, "是"),
    (6, 2, "辛", "丙党支部", "正式党员", "党员", 100, 0, 0, 0, "一星", "不合格", "是", None, "是"),
    (1, 1, "己", "甲党支部", "入党积极分子", "发展对象/积极分子", 100, 5, 0, 105, "三星", "合格", None, None, None),
    (None, None, "庚", "丙党支部", "正式党员", "不参与排名", 100, 0, 0, 100, None, None, None, None, None),
]  # fmt: skip


@pytest.fixture(autouse=True)
def export_storage(settings, tmp_path: Path) -> Path:
    """Finished files and the temporary files of the writers, in this test's own folders."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return tmp_path


@pytest.fixture
def ranked(world: World, record, veto) -> dict[str, Member]:
    """Eight members over the three branches, recorded through the services (eager recompute)."""
    w = world
    people = {
        "甲": w.member("甲"),
        "formula": w.member(FORMULA_NAME),
        "丙": w.member("丙", w.tree.branch_b),
        "丁": w.member("丁", w.tree.branch_b),
        "戊": w.member("戊", w.tree.branch_c, category=Member.Category.PROBATIONARY),
        "己": w.member("己", category=Member.Category.ACTIVIST),
        "庚": w.member("庚", w.tree.branch_c, status=Member.Status.EXEMPT),
        "辛": w.member("辛", w.tree.branch_c),
    }
    record(people["甲"], w.rules.lecture, in_quarter(1))
    record(people["formula"], w.rules.suggestion, in_quarter(2))
    record(people["丙"], w.rules.adopted, in_quarter(2))
    record(people["丁"], w.rules.task, in_quarter(3), "-4")
    record(people["己"], w.rules.speech, in_quarter(1))
    veto(people["辛"], in_quarter(2))
    return people


def open_workbook(content: bytes):
    return load_workbook(io.BytesIO(content))


def sheet_rows(sheet, first_row: int = 1) -> list[tuple]:
    return list(sheet.iter_rows(min_row=first_row, values_only=True))


def ranking_workbook(organization, **options) -> bytes:
    buffer = io.BytesIO()
    exports.write_ranking_workbook(
        buffer, organization=organization, year=YEAR, generated_at=GENERATED_AT, **options
    )
    return buffer.getvalue()


# --- the ranking workbook --------------------------------------------------------------------


def test_annual_ranking_sheet_has_the_title_headers_ranks_and_flags(world, ranked):
    # when
    workbook = open_workbook(ranking_workbook(world.committee))

    # then
    assert workbook.sheetnames == ["总排名", "支部汇总", "统计"]
    sheet = workbook["总排名"]
    assert [row[0] for row in sheet_rows(sheet)[:3]] == [
        "测试党委 2025 年度党员积分排名",
        "生成时间：2026-01-05 09:30",
        RANKING_NOTE,
    ]
    assert sheet_rows(sheet)[3] == ANNUAL_HEADERS
    assert sheet_rows(sheet, first_row=5) == COMMITTEE_ROWS


def test_a_name_that_a_spreadsheet_would_run_as_a_formula_is_text(world, ranked):
    # when
    sheet = open_workbook(ranking_workbook(world.committee))["总排名"]

    # then: the cell holds the name as text behind an apostrophe, never a formula
    cell = sheet["C7"]
    assert (cell.value, cell.data_type) == (NEUTRALIZED_NAME, "s")
    assert [c.data_type for row in sheet.iter_rows() for c in row].count("f") == 0


def test_ranking_sheet_is_ready_to_filter_and_print(world, ranked):
    # when
    sheet = open_workbook(ranking_workbook(world.committee))["总排名"]

    # then
    assert sheet.freeze_panes == "A5"
    assert sheet.auto_filter.ref == "A4:O12"
    assert sheet.print_title_rows == "$1:$4"
    assert (
        sheet.page_setup.orientation,
        sheet.page_setup.paperSize,
        sheet.page_setup.fitToWidth,
        sheet.page_setup.fitToHeight,
        sheet.sheet_properties.pageSetUpPr.fitToPage,
    ) == ("landscape", 9, 1, 0, True)
    assert [sheet.column_dimensions[letter].width for letter in "ACDF"] == [9, 12, 28, 16]
    assert [cell.font.b for cell in sheet[4]] == [True] * 15
    assert (sheet["A1"].font.b, sheet["A1"].font.sz) == (True, 14)


def test_branch_summary_and_statistics_sheets(world, ranked):
    # when
    workbook = open_workbook(ranking_workbook(world.committee))

    # then
    summaries = workbook["支部汇总"]
    assert sheet_rows(summaries)[0][0] == "测试党委 2025 年度党员积分排名 · 各支部汇总"
    assert sheet_rows(summaries, first_row=4) == [
        ("党支部", "上级组织", "参与排名人数", "平均分", "最高分", "最低分", "五星", "四星", "三星", "二星", "一星", "优秀", "合格", "不合格", "一票否决", "表扬对象", "谈心谈话对象", "堡垒指数"),
        ("甲党支部", "测试党总支", 2, 130, 150, 110, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 135.4),
        ("乙党支部", "测试党总支", 2, 108, 120, 96, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 112.5),
        ("丙党支部", "测试党委", 2, 50, 100, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 52.1),
    ]  # fmt: skip
    assert (summaries.freeze_panes, summaries.auto_filter.ref) == ("A5", "A4:R7")
    statistics = workbook["统计"]
    assert sheet_rows(statistics, first_row=4) == [
        ("项目", "数值", "占比"),
        ("参与排名人数", 6, None),
        ("平均分", 96, None),
        ("最高分", 150, None),
        ("最低分", 0, None),
        ("一票否决", 1, "16.7%"),
        ("表扬对象", 3, "50.0%"),
        ("谈心谈话对象", 3, "50.0%"),
        (None, None, None),
        ("星级分布", "人数", "占比"),
        ("五星", 2, "33.3%"),
        ("四星", 1, "16.7%"),
        ("三星", 1, "16.7%"),
        ("二星", 1, "16.7%"),
        ("一星", 1, "16.7%"),
        (None, None, None),
        ("等次分布", "人数", "占比"),
        ("优秀", 2, "33.3%"),
        ("合格", 3, "50.0%"),
        ("不合格", 1, "16.7%"),
        (None, None, None),
        ("分数段分布", "人数", "占比"),
        ("<60", 1, "16.7%"),
        ("60–70", 0, "0.0%"),
        ("70–80", 0, "0.0%"),
        ("80–90", 0, "0.0%"),
        ("90–100", 1, "16.7%"),
        ("100–110", 1, "16.7%"),
        ("110–120", 1, "16.7%"),
        ("120–130", 1, "16.7%"),
        ("≥130", 1, "16.7%"),
    ]
    assert statistics.auto_filter.ref is None


def test_quarterly_ranking_of_a_general_branch_for_one_category(world, ranked):
    # when
    workbook = open_workbook(
        ranking_workbook(world.tree.general_branch, quarter=2, category=Member.Category.FULL)
    )

    # then: the general branch's full members, in committee rank order, with the quarter's
    # figures and the year-to-date total; no grade column in a quarter
    sheet = workbook["总排名"]
    assert [row[0] for row in sheet_rows(sheet)[:5]] == [
        "测试党总支 2025 年第 2 季度党员积分排名（正式党员）",
        "生成时间：2026-01-05 09:30",
        RANKING_NOTE,
        "仅列出正式党员；名次仍为其所在排名序列全体中的名次。",
        "党委排名",
    ]
    assert sheet_rows(sheet, first_row=5) == [
        ("党委排名", "支部排名", "姓名", "所在支部", "党员类别", "排名序列", "基础分", "本季度加分", "本季度减分", "本季度净得分", "年度累计", "星级", "一票否决", "表扬对象（前 N 名）", "谈心谈话（后 N 名）"),
        (1, 1, "甲", "甲党支部", "正式党员", "党员", 100, 0, 0, 0, 150, "五星", None, "是", None),
        (2, 1, "丙", "乙党支部", "正式党员", "党员", 100, 20, 0, 20, 120, "五星", None, "是", None),
        (3, 2, NEUTRALIZED_NAME, "甲党支部", "正式党员", "党员", 100, 10, 0, 10, 110, "四星", None, None, "是"),
        (4, 2, "丁", "乙党支部", "正式党员", "党员", 100, 0, 0, 0, 100, "三星", None, None, "是"),
    ]  # fmt: skip
    assert (sheet.freeze_panes, sheet.auto_filter.ref, sheet.print_title_rows) == (
        "A6",
        "A5:O9",
        "$1:$5",
    )
    assert [row[0] for row in sheet_rows(workbook["统计"], first_row=13)] == [
        "星级分布",
        "五星",
        "四星",
        "三星",
        "二星",
        "一星",
        None,
        "分数段分布",
        "<60",
        "60–70",
        "70–80",
        "80–90",
        "90–100",
        "100–110",
        "110–120",
        "120–130",
        "≥130",
    ]


def test_a_branch_ranking_is_in_branch_rank_order_with_the_unranked_last(world, ranked):
    # when
    sheet = open_workbook(ranking_workbook(world.tree.branch_c))["总排名"]

    # then
    assert sheet_rows(sheet, first_row=5) == [
        (4, 1, "戊", "丙党支部", "预备党员", "党员", 100, 0, 0, 100, "三星", "合格", None, "是", None),
        (6, 2, "辛", "丙党支部", "正式党员", "党员", 100, 0, 0, 0, "一星", "不合格", "是", None, "是"),
        (None, None, "庚", "丙党支部", "正式党员", "不参与排名", 100, 0, 0, 100, None, None, None, None, None),
    ]  # fmt: skip


def test_progress_is_reported_every_few_rows(world, ranked, monkeypatch):
    # given
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)
    seen: list[int] = []

    # when: 8 members and 3 branch summaries
    written = exports.write_ranking_workbook(
        io.BytesIO(), organization=world.committee, year=YEAR, progress=seen.append
    )

    # then
    assert written == 11
    assert seen == [2, 4, 6, 8, 10]


def test_an_empty_period_gives_the_headers_and_no_rows(world):
    # when
    workbook = open_workbook(ranking_workbook(world.committee, quarter=4))

    # then
    sheet = workbook["总排名"]
    assert len(sheet_rows(sheet)) == 4
    assert sheet.auto_filter.ref == "A4:O5"
    assert sheet_rows(workbook["支部汇总"], first_row=5) == [
        ("甲党支部", "测试党总支", 0, None, None, None, 0, 0, 0, 0, 0, 0, 0, 0, "—"),
        ("乙党支部", "测试党总支", 0, None, None, None, 0, 0, 0, 0, 0, 0, 0, 0, "—"),
        ("丙党支部", "测试党委", 0, None, None, None, 0, 0, 0, 0, 0, 0, 0, 0, "—"),
    ]


# --- the ledger workbook ---------------------------------------------------------------------


def test_branch_ledger_lists_every_entry_with_rule_people_and_reversals(
    world, ranked, committed, reverse
):
    # given: an entry whose description starts with "+", and its reversal
    entry = committed(
        services.entry_record,
        user=world.recorder,
        member=ranked["甲"],
        rule=world.rules.suggestion,
        occurred_on=in_quarter(3),
        description="+加分说明",
    )
    reversal = reverse(entry, in_quarter(3, 2), reason="@记录有误")
    first = ranked["甲"].entries.order_by("id").first()

    # when
    buffer = io.BytesIO()
    exports.write_ledger_workbook(
        buffer, branch=world.tree.branch_a, year=YEAR, generated_at=GENERATED_AT
    )

    # then
    sheet = open_workbook(buffer.getvalue())["台账"]
    assert [row[0] for row in sheet_rows(sheet)[:3]] == [
        "甲党支部 2025 年度积分台账",
        "生成时间：2026-01-05 09:30",
        "台账只增不改：更正以冲销记录（分值与原记录相反）加新记录的方式进行；"
        "“冲销的记录编号”指本条冲销的原记录，“被冲销”指冲销本条的记录。",
    ]

    def created(pk: int) -> str:
        stored = type(entry).objects.get(pk=pk).created_at
        return timezone.localtime(stored).strftime("%Y-%m-%d %H:%M")

    formula_entry = ranked["formula"].entries.get()
    activist_entry = ranked["己"].entries.get()
    assert sheet_rows(sheet, first_row=4) == [
        ("记录编号", "发生日期", "季度", "党员", "党员类别", "细则项编号", "细则项", "类型", "分值", "事项", "原因", "记录人", "审核人", "冲销的记录编号", "被冲销（冲销记录编号）", "记录时间"),
        (first.pk, "2025-01-01", 1, "甲", "正式党员", "B02", "讲微党课", "加分", 50, "讲微党课（2025-01-01）", None, "committee_secretary", None, None, None, created(first.pk)),
        (activist_entry.pk, "2025-01-01", 1, "己", "入党积极分子", "B01", "研讨发言", "加分", 5, "研讨发言（2025-01-01）", None, "committee_secretary", None, None, None, created(activist_entry.pk)),
        (formula_entry.pk, "2025-04-01", 2, NEUTRALIZED_NAME, "正式党员", "B03", "提出建议", "加分", 10, "提出建议（2025-04-01）", None, "committee_secretary", None, None, None, created(formula_entry.pk)),
        (entry.pk, "2025-07-01", 3, "甲", "正式党员", "B03", "提出建议", "加分", 10, "'+加分说明", None, "committee_secretary", None, None, reversal.pk, created(entry.pk)),
        (reversal.pk, "2025-08-01", 3, "甲", "正式党员", "B03", "提出建议", "加分", -10, "冲销：+加分说明", "'@记录有误", "committee_secretary", None, entry.pk, None, created(reversal.pk)),
    ]  # fmt: skip
    assert (sheet.freeze_panes, sheet.auto_filter.ref, sheet.print_title_rows) == (
        "A5",
        "A4:P9",
        "$1:$4",
    )
    assert sheet.page_setup.orientation == "landscape"


def test_ledger_of_one_quarter_shows_who_approved_a_declaration(world, ranked, committed):
    # given: a declaration by the member, approved by a second user
    member_user = UserFactory(username="jia", first_name="甲")
    Member.objects.filter(pk=ranked["甲"].pk).update(user=member_user)
    ranked["甲"].refresh_from_db()
    approver = UserFactory(username="approver", first_name="王", last_name="书记")
    RoleFactory(user=approver, organization=world.tree.branch_a, post=Role.Post.SECRETARY)
    declaration = committed(
        services.declaration_submit,
        user=member_user,
        member=ranked["甲"],
        rule=world.rules.suggestion,
        occurred_on=in_quarter(4),
        description="建议",
    )
    entry = committed(services.declaration_approve, user=approver, declaration=declaration)

    # when
    buffer = io.BytesIO()
    exports.write_ledger_workbook(buffer, branch=world.tree.branch_a, year=YEAR, quarter=4)

    # then
    rows = sheet_rows(open_workbook(buffer.getvalue())["台账"], first_row=5)
    assert [(row[0], row[3], row[8], row[11], row[12]) for row in rows] == [
        (entry.pk, "甲", 10, "甲", "王 书记")
    ]


# --- who may export ------------------------------------------------------------------------

ALL = frozenset(ORGANIZATION_KEYS)
UNDER_GENERAL = frozenset({"general_branch", "branch_a", "branch_b"})
NONE: frozenset[str] = frozenset()
# user → the organizations (tree keys) where they may export rankings and ledgers alike.
EXPECTED_EXPORT_REACH = {
    "committee_staff": ALL,
    "general_staff": UNDER_GENERAL,
    "secretary_a": frozenset({"branch_a"}),
    "recorder_a": NONE,
    "discipline_a": NONE,
    "member_a": NONE,
    "secretary_b": frozenset({"branch_b"}),
    "member_b": NONE,
    "no_role": NONE,
    "superuser": ALL,
}


@pytest.mark.parametrize("action", [Action.EXPORT_RANKING, Action.EXPORT_LEDGER])
@pytest.mark.parametrize("key", sorted(EXPECTED_EXPORT_REACH))
def test_export_rights_reach_the_posts_subtree(tree, users, key, action):
    user = users[key]
    reach = {
        organization_key
        for organization_key in ORGANIZATION_KEYS
        if can(user, action, tree.by_key(organization_key))
    }
    assert reach == EXPECTED_EXPORT_REACH[key]
    assert {o.pk for o in organizations_where(user, action)} == {
        tree.by_key(k).pk for k in EXPECTED_EXPORT_REACH[key]
    }


@pytest.mark.parametrize("post", [Role.Post.DEPUTY_SECRETARY, Role.Post.ORGANIZATION_COMMISSIONER])
def test_other_branch_leaders_may_export_their_branch(tree, post):
    user = UserFactory()
    RoleFactory(user=user, organization=tree.branch_a, post=post)
    assert [
        can(user, action, organization)
        for action in (Action.EXPORT_RANKING, Action.EXPORT_LEDGER)
        for organization in (tree.branch_a, tree.branch_b)
    ] == [True, False, True, False]


@pytest.mark.parametrize("post", [Role.Post.COMMITTEE_MEMBER, Role.Post.RECORDER])
def test_other_branch_posts_may_not_export(tree, post):
    user = UserFactory()
    RoleFactory(user=user, organization=tree.branch_a, post=post)
    assert can(user, Action.EXPORT_RANKING, tree.branch_a) is False
    assert can(user, Action.EXPORT_LEDGER, tree.branch_a) is False


# --- the job service -----------------------------------------------------------------------


def create(user: User, organization, *, run: bool, capture, **fields) -> ExportJob:
    values = {"kind": Kind.ANNUAL_RANKING, "year": YEAR, "quarter": 0, "category": "", **fields}
    with capture(execute=run):
        return exports.export_job_create(user=user, organization=organization, **values)


def test_a_job_is_written_in_the_background_and_kept_for_download(
    world, ranked, django_capture_on_commit_callbacks
):
    # when: the job is enqueued on commit and run (eager)
    job = create(
        world.recorder, world.committee, run=True, capture=django_capture_on_commit_callbacks
    )

    # then
    job.refresh_from_db()
    assert (job.status, job.error, job.rows_total, job.rows_written, job.percent) == (
        Status.DONE,
        "",
        11,
        11,
        100,
    )
    assert job.filename == "测试党委-2025年度党员积分排名.xlsx"
    assert job.file.name.startswith(f"exports/{world.committee.pk}/{job.pk}-")
    assert job.started_at is not None and job.finished_at is not None
    with job.file.open("rb") as content:
        rows = sheet_rows(open_workbook(content.read())["总排名"], first_row=5)
    assert rows == COMMITTEE_ROWS


def test_a_done_job_is_not_done_again(world, ranked, django_capture_on_commit_callbacks):
    # given
    job = create(
        world.recorder, world.committee, run=True, capture=django_capture_on_commit_callbacks
    )
    job.refresh_from_db()
    before = (job.file.name, job.finished_at, job.started_at)

    # when
    result = exports.export_job_run(job_id=job.pk)

    # then
    job.refresh_from_db()
    assert result == Status.DONE
    assert (job.file.name, job.finished_at, job.started_at) == before
    assert len(os.listdir(Path(job.file.path).parent)) == 1


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"kind": "everything"}, {"kind": ["请选择导出内容：年度积分排名、季度积分排名或支部积分台账。"]}),
        ({"year": 1999}, {"year": ["年度须为 2000 至 2100 之间的整数。"]}),
        ({"year": "2025"}, {"year": ["年度须为 2000 至 2100 之间的整数。"]}),
        ({"year": 2100}, {"year": ["2100 年度还没有开始，不能导出。"]}),
        ({"quarter": 2}, {"quarter": ["年度积分排名不分季度，请选择“全年”。"]}),
        ({"kind": Kind.QUARTERLY_RANKING}, {"quarter": ["季度积分排名请选择第 1 至第 4 季度。"]}),
        ({"kind": Kind.QUARTERLY_RANKING, "quarter": 5}, {"quarter": ["季度须为 1 至 4，或 0 表示全年。"]}),
        ({"kind": Kind.BRANCH_LEDGER}, {"organization": ["积分台账按党支部导出，请选择一个党支部。"]}),
        ({"category": "member"}, {"category": ["党员类别“member”不存在。"]}),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_message_and_creates_no_job(
    world, django_capture_on_commit_callbacks, fields, errors
):
    with pytest.raises(ValidationError) as refused:
        create(
            world.recorder,
            world.committee,
            run=True,
            capture=django_capture_on_commit_callbacks,
            **fields,
        )
    assert refused.value.message_dict == errors
    assert ExportJob.objects.count() == 0


@pytest.mark.parametrize("key", ["member_a", "recorder_a", "secretary_b", "general_staff"])
def test_no_export_right_no_job(tree, users, key, django_capture_on_commit_callbacks):
    with pytest.raises(PermissionDenied):
        create(users[key], tree.branch_c, run=True, capture=django_capture_on_commit_callbacks)
    assert ExportJob.objects.count() == 0


def test_the_same_export_asked_again_while_it_runs_is_not_started_twice(
    world, django_capture_on_commit_callbacks
):
    # given: a job that a worker is writing
    running = create(
        world.recorder, world.committee, run=False, capture=django_capture_on_commit_callbacks
    )
    ExportJob.objects.filter(pk=running.pk).update(status=Status.RUNNING, started_at=timezone.now())

    # when
    with pytest.raises(exports.ExportAlreadyRunning) as refused:
        create(
            world.recorder, world.committee, run=True, capture=django_capture_on_commit_callbacks
        )

    # then
    assert refused.value.job == running
    assert refused.value.messages == [
        "相同的导出（测试党委 2025 年度党员积分排名）正在进行中，请等它完成后再下载，无需重复申请。"
    ]
    assert list(ExportJob.objects.values_list("pk", "status")) == [(running.pk, Status.RUNNING)]


def test_another_period_or_category_is_another_export(world, django_capture_on_commit_callbacks):
    # given
    first = create(
        world.recorder, world.committee, run=False, capture=django_capture_on_commit_callbacks
    )

    # when
    second = create(
        world.recorder,
        world.committee,
        run=False,
        capture=django_capture_on_commit_callbacks,
        category=Member.Category.PROBATIONARY,
    )

    # then
    assert ExportJob.objects.filter(status=Status.PENDING).count() == 2
    assert first.pk != second.pk
    assert second.filename == "测试党委-2025年度党员积分排名-预备党员.xlsx"


def test_a_job_whose_worker_was_lost_is_failed_and_asked_again(
    world, ranked, django_capture_on_commit_callbacks
):
    # given: "running" since long before the hard time limit
    lost = create(
        world.recorder, world.committee, run=False, capture=django_capture_on_commit_callbacks
    )
    long_ago = timezone.now() - exports.STALE_AFTER - timedelta(seconds=1)
    ExportJob.objects.filter(pk=lost.pk).update(status=Status.RUNNING, started_at=long_ago)

    # when
    again = create(
        world.recorder, world.committee, run=True, capture=django_capture_on_commit_callbacks
    )

    # then
    lost.refresh_from_db()
    again.refresh_from_db()
    assert (lost.status, lost.error) == (Status.FAILED, "导出任务意外中断，请重新导出。")
    assert again.status == Status.DONE


def test_a_job_that_never_reached_a_worker_is_failed_when_the_page_is_seen(
    world, django_capture_on_commit_callbacks
):
    # given
    job = create(
        world.recorder, world.committee, run=False, capture=django_capture_on_commit_callbacks
    )
    ExportJob.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - exports.PENDING_TIMEOUT - timedelta(seconds=1)
    )

    # when
    response = logged_in_client(world.recorder).get(reverse("scoring:exports"))

    # then
    job.refresh_from_db()
    assert response.status_code == 200
    assert (job.status, job.error) == (
        Status.FAILED,
        "导出任务长时间未能开始（后台任务服务可能未运行），请稍后重新导出。",
    )
    assert "导出任务长时间未能开始" in response.content.decode()


def test_a_job_for_a_bad_input_fails_with_the_reason_and_no_file(world, export_storage):
    # given: a ledger job on a committee, written into the table directly (no service)
    job = ExportJob.objects.create(
        kind=Kind.BRANCH_LEDGER,
        organization=world.committee,
        year=YEAR,
        requested_by=world.recorder,
        filename="x.xlsx",
    )

    # when
    result = exports.export_job_run(job_id=job.pk)

    # then
    job.refresh_from_db()
    assert result == Status.FAILED
    assert (job.status, job.error, job.file.name) == (
        Status.FAILED,
        "积分台账按党支部导出，请选择一个党支部。",
        "",
    )
    assert os.listdir(export_storage / "tmp") == []


def test_a_job_that_cannot_store_its_file_fails_and_leaves_nothing_behind(
    world, ranked, settings, export_storage
):
    # given: the media folder is a file, so the workbook cannot be stored
    blocker = export_storage / "not-a-folder"
    blocker.write_text("x")
    settings.MEDIA_ROOT = blocker
    job = ExportJob.objects.create(
        kind=Kind.ANNUAL_RANKING,
        organization=world.committee,
        year=YEAR,
        requested_by=world.recorder,
        filename="x.xlsx",
    )

    # when
    result = exports.export_job_run(job_id=job.pk)

    # then
    job.refresh_from_db()
    assert result == Status.FAILED
    assert (job.status, job.error, job.file.name, job.rows_total) == (
        Status.FAILED,
        "生成文件时出错，导出失败。请稍后重试；如仍失败，请联系管理员。",
        "",
        11,
    )
    assert os.listdir(export_storage / "tmp") == []
    assert job.finished_at is not None


def test_a_job_whose_broker_is_down_fails_with_a_clear_message(
    world, django_capture_on_commit_callbacks
):
    # given: a broker address where nothing listens
    with broker_at("redis://127.0.0.1:1/0"):
        # when
        job = create(
            world.recorder, world.committee, run=True, capture=django_capture_on_commit_callbacks
        )

    # then
    job.refresh_from_db()
    assert (job.status, job.error) == (
        Status.FAILED,
        "后台任务服务暂时不可用，导出未能开始，请稍后重试。",
    )


def test_jobs_for_a_user_are_their_own_where_they_still_may_export(
    tree, users, django_capture_on_commit_callbacks
):
    # given
    mine = create(
        users["secretary_a"], tree.branch_a, run=False, capture=django_capture_on_commit_callbacks
    )
    create(
        users["committee_staff"],
        tree.branch_a,
        run=False,
        capture=django_capture_on_commit_callbacks,
    )

    # then
    assert list(selectors.export_jobs_for(users["secretary_a"])) == [mine]
    assert list(selectors.export_jobs_for(users["secretary_b"])) == []

    # when: the secretary leaves the post
    Role.objects.filter(user=users["secretary_a"]).delete()
    user = User.objects.get(pk=users["secretary_a"].pk)

    # then
    assert list(selectors.export_jobs_for(user)) == []


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Publish to the broker at ``url`` instead of running tasks in-process.

    Set as the write URL, which wins over the CELERY_BROKER_URL of the environment; the
    app's connection pools are dropped on the way in and out, since a pool made earlier
    would keep publishing to the broker it was made for."""
    conf = celery_app.conf
    names = ("task_always_eager", "broker_write_url", "broker_connection_timeout")
    previous = {name: conf.get(name) for name in names}
    conf.update(task_always_eager=False, broker_write_url=url, broker_connection_timeout=1)
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.update(previous)
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


# --- the pages -------------------------------------------------------------------------------


def post_export(client, organization, capture, **fields):
    data = {
        "kind": Kind.ANNUAL_RANKING,
        "organization": organization.pk,
        "year": YEAR,
        "quarter": 0,
        "category": "",
        **fields,
    }
    with capture(execute=True):
        return client.post(reverse("scoring:exports"), data)


def test_asking_for_an_export_on_the_page_runs_it_and_offers_the_download(
    tree, users, members, client_for, django_capture_on_commit_callbacks
):
    # given
    client = client_for("secretary_a")

    # when
    response = post_export(client, tree.branch_a, django_capture_on_commit_callbacks)

    # then: redirected (PRG) to the page, which shows the finished job
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == (
        f"{reverse('scoring:exports')}?organization={tree.branch_a.pk}&kind=annual_ranking"
        f"&year={YEAR}&quarter=0#export-job-{job.pk}"
    )
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "已开始导出“甲党支部 2025 年度党员积分排名”，完成后可在下方下载。" in html
    assert reverse("scoring:export_download", kwargs={"pk": job.pk}) in html
    assert 'hx-trigger="every 2s"' not in html

    download = client.get(reverse("scoring:export_download", kwargs={"pk": job.pk}))
    assert download.status_code == 200
    assert download["Content-Type"] == XLSX_CONTENT_TYPE
    assert download["Content-Disposition"] == (
        "attachment; filename*=UTF-8''" + quote("甲党支部-2025年度党员积分排名.xlsx")
    )
    workbook = open_workbook(b"".join(download.streaming_content))
    assert workbook.sheetnames == ["总排名", "支部汇总", "统计"]


@pytest.mark.parametrize("key", ["committee_staff", "secretary_b", "member_a", "anonymous"])
def test_only_the_requester_downloads(
    tree, users, members, client_for, key, django_capture_on_commit_callbacks
):
    # given
    post_export(client_for("secretary_a"), tree.branch_a, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()

    # when
    response = client_for(key).get(reverse("scoring:export_download", kwargs={"pk": job.pk}))
    status = client_for(key).get(reverse("scoring:export_status", kwargs={"pk": job.pk}))

    # then
    assert response.status_code == (302 if key == "anonymous" else 404)
    assert status.status_code == (302 if key == "anonymous" else 404)


@pytest.mark.parametrize(
    ("key", "organization_key"),
    [
        ("member_a", "branch_a"),
        ("recorder_a", "branch_a"),
        ("secretary_b", "branch_a"),
        ("general_staff", "branch_c"),
        ("secretary_a", "general_branch"),
    ],
)
def test_exporting_outside_ones_reach_is_404_and_creates_no_job(
    tree, users, client_for, key, organization_key, django_capture_on_commit_callbacks
):
    # when
    response = post_export(
        client_for(key), tree.by_key(organization_key), django_capture_on_commit_callbacks
    )

    # then
    assert response.status_code == 404
    assert ExportJob.objects.count() == 0


@pytest.mark.parametrize("key", ["member_a", "recorder_a", "no_role"])
def test_the_exports_page_is_404_without_any_export_right(users, client_for, key):
    assert client_for(key).get(reverse("scoring:exports")).status_code == 404


def test_the_page_prefills_the_form_and_lists_the_organizations(tree, users, client_for):
    # when
    response = client_for("committee_staff").get(
        reverse("scoring:exports"),
        {"organization": tree.branch_b.pk, "kind": "quarterly_ranking", "year": 2024, "quarter": 3},
    )

    # then: the committee and general branch, and the branch the page was opened for
    form = response.context["form"]
    assert response.status_code == 200
    assert [label.strip("\u3000") for _pk, label in form.fields["organization"].choices] == [
        "测试党委",
        "测试党总支",
        "乙党支部",
    ]
    assert (form["organization"].value(), form["kind"].value(), form["year"].value()) == (
        tree.branch_b.pk,
        "quarterly_ranking",
        2024,
    )
    assert form["quarter"].value() == 3


def test_a_secretary_is_offered_their_branch(tree, users, client_for):
    response = client_for("secretary_a").get(reverse("scoring:exports"))
    assert [pk for pk, _label in response.context["form"].fields["organization"].choices] == [
        tree.branch_a.pk
    ]


def test_a_bad_form_is_shown_again_with_the_reason_and_creates_no_job(
    tree, users, client_for, django_capture_on_commit_callbacks
):
    # when
    response = post_export(
        client_for("committee_staff"),
        tree.committee,
        django_capture_on_commit_callbacks,
        quarter=2,
    )

    # then
    assert response.status_code == 422
    assert response.context["form"].errors == {"quarter": ["年度积分排名不分季度，请选择“全年”。"]}
    assert "年度积分排名不分季度，请选择“全年”。" in response.content.decode()
    assert ExportJob.objects.count() == 0


def test_asking_again_while_it_runs_shows_the_running_job(
    tree, users, client_for, django_capture_on_commit_callbacks
):
    # given
    client = client_for("committee_staff")
    running = create(
        users["committee_staff"],
        tree.committee,
        run=False,
        capture=django_capture_on_commit_callbacks,
    )
    ExportJob.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, started_at=timezone.now(), rows_total=200, rows_written=50
    )

    # when
    response = post_export(client, tree.committee, django_capture_on_commit_callbacks)

    # then
    assert response.status_code == 302
    assert response["Location"].endswith(f"#export-job-{running.pk}")
    page = client.get(response["Location"]).content.decode()
    assert "相同的导出（测试党委 2025 年度党员积分排名）正在进行中" in page
    assert (
        f'hx-get="{reverse("scoring:export_status", kwargs={"pk": running.pk})}" '
        'hx-trigger="every 2s" hx-swap="outerHTML"'
    ) in page
    assert '<progress class="w-100" max="100" value="25"' in page
    assert ExportJob.objects.count() == 1


def test_status_as_json_and_as_the_polled_row(
    tree, users, members, client_for, django_capture_on_commit_callbacks
):
    # given
    client = client_for("secretary_a")
    post_export(client, tree.branch_a, django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    url = reverse("scoring:export_status", kwargs={"pk": job.pk})

    # when
    data = client.get(url).json()
    row = client.get(url, headers={"HX-Request": "true"})

    # then
    assert data == {
        "id": job.pk,
        "kind": "annual_ranking",
        "status": "done",
        "status_display": "已完成",
        "percent": 100,
        "rows_written": 1,
        "rows_total": 1,
        "error": "",
        "download_url": reverse("scoring:export_download", kwargs={"pk": job.pk}),
    }
    html = row.content.decode()
    assert html.startswith(
        f'<tr id="export-job-{job.pk}" data-testid="export-job" data-status="done">'
    )
    assert "hx-get" not in html


def test_a_failed_job_shows_its_message(tree, users, client_for):
    # given
    job = ExportJob.objects.create(
        kind=Kind.ANNUAL_RANKING,
        organization=tree.committee,
        year=YEAR,
        requested_by=users["committee_staff"],
        status=Status.FAILED,
        error="生成文件时出错，导出失败。请稍后重试；如仍失败，请联系管理员。",
    )

    # when
    page = client_for("committee_staff").get(reverse("scoring:exports")).content.decode()

    # then
    assert 'data-status="failed"' in page
    assert "生成文件时出错，导出失败。请稍后重试；如仍失败，请联系管理员。" in page
    assert reverse("scoring:export_download", kwargs={"pk": job.pk}) not in page


# --- the branch ledger page's direct download ------------------------------------------------


def test_the_ledger_page_downloads_its_ledger_straight_away(world, ranked, monkeypatch):
    # given
    client = logged_in_client(world.recorder)

    # when
    response = client.get(
        reverse("scoring:branch_ledger_export", kwargs={"pk": world.tree.branch_b.pk}),
        {"year": YEAR},
    )

    # then
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        "attachment; filename*=UTF-8''" + quote("乙党支部-2025年度积分台账.xlsx")
    )
    rows = sheet_rows(open_workbook(b"".join(response.streaming_content))["台账"], first_row=5)
    assert [(row[3], row[6], row[8]) for row in rows] == [
        ("丙", "建议被采纳", 20),
        ("丁", "未完成支部任务", -4),
    ]
    assert ExportJob.objects.count() == 0


def test_a_big_ledger_becomes_a_job(world, ranked, monkeypatch, django_capture_on_commit_callbacks):
    # given
    monkeypatch.setattr("scoring.views.exports.DIRECT_LEDGER_ROWS", 1)
    client = logged_in_client(world.recorder)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(
            reverse("scoring:branch_ledger_export", kwargs={"pk": world.tree.branch_b.pk}),
            {"year": YEAR},
        )

    # then
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"#export-job-{job.pk}")
    assert (job.kind, job.organization, job.status, job.rows_written) == (
        Kind.BRANCH_LEDGER,
        world.tree.branch_b,
        Status.DONE,
        2,
    )


def test_a_ledger_download_for_a_bad_year_goes_back_with_a_message(world, client_for, users):
    response = logged_in_client(world.recorder).get(
        reverse("scoring:branch_ledger_export", kwargs={"pk": world.tree.branch_a.pk}),
        {"year": "1900"},
        follow=True,
    )
    assert response.redirect_chain == [
        (reverse("scoring:branch_ledger", kwargs={"pk": world.tree.branch_a.pk}), 302)
    ]
    assert [str(m) for m in response.context["messages"]] == ["年度须为 2000 至 2100 之间的整数。"]


@pytest.mark.parametrize(
    ("key", "status", "has_link"),
    [
        ("secretary_a", 200, True),
        ("committee_staff", 200, True),
        ("recorder_a", 200, False),
        ("discipline_a", 200, False),
        ("member_a", 404, False),
        ("secretary_b", 404, False),
    ],
)
def test_the_ledger_page_offers_the_download_to_those_who_may_export(
    tree, users, client_for, key, status, has_link
):
    # given
    client = client_for(key)
    download = reverse("scoring:branch_ledger_export", kwargs={"pk": tree.branch_a.pk})

    # when
    ledger = client.get(reverse("scoring:branch_ledger", kwargs={"pk": tree.branch_a.pk}))

    # then: the button shows exactly to those whose download answers
    assert ledger.status_code == status
    html = ledger.content.decode()
    assert ('data-testid="ledger-export-link"' in html) is has_link
    assert (f'href="{download}?year=' in html) is has_link
    direct = client.get(download, {"year": YEAR})
    assert direct.status_code == (200 if has_link else 404)


# --- the real worker -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_media_root(tmp_path_factory) -> Iterator[Path]:
    """One media folder for the worker and the test (the worker inherits the environment)."""
    root = tmp_path_factory.mktemp("export-media")
    previous = os.environ.get("MEDIA_ROOT")
    os.environ["MEDIA_ROOT"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("MEDIA_ROOT", None)
    else:
        os.environ["MEDIA_ROOT"] = previous


@pytest.fixture(scope="module")
def export_worker(worker_media_root, celery_worker_process) -> Worker:  # noqa: F811
    return celery_worker_process


@pytest.mark.postgres
@pytest.mark.worker
def test_the_worker_writes_a_committee_ranking(
    export_worker, worker_media_root, transactional_db, settings
):
    # given: committed data
    settings.MEDIA_ROOT = worker_media_root
    world = build_world(top_n_flag=1, bottom_n_flag=1)
    first = world.member("甲")
    second = world.member("乙", world.tree.branch_b)
    for member, rule in ((first, world.rules.lecture), (second, world.rules.adopted)):
        services.entry_record(
            user=world.recorder,
            member=member,
            rule=rule,
            occurred_on=in_quarter(2),
            description=rule.name,
        )
    handled = export_worker.handled("scoring.tasks.export_run")

    # when: asked for on the web path's service; the job goes to the broker on commit
    with broker_at(os.environ["CELERY_BROKER_URL"]):
        job = exports.export_job_create(
            user=world.recorder, kind=Kind.ANNUAL_RANKING, organization=world.committee, year=YEAR
        )
        export_worker.wait_for(
            lambda: ExportJob.objects.filter(
                pk=job.pk, status__in=[Status.DONE, Status.FAILED]
            ).exists(),
            "the worker to finish the export",
        )

    # then
    job.refresh_from_db()
    assert (job.status, job.error, job.rows_total, job.rows_written) == (Status.DONE, "", 5, 5)
    export_worker.wait_for(
        lambda: export_worker.handled("scoring.tasks.export_run") == handled + 1,
        "the worker's log of the task",
    )
    with job.file.open("rb") as content:
        rows = sheet_rows(open_workbook(content.read())["总排名"], first_row=5)
    assert [(row[0], row[2], row[9]) for row in rows] == [(1, "甲", 150), (2, "乙", 120)]
    assert Decimal(str(rows[0][9])) == Decimal("150")


# --- the streamed sheet ----------------------------------------------------------------------


def test_table_sheet_writes_every_kind_of_value_and_neutralizes_text():
    # given
    workbook = Workbook(write_only=True)
    sheet = table_sheet(workbook, "表", [Column("甲"), Column("乙")], title_rows=["标题"])

    # when: plain rows (the fast path) and a row with a date (openpyxl's own writer)
    sheet.add_rows(
        [
            ["a&b<c>", " 前有空格", "后有空格 ", "\x01=SUM(1)", "@x", "-1", "\t+y", ""],
            [True, False, 1.5, Decimal("2.25"), 7, None, "=1+1"],
            [date(2025, 1, 2), "=2+2", Decimal("-0.50")],
        ]
    )
    sheet.finish()
    buffer = io.BytesIO()
    workbook.save(buffer)

    # then
    read = open_workbook(buffer.getvalue())["表"]
    assert sheet_rows(read, first_row=3) == [
        ("a&b<c>", " 前有空格", "后有空格 ", "'=SUM(1)", "'@x", "'-1", "'\t+y", None),
        (True, False, 1.5, 2.25, 7, None, "'=1+1", None),
        (datetime(2025, 1, 2), "'=2+2", -0.5, None, None, None, None, None),
    ]
    assert [cell.data_type for cell in read[4]][:7] == ["b", "b", "n", "n", "n", "n", "s"]
    assert (read.freeze_panes, read.auto_filter.ref, read.print_title_rows) == (
        "A3",
        "A2:B5",
        "$1:$2",
    )


def test_a_workbook_that_fails_midway_leaves_no_temporary_file(tmp_path, monkeypatch):
    # given: openpyxl's sheet files go to this test's folder
    folder = tmp_path / "openpyxl"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))

    def rows():
        yield ["甲", 1]
        yield ["乙", 2]
        raise RuntimeError("the rows stopped coming")

    # when
    with pytest.raises(RuntimeError), streamed_workbook(io.BytesIO()) as workbook:
        table_sheet(workbook, "一", [Column("甲")]).add_rows([["x"]])
        table_sheet(workbook, "二", [Column("甲"), Column("乙")]).add_rows(rows())

    # then
    assert os.listdir(folder) == []
