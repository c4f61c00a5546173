from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Member


class RosterFilterForm(forms.Form):
    search = forms.CharField(label=_("姓名或手机号"), required=False, max_length=50)
    category = forms.ChoiceField(
        label=_("类别"), required=False, choices=[("", _("全部类别")), *Member.Category.choices]
    )
    status = forms.ChoiceField(
        label=_("状态"), required=False, choices=[("", _("全部状态")), *Member.Status.choices]
    )


class RosterImportForm(forms.Form):
    file = forms.FileField(
        label=_("填好的名册文件（.xlsx）"),
        widget=forms.ClearableFileInput(attrs={"accept": ".xlsx"}),
        allow_empty_file=True,  # the importer says what is wrong with an empty file
        error_messages={"required": _("请选择要导入的名册文件。")},
    )


QUARTER_CHOICES = [
    ("0", _("全年")),
    ("1", _("第一季度")),
    ("2", _("第二季度")),
    ("3", _("第三季度")),
    ("4", _("第四季度")),
]
SORT_CHOICES = [
    ("path", _("按组织顺序")),
    ("-fortress_index", _("堡垒指数从高到低")),
    ("fortress_index", _("堡垒指数从低到高")),
    ("-average", _("平均分从高到低")),
    ("average", _("平均分从低到高")),
    ("name", _("按支部名称")),
]
YEAR_MESSAGE = _("须为 2000 至 2100 之间的整数。")


class OverviewFilterForm(forms.Form):
    """The committee overview's filters (GET). A value that does not validate is replaced by
    its default (``filters()``) and its error is shown; the page never fails on bad input."""

    year = forms.IntegerField(
        label=_("年度"),
        required=False,
        min_value=2000,
        max_value=2100,
        error_messages={
            "invalid": YEAR_MESSAGE,
            "min_value": YEAR_MESSAGE,
            "max_value": YEAR_MESSAGE,
        },
    )
    quarter = forms.TypedChoiceField(
        label=_("期间"),
        required=False,
        choices=QUARTER_CHOICES,
        coerce=int,
        empty_value=0,
        error_messages={"invalid_choice": _("须为全年或第一至第四季度之一。")},
    )
    organization = forms.IntegerField(
        label=_("党组织"),
        required=False,
        widget=forms.Select,
        error_messages={"invalid": _("请从列表中选择。")},
    )
    branch = forms.CharField(
        label=_("支部名称"),
        required=False,
        max_length=50,
        error_messages={"max_length": _("最多输入 50 个字。")},
    )
    category = forms.ChoiceField(
        label=_("党员类别"),
        required=False,
        choices=[("", _("全部党员（正式、预备）")), *Member.Category.choices],
        error_messages={"invalid_choice": _("不是有效的党员类别，请从列表中选择。")},
    )
    sort = forms.ChoiceField(
        label=_("排序"),
        required=False,
        choices=SORT_CHOICES,
        error_messages={"invalid_choice": _("不是有效的排序方式，请从列表中选择。")},
    )

    def __init__(self, *args, organizations, find_organization, **kwargs) -> None:
        """``organizations``: the committees and general branches offered in the list (the
        user's, in tree order); ``find_organization(pk)``: any other organization the user
        oversees (a branch reached from the table), or None."""
        super().__init__(*args, **kwargs)
        self.organizations = {organization.pk: organization for organization in organizations}
        self.find_organization = find_organization
        self.fields["organization"].widget.choices = [
            (organization.pk, "\u3000" * (organization.depth - 1) + organization.name)
            for organization in organizations
        ]

    def clean_organization(self):
        pk = self.cleaned_data.get("organization")
        if pk is None:
            return None
        organization = self.organizations.get(pk) or self.find_organization(pk)
        if organization is None:
            raise forms.ValidationError(_("所选党组织不存在或不在您的管理范围内。"))
        if pk not in self.organizations:  # a branch: show it in the list while it is chosen
            widget = self.fields["organization"].widget
            widget.choices = [*widget.choices, (pk, organization.name)]
        return organization

    def filters(self, *, default_year: int, default_organization) -> dict:
        """The values to use: each valid one, else its default."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        year = cleaned.get("year")
        return {
            "year": year if year is not None else default_year,
            "quarter": cleaned.get("quarter") or 0,
            "organization": cleaned.get("organization") or default_organization,
            "branch": cleaned.get("branch") or "",
            "category": cleaned.get("category") or "",
            "sort": cleaned.get("sort") or "path",
        }

    def error_messages(self) -> list[str]:
        """One sentence per rejected filter: "年度：年度须为 2000 至 2100 之间的整数。"."""
        return [
            f"{self.fields[name].label}：{' '.join(str(error) for error in errors)}"
            for name, errors in self.errors.items()
        ]


class AuditFilterForm(forms.Form):
    """The audit page's filters (GET); an invalid value is dropped and its error shown."""

    organization = forms.IntegerField(label=_("党组织"), required=False, min_value=1)
    kind = forms.ChoiceField(label=_("记录类别"), required=False)
    date_from = forms.DateField(
        label=_("起始日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("截止日期"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    actor = forms.CharField(label=_("操作人"), required=False, max_length=50)
    page = forms.IntegerField(required=False, min_value=1, max_value=100000)

    def __init__(self, *args, kind_choices: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", _("全部类别")), *kind_choices]

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("截止日期不能早于起始日期。"))
        return data

    def value(self, name: str):
        """The cleaned value of ``name``, or None when it is missing or invalid."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        return self.cleaned_data.get(name) if name not in self.errors else None
