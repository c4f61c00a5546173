"""Filters the API's lists share (django-filter), each described for the schema."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from members.models import Organization


def within(queryset: QuerySet, organization_id: int | None, path_field: str) -> QuerySet:
    """Rows of ``organization_id`` and everything below it (none if there is no such one)."""
    if organization_id is None:
        return queryset
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return queryset.none()
    return queryset.filter(**{f"{path_field}__startswith": organization.path})


class WithinFilter(django_filters.NumberFilter):
    """``?organization=<id>``: that organization and everything below it."""

    def __init__(self, *args, path_field: str, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault(
            "help_text", _("党组织 id：该组织及其下属的全部组织（党委、党总支或党支部）。")
        )
        super().__init__(*args, **kwargs)
        self.path_field = path_field

    def filter(self, queryset: QuerySet, value) -> QuerySet:
        if value in (None, ""):
            return queryset
        return within(queryset, int(value), self.path_field)


def id_filter(field_name: str, help_text: str) -> django_filters.NumberFilter:
    return django_filters.NumberFilter(field_name=field_name, min_value=1, help_text=help_text)


def year_filter(field_name: str = "year", **kwargs) -> django_filters.NumberFilter:
    kwargs.setdefault("help_text", _("年度（2000–2100）。"))
    return django_filters.NumberFilter(
        field_name=field_name, min_value=2000, max_value=2100, **kwargs
    )


def quarter_filter(*, with_year: bool) -> django_filters.NumberFilter:
    if with_year:
        return django_filters.NumberFilter(
            min_value=0, max_value=4, help_text=_("季度 1–4；0 表示全年。")
        )
    return django_filters.NumberFilter(min_value=1, max_value=4, help_text=_("季度 1–4。"))


def choice_filter(choices, help_text: str, **kwargs) -> django_filters.ChoiceFilter:
    return django_filters.ChoiceFilter(choices=choices, help_text=help_text, **kwargs)


def boolean_filter(help_text: str, **kwargs) -> django_filters.BooleanFilter:
    return django_filters.BooleanFilter(help_text=help_text, **kwargs)
