"""The quarterly and annual review of a branch: a state machine with a recorded timeline."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from simple_history.models import HistoricalRecords

from members.models import Member, Organization


class ReviewCycle(ConcurrentTransitionMixin, models.Model):
    """季度评议 / 年度评议: one branch's review of one quarter (1–4) or year (0).

    States move forward only; each move is a service call that checks who may make it and
    what must be true first, and writes a ``CycleEvent``. ``ConcurrentTransitionMixin``
    saves with ``WHERE state = <the state it was read in>``, so of two people moving the
    same cycle at once exactly one succeeds."""

    class State(models.TextChoices):
        OPEN = "open", _("记录中")
        SELF_ASSESSMENT = "self_assessment", _("党员自评")
        COMMITTEE_REVIEW = "committee_review", _("支委初评")
        GENERAL_MEETING = "general_meeting", _("党员大会评定")
        PUBLICITY = "publicity", _("公示")
        FINALIZED = "finalized", _("确认归档")

    organization = models.ForeignKey(
        Organization,
        verbose_name=_("党支部"),
        on_delete=models.PROTECT,
        related_name="review_cycles",
    )
    year = models.PositiveSmallIntegerField(_("年度"))
    quarter = models.PositiveSmallIntegerField(_("季度"), help_text=_("0 表示年度评议。"))
    state = FSMField(_("状态"), default=State.OPEN, choices=State.choices, protected=True)
    self_assessment_deadline = models.DateField(_("自评截止日期"), null=True, blank=True)
    publicity_days = models.PositiveSmallIntegerField(_("公示天数"), default=5)
    publicity_starts_on = models.DateField(_("公示开始日期"), null=True, blank=True)
    publicity_ends_on = models.DateField(_("公示结束日期"), null=True, blank=True)
    finalized_at = models.DateTimeField(_("归档时间"), null=True, blank=True)
    reported_at = models.DateTimeField(_("报备时间"), null=True, blank=True)
    reopened_at = models.DateTimeField(
        _("最近重新打开时间"),
        null=True,
        blank=True,
        help_text=_("重新打开后，初评意见、党员大会和签字确认须重新进行。"),
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("评议")
        verbose_name_plural = _("评议")
        ordering = ["-year", "-quarter", "organization__path"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "year", "quarter"], name="one_cycle_per_branch_period"
            ),
            models.CheckConstraint(
                condition=Q(quarter__gte=0) & Q(quarter__lte=4), name="cycle_quarter_valid"
            ),
            models.CheckConstraint(
                condition=Q(publicity_starts_on__isnull=True)
                | Q(publicity_ends_on__gte=F("publicity_starts_on")),
                name="publicity_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.period_label}"

    @property
    def is_annual(self) -> bool:
        return self.quarter == 0

    @property
    def period_label(self) -> str:
        if self.is_annual:
            return _("%(year)s年度") % {"year": self.year}
        return _("%(year)s年第%(quarter)s季度") % {"year": self.year, "quarter": self.quarter}

    # The moves. Rules about who and when live in reviews.services; these only move the state.
    @transition(field=state, source=State.OPEN, target=State.SELF_ASSESSMENT)
    def start_self_assessment(self) -> None:
        pass

    @transition(field=state, source=State.SELF_ASSESSMENT, target=State.COMMITTEE_REVIEW)
    def start_committee_review(self) -> None:
        pass

    @transition(field=state, source=State.COMMITTEE_REVIEW, target=State.GENERAL_MEETING)
    def start_general_meeting(self) -> None:
        pass

    @transition(field=state, source=State.GENERAL_MEETING, target=State.PUBLICITY)
    def start_publicity(self) -> None:
        pass

    @transition(field=state, source=State.PUBLICITY, target=State.FINALIZED)
    def finalize(self) -> None:
        pass

    @transition(field=state, source=State.FINALIZED, target=State.COMMITTEE_REVIEW)
    def reopen(self) -> None:
        pass


class CycleEvent(models.Model):
    """One line of a cycle's timeline: who moved it, from what to what, when and why."""

    class Action(models.TextChoices):
        ADVANCE = "advance", _("推进")
        REOPEN = "reopen", _("重新打开")
        REPORT = "report", _("报备党委")
        DEADLINE = "deadline", _("设定自评截止")
        PUBLICITY_DATES = "publicity_dates", _("设定公示日期")
        COMMITTEE_MEETING = "committee_meeting", _("记录支委会")
        GENERAL_MEETING = "general_meeting", _("记录党员大会")
        REMINDER = "reminder", _("提醒")

    cycle = models.ForeignKey(ReviewCycle, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("动作"), max_length=20, choices=Action.choices)
    from_state = models.CharField(_("原状态"), max_length=20, blank=True)
    to_state = models.CharField(_("新状态"), max_length=20, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("操作人"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("为空表示系统定时任务。"),
    )
    note = models.CharField(_("说明"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("评议记录")
        verbose_name_plural = _("评议记录")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.cycle} {self.get_action_display()} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def from_state_label(self) -> str:
        return ReviewCycle.State(self.from_state).label if self.from_state else ""

    @property
    def to_state_label(self) -> str:
        return ReviewCycle.State(self.to_state).label if self.to_state else ""


class SelfAssessment(models.Model):
    """党员自评: a member's self-assessment for the period."""

    cycle = models.ForeignKey(
        ReviewCycle, on_delete=models.CASCADE, related_name="self_assessments"
    )
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="self_assessments")
    text = models.TextField(_("自评内容"), max_length=2000)
    submitted_at = models.DateTimeField(_("提交时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("修改时间"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("党员自评")
        verbose_name_plural = _("党员自评")
        constraints = [
            models.UniqueConstraint(fields=["cycle", "member"], name="one_self_assessment")
        ]

    def __str__(self) -> str:
        return f"{self.member} · {self.cycle}"


class CommitteeMeeting(models.Model):
    """支委会: the branch committee's review meeting."""

    cycle = models.OneToOneField(
        ReviewCycle, on_delete=models.CASCADE, related_name="committee_meeting"
    )
    meeting_date = models.DateField(_("会议日期"))
    attendees = models.ManyToManyField(Member, verbose_name=_("出席支委"), related_name="+")
    notes = models.TextField(_("会议纪要"), max_length=2000, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("支委会")
        verbose_name_plural = _("支委会")

    def __str__(self) -> str:
        return f"{self.cycle} {self.meeting_date}"


class ScoreAgreement(models.Model):
    """The committee's agreed proposed score for one member (支委初评意见)."""

    cycle = models.ForeignKey(ReviewCycle, on_delete=models.CASCADE, related_name="agreements")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    proposed_total = models.DecimalField(_("初评积分"), max_digits=9, decimal_places=2)
    note = models.CharField(_("初评意见"), max_length=500, blank=True)
    agreed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    agreed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("初评意见")
        verbose_name_plural = _("初评意见")
        constraints = [models.UniqueConstraint(fields=["cycle", "member"], name="one_agreement")]

    def __str__(self) -> str:
        return f"{self.member} {self.proposed_total}"


class GeneralMeeting(models.Model):
    """党员大会评定: attendance and the vote that makes the scores determined."""

    cycle = models.OneToOneField(
        ReviewCycle, on_delete=models.CASCADE, related_name="general_meeting"
    )
    meeting_date = models.DateField(_("会议日期"))
    voting_members = models.PositiveIntegerField(_("有表决权党员人数"))
    attendance = models.PositiveIntegerField(_("实到人数"))
    votes_for = models.PositiveIntegerField(_("赞成"))
    votes_against = models.PositiveIntegerField(_("反对"))
    votes_abstain = models.PositiveIntegerField(_("弃权"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("党员大会")
        verbose_name_plural = _("党员大会")
        constraints = [
            models.CheckConstraint(
                condition=Q(attendance__lte=F("voting_members"))
                & Q(attendance__gte=F("votes_for") + F("votes_against") + F("votes_abstain")),
                name="general_meeting_counts_consistent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.cycle} {self.meeting_date}"

    @property
    def has_quorum(self) -> bool:
        return self.attendance * 2 > self.voting_members

    @property
    def passed(self) -> bool:
        return self.votes_for * 2 > self.attendance


class Appraisal(models.Model):
    """Annual review: a member's 民主评议 and 群众评议 ratings, when the scheme weights them."""

    class Rating(models.TextChoices):
        EXCELLENT = "excellent", _("优秀")
        COMPETENT = "competent", _("合格")
        BASIC = "basic", _("基本合格")
        FAILING = "failing", _("不合格")

    # Each rating's score on the 100-point scale of the totals (优秀10/合格8/基本合格6/不合格4 × 10).
    SCORES = {"excellent": 100, "competent": 80, "basic": 60, "failing": 40}

    cycle = models.ForeignKey(ReviewCycle, on_delete=models.CASCADE, related_name="appraisals")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="appraisals")
    democratic = models.CharField(_("民主评议"), max_length=10, choices=Rating.choices)
    mass = models.CharField(_("群众评议"), max_length=10, choices=Rating.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("评议等次")
        verbose_name_plural = _("评议等次")
        constraints = [models.UniqueConstraint(fields=["cycle", "member"], name="one_appraisal")]

    def __str__(self) -> str:
        return f"{self.member} {self.get_democratic_display()}/{self.get_mass_display()}"


class Acknowledgement(models.Model):
    """签字确认: a member acknowledges their result of a finalized period."""

    cycle = models.ForeignKey(
        ReviewCycle, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="acknowledgements")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    acknowledged_at = models.DateTimeField(_("确认时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("签字确认")
        verbose_name_plural = _("签字确认")
        constraints = [
            models.UniqueConstraint(fields=["cycle", "member"], name="one_acknowledgement")
        ]

    def __str__(self) -> str:
        return f"{self.member} {self.acknowledged_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """An in-app notice (reminders of deadlines and publicity windows)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    text = models.CharField(_("内容"), max_length=300)
    url = models.CharField(_("链接"), max_length=300, blank=True)
    key = models.CharField(max_length=100, blank=True, help_text="dedupe key")
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)
    read_at = models.DateTimeField(_("已读时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("通知")
        verbose_name_plural = _("通知")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"], condition=~Q(key=""), name="notification_once_per_key"
            )
        ]

    def __str__(self) -> str:
        return self.text
