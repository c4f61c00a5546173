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
