"""Schemes and rules, the ledger (record, veto, bulk, reverse), declarations (declare,
approve / adjust / reject) and period scores with rankings.

Reads are scoped through the permission module: an object outside the user's reach is not
in the queryset, so it answers 404. Writes go through ``scoring.services`` exactly as the
pages do: the service checks the user's right (``PermissionDenied`` → 403) and the business
rules (``ValidationError`` → 422), and changes nothing when it refuses.
"""

from __future__ import annotations

from urllib.parse import quote

import django_filters
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from members.api.errors import BusinessRuleRefusal, error_body
from members.api.filters import (
    WithinFilter,
    boolean_filter,
    choice_filter,
    id_filter,
    quarter_filter,
    year_filter,
)
from members.api.idempotency import idempotent
from members.api.schema import error_response
from members.api.views import ApiViewSet, organizations_visible_to
from members.excel import XLSX_CONTENT_TYPE
from members.models import Member, Organization
from members.permissions import Action, branches_where, can, member_of, members_visible_to
from reviews.models import ReviewCycle
from scoring import exports, services
from scoring.models import Declaration, Entry, ExportJob, PeriodScore, Rule, Scheme
from scoring.selectors import export_jobs_for

from .serializers import (
    AdjustSerializer,
    ApproveSerializer,
    BulkRecordSerializer,
    BulkResultSerializer,
    DeclarationCreateSerializer,
    DeclarationSerializer,
    DeclarationUploadSerializer,
    EntryRecordSerializer,
    EntrySerializer,
    ExportJobSerializer,
    ExportRequestSerializer,
    PeriodScoreSerializer,
    RejectSerializer,
    ReverseSerializer,
    RuleSerializer,
    SchemeSerializer,
    VetoRecordSerializer,
)

# Where a scoring service's refusal belongs in the request, by its code.
SCORING_ERROR_FIELDS = {
    "not_declarable": "rule",
    "rule_not_applicable": "rule",
    "wrong_scheme": "rule",
    "rule_revised": "rule",
    "not_veto": "rule",
    "veto_needs_vote": "rule",
    "points_required": "points",
    "points_out_of_range": "points",
    "zero_points": "points",
    "too_many_decimals": "points",
    "future_date": "occurred_on",
    "period_locked": "occurred_on",
    "no_scheme": "occurred_on",
    "description_required": "description",
    "evidence_required": "evidence",
    "reason_required": "reason",
    "no_members": "members",
}
PUBLISHED_STATES = (ReviewCycle.State.PUBLICITY, ReviewCycle.State.FINALIZED)


def _user_is_superuser(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def schemes_visible_to(user) -> QuerySet[Scheme]:
    """Schemes owned by an organization the user can read, or by one above it (the scheme a
    branch uses is usually its committee's)."""
    if _user_is_superuser(user):
        return Scheme.objects.all()
    step = Organization.steplen
    paths = set(organizations_visible_to(user).values_list("path", flat=True))
    prefixes = {path[:end] for path in paths for end in range(step, len(path) + 1, step)}
    return Scheme.objects.filter(owner__path__in=prefixes)


def rules_visible_to(user) -> QuerySet[Rule]:
    return Rule.objects.filter(scheme__in=schemes_visible_to(user))


def _ledger_branches(user, *actions: Action) -> QuerySet[Organization]:
    branches = branches_where(user, actions[0])
    for extra in actions[1:]:
        branches = branches | branches_where(user, extra)
    return branches


def entries_visible_to(user) -> QuerySet[Entry]:
    """The ledger lines of the branches whose ledger the user may read, and their own."""
    if not user.is_authenticated:
        return Entry.objects.none()
    if _user_is_superuser(user):
        return Entry.objects.all()
    return Entry.objects.filter(
        Q(member__organization__in=_ledger_branches(user, Action.VIEW_LEDGER))
        | Q(member__user=user)
    )


def declarations_visible_to(user) -> QuerySet[Declaration]:
    """Declarations of the branches whose declarations the user reviews or whose ledger they
    read, and their own."""
    if not user.is_authenticated:
        return Declaration.objects.none()
    if _user_is_superuser(user):
        return Declaration.objects.all()
    branches = _ledger_branches(user, Action.REVIEW_DECLARATION, Action.VIEW_LEDGER)
    return Declaration.objects.filter(Q(member__organization__in=branches) | Q(member__user=user))


def scores_visible_to(user) -> QuerySet[PeriodScore]:
    """Period scores of the organizations whose ledger the user reads, and their own."""
    if not user.is_authenticated:
        return PeriodScore.objects.none()
    if _user_is_superuser(user):
        return PeriodScore.objects.all()
    return PeriodScore.objects.filter(
        Q(organization__in=_ledger_branches(user, Action.VIEW_LEDGER)) | Q(member__user=user)
    )


def created(data: dict, url_name: str, pk: int) -> Response:
    return Response(
        data,
        status=status.HTTP_201_CREATED,
        headers={"Location": reverse(f"api:{url_name}", kwargs={"pk": pk})},
    )


# --- schemes and rules --------------------------------------------------------------------


class SchemeFilter(django_filters.FilterSet):
    year = year_filter()
    owner = id_filter("owner", gettext_lazy("制定细则的党组织 id。"))

    class Meta:
        model = Scheme
        fields = ["year", "owner"]


@extend_schema(tags=["schemes"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出积分细则")),
    retrieve=extend_schema(summary=gettext_lazy("查看一套积分细则（含星级、等次档和类别）")),
)
class SchemeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """积分细则: the schemes of the user's organizations and those above them, with their
    star and grade bands and rule categories. Maintained by committee staff in the admin."""

    queryset = Scheme.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = SchemeSerializer
    filterset_class = SchemeFilter

    def get_queryset(self) -> QuerySet[Scheme]:
        return (
            schemes_visible_to(self.request.user)
            .prefetch_related("bands", "categories")
            .order_by("-year", "name", "id")
        )


class RuleFilter(django_filters.FilterSet):
    scheme = id_filter("scheme", gettext_lazy("积分细则 id。"))
    year = year_filter("scheme__year", help_text=gettext_lazy("细则的年度。"))
    kind = choice_filter(Rule.Kind.choices, gettext_lazy("加分、减分或一票否决。"))
    is_current = boolean_filter(gettext_lazy("是否现行版本（修订后的旧版本为 false）。"))
    self_declarable = boolean_filter(gettext_lazy("党员可否自行申报。"))

    class Meta:
        model = Rule
        fields = ["scheme", "year", "kind", "is_current", "self_declarable"]


@extend_schema(tags=["schemes"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出积分细则项")),
    retrieve=extend_schema(summary=gettext_lazy("查看一个积分细则项")),
)
class RuleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """积分细则项: the rules of the visible schemes (``?scheme=&is_current=true`` for what a
    branch scores under now; a revised rule keeps its old versions for past entries)."""

    queryset = Rule.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = RuleSerializer
    filterset_class = RuleFilter

    def get_queryset(self) -> QuerySet[Rule]:
        return (
            rules_visible_to(self.request.user)
            .select_related("category")
            .order_by("scheme_id", "category__position", "position", "code", "version")
        )


# --- the ledger -----------------------------------------------------------------------------


class EntryFilter(django_filters.FilterSet):
    organization = WithinFilter(path_field="member__organization__path")
    member = id_filter("member", gettext_lazy("党员 id。"))
    year = year_filter()
    quarter = quarter_filter(with_year=False)
    kind = choice_filter(Rule.Kind.choices, gettext_lazy("加分、减分或一票否决。"))

    class Meta:
        model = Entry
        fields = ["organization", "member", "year", "quarter", "kind"]


@extend_schema(tags=["entries"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出积分台账记录")),
    retrieve=extend_schema(summary=gettext_lazy("查看一条积分记录")),
)
class EntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """积分台账: the entries of the branches whose ledger the user reads, and their own. The
    ledger only grows: an entry is never changed or deleted, a correction is a reversal."""

    queryset = Entry.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = EntrySerializer
    filterset_class = EntryFilter
    service_error_fields = SCORING_ERROR_FIELDS

    def get_queryset(self) -> QuerySet[Entry]:
        return (
            entries_visible_to(self.request.user)
            .select_related("member", "rule", "recorded_by", "approved_by", "reversal", "veto_vote")
            .order_by("occurred_on", "id")
        )

    def _inputs(self) -> dict:
        user = self.request.user
        return {"members": members_visible_to(user), "rules": rules_visible_to(user)}

    @extend_schema(
        summary=gettext_lazy("记录积分（一名党员、一个细则项）"),
        request=EntryRecordSerializer,
        responses={201: EntrySerializer},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        form = EntryRecordSerializer(data=request.data, **self._inputs())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        entry = services.entry_record(
            user=request.user,
            member=data["member"],
            rule=data["rule"],
            occurred_on=data["occurred_on"],
            description=data["description"],
            points=data.get("points"),
        )
        return created(self._output(entry), "entry-detail", entry.pk)

    def _output(self, entry: Entry) -> dict:
        return EntrySerializer(self.get_queryset().get(pk=entry.pk)).data

    @extend_schema(
        summary=gettext_lazy("登记一票否决（附支部党员大会表决结果）"),
        request=VetoRecordSerializer,
        responses={201: EntrySerializer},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def veto(self, request: Request) -> Response:
        form = VetoRecordSerializer(data=request.data, **self._inputs())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        entry = services.veto_record(
            user=request.user,
            member=data["member"],
            rule=data["rule"],
            occurred_on=data["occurred_on"],
            description=data["description"],
            meeting_date=data["meeting_date"],
            voting_members=data["voting_members"],
            attendance=data["attendance"],
            votes_for=data["votes_for"],
            votes_against=data["votes_against"],
            votes_abstain=data["votes_abstain"],
        )
        return created(self._output(entry), "entry-detail", entry.pk)

    @extend_schema(
        summary=gettext_lazy("批量记录（一个细则项、多名党员）"),
        request=BulkRecordSerializer,
        responses={201: BulkResultSerializer},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def bulk(self, request: Request) -> Response:
        user = request.user
        form = BulkRecordSerializer(
            data=request.data,
            branches=organizations_visible_to(user).filter(kind=Organization.Kind.BRANCH),
            **self._inputs(),
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        result = services.entries_record_bulk(
            user=user,
            branch=data["organization"],
            rule=data["rule"],
            members=data["members"],
            occurred_on=data["occurred_on"],
            description=data["description"],
            points=data.get("points"),
        )
        skipped = [
            {"member": member.pk, "member_name": member.name, "reason": reason}
            for member, reason in result.skipped
        ]
        if not result.entries:
            messages = [_("没有为任何党员记录积分。")] + [
                _("%(name)s 未记录：%(reason)s")
                % {"name": row["member_name"], "reason": row["reason"]}
                for row in skipped
            ]
            raise BusinessRuleRefusal(messages, "nothing_recorded", {"members": messages})
        entries = self.get_queryset().filter(pk__in=[entry.pk for entry in result.entries])
        return Response(
            {"entries": EntrySerializer(entries, many=True).data, "skipped": skipped},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary=gettext_lazy("冲销一条记录（写入一条冲销记录）"),
        request=ReverseSerializer,
        responses={201: EntrySerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reverse(self, request: Request, pk: str) -> Response:
        entry = self.get_object()
        form = ReverseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reversal = services.entry_reverse(
            user=request.user,
            entry=entry,
            reason=form.validated_data["reason"],
            occurred_on=form.validated_data.get("occurred_on"),
        )
        return created(self._output(reversal), "entry-detail", reversal.pk)


# --- declarations ---------------------------------------------------------------------------


class DeclarationFilter(django_filters.FilterSet):
    organization = WithinFilter(path_field="member__organization__path")
    member = id_filter("member", gettext_lazy("党员 id。"))
    status = choice_filter(Declaration.Status.choices, gettext_lazy("审核状态。"))
    year = year_filter(
        "occurred_on", lookup_expr="year", help_text=gettext_lazy("发生日期所在年度。")
    )

    class Meta:
        model = Declaration
        fields = ["organization", "member", "status", "year"]


@extend_schema(tags=["declarations"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出积分申报")),
    retrieve=extend_schema(summary=gettext_lazy("查看一条积分申报")),
)
class DeclarationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """积分申报: a member's own declarations; the branch committee's queue (``?status=pending``).
    Approval writes the ledger entry; nobody decides on their own declaration."""

    queryset = Declaration.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = DeclarationSerializer
    filterset_class = DeclarationFilter
    service_error_fields = SCORING_ERROR_FIELDS

    def get_queryset(self) -> QuerySet[Declaration]:
        return (
            declarations_visible_to(self.request.user)
            .select_related("member", "rule", "declared_by", "decided_by", "entry")
            .prefetch_related("evidence")
            .order_by("-declared_at", "-id")
        )

    def get_parsers(self):
        # Declaring takes evidence files: multipart as well as JSON.
        method = (getattr(self.request, "method", "") or "").lower()
        if getattr(self, "action_map", {}).get(method) == "create":
            return [JSONParser(), MultiPartParser()]
        return super().get_parsers()

    @extend_schema(
        summary=gettext_lazy("申报积分（党员本人，可附佐证材料）"),
        request={
            "application/json": DeclarationCreateSerializer,
            "multipart/form-data": DeclarationUploadSerializer,
        },
        responses={201: DeclarationSerializer},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        user = request.user
        member = member_of(user)
        if member is None:
            raise PermissionDenied(_("只有党员本人可以申报积分。"))
        form = DeclarationUploadSerializer(data=request.data, rules=rules_visible_to(user))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        declaration = services.declaration_submit(
            user=user,
            member=member,
            rule=data["rule"],
            occurred_on=data["occurred_on"],
            description=data["description"],
            points=data.get("points"),
            files=data.get("evidence", []),
        )
        return created(
            DeclarationSerializer(self.get_queryset().get(pk=declaration.pk)).data,
            "declaration-detail",
            declaration.pk,
        )

    @extend_schema(
        summary=gettext_lazy("通过申报（可按核定分值通过，写入积分记录）"),
        request=ApproveSerializer,
        responses={201: EntrySerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request: Request, pk: str) -> Response:
        declaration = self.get_object()
        form = ApproveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._approve(declaration, form.validated_data)

    @extend_schema(
        summary=gettext_lazy("调整分值后通过（须在细则项范围内，并写明原因）"),
        request=AdjustSerializer,
        responses={201: EntrySerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def adjust(self, request: Request, pk: str) -> Response:
        declaration = self.get_object()
        form = AdjustSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._approve(declaration, form.validated_data)

    def _approve(self, declaration: Declaration, data: dict) -> Response:
        entry = services.declaration_approve(
            user=self.request.user,
            declaration=declaration,
            points=data.get("points"),
            reason=data.get("reason", ""),
        )
        output = EntrySerializer(
            Entry.objects.select_related("member", "rule", "recorded_by", "approved_by").get(
                pk=entry.pk
            )
        ).data
        return created(output, "entry-detail", entry.pk)

    @extend_schema(
        summary=gettext_lazy("不予通过（写明原因）"),
        request=RejectSerializer,
        responses={200: DeclarationSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request: Request, pk: str) -> Response:
        declaration = self.get_object()
        form = RejectSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.declaration_reject(
            user=request.user, declaration=declaration, reason=form.validated_data["reason"]
        )
        return Response(DeclarationSerializer(self.get_queryset().get(pk=declaration.pk)).data)


# --- period scores and rankings --------------------------------------------------------------

GROUP_ORDER = Case(
    When(ranking_group=PeriodScore.RankingGroup.PARTY, then=Value(0)),
    When(ranking_group=PeriodScore.RankingGroup.CANDIDATE, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
ORDERINGS = {
    "committee_rank": ("rank_in_committee", "rank_in_branch"),
    "branch_rank": ("rank_in_branch", "rank_in_committee"),
}


class PeriodScoreFilter(django_filters.FilterSet):
    year = year_filter()
    quarter = quarter_filter(with_year=True)
    organization = WithinFilter(path_field="organization__path")
    category = choice_filter(
        Member.Category.choices, gettext_lazy("党员类别。"), field_name="member__category"
    )
    ranking_group = choice_filter(
        PeriodScore.RankingGroup.choices,
        gettext_lazy("排名序列：党员、发展对象/积极分子，或不参与排名。"),
    )
    member = id_filter("member", gettext_lazy("党员 id。"))
    ordering = django_filters.ChoiceFilter(
        method="filter_ordering",
        choices=[
            ("committee_rank", gettext_lazy("党委排名")),
            ("branch_rank", gettext_lazy("支部排名")),
        ],
        help_text=gettext_lazy(
            "排序：committee_rank（默认）或 branch_rank；均先按排名序列（党员、发展对象/积极分子、"
            "不参与排名），无排名的排在最后。"
        ),
    )

    class Meta:
        model = PeriodScore
        fields = ["year", "quarter", "organization", "category", "ranking_group", "member"]

    def filter_ordering(self, queryset, name, value):
        return queryset  # applied in PeriodScoreViewSet.filter_queryset


@extend_schema(tags=["period-scores"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("季度/年度积分与排名（按排名排序）")),
    retrieve=extend_schema(summary=gettext_lazy("查看一条期间积分")),
)
class PeriodScoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """季度/年度积分与排名: computed totals, ranks, stars and grades (read-only: only the
    recompute writes them). Ordered by rank; filter by year, quarter, organization, category."""

    queryset = PeriodScore.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = PeriodScoreSerializer
    filterset_class = PeriodScoreFilter

    def get_queryset(self) -> QuerySet[PeriodScore]:
        return scores_visible_to(self.request.user).select_related("member", "organization")

    def filter_queryset(self, queryset: QuerySet[PeriodScore]) -> QuerySet[PeriodScore]:
        queryset = super().filter_queryset(queryset)
        ordering = ORDERINGS.get(self.request.query_params.get("ordering", ""))
        first, second = ordering or ORDERINGS["committee_rank"]
        return queryset.annotate(group_order=GROUP_ORDER).order_by(
            "group_order",
            F(first).asc(nulls_last=True),
            F(second).asc(nulls_last=True),
            F("total").desc(),
            "member__name",
            "id",
        )

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        context["ranks_visible"] = RanksVisibility(self.request.user)
        return context


class RanksVisibility:
    """Whether the user may see the ranks and grade of a score: always in a branch whose
    ledger they read; for their own score, once the review of that period is published
    (publicity or finalized), as on the member's page and the publicity board."""

    def __init__(self, user) -> None:
        self.user = user
        self.cache: dict[tuple, bool] = {}

    def __call__(self, score: PeriodScore) -> bool:
        key = (score.organization_id, score.year, score.quarter)
        if key not in self.cache:
            self.cache[key] = can(self.user, Action.VIEW_LEDGER, score.organization) or (
                ReviewCycle.objects.filter(
                    organization_id=score.organization_id,
                    year=score.year,
                    quarter=score.quarter,
                    state__in=PUBLISHED_STATES,
                ).exists()
            )
        return self.cache[key]


# --- exports ----------------------------------------------------------------------------------


class ExportJobFilter(django_filters.FilterSet):
    status = choice_filter(ExportJob.Status.choices, gettext_lazy("导出任务状态。"))
    kind = choice_filter(ExportJob.Kind.choices, gettext_lazy("导出内容。"))

    class Meta:
        model = ExportJob
        fields = ["status", "kind"]


@extend_schema(tags=["exports"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出本人的导出任务（最新在前）")),
    retrieve=extend_schema(summary=gettext_lazy("导出任务的状态和进度")),
)
class ExportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """导出: ask for a ranking or ledger workbook (202 with the job's status URL), follow its
    progress, download the file once done. A user sees and downloads only their own jobs, while
    they still hold the export right there."""

    queryset = ExportJob.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = ExportJobSerializer
    filterset_class = ExportJobFilter

    def get_queryset(self) -> QuerySet[ExportJob]:
        return export_jobs_for(self.request.user)

    def list(self, request: Request, *args, **kwargs) -> Response:
        exports.export_jobs_expire_stale(user=request.user)
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        exports.export_jobs_expire_stale(user=request.user)
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary=gettext_lazy("申请导出（后台生成，返回 202 和任务状态地址）"),
        request=ExportRequestSerializer,
        responses={
            202: ExportJobSerializer,
            409: error_response(
                "409",
                gettext_lazy(
                    "相同的导出正在进行中（code 为 export_running），Location 响应头为该任务的状态地址。"
                ),
            ),
        },
    )
    @idempotent
    def create(self, request: Request) -> Response:
        form = ExportRequestSerializer(
            data=request.data, organizations=organizations_visible_to(request.user)
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            job = exports.export_job_create(
                user=request.user,
                kind=data["kind"],
                organization=data["organization"],
                year=data["year"],
                quarter=data["quarter"],
                category=data["category"],
            )
        except exports.ExportAlreadyRunning as running:
            return Response(
                error_body("export_running", running.messages[0]),
                status=status.HTTP_409_CONFLICT,
                headers={"Location": _job_url(running.job)},
            )
        job = self.get_queryset().get(pk=job.pk)
        return Response(
            self.get_serializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": _job_url(job)},
        )

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The download answers a workbook, or an error in JSON, whatever the Accept header.
        return super().perform_content_negotiation(
            request, force=force or self.action == "download"
        )

    @extend_schema(
        summary=gettext_lazy("下载导出的工作簿（完成后）"),
        responses={
            (200, XLSX_CONTENT_TYPE): OpenApiResponse(
                response=OpenApiTypes.BINARY, description=gettext_lazy("Excel 工作簿。")
            ),
            409: error_response(
                "409",
                gettext_lazy(
                    "尚不能下载：仍在生成中（code 为 export_not_ready），或生成失败（export_failed，"
                    "message 为失败原因）。"
                ),
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: int) -> FileResponse | Response:
        job = self.get_object()
        if job.status == ExportJob.Status.FAILED:
            return Response(
                error_body("export_failed", job.error or _("导出失败，请重新导出。")),
                status=status.HTTP_409_CONFLICT,
            )
        if not exports.may_download(request.user, job):
            return Response(
                error_body(
                    "export_not_ready",
                    _("导出仍在进行中（%(percent)s%%），完成后再下载。") % {"percent": job.percent},
                ),
                status=status.HTTP_409_CONFLICT,
                headers={"Retry-After": "2"},
            )
        try:
            content = job.file.open("rb")
        except FileNotFoundError as error:
            raise Http404 from error
        response = FileResponse(content, content_type=XLSX_CONTENT_TYPE)
        response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(job.filename)}"
        return response


def _job_url(job: ExportJob) -> str:
    return reverse("api:export-detail", kwargs={"pk": job.pk})
