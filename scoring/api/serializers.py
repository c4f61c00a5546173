"""Serializers of schemes and rules, the ledger, declarations and period scores.

Output serializers are read-only through and through: totals, ranks, stars, grades, the veto
flag, statuses, the branch of an entry and who recorded or approved it are set by the
services and the recompute only. Input serializers name exactly what a client may send;
anything else in the body is ignored. They only parse: whether the points fit the rule, the
period is open, the user may do it … is the services' to judge (422 / 403).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.api.serializers import PersonSerializer
from members.models import Member, Organization
from scoring import exports
from scoring.models import (
    Declaration,
    Entry,
    EvidenceFile,
    ExportJob,
    OutcomeBand,
    PeriodScore,
    Rule,
    RuleCategory,
    Scheme,
    VetoVote,
)

POINTS = {"max_digits": 9, "decimal_places": 2}
# Head counts of a vote: generous, but within the database's integer range.
MAX_COUNT = 100_000


# --- schemes and rules --------------------------------------------------------------------


class OutcomeBandSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutcomeBand
        fields = ["dimension", "label", "min_total"]
        read_only_fields = fields


class RuleCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = RuleCategory
        fields = ["id", "name", "position"]
        read_only_fields = fields


class SchemeSerializer(serializers.ModelSerializer):
    bands = OutcomeBandSerializer(many=True, read_only=True)
    categories = RuleCategorySerializer(many=True, read_only=True)

    class Meta:
        model = Scheme
        fields = [
            "id",
            "name",
            "year",
            "owner",
            "base_score",
            "veto_effect",
            "excellent_grade",
            "failing_grade",
            "excellent_share_cap",
            "top_n_flag",
            "bottom_n_flag",
            "points_weight",
            "democratic_weight",
            "mass_weight",
            "description",
            "version",
            "updated_at",
            "bands",
            "categories",
        ]
        read_only_fields = fields


class RuleSerializer(serializers.ModelSerializer):
    category_name = serializers.CharField(source="category.name", read_only=True)
    applies_to = serializers.ListField(
        child=serializers.ChoiceField(choices=Member.Category.choices),
        read_only=True,
        help_text=_("适用的党员类别；空表示全部类别。"),
    )

    class Meta:
        model = Rule
        fields = [
            "id",
            "scheme",
            "category",
            "category_name",
            "code",
            "version",
            "is_current",
            "name",
            "kind",
            "points_min",
            "points_max",
            "max_times_per_quarter",
            "max_points_per_year",
            "evidence_required",
            "self_declarable",
            "applies_to",
            "audience",
            "position",
        ]
        read_only_fields = fields


# --- the ledger -----------------------------------------------------------------------------


class VetoVoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = VetoVote
        fields = [
            "meeting_date",
            "voting_members",
            "attendance",
            "votes_for",
            "votes_against",
            "votes_abstain",
        ]
        read_only_fields = fields


class EntrySerializer(serializers.ModelSerializer):
    member_name = serializers.CharField(source="member.name", read_only=True)
    rule_code = serializers.CharField(source="rule.code", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    recorded_by = PersonSerializer(read_only=True)
    approved_by = PersonSerializer(read_only=True, allow_null=True)
    reversed_by = serializers.SerializerMethodField(
        help_text=_("冲销这条记录的记录 id；未冲销为 null。")
    )
    veto_vote = serializers.SerializerMethodField()

    class Meta:
        model = Entry
        fields = [
            "id",
            "member",
            "member_name",
            "organization",
            "rule",
            "rule_code",
            "rule_name",
            "rule_version",
            "scheme",
            "scheme_version",
            "kind",
            "points",
            "occurred_on",
            "year",
            "quarter",
            "description",
            "reason",
            "recorded_by",
            "approved_by",
            "declaration",
            "reverses",
            "reversed_by",
            "veto_vote",
            "created_at",
        ]
        read_only_fields = fields

    def get_reversed_by(self, entry: Entry) -> int | None:
        return entry.reversal.pk if _has_related(entry, "reversal") else None

    @extend_schema_field(VetoVoteSerializer(allow_null=True))
    def get_veto_vote(self, entry: Entry) -> dict | None:
        if not _has_related(entry, "veto_vote"):
            return None
        return VetoVoteSerializer(entry.veto_vote).data


def _has_related(instance, name: str) -> bool:
    """Whether a reverse one-to-one (``entry.reversal``, ``declaration.entry`` …) exists."""
    try:
        return getattr(instance, name) is not None
    except ObjectDoesNotExist:
        return False


class EntryRecordSerializer(serializers.Serializer):
    """记录积分: what a recorder sends for one entry."""

    member = serializers.PrimaryKeyRelatedField(queryset=Member.objects.none())
    rule = serializers.PrimaryKeyRelatedField(queryset=Rule.objects.none())
    occurred_on = serializers.DateField(help_text=_("发生日期；不能晚于今天，所在期间须未锁定。"))
    description = serializers.CharField(max_length=500, allow_blank=True)
    points = serializers.DecimalField(
        **POINTS,
        required=False,
        allow_null=True,
        help_text=_("分值；固定分值的细则项可省略，有范围的须在范围内。"),
    )

    def __init__(self, *args, members=None, rules=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if members is not None:
            self.fields["member"].queryset = members
        if rules is not None:
            self.fields["rule"].queryset = rules


class VetoRecordSerializer(EntryRecordSerializer):
    """一票否决: the entry and the branch meeting's show-of-hands vote."""

    points = None
    meeting_date = serializers.DateField(help_text=_("党员大会表决日期。"))
    voting_members = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    attendance = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_for = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_against = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)
    votes_abstain = serializers.IntegerField(min_value=0, max_value=MAX_COUNT)


class BulkRecordSerializer(serializers.Serializer):
    """批量记录: one rule for many members of one branch (a meeting's attendance)."""

    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.none(), help_text=_("党支部 id。")
    )
    rule = serializers.PrimaryKeyRelatedField(queryset=Rule.objects.none())
    members = serializers.PrimaryKeyRelatedField(
        queryset=Member.objects.none(), many=True, allow_empty=True
    )
    occurred_on = serializers.DateField()
    description = serializers.CharField(max_length=500, allow_blank=True)
    points = serializers.DecimalField(**POINTS, required=False, allow_null=True)

    def __init__(self, *args, branches=None, members=None, rules=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if branches is not None:
            self.fields["organization"].queryset = branches
        if members is not None:
            self.fields["members"].child_relation.queryset = members
        if rules is not None:
            self.fields["rule"].queryset = rules


class SkippedSerializer(serializers.Serializer):
    member = serializers.IntegerField()
    member_name = serializers.CharField()
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    entries = EntrySerializer(many=True)
    skipped = SkippedSerializer(many=True, help_text=_("细则项不适用等原因未记录的党员。"))


class ReverseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, allow_blank=True)
    occurred_on = serializers.DateField(
        required=False,
        allow_null=True,
        help_text=_("冲销记录的日期，默认今天；须在开放的期间。"),
    )


# --- declarations ---------------------------------------------------------------------------


class EvidenceSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text=_("下载地址（网页会话登录后可下载）。"))

    class Meta:
        model = EvidenceFile
        fields = ["id", "original_name", "content_type", "size", "uploaded_at", "url"]
        read_only_fields = fields

    def get_url(self, evidence: EvidenceFile) -> str:
        return reverse("scoring:evidence", kwargs={"pk": evidence.pk})


class DeclarationSerializer(serializers.ModelSerializer):
    member_name = serializers.CharField(source="member.name", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    declared_by = PersonSerializer(read_only=True)
    decided_by = PersonSerializer(read_only=True, allow_null=True)
    entry = serializers.SerializerMethodField(help_text=_("通过后写入的积分记录 id。"))
    evidence = EvidenceSerializer(many=True, read_only=True)

    class Meta:
        model = Declaration
        fields = [
            "id",
            "member",
            "member_name",
            "rule",
            "rule_name",
            "points",
            "occurred_on",
            "description",
            "status",
            "declared_by",
            "declared_at",
            "decided_by",
            "decided_at",
            "decision_reason",
            "entry",
            "evidence",
        ]
        read_only_fields = fields

    def get_entry(self, declaration: Declaration) -> int | None:
        return declaration.entry.pk if _has_related(declaration, "entry") else None


class DeclarationCreateSerializer(serializers.Serializer):
    """积分申报 (JSON): the member declares for themself."""

    rule = serializers.PrimaryKeyRelatedField(queryset=Rule.objects.none())
    occurred_on = serializers.DateField()
    description = serializers.CharField(max_length=1000, allow_blank=True)
    points = serializers.DecimalField(**POINTS, required=False, allow_null=True)

    def __init__(self, *args, rules=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if rules is not None:
            self.fields["rule"].queryset = rules


class DeclarationUploadSerializer(DeclarationCreateSerializer):
    """积分申报 (multipart/form-data): the same, with evidence files."""

    evidence = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        required=False,
        max_length=settings.EVIDENCE_MAX_FILES,
        help_text=_("佐证材料：JPG、PNG、GIF、WEBP 图片或 PDF，可多个。"),
    )


class ApproveSerializer(serializers.Serializer):
    points = serializers.DecimalField(
        **POINTS,
        required=False,
        allow_null=True,
        help_text=_("核定分值；省略表示按申报分值通过，与申报不同时须填写原因。"),
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AdjustSerializer(serializers.Serializer):
    points = serializers.DecimalField(**POINTS, help_text=_("核定分值（须在细则项范围内）。"))
    reason = serializers.CharField(max_length=500, allow_blank=True, help_text=_("调整原因。"))


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, allow_blank=True, help_text=_("不予通过的原因。")
    )


# --- period scores --------------------------------------------------------------------------

# What a member may not see of their own score before the review of the period is published.
RANK_FIELDS = (
    "rank_in_branch",
    "rank_in_committee",
    "grade",
    "is_top_flagged",
    "is_bottom_flagged",
)


class PeriodScoreSerializer(serializers.ModelSerializer):
    member_name = serializers.CharField(source="member.name", read_only=True)
    member_category = serializers.ChoiceField(
        source="member.category", choices=Member.Category.choices, read_only=True
    )
    organization_name = serializers.CharField(source="organization.name", read_only=True)
    ranks_published = serializers.SerializerMethodField(
        help_text=_(
            "排名、等次和表扬/谈心谈话标记是否对您可见：支部干部和党委工作人员始终可见；"
            "党员本人在该期间的评议进入公示后可见，之前这些字段为 null。"
        )
    )

    class Meta:
        model = PeriodScore
        fields = [
            "id",
            "member",
            "member_name",
            "member_category",
            "organization",
            "organization_name",
            "scheme",
            "year",
            "quarter",
            "base_score",
            "bonus",
            "deduction",
            "net",
            "year_to_date_total",
            "total",
            "uncounted_points",
            "is_vetoed",
            "ranking_group",
            "rank_in_branch",
            "rank_in_committee",
            "star",
            "grade",
            "is_top_flagged",
            "is_bottom_flagged",
            "ranks_published",
            "computed_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "rank_in_branch": {"allow_null": True},
            "rank_in_committee": {"allow_null": True},
            "grade": {"allow_null": True},
            "is_top_flagged": {"allow_null": True},
            "is_bottom_flagged": {"allow_null": True},
        }

    def get_ranks_published(self, score: PeriodScore) -> bool:
        return self.context["ranks_visible"](score)

    def to_representation(self, score: PeriodScore) -> dict:
        data = super().to_representation(score)
        if not data["ranks_published"]:
            for name in RANK_FIELDS:
                data[name] = None
        return data


# --- exports ----------------------------------------------------------------------------------


class ExportRequestSerializer(serializers.Serializer):
    """What to export; whether it can be made is ``scoring.exports.validate_export``'s to say."""

    kind = serializers.ChoiceField(
        choices=ExportJob.Kind.choices,
        help_text=_(
            "annual_ranking 年度排名（quarter 为 0）、quarterly_ranking 季度排名、branch_ledger 支部台账。"
        ),
    )
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.none(), help_text=_("党组织 id（台账须为党支部）。")
    )
    year = serializers.IntegerField(min_value=2000, max_value=2100)
    quarter = serializers.IntegerField(
        min_value=0, max_value=4, default=0, help_text=_("季度 1–4；0 表示全年。")
    )
    category = serializers.ChoiceField(
        choices=Member.Category.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text=_("只导出该类别的党员；空表示全部类别。"),
    )

    def __init__(self, *args, organizations=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if organizations is not None:
            self.fields["organization"].queryset = organizations


class ExportJobSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    title = serializers.SerializerMethodField(help_text=_("导出内容的说明。"))
    percent = serializers.IntegerField(read_only=True, help_text=_("进度（0–100）。"))
    category = serializers.ChoiceField(
        choices=Member.Category.choices, allow_blank=True, read_only=True
    )
    download_url = serializers.SerializerMethodField(
        help_text=_("完成后的下载地址；未完成、失败或无权下载时为 null。")
    )

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "kind",
            "kind_display",
            "title",
            "organization",
            "year",
            "quarter",
            "category",
            "status",
            "status_display",
            "percent",
            "rows_written",
            "rows_total",
            "error",
            "filename",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_title(self, job: ExportJob) -> str:
        return exports.describe(job)

    def get_download_url(self, job: ExportJob) -> str | None:
        if not exports.may_download(self.context["request"].user, job):
            return None
        return reverse("api:export-download", kwargs={"pk": job.pk})
