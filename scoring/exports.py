"""Excel exports: the annual and quarterly ranking workbooks and a branch's ledger 台账.

Each export is a generator of rows (``values_list`` read with ``iterator()``, no model
instance per row) and a writer that streams them into a write-only workbook
(``members.excel.table_sheet``: neutralized text, frozen header, filter buttons, A4 landscape
with the title rows repeated on every printed page). Memory stays flat however many rows.

Big exports run in the background as an ``ExportJob``: ``export_job_create`` checks the
right and the input and enqueues ``scoring.tasks.export_run``, which calls
``export_job_run``: it claims the job with a conditional update, writes the workbook to a
temporary file while updating the progress, keeps the file for download and marks the job
done — or failed, with a message for the user, and no file left behind.

Ranks in the ranking workbook are the stored ones, never recomputed for the export:
party members (正式、预备党员) and candidates (发展对象、入党积极分子) are ranked
separately, ties share a rank; 党委排名 is the rank among the whole committee, 支部排名
the rank in the member's branch. A category filter only selects rows: the ranks shown are
still those of the whole sequence. Exempt and transferred-out members are not ranked; they
are listed last, without a rank.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override
from kombu.exceptions import OperationalError

from config.routers import reading_from_replica
from members.excel import Column, streamed_workbook, table_sheet
from members.models import Member, Organization
from members.permissions import Action, can

from .models import Entry, ExportJob, PeriodScore, Rule
from .summaries import branch_summaries, period_distribution, summary_scope

logger = logging.getLogger(__name__)

Kind = ExportJob.Kind
Status = ExportJob.Status
RANKING_KINDS = (Kind.ANNUAL_RANKING, Kind.QUARTERLY_RANKING)
ACTIVE = (Status.PENDING, Status.RUNNING)

FETCH_ROWS = 5000  # rows per round trip of the server-side cursor
PROGRESS_EVERY = 5000  # rows between two progress updates of a job
# The export task's limits (seconds). A job still "running" after the hard limit has lost
# its worker; one still "pending" after PENDING_TIMEOUT never reached one.
SOFT_TIME_LIMIT = 600
HARD_TIME_LIMIT = 660
STALE_AFTER = timedelta(seconds=HARD_TIME_LIMIT + 60)
PENDING_TIMEOUT = timedelta(hours=1)
YES = "是"


class ExportError(Exception):
    """A job that cannot be done; the message is for the user."""


class ExportAlreadyRunning(ValidationError):
    """The same export is already pending or running; ``job`` is that one."""

    def __init__(self, job: ExportJob) -> None:
        super().__init__(
            _("相同的导出（%(what)s）正在进行中，请等它完成后再下载，无需重复申请。")
            % {"what": describe(job)}
        )
        self.job = job


def action_for(kind: str) -> Action:
    return Action.EXPORT_LEDGER if kind == Kind.BRANCH_LEDGER else Action.EXPORT_RANKING


# --- names -----------------------------------------------------------------------------------


def _period(year: int, quarter: int) -> str:
    if quarter:
        return _("%(year)s 年第 %(quarter)s 季度") % {"year": year, "quarter": quarter}
    return _("%(year)s 年度") % {"year": year}


def _category_label(category: str) -> str:
    return str(Member.Category(category).label) if category else ""


def describe(job: ExportJob) -> str:
    """ "测试党委 2025 年度党员积分排名（预备党员）" — what a job exports, for the page."""
    return _title(job.kind, job.organization.name, job.year, job.quarter, job.category)


def _title(kind: str, name: str, year: int, quarter: int, category: str) -> str:
    if kind == Kind.BRANCH_LEDGER:
        title = _("%(name)s %(period)s积分台账") % {"name": name, "period": _period(year, quarter)}
    else:
        title = _("%(name)s %(period)s党员积分排名") % {
            "name": name,
            "period": _period(year, quarter),
        }
    if category:
        title += _("（%(category)s）") % {"category": _category_label(category)}
    return title


def export_filename(
    kind: str, organization: Organization, year: int, quarter: int, category: str
) -> str:
    """The download's name: "测试党委-2025年度党员积分排名.xlsx"."""
    name = organization.name.replace("/", "_").replace("\\", "_")
    period = f"{year}年第{quarter}季度" if quarter else f"{year}年度"
    what = _("积分台账") if kind == Kind.BRANCH_LEDGER else _("党员积分排名")
    parts = [name, f"{period}{what}"]
    if category:
        parts.append(_category_label(category))
    return "-".join(parts) + ".xlsx"


def _generated_line(generated_at: datetime) -> str:
    local = timezone.localtime(generated_at)
    return _("生成时间：%(time)s") % {"time": local.strftime("%Y-%m-%d %H:%M")}


# --- input -----------------------------------------------------------------------------------


def validate_export(
    *, kind: str, organization: Organization | None, year: Any, quarter: Any, category: str
) -> None:
    """Raise ValidationError (messages by field, in Chinese) for an export that cannot be made."""
    errors: dict[str, str] = {}
    if kind not in Kind.values:
        errors["kind"] = _("请选择导出内容：年度积分排名、季度积分排名或支部积分台账。")
    if organization is None:
        errors["organization"] = _("请选择党组织。")
    elif kind == Kind.BRANCH_LEDGER and organization.kind != Organization.Kind.BRANCH:
        errors["organization"] = _("积分台账按党支部导出，请选择一个党支部。")
    this_year = timezone.localdate().year
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        errors["year"] = _("年度须为 2000 至 2100 之间的整数。")
    elif year > this_year:
        errors["year"] = _("%(year)s 年度还没有开始，不能导出。") % {"year": year}
    if isinstance(quarter, bool) or not isinstance(quarter, int) or quarter not in (0, 1, 2, 3, 4):
        errors["quarter"] = _("季度须为 1 至 4，或 0 表示全年。")
    elif kind == Kind.ANNUAL_RANKING and quarter != 0:
        errors["quarter"] = _("年度积分排名不分季度，请选择“全年”。")
    elif kind == Kind.QUARTERLY_RANKING and quarter == 0:
        errors["quarter"] = _("季度积分排名请选择第 1 至第 4 季度。")
    if category and category not in Member.Category.values:
        errors["category"] = _("党员类别“%(category)s”不存在。") % {"category": category}
    if errors:
        raise ValidationError(errors)


# --- the ranking workbook --------------------------------------------------------------------

GROUP_ORDER = (
    PeriodScore.RankingGroup.PARTY,
    PeriodScore.RankingGroup.CANDIDATE,
    PeriodScore.RankingGroup.UNRANKED,
)
RANKING_FIELDS = (
    "rank_in_committee",
    "rank_in_branch",
    "member__name",
    "organization__name",
    "member__category",
    "ranking_group",
    "base_score",
    "bonus",
    "deduction",
    "net",
    "total",
    "star",
    "grade",
    "is_vetoed",
    "is_top_flagged",
    "is_bottom_flagged",
)


def ranking_columns(quarter: int) -> list[Column]:
    columns = [
        Column(_("党委排名"), 9),
        Column(_("支部排名"), 9),
        Column(_("姓名"), 12),
        Column(_("所在支部"), 28),
        Column(_("党员类别"), 12),
        Column(_("排名序列"), 16),
        Column(_("基础分"), 9),
        Column(_("本季度加分") if quarter else _("加分"), 10),
        Column(_("本季度减分") if quarter else _("减分"), 10),
    ]
    if quarter:
        columns += [Column(_("本季度净得分"), 11), Column(_("年度累计"), 10)]
    else:
        columns.append(Column(_("年度总分"), 10))
    columns.append(Column(_("星级"), 10))
    if not quarter:
        columns.append(Column(_("等次"), 10))
    columns += [
        Column(_("一票否决"), 9),
        Column(_("表扬对象（前 N 名）"), 11),
        Column(_("谈心谈话（后 N 名）"), 11),
    ]
    return columns


def _ranking_scores(organization: Organization, year: int, quarter: int, category: str):
    scores = PeriodScore.objects.filter(year=year, quarter=quarter)
    if organization.is_branch:
        scores = scores.filter(organization=organization)
    else:
        scores = scores.filter(organization__path__startswith=organization.path)
    if category:
        scores = scores.filter(member__category=category)
    return scores


def ranking_count(
    *, organization: Organization, year: int, quarter: int = 0, category: str = ""
) -> int:
    return _ranking_scores(organization, year, quarter, category).count()


def ranking_rows(
    *, organization: Organization, year: int, quarter: int = 0, category: str = ""
) -> Iterator[tuple]:
    """The rows of 总排名: party members by rank, then the candidates by rank, then the
    members not ranked. A branch's export is in branch rank order, any other in committee
    rank order (ties by name)."""
    categories = {key: str(label) for key, label in Member.Category.choices}
    groups = {key: str(label) for key, label in PeriodScore.RankingGroup.choices}
    rank = "rank_in_branch" if organization.is_branch else "rank_in_committee"
    scores = _ranking_scores(organization, year, quarter, category)
    for group in GROUP_ORDER:
        ordering = (
            (rank, "member__name", "member_id")
            if group != PeriodScore.RankingGroup.UNRANKED
            else ("organization__path", "member__name", "member_id")
        )
        rows = (
            scores.filter(ranking_group=group)
            .order_by(*ordering)
            .values_list(*RANKING_FIELDS)
            .iterator(chunk_size=FETCH_ROWS)
        )
        for (
            committee_rank,
            branch_rank,
            name,
            branch,
            member_category,
            ranking_group,
            base,
            bonus,
            deduction,
            net,
            total,
            star,
            grade,
            vetoed,
            top,
            bottom,
        ) in rows:
            head = (
                committee_rank,
                branch_rank,
                name,
                branch,
                categories.get(member_category, member_category),
                groups.get(ranking_group, ranking_group),
                base,
                bonus,
                deduction,
            )
            tail = (net, total, star or None) if quarter else (total, star or None, grade or None)
            yield (
                *head,
                *tail,
                YES if vetoed else None,
                YES if top else None,
                YES if bottom else None,
            )


def _ranking_notes(organization: Organization, generated_at: datetime, category: str) -> list[str]:
    committee = Organization.objects.get(path=organization.path[: Organization.steplen])
    notes = [
        _generated_line(generated_at),
        _(
            "党员（正式、预备党员）与发展对象、入党积极分子分别排名，同分同名次；"
            "“党委排名”为在%(committee)s全体中的名次，“支部排名”为在所在支部的名次；"
            "不列入考核和转出的党员不参与排名，列在最后。"
        )
        % {"committee": committee.name},
    ]
    if category:
        notes.append(
            _("仅列出%(category)s；名次仍为其所在排名序列全体中的名次。")
            % {"category": _category_label(category)}
        )
    return notes


def summary_columns(star_labels: Iterable[str], grade_labels: Iterable[str]) -> list[Column]:
    columns = [
        Column(_("党支部"), 28),
        Column(_("上级组织"), 18),
        Column(_("参与排名人数"), 10),
        Column(_("平均分"), 9),
        Column(_("最高分"), 9),
        Column(_("最低分"), 9),
    ]
    columns += [Column(label, 8) for label in star_labels]
    columns += [Column(label, 8) for label in grade_labels]
    columns += [
        Column(_("一票否决"), 8),
        Column(_("表扬对象"), 8),
        Column(_("谈心谈话对象"), 10),
        Column(_("堡垒指数"), 9),
    ]
    return columns


def summary_rows(
    summaries, star_labels: tuple[str, ...], grade_labels: tuple[str, ...]
) -> Iterator[tuple]:
    for summary in summaries:
        yield (
            summary.name,
            summary.parent_name or None,
            summary.member_count,
            summary.average,
            summary.highest,
            summary.lowest,
            *(summary.star_counts.get(label, 0) for label in star_labels),
            *(summary.grade_counts.get(label, 0) for label in grade_labels),
            summary.vetoed,
            summary.top_flagged,
            summary.bottom_flagged,
            summary.fortress_index if summary.fortress_index is not None else "—",
        )


def _share(count: int, total: int) -> str:
    if not total:
        return "—"
    return f"{Decimal(count * 100) / total:.1f}%"


def statistics_rows(distribution, quarter: int) -> Iterator[tuple]:
    """统计: the figures of the period, then the stars, grades and score bands with shares."""
    total = distribution.member_count
    yield (_("参与排名人数"), total, None)
    yield (_("平均分"), distribution.average if distribution.average is not None else "—", None)
    yield (_("最高分"), distribution.highest if distribution.highest is not None else "—", None)
    yield (_("最低分"), distribution.lowest if distribution.lowest is not None else "—", None)
    yield (_("一票否决"), distribution.vetoed, _share(distribution.vetoed, total))
    yield (_("表扬对象"), distribution.top_flagged, _share(distribution.top_flagged, total))
    yield (
        _("谈心谈话对象"),
        distribution.bottom_flagged,
        _share(distribution.bottom_flagged, total),
    )
    sections = [(_("星级分布"), list(distribution.star_counts.items()))]
    if not quarter:
        sections.append((_("等次分布"), list(distribution.grade_counts.items())))
    sections.append((_("分数段分布"), list(distribution.score_buckets)))
    for title, items in sections:
        yield (None, None, None)
        yield (title, _("人数"), _("占比"))
        for label, count in items:
            yield (label, count, _share(count, total))


def write_ranking_workbook(
    target: str | IO[bytes],
    *,
    organization: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
    generated_at: datetime | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write the ranking workbook (总排名, 支部汇总, 统计) to ``target``; returns the rows
    written (members and branches). ``progress(rows)`` is called every PROGRESS_EVERY rows."""
    generated_at = generated_at or timezone.now()
    kind = Kind.QUARTERLY_RANKING if quarter else Kind.ANNUAL_RANKING
    title = _title(kind, organization.name, year, quarter, category)
    with streamed_workbook(target) as workbook:
        ranking = table_sheet(
            workbook,
            _("总排名"),
            ranking_columns(quarter),
            title_rows=[title, *_ranking_notes(organization, generated_at, category)],
        )
        counter = _Counter(progress)
        ranking.add_rows(
            counter.count(
                ranking_rows(
                    organization=organization, year=year, quarter=quarter, category=category
                )
            )
        )
        ranking.finish()

        scope = summary_scope(
            organization=organization, year=year, quarter=quarter, category=category
        )
        distribution = period_distribution(
            organization=organization, year=year, quarter=quarter, category=category, scope=scope
        )
        group = _("发展对象、入党积极分子") if scope.ranking_group == "candidate" else _("党员")
        summary_sheet = table_sheet(
            workbook,
            _("支部汇总"),
            summary_columns(scope.star_labels, scope.grade_labels),
            title_rows=[
                _("%(title)s · 各支部汇总") % {"title": title},
                _generated_line(generated_at),
                _(
                    "人数、平均分、星级和等次按参与排名的%(group)s统计；堡垒指数 = 支部平均分 ÷ "
                    "%(organization)s平均分 × 100，100 表示与平均水平持平。"
                )
                % {"group": group, "organization": organization.name},
            ],
        )
        summary_sheet.add_rows(
            counter.count(
                summary_rows(
                    branch_summaries(
                        organization=organization,
                        year=year,
                        quarter=quarter,
                        category=category,
                        scope=scope,
                        distribution=distribution,
                    ),
                    scope.star_labels,
                    scope.grade_labels,
                )
            )
        )
        summary_sheet.finish()

        statistics = table_sheet(
            workbook,
            _("统计"),
            [Column(_("项目"), 22), Column(_("数值"), 12), Column(_("占比"), 10)],
            title_rows=[
                _("%(title)s · 统计") % {"title": title},
                _generated_line(generated_at),
                _("按参与排名的%(group)s统计。") % {"group": group},
            ],
        )
        statistics.add_rows(statistics_rows(distribution, quarter))
        statistics.finish(autofilter=False)
    return counter.rows


# --- the ledger workbook ---------------------------------------------------------------------

LEDGER_FIELDS = (
    "id",
    "occurred_on",
    "quarter",
    "member__name",
    "member__category",
    "rule__code",
    "rule__name",
    "kind",
    "points",
    "description",
    "reason",
    "recorded_by__username",
    "recorded_by__first_name",
    "recorded_by__last_name",
    "approved_by__username",
    "approved_by__first_name",
    "approved_by__last_name",
    "reverses_id",
    "reversal__id",
    "created_at",
)


def ledger_columns() -> list[Column]:
    return [
        Column(_("记录编号"), 9),
        Column(_("发生日期"), 11),
        Column(_("季度"), 6),
        Column(_("党员"), 12),
        Column(_("党员类别"), 12),
        Column(_("细则项编号"), 9),
        Column(_("细则项"), 22),
        Column(_("类型"), 8),
        Column(_("分值"), 8),
        Column(_("事项"), 30),
        Column(_("原因"), 20),
        Column(_("记录人"), 12),
        Column(_("审核人"), 12),
        Column(_("冲销的记录编号"), 10),
        Column(_("被冲销（冲销记录编号）"), 12),
        Column(_("记录时间"), 17),
    ]


def _ledger_entries(branch: Organization, year: int, quarter: int, category: str):
    # The 台账 of the branch's members, as the ledger pages show it (selectors.branch_entries).
    entries = Entry.objects.filter(member__organization=branch, year=year)
    if quarter:
        entries = entries.filter(quarter=quarter)
    if category:
        entries = entries.filter(member__category=category)
    return entries


def ledger_count(*, branch: Organization, year: int, quarter: int = 0, category: str = "") -> int:
    return _ledger_entries(branch, year, quarter, category).count()


def _person(username: str | None, first: str | None, last: str | None) -> str | None:
    if username is None:
        return None
    return f"{first or ''} {last or ''}".strip() or username


def ledger_rows(
    *, branch: Organization, year: int, quarter: int = 0, category: str = ""
) -> Iterator[tuple]:
    """Every ledger line of the branch's members in the period, in date order."""
    categories = {key: str(label) for key, label in Member.Category.choices}
    kinds = {key: str(label) for key, label in Rule.Kind.choices}
    rows = (
        _ledger_entries(branch, year, quarter, category)
        .order_by("occurred_on", "id")
        .values_list(*LEDGER_FIELDS)
        .iterator(chunk_size=FETCH_ROWS)
    )
    for (
        entry_id,
        occurred_on,
        entry_quarter,
        name,
        member_category,
        code,
        rule_name,
        kind,
        points,
        description,
        reason,
        recorder,
        recorder_first,
        recorder_last,
        approver,
        approver_first,
        approver_last,
        reverses_id,
        reversal_id,
        created_at,
    ) in rows:
        yield (
            entry_id,
            occurred_on.isoformat(),
            entry_quarter,
            name,
            categories.get(member_category, member_category),
            code,
            rule_name,
            kinds.get(kind, kind),
            points,
            description,
            reason or None,
            _person(recorder, recorder_first, recorder_last),
            _person(approver, approver_first, approver_last),
            reverses_id,
            reversal_id,
            timezone.localtime(created_at).strftime("%Y-%m-%d %H:%M"),
        )


def write_ledger_workbook(
    target: str | IO[bytes],
    *,
    branch: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
    generated_at: datetime | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Write the branch's 台账 to ``target``; returns the entries written."""
    generated_at = generated_at or timezone.now()
    with streamed_workbook(target) as workbook:
        sheet = table_sheet(
            workbook,
            _("台账"),
            ledger_columns(),
            title_rows=[
                _title(Kind.BRANCH_LEDGER, branch.name, year, quarter, category),
                _generated_line(generated_at),
                _(
                    "台账只增不改：更正以冲销记录（分值与原记录相反）加新记录的方式进行；"
                    "“冲销的记录编号”指本条冲销的原记录，“被冲销”指冲销本条的记录。"
                ),
            ],
        )
        counter = _Counter(progress)
        sheet.add_rows(
            counter.count(ledger_rows(branch=branch, year=year, quarter=quarter, category=category))
        )
        sheet.finish()
    return counter.rows


@dataclass
class _Counter:
    progress: Callable[[int], object] | None
    rows: int = 0

    def count(self, rows: Iterable[tuple]) -> Iterator[tuple]:
        for row in rows:
            yield row
            self.rows += 1
            if self.progress is not None and self.rows % PROGRESS_EVERY == 0:
                self.progress(self.rows)


# --- jobs ------------------------------------------------------------------------------------


def _expire_stale(jobs) -> int:
    """Jobs whose worker was lost, or that never reached one, are failed with a message."""
    now = timezone.now()
    lost = jobs.filter(status=Status.RUNNING, started_at__lt=now - STALE_AFTER).update(
        status=Status.FAILED,
        error=_("导出任务意外中断，请重新导出。"),
        finished_at=now,
    )
    never_started = jobs.filter(status=Status.PENDING, created_at__lt=now - PENDING_TIMEOUT).update(
        status=Status.FAILED,
        error=_("导出任务长时间未能开始（后台任务服务可能未运行），请稍后重新导出。"),
        finished_at=now,
    )
    return lost + never_started


def export_jobs_expire_stale(*, user: User) -> int:
    """Fail the user's jobs that can no longer finish (see ``_expire_stale``)."""
    return _expire_stale(ExportJob.objects.filter(requested_by=user))


def export_job_create(
    *,
    user: User,
    kind: str,
    organization: Organization,
    year: int,
    quarter: int = 0,
    category: str = "",
) -> ExportJob:
    """Ask for an export: checks the right and the input, creates the job and enqueues its
    run once the transaction commits.

    The same export (same user, kind, organization, period, category) already pending or
    running is not started twice: ``ExportAlreadyRunning`` (a ValidationError) carries it.
    Raises PermissionDenied without the export right on the organization.
    """
    category = category or ""
    validate_export(
        kind=kind, organization=organization, year=year, quarter=quarter, category=category
    )
    if not can(user, action_for(kind), organization):
        raise PermissionDenied(_("您没有导出“%(org)s”数据的权限。") % {"org": organization})
    with transaction.atomic():
        # One request of a user at a time: two clicks cannot both find no running job.
        User.objects.select_for_update().filter(pk=user.pk).first()
        same = ExportJob.objects.filter(
            requested_by=user,
            kind=kind,
            organization=organization,
            year=year,
            quarter=quarter,
            category=category,
        )
        _expire_stale(same)
        running = same.filter(status__in=ACTIVE).first()
        if running is None:
            job = ExportJob.objects.create(
                kind=kind,
                organization=organization,
                year=year,
                quarter=quarter,
                category=category,
                requested_by=user,
                filename=export_filename(kind, organization, year, quarter, category),
            )
            transaction.on_commit(lambda: _enqueue(job.pk))
    if running is not None:
        raise ExportAlreadyRunning(running)
    return job


def _enqueue(job_id: int) -> None:
    from .tasks import export_run

    try:
        export_run.delay(job_id)
    except OperationalError:
        logger.exception("export job %s could not be queued", job_id)
        ExportJob.objects.filter(pk=job_id, status=Status.PENDING).update(
            status=Status.FAILED,
            error=_("后台任务服务暂时不可用，导出未能开始，请稍后重试。"),
            finished_at=timezone.now(),
        )


def may_download(user: User, job: ExportJob) -> bool:
    """Only the requester, while they still hold the export right there, downloads a job's file."""
    return (
        user.is_authenticated
        and job.requested_by_id == user.pk
        and job.status == Status.DONE
        and bool(job.file)
        and can(user, action_for(job.kind), job.organization)
    )


def export_job_run(*, job_id: int) -> str:
    """Do one job (the export task's body); returns the job's status afterwards.

    Claims the job with a conditional update (pending, or running but abandoned by a lost
    worker), so two workers never write the same job and a finished job is not redone.
    """
    now = timezone.now()
    claimed = (
        ExportJob.objects.filter(pk=job_id)
        .filter(
            Q(status=Status.PENDING) | Q(status=Status.RUNNING, started_at__lt=now - STALE_AFTER)
        )
        .update(status=Status.RUNNING, started_at=now, rows_written=0, error="")
    )
    if not claimed:
        return ExportJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or ""
    job = ExportJob.objects.select_related("organization").get(pk=job_id)
    handle, path = tempfile.mkstemp(suffix=".xlsx", dir=settings.FILE_UPLOAD_TEMP_DIR)
    os.close(handle)
    stored = ""
    try:
        with override(settings.LANGUAGE_CODE):
            rows = _write_job(job, path)
        with open(path, "rb") as content:
            job.file.save(job.filename, File(content), save=False)
        stored = job.file.name
        ExportJob.objects.filter(pk=job.pk).update(
            status=Status.DONE,
            file=stored,
            rows_written=rows,
            rows_total=max(rows, job.rows_total),
            finished_at=timezone.now(),
        )
        return Status.DONE
    except SoftTimeLimitExceeded:
        message = _(
            "导出超时（超过 %(minutes)s 分钟），请缩小范围（如按党总支或党员类别）后重试。"
        ) % {"minutes": SOFT_TIME_LIMIT // 60}
    except ExportError as error:
        message = str(error)
    except Exception:
        logger.exception("export job %s failed", job_id)
        message = _("生成文件时出错，导出失败。请稍后重试；如仍失败，请联系管理员。")
    finally:
        if os.path.exists(path):
            os.remove(path)
    if stored:
        job.file.storage.delete(stored)
    ExportJob.objects.filter(pk=job.pk).update(
        status=Status.FAILED, error=message[:500], file="", finished_at=timezone.now()
    )
    return Status.FAILED


def _write_job(job: ExportJob, path: str) -> int:
    """Count the rows, then write them, updating the job's progress as they go."""
    organization = job.organization
    try:
        validate_export(
            kind=job.kind,
            organization=organization,
            year=job.year,
            quarter=job.quarter,
            category=job.category,
        )
    except ValidationError as error:
        raise ExportError(" ".join(error.messages)) from error

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(rows_written=rows)

    # The rows are read from the read replica when one is configured (config/routers.py); it
    # may be seconds behind the primary, which a workbook can be. The job's own updates below
    # are writes, so they still go to the primary, where the job was claimed and is polled.
    with reading_from_replica():
        if job.kind == Kind.BRANCH_LEDGER:
            total = ledger_count(
                branch=organization, year=job.year, quarter=job.quarter, category=job.category
            )
            ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
            job.rows_total = total
            return write_ledger_workbook(
                path,
                branch=organization,
                year=job.year,
                quarter=job.quarter,
                category=job.category,
                progress=progress,
            )
        total = ranking_count(
            organization=organization, year=job.year, quarter=job.quarter, category=job.category
        ) + _branch_count(organization)
        ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
        job.rows_total = total
        return write_ranking_workbook(
            path,
            organization=organization,
            year=job.year,
            quarter=job.quarter,
            category=job.category,
            progress=progress,
        )


def _branch_count(organization: Organization) -> int:
    return Organization.objects.filter(
        path__startswith=organization.path, kind=Organization.Kind.BRANCH
    ).count()
