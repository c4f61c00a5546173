"""Serializers of review cycles, their timeline and the records made along the way.

A cycle's state, dates of publicity, finalization and report are moved by the services only:
the output is read-only and each move is its own action with its own small input."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from members.api.serializers import PersonSerializer
from members.models import Member, Organization
from reviews.models import (
    Acknowledgement,
    Appraisal,
    CommitteeMeeting,
    CycleEvent,
    GeneralMeeting,
    ReviewCycle,
    ScoreAgreement,
    SelfAssessment,
)

MAX_COUNT = 100_000


class CycleEventSerializer(serializers.ModelSerializer):
    user = PersonSerializer(read_only=True, allow_null=True)

    class Meta:
        model = CycleEvent
        fields = ["id", "action", "from_state", "to_state", "user", "note", "created_at"]
        read_only_fields = fields


class ReviewCycleSerializer(serializers.ModelSerializer):
    organization_name = serializers.CharField(source="organization.name", read_only=True)
    period_label = serializers.CharField(read_only=True)
    state_display = serializers.CharField(source="get_state_display", read_only=True)

    class Meta:
        model = ReviewCycle
        fields = [
            "id",
            "organization",
            "organization_name",
            "year",
            "quarter",
            "period_label",
            "state",
            "state_display",
            "self_assessment_deadline",
            "publicity_days",
            "publicity_starts_on",
            "publicity_ends_on",
            "finalized_at",
            "reported_at",
            "reopened_at",
            "created_at",
        ]
        read_only_fields = fields


class ReviewCycleDetailSerializer(ReviewCycleSerializer):
    blockers = serializers.SerializerMethodField(
        help_text=_("下一步推进还缺什么（只对可查看评议的支部干部和党委工作人员列出）。")
    )
    events = serializers.SerializerMethodField(
        help_text=_("评议记录（时间线），只对可查看评议的支部干部和党委工作人员列出。")
    )

    class Meta(ReviewCycleSerializer.Meta):
        fields = [*ReviewCycleSerializer.Meta.fields, "blockers", "events"]
        read_only_fields = fields

    def get_blockers(self, cycle: ReviewCycle) -> list[str]:
        return self.context["blockers"](cycle)

    def get_events(self, cycle: ReviewCycle) -> list[dict]:
        events = self.context["events"](cycle)
        return CycleEventSerializer(events, many=True).data


class CycleOpenSerializer(serializers.Serializer):
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.none(), help_text=_("党支部 id。")
    )
    year = serializers.IntegerField(min_value=2000, max_value=2100)
    quarter = serializers.IntegerField(
        min_value=0, max_value=4, help_text=_("季度 1–4；0 表示年度评议。")
    )

    def __init__(self, *args, branches=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if branches is not None:
            self.fields["organization"].queryset = branches


class AdvanceSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class StartPublicitySerializer(AdvanceSerializer):
    publicity_starts_on = serializers.DateField(
        required=False, allow_null=True, help_text=_("公示开始日期，默认今天；不能早于今天。")
    )


class ReopenSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, allow_blank=True, help_text=_("重新打开的原因。")
    )


class DeadlineSerializer(serializers.Serializer):
    deadline = serializers.DateField(help_text=_("党员自评截止日期；不能早于今天。"))


class SelfAssessmentInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=2000, allow_blank=True)


class SelfAssessmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = SelfAssessment
        fields = ["id", "cycle", "member", "text", "submitted_at", "updated_at"]
        read_only_fields = fields


def _members_field(**kwargs) -> serializers.PrimaryKeyRelatedField:
    return serializers.PrimaryKeyRelatedField(queryset=Member.objects.none(), **kwargs)


class CommitteeMeetingInputSerializer(serializers.Serializer):
    meeting_date = serializers.DateField()
    attendees = _members_field(many=True, allow_empty=True, help_text=_("出席支委（党员 id）。"))
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def __init__(self, *args, members=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if members is not None:
            self.fields["attendees"].child_relation.queryset = members


class CommitteeMeetingSerializer(serializers.ModelSerializer):
    attendees = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    recorded_by = PersonSerializer(read_only=True)

    class Meta:
        model = CommitteeMeeting
        fields = ["cycle", "meeting_date", "attendees", "notes", "recorded_by", "recorded_at"]
        read_only_fields = fields


class AgreementInputSerializer(serializers.Serializer):
    member = _members_field()
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AgreementsInputSerializer(serializers.Serializer):
    agreements = AgreementInputSerializer(
        many=True, allow_empty=True, help_text=_("确认初评积分的党员，可附初评意见。")
    )

    def __init__(self, *args, members=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if members is not None:
            self.fields["agreements"].child.fields["member"].queryset = members


class ScoreAgreementSerializer(serializers.ModelSerializer):
    agreed_by = PersonSerializer(read_only=True)

    class Meta:
        model = ScoreAgreement
        fields = ["id", "cycle", "member", "proposed_total", "note", "agreed_by", "agreed_at"]
        read_only_fields = fields


class RatingInputSerializer(serializers.Serializer):
    member = _members_field()
    democratic = serializers.ChoiceField(choices=Appraisal.Rating.choices)
    mass = serializers.ChoiceField(choices=Appraisal.Rating.choices)


class AppraisalsInputSerializer(serializers.Serializer):
    ratings = RatingInputSerializer(many=True, allow_empty=True)

    def __init__(self, *args, members=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if members is not None:
            self.fields["ratings"].child.fields["member"].queryset = members


class AppraisalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Appraisal
        fields = ["id", "cycle", "member", "democratic", "mass", "recorded_at"]
        read_only_fields = fields


class GeneralMeetingInputSerializer(serializers.Serializer):
    meeting_date = serializers.DateField()
    voting_members = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    attendance = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_for = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_against = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_abstain = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)


class GeneralMeetingSerializer(serializers.ModelSerializer):
    recorded_by = PersonSerializer(read_only=True)
    has_quorum = serializers.BooleanField(read_only=True)
    passed = serializers.BooleanField(read_only=True)

    class Meta:
        model = GeneralMeeting
        fields = [
            "cycle",
            "meeting_date",
            "voting_members",
            "attendance",
            "votes_for",
            "votes_against",
            "votes_abstain",
            "has_quorum",
            "passed",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = fields


class AcknowledgementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Acknowledgement
        fields = ["id", "cycle", "member", "acknowledged_at"]
        read_only_fields = fields
