"""Review records in the admin: read-only (they change only through the workflow)."""

from __future__ import annotations

from django.contrib import admin

from members.permissions import Action, organizations_where

from .models import CycleEvent, ReviewCycle


class CycleEventInline(admin.TabularInline):
    model = CycleEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "action", "from_state", "to_state", "user", "note"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ReviewCycle)
class ReviewCycleAdmin(admin.ModelAdmin):
    list_display = ["organization", "year", "quarter", "state", "publicity_ends_on", "finalized_at"]
    list_filter = ["year", "quarter", "state"]
    search_fields = ["organization__name"]
    inlines = [CycleEventInline]
    list_select_related = ["organization"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            organization__in=organizations_where(request.user, Action.VIEW_REVIEW)
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
