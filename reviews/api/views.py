"""Review cycles: read them, open one, and make each move of the review as an action.

Who sees a cycle: whoever may view the branch's reviews (its officers, the committee staff
above it) and the branch's own members; anyone else gets 404. Each move goes through
``reviews.services`` as the pages do — the service checks the post (``PermissionDenied`` →
403), what the move needs (``ValidationError`` → 422, e.g. ``not_ready`` with every missing
thing, or ``stale_state`` when someone else moved the cycle first) and writes the timeline.
The named transitions (``start-self-assessment`` …) each expect the state they leave, so a
retried or raced move never skips a step.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from members.api.filters import WithinFilter, choice_filter, quarter_filter, year_filter
from members.api.idempotency import idempotent
from members.api.views import ApiViewSet
from members.models import Organization
from members.permissions import Action, can, organizations_where
from reviews import selectors, services
from reviews.models import CycleEvent, ReviewCycle

from .serializers import (
    AcknowledgementSerializer,
    AdvanceSerializer,
    AgreementsInputSerializer,
    AppraisalSerializer,
    AppraisalsInputSerializer,
    CommitteeMeetingInputSerializer,
    CommitteeMeetingSerializer,
    CycleOpenSerializer,
    DeadlineSerializer,
    GeneralMeetingInputSerializer,
    GeneralMeetingSerializer,
    ReopenSerializer,
    ReviewCycleDetailSerializer,
    ReviewCycleSerializer,
    ScoreAgreementSerializer,
    SelfAssessmentInputSerializer,
    SelfAssessmentSerializer,
    StartPublicitySerializer,
)

State = ReviewCycle.State


def cycle_branches(user) -> QuerySet[Organization]:
    """Branches whose cycles the user sees: VIEW_REVIEW there, or a member of it."""
    return organizations_where(user, Action.VIEW_REVIEW) | organizations_where(
        user, Action.VIEW_PUBLICITY
    )


def cycles_visible_to(user) -> QuerySet[ReviewCycle]:
    if not user.is_authenticated:
        return ReviewCycle.objects.none()
    return ReviewCycle.objects.filter(organization__in=cycle_branches(user))


class ReviewCycleFilter(django_filters.FilterSet):
    organization = WithinFilter(path_field="organization__path")
    year = year_filter()
    quarter = quarter_filter(with_year=True)
    state = choice_filter(ReviewCycle.State.choices, gettext_lazy("评议所处阶段。"))

    class Meta:
        model = ReviewCycle
        fields = ["organization", "year", "quarter", "state"]


def _transition(name: str, source: str, summary: str, serializer=AdvanceSerializer):
    """The action ``name`` that moves the cycle out of ``source`` (and only out of it)."""

    def move(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = serializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        services.cycle_advance(
            user=request.user,
            cycle=cycle,
            expected_state=source,
            note=data.get("note", ""),
            publicity_starts_on=data.get("publicity_starts_on"),
        )
        return self._detail(cycle)

    move.__name__ = move.__qualname__ = name
    move.__doc__ = summary
    routed = action(detail=True, methods=["post"], url_path=name.replace("_", "-"))(
        idempotent(move)
    )
    return extend_schema(
        summary=summary, request=serializer, responses={200: ReviewCycleDetailSerializer}
    )(routed)


@extend_schema(tags=["review-cycles"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出评议")),
    retrieve=extend_schema(summary=gettext_lazy("查看一个评议（含时间线和推进所缺条件）")),
)
class ReviewCycleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """评议: a branch's review of a quarter (1–4) or the year (0), moving forward only:
    open → self_assessment → committee_review → general_meeting → publicity → finalized
    (committee staff may reopen a finalized one)."""

    queryset = ReviewCycle.objects.none()  # the model, for the schema; see get_queryset
    filterset_class = ReviewCycleFilter
    service_error_fields = {"reason_required": "reason", "text_required": "text"}

    def get_queryset(self) -> QuerySet[ReviewCycle]:
        return (
            cycles_visible_to(self.request.user)
            .select_related("organization")
            .order_by("-year", "-quarter", "organization__path", "id")
        )

    def get_serializer_class(self):
        return ReviewCycleSerializer if self.action == "list" else ReviewCycleDetailSerializer

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        user = self.request.user

        def officer(cycle: ReviewCycle) -> bool:
            return can(user, Action.VIEW_REVIEW, cycle.organization)

        def blockers(cycle: ReviewCycle) -> list[str]:
            if not officer(cycle) or cycle.state == State.FINALIZED:
                return []
            return [
                str(problem) for problem in services.cycle_blockers(cycle, timezone.localdate())
            ]

        def events(cycle: ReviewCycle):
            if not officer(cycle):
                return CycleEvent.objects.none()
            return CycleEvent.objects.filter(cycle=cycle).select_related("user")

        context.update(blockers=blockers, events=events)
        return context

    def _detail(self, cycle: ReviewCycle, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=cycle.pk)
        return Response(self.get_serializer(fresh).data, status=status_code)

    def _roster(self, cycle: ReviewCycle):
        """Who a record of the cycle may name: the members the review covers."""
        return services.scored_members(cycle.organization)

    @extend_schema(
        summary=gettext_lazy("开始一个期间的评议（已开始的返回原评议，状态码 200）"),
        request=CycleOpenSerializer,
        responses={201: ReviewCycleDetailSerializer, 200: ReviewCycleDetailSerializer},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        branches = cycle_branches(request.user).filter(kind=Organization.Kind.BRANCH)
        form = CycleOpenSerializer(data=request.data, branches=branches)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        existed = ReviewCycle.objects.filter(
            organization=data["organization"], year=data["year"], quarter=data["quarter"]
        ).exists()
        cycle = services.cycle_open(
            user=request.user,
            branch=data["organization"],
            year=data["year"],
            quarter=data["quarter"],
        )
        return self._detail(cycle, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    start_self_assessment = _transition(
        "start_self_assessment", State.OPEN, gettext_lazy("开始党员自评")
    )
    start_committee_review = _transition(
        "start_committee_review", State.SELF_ASSESSMENT, gettext_lazy("结束自评，进入支委初评")
    )
    start_general_meeting = _transition(
        "start_general_meeting", State.COMMITTEE_REVIEW, gettext_lazy("提交党员大会评定")
    )
    start_publicity = _transition(
        "start_publicity",
        State.GENERAL_MEETING,
        gettext_lazy("开始公示"),
        StartPublicitySerializer,
    )
    finalize = _transition(
        "finalize", State.PUBLICITY, gettext_lazy("公示期满、异议办结后确认归档")
    )

    @extend_schema(
        summary=gettext_lazy("重新打开已归档的评议（党委工作人员，须写明原因）"),
        request=ReopenSerializer,
        responses={200: ReviewCycleDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def reopen(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = ReopenSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.cycle_reopen(user=request.user, cycle=cycle, reason=form.validated_data["reason"])
        return self._detail(cycle)

    @extend_schema(
        summary=gettext_lazy("设定党员自评截止日期"),
        request=DeadlineSerializer,
        responses={200: ReviewCycleDetailSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def deadline(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = DeadlineSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.cycle_set_deadline(
            user=request.user, cycle=cycle, deadline=form.validated_data["deadline"]
        )
        return self._detail(cycle)

    @extend_schema(
        summary=gettext_lazy("提交（或修改）本人的自评"),
        request=SelfAssessmentInputSerializer,
        responses={200: SelfAssessmentSerializer},
    )
    @action(detail=True, methods=["post"], url_path="self-assessment")
    @idempotent
    def self_assessment(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = SelfAssessmentInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        assessment = services.self_assessment_submit(
            user=request.user, cycle=cycle, text=form.validated_data["text"]
        )
        return Response(SelfAssessmentSerializer(assessment).data)

    @extend_schema(
        summary=gettext_lazy("记录支委会（日期、出席支委、纪要）"),
        request=CommitteeMeetingInputSerializer,
        responses={200: CommitteeMeetingSerializer},
    )
    @action(detail=True, methods=["post"], url_path="committee-meeting")
    @idempotent
    def committee_meeting(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = CommitteeMeetingInputSerializer(data=request.data, members=self._roster(cycle))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        meeting = services.committee_meeting_record(
            user=request.user,
            cycle=cycle,
            meeting_date=data["meeting_date"],
            attendees=data["attendees"],
            notes=data["notes"],
        )
        return Response(CommitteeMeetingSerializer(meeting).data)

    @extend_schema(
        summary=gettext_lazy("支委会确认党员的初评积分（按当前计算结果）"),
        request=AgreementsInputSerializer,
        responses={200: ScoreAgreementSerializer(many=True)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def agreements(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = AgreementsInputSerializer(data=request.data, members=self._roster(cycle))
        form.is_valid(raise_exception=True)
        rows = form.validated_data["agreements"]
        agreements = services.scores_agree(
            user=request.user,
            cycle=cycle,
            members=[row["member"] for row in rows],
            notes={row["member"].pk: row["note"] for row in rows},
        )
        return Response(ScoreAgreementSerializer(agreements, many=True).data)

    @extend_schema(
        summary=gettext_lazy("录入年度民主评议、群众评议等次（全部成功或全部不录入）"),
        request=AppraisalsInputSerializer,
        responses={200: AppraisalSerializer(many=True)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def appraisals(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = AppraisalsInputSerializer(data=request.data, members=self._roster(cycle))
        form.is_valid(raise_exception=True)
        appraisals = services.appraisals_record(
            user=request.user,
            cycle=cycle,
            ratings=[
                (row["member"], row["democratic"], row["mass"])
                for row in form.validated_data["ratings"]
            ],
        )
        return Response(AppraisalSerializer(appraisals, many=True).data)

    @extend_schema(
        summary=gettext_lazy("记录党员大会（应到、实到人数和表决结果）"),
        request=GeneralMeetingInputSerializer,
        responses={200: GeneralMeetingSerializer},
    )
    @action(detail=True, methods=["post"], url_path="general-meeting")
    @idempotent
    def general_meeting(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        form = GeneralMeetingInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        meeting = services.general_meeting_record(
            user=request.user, cycle=cycle, **form.validated_data
        )
        return Response(GeneralMeetingSerializer(selectors.general_meeting_of(meeting.cycle)).data)

    @extend_schema(
        summary=gettext_lazy("签字确认本人的结果（评议归档后）"),
        request=None,
        responses={200: AcknowledgementSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def acknowledge(self, request: Request, pk: int) -> Response:
        cycle = self.get_object()
        acknowledgement = services.acknowledge(user=request.user, cycle=cycle)
        return Response(AcknowledgementSerializer(acknowledgement).data)
