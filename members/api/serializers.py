"""Serializers of organizations, members and API tokens. Everything here is read-only: the
roster is maintained on the pages (Excel import) and in the admin."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.models import Member, Organization
from members.permissions import Action, can


class PersonSerializer(serializers.Serializer):
    """A user as the pages name them: full name, else the login name."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.get_full_name() or user.username


class OrganizationSerializer(serializers.ModelSerializer):
    parent = serializers.IntegerField(
        source="parent_id",
        read_only=True,
        allow_null=True,
        help_text=_("上级组织 id；最上级为 null。"),
    )
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    actions = serializers.SerializerMethodField(
        help_text=_("当前用户在该组织可进行的操作（members.permissions.Action 的取值）。")
    )

    class Meta:
        model = Organization
        fields = ["id", "name", "kind", "kind_display", "parent", "depth", "actions"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=list(Action))))
    def get_actions(self, organization: Organization) -> list[str]:
        user = self.context["request"].user
        return [action.value for action in Action if can(user, action, organization)]


class MemberSerializer(serializers.ModelSerializer):
    gender = serializers.ChoiceField(
        choices=Member.Gender.choices, allow_blank=True, read_only=True, help_text=_("空表示未填。")
    )
    organization_name = serializers.CharField(source="organization.name", read_only=True)
    category_display = serializers.CharField(source="get_category_display", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    has_login = serializers.SerializerMethodField(help_text=_("是否已关联登录账号。"))

    class Meta:
        model = Member
        fields = [
            "id",
            "organization",
            "organization_name",
            "name",
            "gender",
            "phone",
            "birth_date",
            "joined_on",
            "category",
            "category_display",
            "status",
            "status_display",
            "is_cadre",
            "exempt_reason",
            "has_login",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_login(self, member: Member) -> bool:
        return member.user_id is not None


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(label=_("用户名"), max_length=150)
    password = serializers.CharField(
        label=_("密码"), max_length=128, trim_whitespace=False, style={"input_type": "password"}
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text=_("放入请求头：Authorization: Token <token>"))
