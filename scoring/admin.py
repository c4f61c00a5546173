"""Admin for committee staff: schemes, rules and bands; the ledger is read-only here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from .models import (
    Declaration,
    Entry,
    OutcomeBand,
    PeriodLock,
    PeriodScore,
    Rule,
    RuleCategory,
    Scheme,
    SchemeAdoption,
)
from .schemes import ensure_scheme_editable, rule_revise, scheme_bump_version, scheme_is_locked


class LockedSchemeMixin:
    """Nothing of a scheme used by a locked period can be changed."""

    def _scheme_of(self, obj):
        return obj if isinstance(obj, Scheme) else getattr(obj, "scheme", None)

    def has_change_permission(self, request, obj=None):
        scheme = self._scheme_of(obj) if obj is not None else None
        if scheme is not None and scheme.pk and scheme_is_locked(scheme):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj) and super().has_delete_permission(
            request, obj
        )


class OutcomeBandInline(LockedSchemeMixin, admin.TabularInline):
    model = OutcomeBand
    extra = 0


class RuleCategoryInline(LockedSchemeMixin, admin.TabularInline):
    model = RuleCategory
    extra = 0


@admin.register(Scheme)
class SchemeAdmin(LockedSchemeMixin, admin.ModelAdmin):
    list_display = ["name", "year", "owner", "base_score", "veto_effect", "version"]
    list_filter = ["year"]
    search_fields = ["name"]
    readonly_fields = ["version"]
    inlines = [OutcomeBandInline, RuleCategoryInline]

    def save_model(self, request, obj, form, change):
        if change:
            try:
                ensure_scheme_editable(obj)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
                return
        super().save_model(request, obj, form, change)
        if change:
            scheme_bump_version(obj)


@admin.register(Rule)
class RuleAdmin(LockedSchemeMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "points_min",
        "points_max",
        "max_times_per_quarter",
        "max_points_per_year",
        "self_declarable",
        "evidence_required",
        "version",
        "is_current",
    ]
    list_filter = ["scheme", "kind", "is_current", "self_declarable"]
    search_fields = ["code", "name"]
    readonly_fields = ["version", "is_current"]

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        original = Rule.objects.get(pk=obj.pk)
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            revised = rule_revise(rule=original, **changes)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return
        if revised.pk != obj.pk:
            messages.info(
                request,
                f"该细则项已被积分记录使用，已保存为新版本 v{revised.version}，原版本保留。",
            )
        obj.pk = revised.pk


@admin.register(SchemeAdoption)
class SchemeAdoptionAdmin(admin.ModelAdmin):
    list_display = ["organization", "year", "scheme"]
    list_filter = ["year"]
    autocomplete_fields = ["organization"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_on",
        "member",
        "rule",
        "points",
        "kind",
        "recorded_by",
        "approved_by",
        "reverses",
    ]
    list_filter = ["kind", "year", "quarter"]
    search_fields = ["member__name", "description"]
    list_select_related = ["member", "rule", "recorded_by", "approved_by", "reverses"]


@admin.register(Declaration)
class DeclarationAdmin(ReadOnlyAdmin):
    list_display = ["declared_at", "member", "rule", "points", "status", "decided_by"]
    list_filter = ["status"]
    search_fields = ["member__name", "description"]


@admin.register(PeriodScore)
class PeriodScoreAdmin(ReadOnlyAdmin):
    list_display = [
        "member",
        "year",
        "quarter",
        "total",
        "rank_in_branch",
        "rank_in_committee",
        "star",
        "grade",
        "is_vetoed",
    ]
    list_filter = ["year", "quarter", "ranking_group", "is_vetoed"]
    search_fields = ["member__name"]


@admin.register(PeriodLock)
class PeriodLockAdmin(ReadOnlyAdmin):
    list_display = ["organization", "year", "quarter", "locked_at", "locked_by", "reason"]
    list_filter = ["year", "quarter"]
