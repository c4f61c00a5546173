"""Forms of the branch ledger pages: they parse what the secretary typed; the services decide.

Choices (members, rules) are handed in as lists the view has already loaded, so a form
costs no query of its own and ``cleaned_data`` holds the model objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member

from .models import Rule
from .services import GridCell, parse_points

MAX_GRID_RULES = 4

DATE_INPUT = {"type": "date", "class": "form-control"}


def rule_label(rule: Rule) -> str:
    return f"{rule.code} {rule.name}（{rule.points_display}）"


def member_label(member: Member) -> str:
    return f"{member.name}（{member.get_category_display()}）"


def grouped_rule_choices(rules: Iterable[Rule]) -> list:
    """Rules grouped by category for an <optgroup> select, in the scheme's order."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for rule in rules:
        groups.setdefault(rule.category.name, []).append((str(rule.pk), rule_label(rule)))
    return [("", _("请选择细则项")), *groups.items()]


class PointsField(forms.CharField):
    """Points as typed (“+5”, “－3”, “2.5”): an exact Decimal, or None when left blank."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", _("分值"))
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off", "maxlength": 20})

    def to_python(self, value: object) -> Decimal | None:
        return parse_points(super().to_python(value))


def _will_be_bound(args: tuple, kwargs: dict) -> bool:
    """Whether a form built with these arguments will be bound to submitted data."""
    data = args[0] if args else kwargs.get("data")
    return data is not None


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"),
        error_messages={"required": _("请填写日期。"), "invalid": _("请填写有效的日期。")},
    )


class LedgerForm(forms.Form):
    """What every recording form shares: the year of the rule book, a one-time token,
    the date it happened and the description."""

    year = forms.IntegerField(widget=forms.HiddenInput, min_value=2000, max_value=2100)
    form_token = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": _("表单已失效，请刷新页面后重新填写。"),
            "invalid": _("表单已失效，请刷新页面后重新填写。"),
        },
    )
    occurred_on = _date_field(_("发生日期"))
    # Required-ness and length are the service's to judge, with its own message.
    description = forms.CharField(
        label=_("事项说明"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "form-control", "maxlength": 500}),
    )

    def __init__(self, *args, year: int, **kwargs) -> None:
        if not _will_be_bound(args, kwargs):
            initial = kwargs.setdefault("initial", {})
            initial.setdefault("year", year)
            initial.setdefault("form_token", uuid.uuid4())
            initial.setdefault("occurred_on", _default_date(year))
        super().__init__(*args, **kwargs)
        self.fields["occurred_on"].widget.attrs["max"] = timezone.localdate().isoformat()


def _default_date(year: int) -> date:
    today = timezone.localdate()
    return today if today.year == year else date(year, 12, 31)


class RuleChoiceMixin:
    """A ``rule`` select over a list of rules; ``cleaned_data["rule"]`` is the Rule."""

    rules_by_id: dict[str, Rule]

    def setup_rules(self, rules: Sequence[Rule], points_field_url: str = "") -> None:
        self.rules_by_id = {str(rule.pk): rule for rule in rules}
        field = self.fields["rule"]
        field.choices = grouped_rule_choices(rules)
        if points_field_url:
            # htmx swaps in the points input that fits the chosen rule.
            field.widget.attrs.update(
                {
                    "hx-get": points_field_url,
                    "hx-trigger": "change",
                    "hx-target": "#points-field",
                    "hx-swap": "outerHTML",
                }
            )

    def clean_rule(self) -> Rule:
        return self.rules_by_id[self.cleaned_data["rule"]]

    @property
    def selected_rule(self) -> Rule | None:
        """The rule picked so far (bound or initial), for the points input beside it."""
        value = self["rule"].value()
        return self.rules_by_id.get(str(value)) if value else None


def _rule_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("细则项"),
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={
            "required": _("请选择细则项。"),
            "invalid_choice": _("所选细则项不在本支部现行细则中。"),
        },
    )


def _member_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("党员"),
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={
            "required": _("请选择党员。"),
            "invalid_choice": _("所选党员不在本支部名册中。"),
        },
    )


class EntryForm(RuleChoiceMixin, LedgerForm):
    """记录积分: one member, one rule."""

    member = _member_field()
    rule = _rule_field()
    points = PointsField()

    field_order = ["member", "rule", "points", "occurred_on", "description"]

    def __init__(
        self,
        *args,
        members: Sequence[Member],
        rules: Sequence[Rule],
        points_field_url: str = "",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.members_by_id = {str(member.pk): member for member in members}
        self.fields["member"].choices = [
            ("", _("请选择党员")),
            *((str(member.pk), member_label(member)) for member in members),
        ]
        self.setup_rules(rules, points_field_url)

    def clean_member(self) -> Member:
        return self.members_by_id[self.cleaned_data["member"]]


class BulkEntryForm(RuleChoiceMixin, LedgerForm):
    """批量记录: one rule for the ticked members (a meeting's attendance)."""

    rule = _rule_field()
    points = PointsField()
    # Whether none is ticked is the service's to say.
    members = forms.MultipleChoiceField(
        label=_("党员"),
        required=False,
        error_messages={"invalid_choice": _("所选党员不在本支部名册中。")},
    )

    def __init__(
        self,
        *args,
        members: Sequence[Member],
        rules: Sequence[Rule],
        points_field_url: str = "",
        **kwargs,
    ) -> None:
        if not _will_be_bound(args, kwargs):
            # Everyone is ticked at first: after a meeting, most were there.
            kwargs.setdefault("initial", {})["members"] = [str(member.pk) for member in members]
        super().__init__(*args, **kwargs)
        self.members_by_id = {str(member.pk): member for member in members}
        self.fields["members"].choices = [
            (str(member.pk), member_label(member)) for member in members
        ]
        self.setup_rules(rules, points_field_url)

    def clean_members(self) -> list[Member]:
        return [self.members_by_id[value] for value in self.cleaned_data["members"]]

    @property
    def ticked_ids(self) -> set[str]:
        return {str(value) for value in self["members"].value() or ()}


def cell_name(member: Member, rule: Rule) -> str:
    return f"cell-{member.pk}-{rule.pk}"


class GridRulesForm(forms.Form):
    """Which rules (at most four) make the columns of the grid."""

    rules = forms.MultipleChoiceField(
        label=_("细则项"),
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={
            "required": _("请至少选择一个细则项。"),
            "invalid_choice": _("所选细则项不在本支部现行细则中。"),
        },
    )

    def __init__(self, *args, rules: Sequence[Rule], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rules_by_id = {str(rule.pk): rule for rule in rules}
        self.fields["rules"].choices = [(str(rule.pk), rule_label(rule)) for rule in rules]

    def clean_rules(self) -> list[Rule]:
        chosen = self.cleaned_data["rules"]
        if len(chosen) > MAX_GRID_RULES:
            raise forms.ValidationError(
                _("最多选择 %(count)s 个细则项。") % {"count": MAX_GRID_RULES}
            )
        return [self.rules_by_id[value] for value in chosen]


class GridCellSpec:
    """One cell of the grid: who, which rule, and its form field (None when the rule does
    not apply to the member)."""

    def __init__(self, member: Member, rule: Rule, field: forms.BoundField | None) -> None:
        self.member = member
        self.rule = rule
        self.field = field


class GridForm(LedgerForm):
    """表格登记: members × a few rules. A fixed rule's cell is a tick, a range rule's cell
    takes the points."""

    def __init__(self, *args, members: Sequence[Member], rules: Sequence[Rule], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.members = list(members)
        self.rules = list(rules)
        for member in self.members:
            for rule in self.rules:
                if not rule.applies_to_member(member):
                    continue
                label = f"{member.name} · {rule.name}"
                if rule.is_fixed:
                    field: forms.Field = forms.BooleanField(
                        required=False,
                        label=label,
                        widget=forms.CheckboxInput(
                            attrs={"class": "form-check-input", "aria-label": label}
                        ),
                    )
                else:
                    field = PointsField(label=label)
                    field.widget.attrs.update(
                        {
                            "class": "form-control form-control-sm",
                            "placeholder": rule.points_display,
                            "aria-label": label,
                        }
                    )
                self.fields[cell_name(member, rule)] = field

    def rows(self) -> list[tuple[Member, list[GridCellSpec]]]:
        """The grid as the template walks it: one row per member, one cell per rule."""
        return [
            (
                member,
                [
                    GridCellSpec(
                        member,
                        rule,
                        self[cell_name(member, rule)]
                        if cell_name(member, rule) in self.fields
                        else None,
                    )
                    for rule in self.rules
                ],
            )
            for member in self.members
        ]

    def cell_errors(self) -> list[tuple[Member, Rule, list[str]]]:
        """Cells whose value could not be read, in grid order."""
        return [
            (member, rule, list(self.errors[cell_name(member, rule)]))
            for member in self.members
            for rule in self.rules
            if cell_name(member, rule) in self.errors
        ]

    def filled_cells(self) -> list[GridCell]:
        """The cells that were filled and read, in grid order (blank ones mean nothing)."""
        cells = []
        for member in self.members:
            for rule in self.rules:
                name = cell_name(member, rule)
                if name not in self.fields or name in self.errors:
                    continue
                value = self.cleaned_data.get(name)
                if value is True:
                    cells.append(GridCell(member=member, rule=rule, points=None))
                elif isinstance(value, Decimal):
                    cells.append(GridCell(member=member, rule=rule, points=value))
        return cells


class VetoForm(RuleChoiceMixin, forms.Form):
    """一票否决: the entry and the branch meeting's show-of-hands vote."""

    year = forms.IntegerField(widget=forms.HiddenInput, min_value=2000, max_value=2100)
    form_token = LedgerForm.base_fields["form_token"]
    member = _member_field()
    rule = _rule_field()
    occurred_on = _date_field(_("违纪违法事实发生日期"))
    description = forms.CharField(
        label=_("事实说明"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control", "maxlength": 500}),
    )
    meeting_date = _date_field(_("党员大会表决日期"))
    voting_members = forms.IntegerField(label=_("应到（有表决权）人数"), min_value=0)
    attendance = forms.IntegerField(label=_("实到人数"), min_value=0)
    votes_for = forms.IntegerField(label=_("赞成"), min_value=0)
    votes_against = forms.IntegerField(label=_("反对"), min_value=0)
    votes_abstain = forms.IntegerField(label=_("弃权"), min_value=0)

    COUNT_FIELDS = ("voting_members", "attendance", "votes_for", "votes_against", "votes_abstain")

    def __init__(
        self,
        *args,
        year: int,
        members: Sequence[Member],
        rules: Sequence[Rule],
        voting_members: int,
        **kwargs,
    ) -> None:
        if not _will_be_bound(args, kwargs):
            initial = kwargs.setdefault("initial", {})
            initial.setdefault("year", year)
            initial.setdefault("voting_members", voting_members)
            initial.setdefault("form_token", uuid.uuid4())
            initial.setdefault("meeting_date", timezone.localdate())
            if len(rules) == 1:
                initial.setdefault("rule", str(rules[0].pk))
        super().__init__(*args, **kwargs)
        self.members_by_id = {str(member.pk): member for member in members}
        self.fields["member"].choices = [
            ("", _("请选择党员")),
            *((str(member.pk), member_label(member)) for member in members),
        ]
        self.setup_rules(rules)
        today = timezone.localdate().isoformat()
        for name in ("occurred_on", "meeting_date"):
            self.fields[name].widget.attrs["max"] = today
        for name in self.COUNT_FIELDS:
            self.fields[name].widget.attrs.update({"class": "form-control", "min": 0})
            self.fields[name].error_messages.update(
                {
                    "required": _("请填写%(label)s。") % {"label": self.fields[name].label},
                    "invalid": _("表决人数须为非负整数。"),
                    "min_value": _("表决人数须为非负整数。"),
                }
            )

    def clean_member(self) -> Member:
        return self.members_by_id[self.cleaned_data["member"]]


APPROVE = "approve"
REJECT = "reject"


class DecisionForm(forms.Form):
    """Approve (possibly with adjusted points and a reason) or reject a declaration."""

    decision = forms.ChoiceField(
        choices=[(APPROVE, _("通过")), (REJECT, _("不予通过"))],
        error_messages={"required": _("请选择审核结果。"), "invalid_choice": _("请选择审核结果。")},
    )
    points = PointsField(label=_("核定分值"))
    reason = forms.CharField(label=_("审核意见"), required=False, max_length=500)


class ReverseForm(forms.Form):
    reason = forms.CharField(
        label=_("冲销原因"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control", "maxlength": 500}),
    )


class PeriodForm(forms.Form):
    """The year and quarter (0 for the whole year) a page shows."""

    year = forms.IntegerField(min_value=2000, max_value=2100, required=False)
    quarter = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        choices=[(str(quarter), str(quarter)) for quarter in range(5)],
    )
    member = forms.IntegerField(required=False, min_value=1)
