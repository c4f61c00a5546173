"""Schemes and rules, the points ledger, declarations, veto votes and the computed totals."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import Member, Organization

POINTS = {"max_digits": 9, "decimal_places": 2}


def quarter_of(day: date) -> int:
    return (day.month - 1) // 3 + 1


class Scheme(models.Model):
    """积分管理实施细则: the rule book an organization adopts for a year."""

    class VetoEffect(models.TextChoices):
        ZERO_AND_FAIL = "zero_and_fail", _("年度积分清零，评定为不合格")
        LOSE_EXCELLENT = "lose_excellent", _("仅取消评优资格")

    name = models.CharField(_("名称"), max_length=100)
    year = models.PositiveSmallIntegerField(
        _("年度"), validators=[MinValueValidator(2000), MaxValueValidator(2100)]
    )
    owner = models.ForeignKey(
        Organization, verbose_name=_("制定组织"), on_delete=models.PROTECT, related_name="schemes"
    )
    base_score = models.DecimalField(_("基础分"), **POINTS)
    veto_effect = models.CharField(
        _("一票否决的后果"),
        max_length=20,
        choices=VetoEffect.choices,
        default=VetoEffect.ZERO_AND_FAIL,
    )
    excellent_grade = models.CharField(_("优秀等次名称"), max_length=20, default="优秀")
    failing_grade = models.CharField(_("不合格等次名称"), max_length=20, default="不合格")
    excellent_share_cap = models.DecimalField(
        _("优秀比例上限"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("如 0.400 表示一个支部评为优秀的人数不超过 40%；留空表示不限。"),
    )
    top_n_flag = models.PositiveSmallIntegerField(
        _("前 N 名表扬"), default=5, help_text=_("排名前 N 名标记为表扬对象；0 表示不标记。")
    )
    bottom_n_flag = models.PositiveSmallIntegerField(
        _("后 N 名谈心谈话"),
        default=3,
        help_text=_("排名后 N 名不能评为优秀，并标记为谈心谈话对象；0 表示不标记。"),
    )
    points_weight = models.DecimalField(
        _("年度积分权重"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        help_text=_("年度总分按权重合成时填写，如 0.400；留空表示年度总分即积分。"),
    )
    democratic_weight = models.DecimalField(
        _("民主评议权重"), max_digits=4, decimal_places=3, null=True, blank=True
    )
    mass_weight = models.DecimalField(
        _("群众评议权重"), max_digits=4, decimal_places=3, null=True, blank=True
    )
    description = models.TextField(_("说明"), blank=True)
    version = models.PositiveIntegerField(_("版本"), default=1, editable=False)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("积分细则")
        verbose_name_plural = _("积分细则")
        ordering = ["-year", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(base_score__gte=0), name="scheme_base_not_negative"),
            models.CheckConstraint(
                condition=(
                    Q(points_weight__isnull=True)
                    & Q(democratic_weight__isnull=True)
                    & Q(mass_weight__isnull=True)
                )
                | Q(
                    points_weight__isnull=False,
                    democratic_weight__isnull=False,
                    mass_weight__isnull=False,
                ),
                name="scheme_weights_all_or_none",
                violation_error_message=_("三项权重须同时填写或同时留空。"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.year} {self.name}"

    @property
    def weights_appraisals(self) -> bool:
        return self.points_weight is not None


class SchemeAdoption(models.Model):
    """An organization adopts a scheme for a year; branches below inherit it."""

    organization = models.ForeignKey(
        Organization,
        verbose_name=_("党组织"),
        on_delete=models.CASCADE,
        related_name="scheme_adoptions",
    )
    year = models.PositiveSmallIntegerField(_("年度"))
    scheme = models.ForeignKey(
        Scheme, verbose_name=_("积分细则"), on_delete=models.PROTECT, related_name="adoptions"
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("细则采用")
        verbose_name_plural = _("细则采用")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "year"],
                name="one_scheme_per_organization_year",
                violation_error_message=_("该组织本年度已采用一套积分细则。"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} · {self.year} · {self.scheme.name}"


class OutcomeBand(models.Model):
    """One band of a scheme's stars or grades: totals at or above ``min_total`` get ``label``."""

    class Dimension(models.TextChoices):
        STAR = "star", _("星级")
        GRADE = "grade", _("等次")

    scheme = models.ForeignKey(Scheme, on_delete=models.CASCADE, related_name="bands")
    dimension = models.CharField(_("类别"), max_length=10, choices=Dimension.choices)
    label = models.CharField(_("名称"), max_length=20)
    min_total = models.DecimalField(
        _("最低总分"), null=True, blank=True, help_text=_("留空表示最低一档。"), **POINTS
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("星级/等次档")
        verbose_name_plural = _("星级/等次档")
        ordering = ["scheme", "dimension", F("min_total").desc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(
                fields=["scheme", "dimension", "label"], name="band_label_unique_per_scheme"
            ),
        ]

    def __str__(self) -> str:
        bound = f"≥{self.min_total}" if self.min_total is not None else _("其余")
        return f"{self.label}（{bound}）"


class RuleCategory(models.Model):
    """积分类别, e.g. 学习教育 on the bonus side, 纪律规矩不严明 on the deduction side."""

    scheme = models.ForeignKey(Scheme, on_delete=models.CASCADE, related_name="categories")
    name = models.CharField(_("名称"), max_length=50)
    position = models.PositiveSmallIntegerField(_("顺序"), default=0)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("积分类别")
        verbose_name_plural = _("积分类别")
        ordering = ["scheme", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["scheme", "name"], name="category_name_unique_per_scheme"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """积分细则项: one scoring item. A rule used by the ledger is never edited in place:
    a revision is a new row with the same code and the next version."""

    class Kind(models.TextChoices):
        BONUS = "bonus", _("加分")
        DEDUCTION = "deduction", _("减分")
        VETO = "veto", _("一票否决")

    class Audience(models.TextChoices):
        ALL = "all", _("全体")
        CADRES = "cadres", _("仅党员干部")
        NON_CADRES = "non_cadres", _("仅普通党员")

    scheme = models.ForeignKey(Scheme, on_delete=models.PROTECT, related_name="rules")
    category = models.ForeignKey(
        RuleCategory, verbose_name=_("类别"), on_delete=models.PROTECT, related_name="rules"
    )
    code = models.CharField(_("编号"), max_length=20)
    version = models.PositiveIntegerField(_("版本"), default=1, editable=False)
    is_current = models.BooleanField(_("现行"), default=True, editable=False)
    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices)
    points_min = models.DecimalField(_("分值下限"), **POINTS)
    points_max = models.DecimalField(_("分值上限"), **POINTS)
    max_times_per_quarter = models.PositiveSmallIntegerField(
        _("每季度最多计次"), null=True, blank=True
    )
    max_points_per_year = models.DecimalField(_("每年最多计分"), null=True, blank=True, **POINTS)
    evidence_required = models.BooleanField(_("须提供佐证"), default=False)
    self_declarable = models.BooleanField(_("党员可自行申报"), default=False)
    applies_to = models.JSONField(
        _("适用类别"),
        default=list,
        blank=True,
        help_text=_("适用的党员类别；留空表示全部类别。"),
    )
    audience = models.CharField(
        _("适用对象"), max_length=12, choices=Audience.choices, default=Audience.ALL
    )
    position = models.PositiveSmallIntegerField(_("顺序"), default=0)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("积分细则项")
        verbose_name_plural = _("积分细则项")
        ordering = ["scheme", "category__position", "position", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["scheme", "code", "version"], name="rule_code_version_unique"
            ),
            models.UniqueConstraint(
                fields=["scheme", "code"],
                condition=Q(is_current=True),
                name="one_current_rule_per_code",
            ),
            models.CheckConstraint(
                condition=Q(points_min__lte=F("points_max")), name="rule_range_ordered"
            ),
            models.CheckConstraint(
                condition=(Q(kind="bonus") & Q(points_min__gt=0))
                | (Q(kind="deduction") & Q(points_max__lt=0))
                | (Q(kind="veto") & Q(points_min=0) & Q(points_max=0)),
                name="rule_points_match_kind",
                violation_error_message=_(
                    "加分项分值须为正数，减分项须为负数，一票否决项分值为 0。"
                ),
            ),
            models.CheckConstraint(
                condition=Q(kind="bonus") | Q(self_declarable=False),
                name="only_bonus_is_self_declarable",
                violation_error_message=_("减分项和一票否决项不能由党员自行申报。"),
            ),
            models.CheckConstraint(
                condition=Q(kind="bonus") | Q(max_points_per_year__isnull=True),
                name="yearly_cap_only_on_bonus",
                violation_error_message=_("只有加分项可以设置每年最多计分。"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_fixed(self) -> bool:
        return self.points_min == self.points_max

    @property
    def points_display(self) -> str:
        if self.kind == self.Kind.VETO:
            return str(_("一票否决"))
        from .formatting import signed

        if self.is_fixed:
            return signed(self.points_min)
        return f"{signed(self.points_min)} ~ {signed(self.points_max)}"

    def applies_to_member(self, member: Member) -> bool:
        if self.applies_to and member.category not in self.applies_to:
            return False
        if self.audience == self.Audience.CADRES and not member.is_cadre:
            return False
        return not (self.audience == self.Audience.NON_CADRES and member.is_cadre)


class PeriodLock(models.Model):
    """A finalized (locked) quarter, or whole year when ``quarter`` is 0, of one branch."""

    organization = models.ForeignKey(
        Organization,
        verbose_name=_("党组织"),
        on_delete=models.CASCADE,
        related_name="period_locks",
    )
    year = models.PositiveSmallIntegerField(_("年度"))
    quarter = models.PositiveSmallIntegerField(
        _("季度"), validators=[MaxValueValidator(4)], help_text=_("0 表示全年。")
    )
    locked_at = models.DateTimeField(_("锁定时间"), auto_now_add=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("锁定人"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("为空表示由定时任务在公示期结束后自动归档。"),
    )
    reason = models.CharField(_("说明"), max_length=200, blank=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("锁定期间")
        verbose_name_plural = _("锁定期间")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "year", "quarter"], name="period_lock_unique"
            )
        ]

    def __str__(self) -> str:
        period = _("全年") if self.quarter == 0 else f"Q{self.quarter}"
        return f"{self.organization} {self.year} {period}"


def evidence_path(instance: EvidenceFile, filename: str) -> str:
    """Evidence is stored under a generated name; the user's file name is kept only as data."""
    suffix = Path(filename).suffix.lower()[:10]
    return f"evidence/{date.today():%Y/%m}/{uuid.uuid4().hex}{suffix}"


class Declaration(models.Model):
    """积分申报: a member's request to be scored under a self-declarable rule."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待审核")
        APPROVED = "approved", _("已通过")
        REJECTED = "rejected", _("未通过")

    member = models.ForeignKey(
        Member, verbose_name=_("党员"), on_delete=models.PROTECT, related_name="declarations"
    )
    rule = models.ForeignKey(
        Rule, verbose_name=_("积分细则项"), on_delete=models.PROTECT, related_name="declarations"
    )
    points = models.DecimalField(_("申报分值"), **POINTS)
    occurred_on = models.DateField(_("发生日期"))
    description = models.TextField(_("事项说明"), max_length=1000)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("申报人"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    declared_at = models.DateTimeField(_("申报时间"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("审核人"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("审核时间"), null=True, blank=True)
    decision_reason = models.CharField(_("审核意见"), max_length=500, blank=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("积分申报")
        verbose_name_plural = _("积分申报")
        ordering = ["-declared_at"]
        indexes = [models.Index(fields=["status", "member"])]
        constraints = [
            models.CheckConstraint(condition=~Q(points=0), name="declaration_points_not_zero"),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(decided_by__isnull=False),
                name="decided_declaration_has_decider",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} · {self.rule.name} · {self.get_status_display()}"


class EvidenceFile(models.Model):
    declaration = models.ForeignKey(Declaration, on_delete=models.CASCADE, related_name="evidence")
    file = models.FileField(_("文件"), upload_to=evidence_path)
    original_name = models.CharField(_("原文件名"), max_length=200)
    content_type = models.CharField(_("类型"), max_length=100)
    size = models.PositiveIntegerField(_("大小（字节）"))
    uploaded_at = models.DateTimeField(_("上传时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("佐证材料")
        verbose_name_plural = _("佐证材料")

    def __str__(self) -> str:
        return self.original_name


class Entry(models.Model):
    """积分记录: one line of the points ledger. Rows are only ever inserted — the database
    itself refuses UPDATE and DELETE (see the migration that installs the triggers)."""

    Kind = Rule.Kind

    member = models.ForeignKey(
        Member, verbose_name=_("党员"), on_delete=models.PROTECT, related_name="entries"
    )
    organization = models.ForeignKey(
        Organization, verbose_name=_("记录时所在支部"), on_delete=models.PROTECT, related_name="+"
    )
    rule = models.ForeignKey(
        Rule, verbose_name=_("积分细则项"), on_delete=models.PROTECT, related_name="entries"
    )
    rule_version = models.PositiveIntegerField(_("细则项版本"))
    scheme = models.ForeignKey(
        Scheme, verbose_name=_("积分细则"), on_delete=models.PROTECT, related_name="entries"
    )
    scheme_version = models.PositiveIntegerField(_("细则版本"))
    kind = models.CharField(_("类型"), max_length=10, choices=Rule.Kind.choices)
    points = models.DecimalField(_("分值"), **POINTS)
    occurred_on = models.DateField(_("发生日期"))
    year = models.PositiveSmallIntegerField(_("年度"))
    quarter = models.PositiveSmallIntegerField(_("季度"))
    description = models.CharField(_("事项"), max_length=500)
    reason = models.CharField(
        _("原因"), max_length=500, blank=True, help_text=_("冲销、调整分值时的原因。")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("记录人"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("审核人"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    declaration = models.OneToOneField(
        Declaration,
        verbose_name=_("来自申报"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entry",
    )
    reverses = models.OneToOneField(
        "self",
        verbose_name=_("冲销的记录"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversal",
    )
    form_token = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("记录时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("积分记录")
        verbose_name_plural = _("积分台账")
        ordering = ["occurred_on", "id"]
        indexes = [
            models.Index(fields=["member", "year", "quarter"]),
            models.Index(fields=["organization", "year", "quarter"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(reverses__isnull=True)
                    & (
                        (Q(kind="bonus") & Q(points__gt=0))
                        | (Q(kind="deduction") & Q(points__lt=0))
                        | (Q(kind="veto") & Q(points=0))
                    )
                )
                | (
                    Q(reverses__isnull=False)
                    & ~Q(reason="")
                    & (
                        (Q(kind="bonus") & Q(points__lt=0))
                        | (Q(kind="deduction") & Q(points__gt=0))
                        | (Q(kind="veto") & Q(points=0))
                    )
                ),
                name="entry_points_match_kind",
                violation_error_message=_("分值与类型不符，或冲销记录缺少原因。"),
            ),
            models.CheckConstraint(
                condition=Q(quarter__gte=1) & Q(quarter__lte=4), name="entry_quarter_valid"
            ),
            models.UniqueConstraint(
                fields=["form_token"],
                condition=Q(form_token__isnull=False),
                name="entry_form_token_unique",
            ),
        ]

    def __str__(self) -> str:
        from .formatting import signed

        return f"{self.member} {self.occurred_on} {self.rule.name} {signed(self.points)}"

    @property
    def is_reversal(self) -> bool:
        return self.reverses_id is not None


class VetoVote(models.Model):
    """支部全体党员举手表决: the vote that confirms a veto entry."""

    entry = models.OneToOneField(Entry, on_delete=models.PROTECT, related_name="veto_vote")
    meeting_date = models.DateField(_("表决日期"))
    voting_members = models.PositiveIntegerField(_("应到（有表决权）人数"))
    attendance = models.PositiveIntegerField(_("实到人数"))
    votes_for = models.PositiveIntegerField(_("赞成"))
    votes_against = models.PositiveIntegerField(_("反对"))
    votes_abstain = models.PositiveIntegerField(_("弃权"))

    class Meta:
        verbose_name = _("一票否决表决")
        verbose_name_plural = _("一票否决表决")
        constraints = [
            models.CheckConstraint(
                condition=Q(attendance__lte=F("voting_members"))
                & Q(attendance__gte=F("votes_for") + F("votes_against") + F("votes_abstain"))
                & Q(attendance__lt=F("votes_for") * 2),
                name="veto_vote_passed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.meeting_date} {self.votes_for}/{self.attendance}"


class PeriodScore(models.Model):
    """季度/年度积分: the computed totals of one member for a quarter (1–4) or the year (0).

    Derived from the ledger by ``scoring.recompute``; never entered by hand."""

    class RankingGroup(models.TextChoices):
        PARTY = "party", _("党员")
        CANDIDATE = "candidate", _("发展对象/积极分子")
        UNRANKED = "unranked", _("不参与排名")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="period_scores")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    scheme = models.ForeignKey(Scheme, on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField(_("年度"))
    quarter = models.PositiveSmallIntegerField(_("季度"), help_text=_("0 表示全年。"))
    base_score = models.DecimalField(_("基础分"), **POINTS)
    bonus = models.DecimalField(_("加分"), **POINTS)
    deduction = models.DecimalField(_("减分"), **POINTS)
    net = models.DecimalField(_("净得分"), **POINTS)
    year_to_date_total = models.DecimalField(_("年度累计"), **POINTS)
    total = models.DecimalField(_("总分"), **POINTS)
    uncounted_points = models.DecimalField(_("超上限未计分值"), **POINTS)
    is_vetoed = models.BooleanField(_("一票否决"), default=False)
    ranking_group = models.CharField(_("排名序列"), max_length=10, choices=RankingGroup.choices)
    rank_in_branch = models.PositiveIntegerField(_("支部排名"), null=True)
    rank_in_committee = models.PositiveIntegerField(_("党委排名"), null=True)
    star = models.CharField(_("星级"), max_length=20, blank=True)
    grade = models.CharField(_("等次"), max_length=20, blank=True)
    is_top_flagged = models.BooleanField(_("表扬对象"), default=False)
    is_bottom_flagged = models.BooleanField(_("谈心谈话对象"), default=False)
    computed_at = models.DateTimeField(_("计算时间"))

    class Meta:
        verbose_name = _("期间积分")
        verbose_name_plural = _("期间积分")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "year", "quarter"], name="period_score_unique"
            ),
            models.CheckConstraint(
                condition=Q(quarter__gte=0) & Q(quarter__lte=4), name="period_score_quarter"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "year", "quarter"]),
            models.Index(fields=["year", "quarter", "ranking_group", "rank_in_committee"]),
        ]

    def __str__(self) -> str:
        period = _("全年") if self.quarter == 0 else f"Q{self.quarter}"
        return f"{self.member} {self.year} {period} {self.total}"


class RankingState(models.Model):
    """One row per (committee, year): serializes recomputes and tracks stale committee ranks.

    A recompute locks this row (SELECT … FOR UPDATE) so two recomputes of the same
    committee-year run one after the other; ``ranks_dirty_since`` is claimed with a
    conditional update so only one worker re-ranks the committee."""

    committee = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    ranks_dirty_since = models.DateTimeField(null=True)
    recomputed_at = models.DateTimeField(null=True)
    recompute_count = models.PositiveIntegerField(default=0)
    # When the committee ranks were last written (a full recompute or a re-rank).
    ranked_at = models.DateTimeField(null=True)
    # Moves on whenever a recompute writes a changed period row below the committee: the
    # committee overview's cached aggregates are keyed by it (scoring/summaries.py).
    totals_version = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["committee", "year"], name="ranking_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.committee} {self.year}"


def export_path(instance: ExportJob, filename: str) -> str:
    """Stored name of a finished export: never the user's text, only ids and a random part."""
    return f"exports/{instance.organization_id}/{instance.pk}-{uuid.uuid4().hex}.xlsx"


class ExportJob(models.Model):
    """导出任务: a workbook built in the background and kept for download.

    Small exports may stream straight to the browser; big ones (a committee's annual
    ranking) become a job that a Celery worker fills in while the page shows its progress."""

    class Kind(models.TextChoices):
        ANNUAL_RANKING = "annual_ranking", _("年度积分排名")
        QUARTERLY_RANKING = "quarterly_ranking", _("季度积分排名")
        BRANCH_LEDGER = "branch_ledger", _("支部积分台账")

    class Status(models.TextChoices):
        PENDING = "pending", _("排队中")
        RUNNING = "running", _("生成中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")

    kind = models.CharField(_("导出内容"), max_length=20, choices=Kind.choices)
    organization = models.ForeignKey(
        Organization, verbose_name=_("党组织"), on_delete=models.CASCADE, related_name="+"
    )
    year = models.PositiveSmallIntegerField(_("年度"))
    quarter = models.PositiveSmallIntegerField(
        _("季度"), default=0, validators=[MaxValueValidator(4)], help_text=_("0 表示全年。")
    )
    category = models.CharField(_("党员类别"), max_length=30, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("申请人"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    status = models.CharField(
        _("状态"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    rows_total = models.PositiveIntegerField(_("总行数"), default=0)
    rows_written = models.PositiveIntegerField(_("已写行数"), default=0)
    file = models.FileField(_("文件"), upload_to=export_path, blank=True)
    filename = models.CharField(_("下载文件名"), max_length=200, blank=True)
    error = models.CharField(_("失败原因"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("申请时间"), auto_now_add=True)
    started_at = models.DateTimeField(_("开始时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("导出任务")
        verbose_name_plural = _("导出任务")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["requested_by", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.organization} {self.year}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(99, self.rows_written * 100 // self.rows_total)


def ledger_import_path(instance: LedgerImport, filename: str) -> str:
    return f"ledger-imports/{instance.branch_id}/{uuid.uuid4().hex}.xlsx"


class LedgerImport(models.Model):
    """台账导入: an uploaded spreadsheet of entries, checked row by row before anything is
    recorded. The upload is kept, so what the secretary sent is never lost; ``rows`` holds
    the preview (every row with what it will become or why it cannot be recorded)."""

    class Status(models.TextChoices):
        PREVIEWED = "previewed", _("待确认")
        IMPORTED = "imported", _("已导入")
        DISCARDED = "discarded", _("已放弃")

    branch = models.ForeignKey(
        Organization, verbose_name=_("党支部"), on_delete=models.CASCADE, related_name="+"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("上传人"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    file = models.FileField(_("文件"), upload_to=ledger_import_path)
    original_name = models.CharField(_("原文件名"), max_length=255)
    rows = models.JSONField(_("预览"), default=list)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status.choices, default=Status.PREVIEWED
    )
    token = models.UUIDField(_("导入凭据"), default=uuid.uuid4, unique=True, editable=False)
    imported_count = models.PositiveIntegerField(_("已导入条数"), default=0)
    created_at = models.DateTimeField(_("上传时间"), auto_now_add=True)
    imported_at = models.DateTimeField(_("导入时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("台账导入")
        verbose_name_plural = _("台账导入")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.branch} {self.original_name}"


class StaleTotals(models.Model):
    """积分待更新: a branch-year whose totals a recorded change has not reached yet.

    Written in the recording's own transaction — so a broker outage cannot lose it — and
    removed by the recompute that covers the branch, in that recompute's transaction. The
    pages say "totals are being updated" while it exists, and a scheduled sweep recomputes
    whatever the normal after-commit task did not (``scoring.tasks.sweep_stale_totals_task``).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    requested_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "year"], name="stale_totals_unique")
        ]
        indexes = [models.Index(fields=["requested_at"])]

    def __str__(self) -> str:
        return f"{self.organization} {self.year}"


class CapClip(models.Model):
    """超上限: what a capped entry counts when its rule's cap takes some or all of its points.

    Derived from the ledger by ``scoring.recompute`` (one row per capped entry that does not
    count in full; every other entry counts its points), so the annual recompute can sum the
    ledger in one parallel pass instead of ordering every capped entry again. ``CapState``
    says which ledger state the rows were derived from."""

    entry = models.OneToOneField(
        Entry, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    counted = models.DecimalField(**POINTS)

    class Meta:
        indexes = [models.Index(fields=["member", "year"])]

    def __str__(self) -> str:
        return f"{self.entry_id} {self.counted}"


class CapState(models.Model):
    """How many capped entries a member's ``CapClip`` rows of a year were derived from. The
    recompute compares it with the ledger and derives the clips again for every member whose
    count differs: the ledger is append-only and a rule in use is never edited in place
    (``rule_revise`` makes a new version), so a new or backdated entry always changes it."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    entries = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "year"], name="cap_state_unique")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.year} {self.entries}"
