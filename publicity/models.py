"""Objections raised during publicity, their recheck, appeal and final ruling."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import Member
from reviews.models import ReviewCycle
from scoring.models import Entry


class Objection(models.Model):
    """异议 → 复核 → 申诉 → 认定.

    A member raises it during the publicity window, about one entry or about their total.
    The recorder rechecks and answers; a member who still disagrees appeals to the
    discipline commissioner, who gives an opinion; the branch committee rules finally. An
    upheld objection becomes a correction in the ledger (a reversal and, where needed, a
    new entry) and totals and ranks follow."""

    class State(models.TextChoices):
        RAISED = "raised", _("待复核")
        ANSWERED = "answered", _("已复核，维持原结果")
        APPEALED = "appealed", _("已申诉，待纪检委员审查")
        FORWARDED = "forwarded", _("待支委会认定")
        ACCEPTED = "accepted", _("党员接受复核结果")
        UPHELD = "upheld", _("异议成立，已更正")
        REJECTED = "rejected", _("异议不成立")

    # Not yet settled: finalizing waits for these.
    OPEN_STATES = (State.RAISED, State.APPEALED, State.FORWARDED)

    cycle = models.ForeignKey(ReviewCycle, on_delete=models.PROTECT, related_name="objections")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="objections")
    entry = models.ForeignKey(
        Entry,
        verbose_name=_("对应积分记录"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="objections",
        help_text=_("为空表示对总分有异议。"),
    )
    text = models.TextField(_("异议内容"), max_length=2000)
    state = models.CharField(_("状态"), max_length=12, choices=State.choices, default=State.RAISED)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    raised_at = models.DateTimeField(_("提出时间"), auto_now_add=True)

    recheck_answer = models.TextField(_("复核答复"), max_length=2000, blank=True)
    rechecked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rechecked_at = models.DateTimeField(_("复核时间"), null=True, blank=True)

    appeal_text = models.TextField(_("申诉理由"), max_length=2000, blank=True)
    appealed_at = models.DateTimeField(_("申诉时间"), null=True, blank=True)

    commissioner_opinion = models.TextField(_("纪检委员意见"), max_length=2000, blank=True)
    commissioner_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    commissioner_at = models.DateTimeField(_("审查时间"), null=True, blank=True)

    ruling_reason = models.TextField(_("认定理由"), max_length=2000, blank=True)
    ruled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ruled_at = models.DateTimeField(_("认定时间"), null=True, blank=True)

    reversal_entry = models.ForeignKey(
        Entry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    correction_entry = models.ForeignKey(
        Entry, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("异议")
        verbose_name_plural = _("异议")
        ordering = ["raised_at", "id"]
        indexes = [models.Index(fields=["cycle", "state"])]

    def __str__(self) -> str:
        return f"{self.member} · {self.cycle} · {self.get_state_display()}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES
