"""Objections in the admin: read-only (every step goes through publicity.services), and
scoped to the branches whose reviews the staff user may see."""

from __future__ import annotations

from django.contrib import admin

from members.permissions import Action, organizations_where

from .models import Objection


@admin.register(Objection)
class ObjectionAdmin(admin.ModelAdmin):
    list_display = ["raised_at", "cycle", "member", "entry", "state", "rechecked_by", "ruled_by"]
    list_filter = ["state", "cycle__year", "cycle__quarter"]
    search_fields = ["member__name", "text"]
    list_select_related = [
        "cycle__organization",
        "member",
        "entry__rule",
        "entry__member",
        "rechecked_by",
        "ruled_by",
    ]
    date_hierarchy = "raised_at"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            cycle__organization__in=organizations_where(request.user, Action.VIEW_REVIEW)
        )

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
