"""Forms of the review pages: they read what was typed; the services in reviews.services judge.

Whether a text is required, and how long it may be, is left to the service so that its exact
Chinese message is the one the user reads. Member choices are handed in as lists the view has
already loaded, so a form costs no query of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member

from .models import Appraisal, ReviewCycle

DATE_INPUT = {"type": "date", "class": "form-control"}
COUNT_ERRORS = {"invalid": _("人数须为非负整数。"), "min_value": _("人数须为非负整数。")}


def _will_be_bound(args: tuple, kwargs: dict) -> bool:
    data = args[0] if args else kwargs.get("data")
    return data is not None


def _date_field(label: str, *, required: bool = True) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=required,
        widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"),
        error_messages={"required": _("请填写日期。"), "invalid": _("请填写有效的日期。")},
    )


def _text(label: str, *, max_length: int, rows: int = 2, placeholder: str = "") -> forms.CharField:
    attrs = {"rows": rows, "class": "form-control", "maxlength": max_length}
    if placeholder:
        attrs["placeholder"] = placeholder
    return forms.CharField(label=label, required=False, widget=forms.Textarea(attrs=attrs))


class CycleOpenForm(forms.Form):
    """开始评议 of one period of a branch."""

    year = forms.IntegerField(min_value=2000, max_value=2100, widget=forms.HiddenInput)
    quarter = forms.TypedChoiceField(
        coerce=int,
        choices=[(str(quarter), str(quarter)) for quarter in (0, 1, 2, 3, 4)],
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": _("季度应为 1–4，年度评议为 0。")},
    )


class DeadlineForm(forms.Form):
    deadline = _date_field(_("自评截止日期"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["deadline"].widget.attrs["min"] = timezone.localdate().isoformat()


class AdvanceForm(forms.Form):
    """The next step, carrying the state the page was in when it was rendered: a move made
    by someone else in between is refused by the service rather than repeated."""

    expected_state = forms.ChoiceField(
        choices=ReviewCycle.State.choices,
        widget=forms.HiddenInput,
        error_messages={
            "required": _("表单已失效，请刷新页面后重新提交。"),
            "invalid_choice": _("表单已失效，请刷新页面后重新提交。"),
        },
    )
    note = _text(_("说明（可选）"), max_length=500)
    publicity_starts_on = _date_field(_("公示开始日期"), required=False)

    def __init__(self, *args, cycle: ReviewCycle, **kwargs) -> None:
        if not _will_be_bound(args, kwargs):
            initial = kwargs.setdefault("initial", {})
            initial.setdefault("expected_state", cycle.state)
            if cycle.state == ReviewCycle.State.GENERAL_MEETING:
                initial.setdefault("publicity_starts_on", timezone.localdate())
        super().__init__(*args, **kwargs)
        self.fields["publicity_starts_on"].widget.attrs["min"] = timezone.localdate().isoformat()
        self.fields["publicity_starts_on"].help_text = _("公示 %(days)s 天，从这一天算起。") % {
            "days": cycle.publicity_days
        }


class ReopenForm(forms.Form):
    reason = _text(_("重新打开的原因"), max_length=500, rows=2)


class SelfAssessmentForm(forms.Form):
    text = _text(
        _("自评内容"),
        max_length=2000,
        rows=8,
        placeholder=_(
            "对照积分细则，写本期在学习、组织生活、履职尽责、志愿服务等方面的表现和不足。"
        ),
    )


class MembersChoiceMixin:
    members_by_id: dict[str, Member]

    def setup_members(self, field_name: str, members: Sequence[Member]) -> None:
        self.members_by_id = {str(member.pk): member for member in members}
        self.fields[field_name].choices = [(str(member.pk), member.name) for member in members]

    def chosen_members(self, field_name: str) -> list[Member]:
        return [self.members_by_id[value] for value in self.cleaned_data[field_name]]

    def ticked_ids(self, field_name: str) -> set[str]:
        return {str(value) for value in self[field_name].value() or ()}


class CommitteeMeetingForm(MembersChoiceMixin, forms.Form):
    """支委会: date, the ticked attendees, minutes."""

    meeting_date = _date_field(_("会议日期"))
    # Whether none is ticked is the service's to say.
    attendees = forms.MultipleChoiceField(
        label=_("出席支委"),
        required=False,
        error_messages={"invalid_choice": _("出席人员须是本支部党员。")},
    )
    notes = _text(_("会议纪要"), max_length=2000, rows=3)

    def __init__(self, *args, members: Sequence[Member], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setup_members("attendees", members)
        self.fields["meeting_date"].widget.attrs["max"] = timezone.localdate().isoformat()

    def clean_attendees(self) -> list[Member]:
        return self.chosen_members("attendees")


def note_field_name(member: Member) -> str:
    return f"note-{member.pk}"


class AgreeForm(MembersChoiceMixin, forms.Form):
    """支委初评: tick the members whose computed score the committee agrees, each with an
    optional note."""

    agree = forms.MultipleChoiceField(
        required=False, error_messages={"invalid_choice": _("只能确认本支部党员的初评积分。")}
    )

    def __init__(self, *args, members: Sequence[Member], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setup_members("agree", members)
        for member in members:
            self.fields[note_field_name(member)] = forms.CharField(
                required=False,
                max_length=500,
                label=_("%(name)s的初评意见") % {"name": member.name},
                error_messages={"max_length": _("初评意见不能超过 500 字。")},
            )

    def clean_agree(self) -> list[Member]:
        return self.chosen_members("agree")

    def notes(self) -> dict[int, str]:
        return {
            member.pk: self.cleaned_data.get(note_field_name(member), "")
            for member in self.cleaned_data["agree"]
        }

    def note_value(self, member: Member) -> str:
        return self[note_field_name(member)].value() or ""


RATING_CHOICES = [("", "—"), *Appraisal.Rating.choices]


def rating_field_name(kind: str, member: Member) -> str:
    return f"{kind}-{member.pk}"


class AppraisalForm(forms.Form):
    """年度评议: each member's 民主评议 and 群众评议 rating (rows left blank are skipped)."""

    KINDS = ("democratic", "mass")

    def __init__(self, *args, members: Sequence[Member], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.members = list(members)
        for member in self.members:
            for kind in self.KINDS:
                self.fields[rating_field_name(kind, member)] = forms.ChoiceField(
                    required=False,
                    choices=RATING_CHOICES,
                    widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
                    error_messages={
                        "invalid_choice": _("评议等次应为优秀、合格、基本合格或不合格。")
                    },
                )

    def value(self, kind: str, member: Member) -> str:
        return self[rating_field_name(kind, member)].value() or ""

    def ratings(self) -> list[tuple[Member, str, str]]:
        """(member, democratic, mass) of every row where something was chosen."""
        chosen = []
        for member in self.members:
            democratic = self.cleaned_data.get(rating_field_name("democratic", member), "")
            mass = self.cleaned_data.get(rating_field_name("mass", member), "")
            if democratic or mass:
                chosen.append((member, democratic, mass))
        return chosen


class GeneralMeetingForm(forms.Form):
    """党员大会评定: date, members with a vote, attendance and the vote."""

    meeting_date = _date_field(_("会议日期"))
    voting_members = forms.IntegerField(label=_("有表决权党员人数"), min_value=0)
    attendance = forms.IntegerField(label=_("实到人数"), min_value=0)
    votes_for = forms.IntegerField(label=_("赞成"), min_value=0)
    votes_against = forms.IntegerField(label=_("反对"), min_value=0)
    votes_abstain = forms.IntegerField(label=_("弃权"), min_value=0)

    COUNT_FIELDS = ("voting_members", "attendance", "votes_for", "votes_against", "votes_abstain")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["meeting_date"].widget.attrs["max"] = timezone.localdate().isoformat()
        for name in self.COUNT_FIELDS:
            field = self.fields[name]
            field.widget.attrs.update({"class": "form-control", "min": 0, "inputmode": "numeric"})
            field.error_messages.update(
                {"required": _("请填写%(label)s。") % {"label": field.label}, **COUNT_ERRORS}
            )
