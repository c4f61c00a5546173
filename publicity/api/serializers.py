"""Serializers of objections: the whole history is read-only (each step is its own action),
and each step takes only what it needs."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from members.api.serializers import PersonSerializer
from publicity.models import Objection
from reviews.models import ReviewCycle
from scoring.models import Entry, Rule

POINTS = {"max_digits": 9, "decimal_places": 2}


class ObjectionSerializer(serializers.ModelSerializer):
    member_name = serializers.CharField(source="member.name", read_only=True)
    state_display = serializers.CharField(source="get_state_display", read_only=True)
    is_open = serializers.BooleanField(read_only=True)
    raised_by = PersonSerializer(read_only=True)
    rechecked_by = PersonSerializer(read_only=True, allow_null=True)
    commissioner_by = PersonSerializer(read_only=True, allow_null=True)
    ruled_by = PersonSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Objection
        fields = [
            "id",
            "cycle",
            "member",
            "member_name",
            "entry",
            "text",
            "state",
            "state_display",
            "is_open",
            "raised_by",
            "raised_at",
            "recheck_answer",
            "rechecked_by",
            "rechecked_at",
            "appeal_text",
            "appealed_at",
            "commissioner_opinion",
            "commissioner_by",
            "commissioner_at",
            "ruling_reason",
            "ruled_by",
            "ruled_at",
            "reversal_entry",
            "correction_entry",
        ]
        read_only_fields = fields


class RaiseSerializer(serializers.Serializer):
    cycle = serializers.PrimaryKeyRelatedField(
        queryset=ReviewCycle.objects.none(), help_text=_("公示中的评议 id。")
    )
    entry = serializers.PrimaryKeyRelatedField(
        queryset=Entry.objects.none(),
        required=False,
        allow_null=True,
        help_text=_("有异议的本人积分记录 id；省略或为 null 表示对本期总分有异议。"),
    )
    text = serializers.CharField(max_length=2000, allow_blank=True)

    def __init__(self, *args, cycles=None, entries=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if cycles is not None:
            self.fields["cycle"].queryset = cycles
        if entries is not None:
            self.fields["entry"].queryset = entries


class CorrectionSerializer(serializers.Serializer):
    rule = serializers.PrimaryKeyRelatedField(queryset=Rule.objects.none())
    points = serializers.DecimalField(**POINTS, required=False, allow_null=True)
    description = serializers.CharField(max_length=500, allow_blank=True)


class DecisionSerializer(serializers.Serializer):
    """A decision that may uphold the objection, with an optional correction entry."""

    uphold = serializers.BooleanField(
        help_text=_("true：异议成立（原记录冲销，可登记更正积分）；false：维持原结果。")
    )
    correction = CorrectionSerializer(
        required=False,
        allow_null=True,
        help_text=_("异议成立时按正确情况重新记分（可省略）。"),
    )

    def __init__(self, *args, rules=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if rules is not None:
            self.fields["correction"].fields["rule"].queryset = rules


class RecheckSerializer(DecisionSerializer):
    answer = serializers.CharField(max_length=2000, allow_blank=True, help_text=_("复核答复。"))


class RulingSerializer(DecisionSerializer):
    reason = serializers.CharField(max_length=2000, allow_blank=True, help_text=_("认定理由。"))


class AppealSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=2000, allow_blank=True, help_text=_("申诉理由。"))


class ExamineSerializer(serializers.Serializer):
    opinion = serializers.CharField(
        max_length=2000, allow_blank=True, help_text=_("纪检委员意见。")
    )
