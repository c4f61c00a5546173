"""The publicity board 公示栏, its print view, and the objection pages.

Each view finds the cycle through the selectors' visibility rules (out of reach: 404),
parses the form, calls one service and redirects with a message. A ``ValidationError`` the
service raises is shown on the page with everything the user typed (422); a
``PermissionDenied`` the same way with 403. Nothing is written when a service refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from members.models import Member
from members.permissions import Action, can
from members.refusals import INVALID
from members.refusals import refusal_status as _status
from members.refusals import refuse as _refuse
from reviews.models import ReviewCycle
from reviews.services import period_bounds
from scoring.models import Entry, Rule
from scoring.selectors import current_rules

from . import selectors, services
from .forms import AppealForm, ExamineForm, RaiseForm, RecheckForm, RulingForm
from .models import Objection

State = Objection.State


# --- helpers -------------------------------------------------------------------------------


def _cycle(pk: int) -> ReviewCycle:
    return get_object_or_404(ReviewCycle.objects.select_related("organization"), pk=pk)


def _readable_cycle(request: HttpRequest, pk: int) -> ReviewCycle:
    cycle = _cycle(pk)
    if not selectors.may_read_board(request.user, cycle):
        raise Http404
    return cycle


def _own_member(request: HttpRequest, cycle: ReviewCycle) -> Member | None:
    """The user's roster entry in the cycle's branch (not transferred out), if any."""
    if not request.user.is_authenticated:
        return None
    return (
        Member.objects.filter(user=request.user, organization_id=cycle.organization_id)
        .exclude(status=Member.Status.TRANSFERRED_OUT)
        .first()
    )


def _window(cycle: ReviewCycle) -> dict:
    return {
        "starts_on": cycle.publicity_starts_on,
        "ends_on": cycle.publicity_ends_on,
        "is_open": services.raise_window_problem(cycle) is None,
    }


def _title(cycle: ReviewCycle) -> str:
    return _("%(branch)s%(period)s党员积分公示") % {
        "branch": cycle.organization.name,
        "period": cycle.period_label,
    }


# --- the board -----------------------------------------------------------------------------


@login_required
def board(request: HttpRequest, pk: int) -> HttpResponse:
    """公示栏: each member's quarter net, year-to-date total, rank and star (annual: total,
    grade and flags) with the entries behind them; a member of the branch may object to
    their own entries and total during the window."""
    cycle = _readable_cycle(request, pk)
    branch = cycle.organization
    rows = selectors.board_rows(cycle)
    member = _own_member(request, cycle)
    published = selectors.is_published(cycle)
    may_raise = (
        member is not None
        and cycle.state == ReviewCycle.State.PUBLICITY
        and services.raise_window_problem(cycle) is None
        and can(request.user, Action.RAISE_OBJECTION, branch)
    )
    pending_entries, pending_total = (
        selectors.open_objection_targets(cycle, member) if member is not None else (set(), False)
    )
    context = {
        "cycle": cycle,
        "branch": branch,
        "title": _title(cycle),
        "sections": selectors.board_sections(rows),
        "is_preview": not published,
        "window": _window(cycle),
        "member": member,
        "may_raise": may_raise,
        "pending_entries": pending_entries,
        "pending_total": pending_total,
        "may_see_objections": can(request.user, Action.VIEW_REVIEW, branch)
        or (member is not None and published),
    }
    return render(request, "publicity/board.html", context)


@login_required
def board_print(request: HttpRequest, pk: int) -> HttpResponse:
    """The board as an A4 landscape sheet to post on the wall (no navigation)."""
    cycle = _readable_cycle(request, pk)
    rows = selectors.board_rows(cycle)
    context = {
        "cycle": cycle,
        "branch": cycle.organization,
        "title": _title(cycle),
        "sections": selectors.board_sections(rows),
        "rows": rows,
        "has_entries": any(row.lines for row in rows),
        "is_preview": not selectors.is_published(cycle),
        "window": _window(cycle),
        "printed_on": timezone.localdate(),
    }
    return render(request, "publicity/print.html", context)


# --- raising an objection ------------------------------------------------------------------


def _objected_entry(request: HttpRequest, cycle: ReviewCycle, member: Member) -> Entry | None:
    """The member's own entry of the period named by ?entry= (None: the total); else 404."""
    value = request.GET.get("entry", "")
    if not value:
        return None
    if not value.isdigit():
        raise Http404
    first, last = period_bounds(cycle.year, cycle.quarter)
    return get_object_or_404(
        Entry.objects.select_related("rule", "reverses"),
        pk=int(value),
        member=member,
        occurred_on__range=(first, last),
    )


@login_required
@require_http_methods(["GET", "POST"])
def raise_objection(request: HttpRequest, pk: int) -> HttpResponse:
    """提出异议: a member of the branch objects to one of their entries (?entry=) or to
    their total → ``services.objection_raise``."""
    cycle = _readable_cycle(request, pk)
    member = _own_member(request, cycle)
    if member is None or not can(request.user, Action.RAISE_OBJECTION, cycle.organization):
        raise Http404
    entry = _objected_entry(request, cycle, member)
    form = RaiseForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = INVALID
        if form.is_valid():
            try:
                services.objection_raise(
                    user=request.user, cycle=cycle, text=form.cleaned_data["text"], entry=entry
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                messages.success(request, _("异议已提交，积分记录员将复核并答复您。"))
                return redirect("publicity:objections", pk=cycle.pk)
    score = (
        member.period_scores.filter(year=cycle.year, quarter=cycle.quarter).first()
        if entry is None
        else None
    )
    context = {
        "cycle": cycle,
        "branch": cycle.organization,
        "member": member,
        "entry": entry,
        "score": score,
        "form": form,
        "window_problem": services.raise_window_problem(cycle),
    }
    return render(request, "publicity/raise.html", context, status=status)


# --- the objections page -------------------------------------------------------------------


@dataclass
class ObjectionCard:
    """One objection with what the viewer may do with it now."""

    objection: Objection
    is_own: bool
    recheck_form: RecheckForm | None = None
    examine_form: ExamineForm | None = None
    ruling_form: RulingForm | None = None
    appeal_form: AppealForm | None = None
    may_accept: bool = False
    needs_secretary: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def has_actions(self) -> bool:
        return any(
            (
                self.recheck_form,
                self.examine_form,
                self.ruling_form,
                self.appeal_form,
                self.may_accept,
            )
        )


@dataclass
class Viewer:
    """What the user may do with the cycle's objections."""

    is_officer: bool
    member: Member | None
    may_recheck: bool
    may_examine: bool
    may_rule: bool
    may_reverse: bool


def _viewer(request: HttpRequest, cycle: ReviewCycle) -> Viewer:
    """The viewer's rights on the objections page; 404 if it is out of their reach."""
    branch = cycle.organization
    user = request.user
    is_officer = can(user, Action.VIEW_REVIEW, branch)
    member = _own_member(request, cycle)
    if not is_officer and not (member is not None and selectors.may_read_board(user, cycle)):
        raise Http404
    return Viewer(
        is_officer=is_officer,
        member=member,
        may_recheck=can(user, Action.RECHECK_OBJECTION, branch),
        may_examine=can(user, Action.HANDLE_APPEAL, branch),
        may_rule=can(user, Action.RULE_OBJECTION, branch),
        may_reverse=can(user, Action.REVERSE_ENTRY, branch),
    )


def _visible_objections(cycle: ReviewCycle, viewer: Viewer):
    if viewer.is_officer:
        return selectors.cycle_objections(cycle)
    return selectors.member_objections(cycle, viewer.member)


def _correction_rules(cycle: ReviewCycle) -> list[Rule]:
    return [
        rule
        for rule in current_rules(cycle.organization, cycle.year)
        if rule.kind != Rule.Kind.VETO
    ]


def _is_own(objection: Objection, request: HttpRequest) -> bool:
    user = request.user
    return objection.raised_by_id == user.pk or objection.member.user_id == user.pk


def _card(
    objection: Objection,
    *,
    request: HttpRequest,
    viewer: Viewer,
    cycle: ReviewCycle,
    rules: list[Rule],
    failed: tuple[int, str, Form, list[str]] | None,
) -> ObjectionCard:
    """The card of one objection; on a refused post, that objection's form as it was sent."""
    is_own = _is_own(objection, request)
    in_publicity = cycle.state == ReviewCycle.State.PUBLICITY
    prefix = f"o{objection.pk}"
    card = ObjectionCard(objection=objection, is_own=is_own)
    state = objection.state
    if in_publicity and not is_own:
        if state == State.RAISED and viewer.may_recheck:
            card.recheck_form = RecheckForm(prefix=prefix, rules=rules)
            card.needs_secretary = objection.entry_id is not None and not viewer.may_reverse
        elif state == State.APPEALED and viewer.may_examine:
            card.examine_form = ExamineForm(prefix=prefix)
        elif state == State.FORWARDED and viewer.may_rule:
            card.ruling_form = RulingForm(prefix=prefix, rules=rules)
    if objection.member.user_id == request.user.pk and state == State.ANSWERED:
        card.may_accept = True
        if in_publicity:
            card.appeal_form = AppealForm(prefix=prefix)
    if failed is not None and failed[0] == objection.pk:
        _pk, action, form, errors = failed
        if action != "accept":
            setattr(card, f"{action}_form", form)
        card.errors = errors
    return card


def _render_objections(
    request: HttpRequest,
    cycle: ReviewCycle,
    viewer: Viewer,
    *,
    failed: tuple[int, str, Form, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    objections = list(_visible_objections(cycle, viewer))
    needs_rules = any(
        objection.state in (State.RAISED, State.FORWARDED) for objection in objections
    ) and (viewer.may_recheck or viewer.may_rule)
    rules = _correction_rules(cycle) if needs_rules else []
    cards = [
        _card(objection, request=request, viewer=viewer, cycle=cycle, rules=rules, failed=failed)
        for objection in objections
    ]
    context = {
        "cycle": cycle,
        "branch": cycle.organization,
        "title": _title(cycle),
        "viewer": viewer,
        "cards": cards,
        "open_count": sum(1 for card in cards if card.objection.is_open),
        "window": _window(cycle),
        "may_raise": viewer.member is not None
        and services.raise_window_problem(cycle) is None
        and can(request.user, Action.RAISE_OBJECTION, cycle.organization),
    }
    return render(request, "publicity/objections.html", context, status=status)


@login_required
def objections(request: HttpRequest, pk: int) -> HttpResponse:
    """异议办理: the cycle's objections for the officers, each with its full history and the
    step the viewer may take; for a member, their own objections (accept / appeal)."""
    cycle = _cycle(pk)
    return _render_objections(request, cycle, _viewer(request, cycle))


def _objection_for(
    request: HttpRequest, pk: int, objection_pk: int
) -> tuple[ReviewCycle, Viewer, Objection]:
    cycle = _cycle(pk)
    viewer = _viewer(request, cycle)
    objection = get_object_or_404(_visible_objections(cycle, viewer), pk=objection_pk)
    return cycle, viewer, objection


def _act(
    request: HttpRequest,
    pk: int,
    objection_pk: int,
    *,
    action: str,
    form_class: type[Form],
    call,
    success: str,
) -> HttpResponse:
    """Parse the posted form of one objection, call the service, redirect or re-render."""
    cycle, viewer, objection = _objection_for(request, pk, objection_pk)
    kwargs = {"prefix": f"o{objection.pk}"}
    if form_class in (RecheckForm, RulingForm):
        kwargs["rules"] = _correction_rules(cycle)
    form = form_class(request.POST, **kwargs)
    status = INVALID
    if form.is_valid():
        try:
            call(objection, form)
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(request, success % {"name": objection.member.name})
            return redirect("publicity:objections", pk=cycle.pk)
    errors = [str(error) for error in form.non_field_errors()]
    return _render_objections(
        request, cycle, viewer, failed=(objection.pk, action, form, errors), status=status
    )


@login_required
@require_POST
def recheck(request: HttpRequest, pk: int, objection_pk: int) -> HttpResponse:
    """复核 → ``services.objection_recheck``."""

    def call(objection: Objection, form: RecheckForm) -> Objection:
        return services.objection_recheck(
            user=request.user,
            objection=objection,
            answer=form.text(),
            uphold=form.uphold,
            correction=form.correction(),
        )

    return _act(
        request,
        pk,
        objection_pk,
        action="recheck",
        form_class=RecheckForm,
        call=call,
        success=_("已复核%(name)s的异议并答复。"),
    )


@login_required
@require_POST
def examine(request: HttpRequest, pk: int, objection_pk: int) -> HttpResponse:
    """纪检委员审查 → ``services.objection_examine``."""

    def call(objection: Objection, form: ExamineForm) -> Objection:
        return services.objection_examine(
            user=request.user, objection=objection, opinion=form.cleaned_data["opinion"]
        )

    return _act(
        request,
        pk,
        objection_pk,
        action="examine",
        form_class=ExamineForm,
        call=call,
        success=_("已审查%(name)s的申诉，并提交支委会认定。"),
    )


@login_required
@require_POST
def rule(request: HttpRequest, pk: int, objection_pk: int) -> HttpResponse:
    """支委会认定 → ``services.objection_rule``."""

    def call(objection: Objection, form: RulingForm) -> Objection:
        return services.objection_rule(
            user=request.user,
            objection=objection,
            uphold=form.uphold,
            reason=form.text(),
            correction=form.correction(),
        )

    return _act(
        request,
        pk,
        objection_pk,
        action="ruling",
        form_class=RulingForm,
        call=call,
        success=_("已登记支委会对%(name)s异议的认定。"),
    )


@login_required
@require_POST
def appeal(request: HttpRequest, pk: int, objection_pk: int) -> HttpResponse:
    """申诉 → ``services.objection_appeal``."""

    def call(objection: Objection, form: AppealForm) -> Objection:
        return services.objection_appeal(
            user=request.user, objection=objection, text=form.cleaned_data["text"]
        )

    return _act(
        request,
        pk,
        objection_pk,
        action="appeal",
        form_class=AppealForm,
        call=call,
        success=_("申诉已提交，纪检委员将审查后提交支委会认定。"),
    )


@login_required
@require_POST
def accept(request: HttpRequest, pk: int, objection_pk: int) -> HttpResponse:
    """接受复核结果 → ``services.objection_accept``."""
    cycle, viewer, objection = _objection_for(request, pk, objection_pk)
    try:
        services.objection_accept(user=request.user, objection=objection)
    except (ValidationError, PermissionDenied) as error:
        errors = (
            [str(error) or _("您没有进行此操作的权限。")]
            if isinstance(error, PermissionDenied)
            else list(error.messages)
        )
        return _render_objections(
            request,
            cycle,
            viewer,
            failed=(objection.pk, "accept", Form(), errors),
            status=_status(error),
        )
    messages.success(request, _("您已接受复核结果，这件异议已办结。"))
    return redirect("publicity:objections", pk=cycle.pk)
