"""Admin for committee staff: schemes, rules and bands; the ledger is read-only here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from members.permissions import Action, can, organizations_where

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
from .schemes import (
    ensure_scheme_editable,
    rule_revise,
    scheme_adopt,
    scheme_bump_version,
    scheme_is_locked,
)


class SchemeGuardForm(forms.ModelForm):
    """Refuses, with the reason, any change to a scheme (or its rules) used by a locked period."""

    def clean(self):
        cleaned = super().clean()
        scheme = self.instance if isinstance(self.instance, Scheme) else cleaned.get("scheme")
        if scheme is None and getattr(self.instance, "scheme_id", None):
            scheme = self.instance.scheme
        if scheme is not None and scheme.pk:
            ensure_scheme_editable(scheme)
        return cleaned


def _managed_organizations(request):
    return organizations_where(request.user, Action.MANAGE_SCHEME)


class LockedSchemeMixin:
    """Nothing of a scheme used by a locked period can be changed; staff see only the
    schemes of organizations they manage."""

    scheme_path = "scheme__owner"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.scheme_path}__in": _managed_organizations(request)})

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
    form = SchemeGuardForm
    scheme_path = "owner"
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
    form = SchemeGuardForm
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
            try:
                ensure_scheme_editable(obj.scheme)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
                return
            super().save_model(request, obj, form, change)
            scheme_bump_version(obj.scheme)
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

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(organization__in=_managed_organizations(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name == "scheme":
            kwargs["queryset"] = Scheme.objects.filter(owner__in=_managed_organizations(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and not can(
            request.user, Action.MANAGE_SCHEME, obj.organization
        ):
            messages.error(request, "您不能为该组织设定积分细则。")
            return
        try:
            scheme_adopt(organization=obj.organization, scheme=obj.scheme)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))


class ReadOnlyAdmin(admin.ModelAdmin):
    organization_path = "member__organization"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.organization_path}__in": _managed_organizations(request)})

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
    organization_path = "organization"
    list_display = ["organization", "year", "quarter", "locked_at", "locked_by", "reason"]
    list_filter = ["year", "quarter"]
