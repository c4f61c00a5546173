"""Forms of the publicity pages: they parse what was typed; the services decide.

The correction rules are handed in as a list the view has already loaded, so a form costs
no query of its own and ``cleaned_data`` holds the model objects.
"""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.utils.translation import gettext_lazy as _

from scoring.forms import PointsField, grouped_rule_choices
from scoring.models import Rule

from .services import MAX_TEXT, Correction

UPHOLD = "uphold"
DISMISS = "dismiss"


def _textarea(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "class": "form-control", "maxlength": MAX_TEXT})


def _text_field(label: str, **kwargs) -> forms.CharField:
    # Not required here: the service says in its own words what is missing, and the page
    # shows that with everything else the user typed.
    return forms.CharField(
        label=label, required=False, max_length=MAX_TEXT, widget=_textarea(), **kwargs
    )


class RaiseForm(forms.Form):
    text = _text_field(
        _("异议内容"), help_text=_("请写明您认为哪里有误、正确的情况是什么。最多 2000 字。")
    )


class AppealForm(forms.Form):
    text = _text_field(_("申诉理由"), help_text=_("申诉由纪检委员审查后提交支委会认定。"))


class ExamineForm(forms.Form):
    opinion = _text_field(_("纪检委员意见"))


class DecisionForm(forms.Form):
    """A decision that may uphold the objection, with an optional correction entry."""

    decision = forms.ChoiceField(
        label=_("结论"),
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        error_messages={"required": _("请选择结论。")},
    )
    correction_rule = forms.TypedChoiceField(
        label=_("更正积分：细则项"),
        required=False,
        coerce=int,
        empty_value=None,
        widget=forms.Select(attrs={"class": "form-select"}),
        help_text=_("异议成立时：原记录（如有）将被冲销；如需按正确的情况重新记分，请选择细则项。"),
    )
    correction_points = PointsField(
        label=_("更正积分：分值"),
        widget=forms.TextInput(attrs={"class": "form-control"}),
        help_text=_("固定分值的细则项可不填。"),
    )
    correction_description = forms.CharField(
        label=_("更正积分：事项说明"),
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"class": "form-control", "maxlength": 500}),
    )

    uphold_label = _("异议成立，更正积分")
    dismiss_label = _("维持原结果")
    text_name = "text"

    def __init__(self, *args, rules: Sequence[Rule] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rules = {rule.pk: rule for rule in rules}
        self.fields["decision"].choices = [
            (DISMISS, self.dismiss_label),
            (UPHOLD, self.uphold_label),
        ]
        self.fields["correction_rule"].choices = grouped_rule_choices(rules)

    def clean_correction_rule(self) -> Rule | None:
        rule_id = self.cleaned_data.get("correction_rule")
        if rule_id is None:
            return None
        rule = self.rules.get(rule_id)
        if rule is None:
            raise forms.ValidationError(_("请选择有效的细则项。"))
        return rule

    def clean(self) -> dict:
        data = super().clean()
        rule = data.get("correction_rule")
        filled = rule is not None or data.get("correction_points") is not None
        filled = filled or bool((data.get("correction_description") or "").strip())
        if data.get("decision") == DISMISS and filled:
            raise forms.ValidationError(
                _("选择“%(dismiss)s”时不登记更正积分，请清空更正积分各项。")
                % {"dismiss": self.dismiss_label}
            )
        if data.get("decision") == UPHOLD and filled and rule is None:
            self.add_error("correction_rule", _("请选择更正积分所依据的细则项。"))
        return data

    @property
    def uphold(self) -> bool:
        return self.cleaned_data.get("decision") == UPHOLD

    def correction(self) -> Correction | None:
        rule = self.cleaned_data.get("correction_rule")
        if not self.uphold or rule is None:
            return None
        return Correction(
            rule=rule,
            points=self.cleaned_data.get("correction_points"),
            description=self.cleaned_data.get("correction_description") or "",
        )

    def text(self) -> str:
        return self.cleaned_data.get(self.text_name) or ""


class RecheckForm(DecisionForm):
    answer = _text_field(_("复核答复"), help_text=_("党员将看到这段答复。"))
    text_name = "answer"
    uphold_label = _("异议成立，更正积分")
    dismiss_label = _("维持原结果，答复党员")

    field_order = ["answer", "decision"]


class RulingForm(DecisionForm):
    reason = _text_field(_("认定理由"), help_text=_("写明支委会的认定结论和依据。"))
    text_name = "reason"
    uphold_label = _("支委会认定异议成立，更正积分")
    dismiss_label = _("支委会认定异议不成立")

    field_order = ["decision", "reason"]
