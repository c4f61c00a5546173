"""The member's own forms (phone-first): declaring an item with evidence, choosing a year.

Forms only parse input. Whether the rule may be declared, the points fit its range, the
period is open and the evidence is acceptable is decided by ``services.declaration_submit``
(and ``evidence.check_evidence``), so the API cannot walk around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from itertools import groupby

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .charts import signed
from .evidence import check_evidence
from .models import Rule
from .services import parse_points

# Where a service's ValidationError belongs on the declaration form, by its code.
SERVICE_ERROR_FIELDS: dict[str, str] = {
    "not_declarable": "rule",
    "rule_not_applicable": "rule",
    "wrong_scheme": "rule",
    "rule_revised": "rule",
    "points_required": "points",
    "points_out_of_range": "points",
    "zero_points": "points",
    "future_date": "occurred_on",
    "period_locked": "occurred_on",
    "description_required": "description",
    "evidence_required": "evidence",
}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name; cleans to a list (empty when none was chosen)."""

    widget = MultipleFileInput

    def clean(self, data, initial=None) -> list[UploadedFile]:
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data if item]
        return [super().clean(data, initial)] if data else []


def rule_points_display(rule: Rule) -> str:
    """+5, +1 ~ +10 or 一票否决 — without the stored trailing zeros (+5.00)."""
    if rule.kind == Rule.Kind.VETO:
        return gettext("一票否决")
    if rule.is_fixed:
        return signed(rule.points_min)
    return f"{signed(rule.points_min)} ~ {signed(rule.points_max)}"


def rule_label(rule: Rule) -> str:
    return f"{rule.name}（{rule_points_display(rule)}）"


class DeclarationForm(forms.Form):
    """积分申报. ``rules`` are the items offered (self-declarable, applicable to the member);
    ``scheme_rules`` every rule of the scheme, so that a rule not offered still reaches the
    service and is refused there with its own message."""

    rule = forms.ModelChoiceField(
        label=_("申报项目"),
        queryset=Rule.objects.none(),
        error_messages={
            "required": _("请选择申报项目。"),
            "invalid_choice": _("所选申报项目不存在，请重新选择。"),
        },
    )
    points = forms.CharField(
        label=_("分值"),
        required=False,
        max_length=12,
        help_text=_("固定分值的项目无需填写；有分值范围的项目请在范围内填写。"),
    )
    occurred_on = forms.DateField(
        label=_("发生日期"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"required": _("请填写发生日期。"), "invalid": _("请填写有效的日期。")},
    )
    description = forms.CharField(
        label=_("事项说明"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={
            "required": _("请填写事项说明。"),
            "max_length": _("事项说明不能超过 1000 字。"),
        },
        help_text=_("写明时间、地点、做了什么，便于支委会审核。"),
    )
    evidence = MultipleFileField(
        label=_("佐证材料"),
        required=False,
        # check_evidence refuses empty files, naming the file.
        allow_empty_file=True,
    )

    def __init__(
        self,
        *args,
        rules: Sequence[Rule],
        scheme_rules: QuerySet[Rule],
        **kwargs,
    ) -> None:
        kwargs.setdefault("initial", {}).setdefault("occurred_on", timezone.localdate())
        super().__init__(*args, **kwargs)
        self.offered_rules = list(rules)
        self.fields["evidence"].help_text = gettext(
            "照片、签到表或 PDF 文件，可多选；单个文件不超过 %(limit)s MB，最多 %(count)s 个。"
        ) % {
            "limit": settings.EVIDENCE_MAX_BYTES // 1024 // 1024,
            "count": settings.EVIDENCE_MAX_FILES,
        }
        # The <select> offers only ``rules`` (see ``rule_groups``); any rule of the scheme
        # still parses, and the service says why it cannot be declared.
        self.fields["rule"].queryset = scheme_rules

    def clean_points(self) -> Decimal | None:
        return parse_points(self.cleaned_data.get("points"))

    def clean_evidence(self) -> list[UploadedFile]:
        files = self.cleaned_data.get("evidence") or []
        if len(files) > settings.EVIDENCE_MAX_FILES:
            raise ValidationError(
                gettext("最多只能上传 %(count)s 个佐证文件，您选择了 %(chosen)s 个。")
                % {"count": settings.EVIDENCE_MAX_FILES, "chosen": len(files)}
            )
        # The service checks again; checking here too lets the member see every problem of
        # the form at once instead of one round trip (and one upload) per problem.
        problems: list[str] = []
        for upload in files:
            try:
                check_evidence(upload)
            except ValidationError as error:
                problems.extend(error.messages)
        if problems:
            raise ValidationError(problems)
        return files

    @property
    def rule_groups(self) -> list[tuple[str, list[tuple[int, str, bool]]]]:
        """(category, [(rule id, label, is selected)]) for the <select>'s optgroups."""
        chosen = str(self["rule"].value() or "")
        return [
            (category.name, [(rule.pk, rule_label(rule), str(rule.pk) == chosen) for rule in group])
            for category, group in groupby(self.offered_rules, key=lambda rule: rule.category)
        ]

    @property
    def occurred_on_value(self) -> str:
        """The date as the <input type="date"> wants it, or what was typed."""
        value = self["occurred_on"].value()
        return value.isoformat() if isinstance(value, date) else (value or "")

    @property
    def selected_rule(self) -> Rule | None:
        """The offered rule currently chosen (typed in or preselected), for the points field."""
        value = self["rule"].value()
        return next((rule for rule in self.offered_rules if str(rule.pk) == str(value)), None)

    def add_service_error(self, error: ValidationError) -> None:
        """Put a service's refusal beside the field it is about (or on top of the form)."""
        field = SERVICE_ERROR_FIELDS.get(getattr(error, "code", None) or "")
        self.add_error(field if field in self.fields else None, error)


class YearForm(forms.Form):
    year = forms.IntegerField(min_value=2000, max_value=2100, required=False)
