"""Objections during publicity: raise → recheck → (accept | appeal → examine → rule).

Who sees an objection: the officers of its branch and the committee staff above it (those
who may view the branch's reviews), and the member it belongs to; anyone else gets 404.
Each step goes through ``publicity.services`` as the pages do: the service checks the post
and that nobody handles their own objection (403), the state and the publicity window
(422), and an upheld objection becomes a correction in the ledger through the scoring
services (a reversal and, where given, a new entry).
"""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from members.api.filters import WithinFilter, choice_filter, id_filter
from members.api.idempotency import idempotent
from members.api.views import ApiViewSet
from members.permissions import Action, organizations_where
from publicity import services
from publicity.models import Objection
from reviews.api.views import cycles_visible_to
from scoring.api.views import created, entries_visible_to, rules_visible_to

from .serializers import (
    AppealSerializer,
    ExamineSerializer,
    ObjectionSerializer,
    RaiseSerializer,
    RecheckSerializer,
    RulingSerializer,
)

# The request field that carries each step's text.
TEXT_FIELDS = {
    "create": "text",
    "recheck": "answer",
    "appeal": "text",
    "examine": "opinion",
    "rule": "reason",
}


def objections_visible_to(user) -> QuerySet[Objection]:
    if not user.is_authenticated:
        return Objection.objects.none()
    if user.is_superuser and user.is_active:
        return Objection.objects.all()
    return Objection.objects.filter(
        Q(cycle__organization__in=organizations_where(user, Action.VIEW_REVIEW))
        | Q(member__user=user)
    )


class ObjectionFilter(django_filters.FilterSet):
    cycle = id_filter("cycle", gettext_lazy("评议 id。"))
    organization = WithinFilter(path_field="cycle__organization__path")
    state = choice_filter(Objection.State.choices, gettext_lazy("办理状态。"))

    class Meta:
        model = Objection
        fields = ["cycle", "organization", "state"]


def _correction(data: dict) -> services.Correction | None:
    correction = data.get("correction")
    if not correction:
        return None
    return services.Correction(
        rule=correction["rule"],
        points=correction.get("points"),
        description=correction.get("description", ""),
    )


@extend_schema(tags=["objections"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出异议")),
    retrieve=extend_schema(summary=gettext_lazy("查看一件异议及其办理经过")),
)
class ObjectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """异议: raised by a member about one of their entries of the published period (or their
    total), rechecked by the recorder, appealed to the discipline commissioner, ruled by the
    branch committee."""

    queryset = Objection.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = ObjectionSerializer
    filterset_class = ObjectionFilter

    @property
    def service_error_fields(self) -> dict[str, str]:
        text = TEXT_FIELDS.get(getattr(self, "action", "") or "", "text")
        return {
            "text_required": text,
            "text_too_long": text,
            "entry_outside_period": "entry",
            "correction_required": "correction",
            "correction_not_upheld": "correction",
        }

    def get_queryset(self) -> QuerySet[Objection]:
        return (
            objections_visible_to(self.request.user)
            .select_related("member", "raised_by", "rechecked_by", "commissioner_by", "ruled_by")
            .order_by("raised_at", "id")
        )

    def _output(self, objection: Objection) -> dict:
        return ObjectionSerializer(self.get_queryset().get(pk=objection.pk)).data

    @extend_schema(
        summary=gettext_lazy("对本人的公示积分提出异议（公示期内）"),
        request=RaiseSerializer,
        responses={201: ObjectionSerializer},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        user = request.user
        form = RaiseSerializer(
            data=request.data, cycles=cycles_visible_to(user), entries=entries_visible_to(user)
        )
        form.is_valid(raise_exception=True)
        data = form.validated_data
        objection = services.objection_raise(
            user=user, cycle=data["cycle"], text=data["text"], entry=data.get("entry")
        )
        return created(self._output(objection), "objection-detail", objection.pk)

    @extend_schema(
        summary=gettext_lazy("复核并答复（积分记录员或支部书记）"),
        request=RecheckSerializer,
        responses={200: ObjectionSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def recheck(self, request: Request, pk: int) -> Response:
        objection = self.get_object()
        form = RecheckSerializer(data=request.data, rules=rules_visible_to(request.user))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        services.objection_recheck(
            user=request.user,
            objection=objection,
            answer=data["answer"],
            uphold=data["uphold"],
            correction=_correction(data),
        )
        return Response(self._output(objection))

    @extend_schema(
        summary=gettext_lazy("接受复核结果（提出异议的党员）"),
        request=None,
        responses={200: ObjectionSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def accept(self, request: Request, pk: int) -> Response:
        objection = self.get_object()
        services.objection_accept(user=request.user, objection=objection)
        return Response(self._output(objection))

    @extend_schema(
        summary=gettext_lazy("对复核结果提出申诉（提出异议的党员，公示期内）"),
        request=AppealSerializer,
        responses={200: ObjectionSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def appeal(self, request: Request, pk: int) -> Response:
        objection = self.get_object()
        form = AppealSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.objection_appeal(
            user=request.user, objection=objection, text=form.validated_data["text"]
        )
        return Response(self._output(objection))

    @extend_schema(
        summary=gettext_lazy("审查申诉并提交支委会认定（纪检委员）"),
        request=ExamineSerializer,
        responses={200: ObjectionSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def examine(self, request: Request, pk: int) -> Response:
        objection = self.get_object()
        form = ExamineSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.objection_examine(
            user=request.user, objection=objection, opinion=form.validated_data["opinion"]
        )
        return Response(self._output(objection))

    @extend_schema(
        summary=gettext_lazy("支委会认定（支部书记或副书记登记）"),
        request=RulingSerializer,
        responses={200: ObjectionSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def rule(self, request: Request, pk: int) -> Response:
        objection = self.get_object()
        form = RulingSerializer(data=request.data, rules=rules_visible_to(request.user))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        services.objection_rule(
            user=request.user,
            objection=objection,
            uphold=data["uphold"],
            reason=data["reason"],
            correction=_correction(data),
        )
        return Response(self._output(objection))
