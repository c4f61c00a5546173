"""API tokens, organizations and members (read-only), scoped by the permission module.

Style of every API view in the project: a ``GenericViewSet`` (``ApiViewSet``) on a router;
reads through querysets scoped to what the user may see (anything else: 404), writes through
the app's services; ``Idempotency-Key`` on every POST.
"""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.contrib.auth import authenticate
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Length, Substr
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from members.models import Member, Organization
from members.permissions import Action, member_of, members_visible_to, organizations_where

from .filters import WithinFilter, boolean_filter, choice_filter
from .serializers import (
    MemberSerializer,
    OrganizationSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)

# What makes an organization visible in the API: any right to read something there.
READ_ACTIONS = (
    Action.VIEW_ROSTER,
    Action.VIEW_LEDGER,
    Action.VIEW_REVIEW,
    Action.VIEW_OVERVIEW,
    Action.VIEW_PUBLICITY,
)


class ApiViewSet(viewsets.GenericViewSet):
    """The base of every API view set: integer ids in the path (anything else is a 404)."""

    lookup_value_converter = "int"
    # Service ValidationError codes → the request field they are about (see errors.refusal_from).
    service_error_fields: dict[str, str] = {}

    def initial(self, request: Request, *args, **kwargs) -> None:
        """DRF's ``initial`` with the throttles checked before the permissions, so that a
        flood of unauthenticated requests is throttled too (DRF answers 401 first)."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        self.perform_authentication(request)
        self.check_throttles(request)
        self.check_permissions(request)


def organizations_visible_to(user) -> QuerySet[Organization]:
    """Every organization in which the user may read something (its own branch for a member)."""
    visible = organizations_where(user, READ_ACTIONS[0])
    for read in READ_ACTIONS[1:]:
        visible = visible | organizations_where(user, read)
    return visible


def with_parent(organizations: QuerySet[Organization]) -> QuerySet[Organization]:
    """Annotate ``parent_id`` (the materialized path less its last step), one subquery."""
    parent = Organization.objects.filter(
        path=Substr(OuterRef("path"), 1, Length(OuterRef("path")) - Organization.steplen)
    ).values("pk")[:1]
    return organizations.annotate(parent_id=Subquery(parent))


# --- tokens ---------------------------------------------------------------------------------


class SignInLocked(exceptions.APIException):
    """Too many failed sign-ins for this username from this address (django-axes)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self) -> None:
        seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
        super().__init__(
            _("登录失败次数过多，该账号在此地址已被暂时锁定，请 %(minutes)s 分钟后再试。")
            % {"minutes": seconds // 60}
        )
        self.wait = seconds


class AuthTokenViewSet(ApiViewSet):
    """API tokens for the phone app and other systems."""

    serializer_class = TokenSerializer
    pagination_class = None

    def get_permissions(self):
        if self.action == "create":
            return [AllowAny()]
        return super().get_permissions()

    @extend_schema(
        summary=gettext_lazy("用用户名和密码换取 API 令牌"),
        request=TokenRequestSerializer,
        responses={200: TokenSerializer},
        auth=[],
    )
    def create(self, request: Request) -> Response:
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(
            request=request,
            username=form.validated_data["username"],
            password=form.validated_data["password"],
        )
        # django-axes (members.lockout) counts failed sign-ins here as on the login page and
        # marks the request once the username is locked from this address.
        if getattr(request, "axes_locked_out", False):
            raise SignInLocked()
        if user is None or not user.is_active:
            raise serializers.ValidationError(_("用户名或密码不正确。"), code="authorization")
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(
        summary=gettext_lazy("注销当前令牌（此后须重新获取）"),
        request=None,
        responses={204: None},
    )
    @action(detail=False, methods=["post"], url_path="revoke")
    def revoke(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- organizations -------------------------------------------------------------------------


class OrganizationFilter(django_filters.FilterSet):
    kind = choice_filter(Organization.Kind.choices, gettext_lazy("组织类型。"))
    within = WithinFilter(
        path_field="path", help_text=gettext_lazy("党组织 id：该组织本身及其下属的全部组织。")
    )

    class Meta:
        model = Organization
        fields = ["kind", "within"]


@extend_schema(tags=["organizations"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出可查看的党组织（按组织树顺序）")),
    retrieve=extend_schema(summary=gettext_lazy("查看一个党组织")),
)
class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """党组织: the organizations in which the user may read something, in tree order."""

    queryset = Organization.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = OrganizationSerializer
    filterset_class = OrganizationFilter

    def get_queryset(self) -> QuerySet[Organization]:
        return with_parent(organizations_visible_to(self.request.user)).order_by("path")


# --- members -------------------------------------------------------------------------------


class MemberFilter(django_filters.FilterSet):
    organization = WithinFilter(path_field="organization__path")
    category = choice_filter(Member.Category.choices, gettext_lazy("党员类别。"))
    status = choice_filter(Member.Status.choices, gettext_lazy("党员状态。"))
    is_cadre = boolean_filter(gettext_lazy("是否党员干部。"))
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=50,
        help_text=gettext_lazy("姓名或手机号包含的文字。"),
    )

    class Meta:
        model = Member
        fields = ["organization", "category", "status", "is_cadre", "search"]

    def filter_search(self, queryset: QuerySet[Member], name: str, value: str) -> QuerySet[Member]:
        return queryset.filter(Q(name__icontains=value) | Q(phone__icontains=value))


@extend_schema(tags=["members"])
@extend_schema_view(
    list=extend_schema(summary=gettext_lazy("列出可查看的党员")),
    retrieve=extend_schema(summary=gettext_lazy("查看一名党员的档案")),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """党员: the members whose record the user may see (their own, and the rosters they may
    view)."""

    queryset = Member.objects.none()  # the model, for the schema; see get_queryset
    serializer_class = MemberSerializer
    filterset_class = MemberFilter

    def get_queryset(self) -> QuerySet[Member]:
        return (
            members_visible_to(self.request.user)
            .select_related("organization")
            .order_by("organization__path", "name", "id")
        )

    @extend_schema(summary=gettext_lazy("我的党员档案"), responses={200: MemberSerializer})
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def me(self, request: Request) -> Response:
        member = member_of(request.user)
        if member is None:
            raise Http404
        return Response(self.get_serializer(member).data)
