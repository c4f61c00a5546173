"""The review pages: a branch's cycles, the cycle page with its timeline and next step, the
member's self-assessment and acknowledgement, the committee review, the general meeting,
"my reviews" and the notifications.

Each view finds the cycle through the permission module (outside the user's reach: 404),
parses the form, calls one service and redirects with a message. A refused call re-renders
the page with the service's exact message(s) and everything typed, with 422 (or 403 when
the service says the user may not); nothing is written.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from members.models import Member, Organization
from members.permissions import Action, can, get_organization_or_404, member_of
from members.refusals import INVALID
from members.refusals import error_messages as _error_messages
from members.refusals import refuse as _refuse
from scoring.models import Declaration
from scoring.schemes import effective_scheme
from scoring.views.branch import decide_declaration

from . import selectors, services
from .forms import (
    RATING_CHOICES,
    AdvanceForm,
    AgreeForm,
    AppraisalForm,
    CommitteeMeetingForm,
    CycleOpenForm,
    DeadlineForm,
    GeneralMeetingForm,
    ReopenForm,
    SelfAssessmentForm,
    note_field_name,
    rating_field_name,
)
from .models import ReviewCycle
from .notifications import notifications_mark_read

State = ReviewCycle.State
BRANCH = [Organization.Kind.BRANCH]
NOTIFICATIONS_PER_PAGE = 50

ADVANCE_LABELS = {
    State.OPEN: gettext_lazy("开始党员自评"),
    State.SELF_ASSESSMENT: gettext_lazy("结束自评，进入支委初评"),
    State.COMMITTEE_REVIEW: gettext_lazy("提交党员大会评定"),
    State.GENERAL_MEETING: gettext_lazy("开始公示"),
    State.PUBLICITY: gettext_lazy("确认归档"),
}


# --- helpers -------------------------------------------------------------------------------


def _cycle(request: HttpRequest, pk: int, action: Action = Action.VIEW_REVIEW) -> ReviewCycle:
    """The cycle ``pk`` if the user may do ``action`` in its branch, else 404."""
    cycle = selectors.cycle_queryset().filter(pk=pk).first()
    if cycle is None or not can(request.user, action, cycle.organization):
        raise Http404
    return cycle


def _members_cycle(request: HttpRequest, pk: int, action: Action) -> tuple[ReviewCycle, Member]:
    """The cycle ``pk`` of the user's own branch, and their roster entry; else 404."""
    member = member_of(request.user)
    cycle = selectors.cycle_queryset().filter(pk=pk).first()
    if (
        cycle is None
        or member is None
        or member.organization_id != cycle.organization_id
        or not can(request.user, action, cycle.organization)
    ):
        raise Http404
    return cycle, member


def _fresh(cycle: ReviewCycle) -> ReviewCycle:
    """The cycle as it is now (a refused move may have met someone else's)."""
    return selectors.cycle_queryset().get(pk=cycle.pk)


def _year(request: HttpRequest) -> int:
    value = (request.POST if request.method == "POST" else request.GET).get("year", "")
    if value.isdigit() and 2000 <= int(value) <= 2100:
        return int(value)
    return timezone.localdate().year


def _form_errors(form) -> list[str]:
    return [error for errors in form.errors.values() for error in errors]


def _cycle_url(cycle: ReviewCycle, name: str = "cycle") -> str:
    return reverse(f"reviews:{name}", kwargs={"pk": cycle.pk})


# --- a branch's cycles -----------------------------------------------------------------------


def _render_branch_cycles(
    request: HttpRequest,
    branch: Organization,
    year: int,
    *,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    today = timezone.localdate()
    return render(
        request,
        "reviews/branch_cycles.html",
        {
            "branch": branch,
            "year": year,
            "periods": selectors.branch_periods(branch, year),
            "scheme": effective_scheme(branch, year),
            "may_open": can(request.user, Action.ADVANCE_CYCLE, branch),
            "previous_year": year - 1,
            "next_year": year + 1 if year < today.year else None,
            "errors": errors or [],
        },
        status=status,
    )


@login_required
@require_GET
def branch_cycles(request: HttpRequest, pk: int) -> HttpResponse:
    """评议: the branch's review of each quarter and of the year, with its state."""
    branch = get_organization_or_404(request.user, Action.VIEW_REVIEW, pk, kinds=BRANCH)
    return _render_branch_cycles(request, branch, _year(request))


@login_required
@require_POST
def cycle_open(request: HttpRequest, pk: int) -> HttpResponse:
    """开始评议 of a period → ``services.cycle_open``."""
    branch = get_organization_or_404(request.user, Action.VIEW_REVIEW, pk, kinds=BRANCH)
    form = CycleOpenForm(request.POST)
    year = _year(request)
    if not form.is_valid():
        return _render_branch_cycles(
            request, branch, year, errors=_form_errors(form), status=INVALID
        )
    try:
        cycle = services.cycle_open(
            user=request.user,
            branch=branch,
            year=form.cleaned_data["year"],
            quarter=form.cleaned_data["quarter"],
        )
    except (ValidationError, PermissionDenied) as error:
        return _render_branch_cycles(
            request,
            branch,
            year,
            errors=_error_messages(error),
            status=403 if isinstance(error, PermissionDenied) else INVALID,
        )
    messages.success(request, _("已开始%(period)s评议。") % {"period": cycle.period_label})
    return redirect(_cycle_url(cycle))


# --- the cycle page --------------------------------------------------------------------------


def _render_cycle(
    request: HttpRequest,
    cycle: ReviewCycle,
    *,
    advance_form: AdvanceForm | None = None,
    deadline_form: DeadlineForm | None = None,
    reopen_form: ReopenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    branch = cycle.organization
    may_advance = can(user, Action.ADVANCE_CYCLE, branch)
    may_reopen = can(user, Action.REOPEN_CYCLE, branch)
    today = timezone.localdate()
    is_finalized = cycle.state == State.FINALIZED
    if deadline_form is None and cycle.self_assessment_deadline:
        deadline_form = DeadlineForm(initial={"deadline": cycle.self_assessment_deadline})
    submissions = selectors.self_assessment_status(cycle)
    context = {
        "branch": branch,
        "cycle": cycle,
        "year": cycle.year,
        "steps": selectors.steps(cycle),
        "timeline": selectors.timeline(cycle),
        # A pure check: what the service would refuse the next move for, today.
        "problems": [] if is_finalized else services.cycle_blockers(cycle, today),
        "advance_label": ADVANCE_LABELS.get(cycle.state, ""),
        "may_advance": may_advance and not is_finalized,
        "may_set_deadline": may_advance and cycle.state in (State.OPEN, State.SELF_ASSESSMENT),
        "may_reopen": may_reopen and is_finalized,
        "advance_form": advance_form or AdvanceForm(cycle=cycle),
        "deadline_form": deadline_form or DeadlineForm(),
        "reopen_form": reopen_form or ReopenForm(),
        "submitted": [row for row in submissions if row.done_at],
        "not_submitted": [row for row in submissions if not row.done_at],
        "roster_count": len(submissions),
        "acknowledgements": selectors.acknowledgement_status(cycle)
        if cycle.finalized_at or is_finalized
        else None,
        "is_publicity_or_later": cycle.state in (State.PUBLICITY, State.FINALIZED),
    }
    if context["acknowledgements"] is not None:
        context["acknowledged"] = [row for row in context["acknowledgements"] if row.done_at]
        context["not_acknowledged"] = [
            row for row in context["acknowledgements"] if not row.done_at
        ]
    return render(request, "reviews/cycle.html", context, status=status)


@login_required
@require_GET
def cycle_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The cycle: its steps, timeline, what the next step needs, and the form for it."""
    return _render_cycle(request, _cycle(request, pk))


@login_required
@require_POST
def cycle_advance(request: HttpRequest, pk: int) -> HttpResponse:
    """The next step → ``services.cycle_advance`` with the state the page showed."""
    cycle = _cycle(request, pk)
    form = AdvanceForm(request.POST, cycle=cycle)
    status = INVALID
    if form.is_valid():
        data = form.cleaned_data
        try:
            moved = services.cycle_advance(
                user=request.user,
                cycle=cycle,
                expected_state=data["expected_state"],
                note=data["note"],
                publicity_starts_on=data["publicity_starts_on"],
            )
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(
                request,
                _("%(period)s评议已进入“%(state)s”。")
                % {"period": moved.period_label, "state": moved.get_state_display()},
            )
            return redirect(_cycle_url(moved))
    return _render_cycle(request, _fresh(cycle), advance_form=form, status=status)


@login_required
@require_POST
def cycle_deadline(request: HttpRequest, pk: int) -> HttpResponse:
    """设定自评截止日期 → ``services.cycle_set_deadline``."""
    cycle = _cycle(request, pk)
    form = DeadlineForm(request.POST)
    status = INVALID
    if form.is_valid():
        try:
            services.cycle_set_deadline(
                user=request.user, cycle=cycle, deadline=form.cleaned_data["deadline"]
            )
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(
                request,
                _("自评截止日期已设为 %(date)s。")
                % {"date": form.cleaned_data["deadline"].isoformat()},
            )
            return redirect(_cycle_url(cycle))
    return _render_cycle(request, _fresh(cycle), deadline_form=form, status=status)


@login_required
@require_POST
def cycle_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    """重新打开 a finalized period (committee staff, with a reason) → ``services.cycle_reopen``."""
    cycle = _cycle(request, pk)
    form = ReopenForm(request.POST)
    status = INVALID
    if form.is_valid():
        try:
            services.cycle_reopen(
                user=request.user, cycle=cycle, reason=form.cleaned_data["reason"]
            )
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(
                request,
                _("已重新打开%(period)s评议，退回支委初评。") % {"period": cycle.period_label},
            )
            return redirect(_cycle_url(cycle))
    return _render_cycle(request, _fresh(cycle), reopen_form=form, status=status)


# --- the member's self-assessment -------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def self_assessment(request: HttpRequest, pk: int) -> HttpResponse:
    """党员自评 (phone): write or rewrite one's self-assessment → ``self_assessment_submit``."""
    cycle, member = _members_cycle(request, pk, Action.SELF_ASSESS)
    existing = cycle.self_assessments.filter(member=member).first()
    status = 200
    if request.method == "POST":
        form = SelfAssessmentForm(request.POST)
        status = INVALID
        if form.is_valid():
            try:
                services.self_assessment_submit(
                    user=request.user, cycle=cycle, text=form.cleaned_data["text"]
                )
            except PermissionDenied as error:
                raise Http404 from error
            except ValidationError as error:
                status = _refuse(form, error)
            else:
                messages.success(request, _("自评已保存。"))
                return redirect(_cycle_url(cycle, "self_assessment"))
    else:
        form = SelfAssessmentForm(initial={"text": existing.text if existing else ""})
    today = timezone.localdate()
    deadline = cycle.self_assessment_deadline
    return render(
        request,
        "reviews/self_assessment.html",
        {
            "cycle": cycle,
            "member": member,
            "form": form,
            "assessment": existing,
            "is_open": cycle.state in (State.OPEN, State.SELF_ASSESSMENT)
            and (deadline is None or today <= deadline),
            "declarations": list(selectors.member_period_declarations(member, cycle)),
            "may_declare": can(request.user, Action.DECLARE, cycle.organization),
        },
        status=status,
    )


# --- the committee review --------------------------------------------------------------------


def _render_committee(
    request: HttpRequest,
    cycle: ReviewCycle,
    *,
    failed: dict | None = None,
    agree_form: AgreeForm | None = None,
    meeting_form: CommitteeMeetingForm | None = None,
    appraisal_form: AppraisalForm | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    branch = cycle.organization
    review = selectors.committee_review(cycle)
    members = [row.member for row in review.rows]
    pending = []
    for declaration in selectors.cycle_pending_declarations(cycle):
        row = {
            "declaration": declaration,
            "is_own": declaration.declared_by_id == user.pk
            or declaration.member.user_id == user.pk,
            "points": declaration.points,
            "reason": "",
            "errors": [],
        }
        if failed and failed["pk"] == declaration.pk:
            row.update(points=failed["points"], reason=failed["reason"], errors=failed["errors"])
        pending.append(row)
    if agree_form is None:
        initial = {"agree": [str(row.member.pk) for row in review.rows if row.agreement is None]}
        for row in review.rows:
            if row.agreement is not None:
                initial[note_field_name(row.member)] = row.agreement.note
        agree_form = AgreeForm(initial=initial, members=members)
    if meeting_form is None:
        meeting = review.meeting
        meeting_form = CommitteeMeetingForm(
            initial={
                "meeting_date": meeting.meeting_date if meeting else timezone.localdate(),
                "attendees": [
                    str(pk)
                    for pk in (review.attendee_ids if meeting else review.officer_member_ids)
                ],
                "notes": meeting.notes if meeting else "",
            },
            members=members,
        )
    scheme = effective_scheme(branch, cycle.year)
    weights_appraisals = cycle.is_annual and scheme is not None and scheme.weights_appraisals
    if weights_appraisals and appraisal_form is None:
        initial = {}
        for row in review.rows:
            if row.appraisal is not None:
                initial[rating_field_name("democratic", row.member)] = row.appraisal.democratic
                initial[rating_field_name("mass", row.member)] = row.appraisal.mass
        appraisal_form = AppraisalForm(initial=initial, members=members)
    is_committee_review = cycle.state == State.COMMITTEE_REVIEW
    may_record = can(user, Action.ADVANCE_CYCLE, branch) and is_committee_review
    ticked = agree_form.ticked_ids("agree")
    attendees = meeting_form.ticked_ids("attendees")
    rows = [
        {
            "row": row,
            "is_ticked": str(row.member.pk) in ticked,
            "note": agree_form.note_value(row.member),
            "democratic": appraisal_form.value("democratic", row.member) if appraisal_form else "",
            "mass": appraisal_form.value("mass", row.member) if appraisal_form else "",
        }
        for row in review.rows
    ]
    return render(
        request,
        "reviews/committee_review.html",
        {
            "branch": branch,
            "cycle": cycle,
            "year": cycle.year,
            "pending": pending,
            "failed": failed,
            "review": review,
            "rows": rows,
            "agree_form": agree_form,
            "meeting_form": meeting_form,
            "meeting_members": [(member, str(member.pk) in attendees) for member in members],
            "appraisal_form": appraisal_form if weights_appraisals else None,
            "rating_choices": RATING_CHOICES,
            "agreed_count": sum(1 for row in review.rows if row.agreement is not None),
            "may_decide": can(user, Action.REVIEW_DECLARATION, branch)
            and cycle.state != State.FINALIZED,
            "may_record": may_record,
            "is_committee_review": is_committee_review,
            "errors": errors or {},
        },
        status=status,
    )


@login_required
@require_GET
def committee_review(request: HttpRequest, pk: int) -> HttpResponse:
    """支委初评: pending declarations, each member side by side, the meeting, the ratings."""
    return _render_committee(request, _cycle(request, pk))


@login_required
@require_POST
def committee_decide(request: HttpRequest, pk: int, declaration_pk: int) -> HttpResponse:
    """Approve (as declared or adjusted, with a reason) or reject one pending declaration of
    the period → ``scoring.services.declaration_approve`` / ``declaration_reject``."""
    cycle = _cycle(request, pk)
    first, last = services.period_bounds(cycle.year, cycle.quarter)
    declaration = get_object_or_404(
        Declaration.objects.select_related("member", "rule"),
        pk=declaration_pk,
        member__organization=cycle.organization,
        occurred_on__range=(first, last),
    )
    decision = decide_declaration(request, declaration)
    if decision.message:
        messages.success(request, decision.message)
        return redirect(_cycle_url(cycle, "committee_review") + "#declarations")
    return _render_committee(
        request, cycle, failed=decision.failed(request, declaration), status=decision.status
    )


def _roster(cycle: ReviewCycle) -> list[Member]:
    return list(services.scored_members(cycle.organization).order_by("name", "id"))


@login_required
@require_POST
def committee_agree(request: HttpRequest, pk: int) -> HttpResponse:
    """The committee agrees the ticked members' computed scores → ``services.scores_agree``."""
    cycle = _cycle(request, pk)
    form = AgreeForm(request.POST, members=_roster(cycle))
    status = INVALID
    if form.is_valid():
        members = form.cleaned_data["agree"]
        try:
            agreements = services.scores_agree(
                user=request.user, cycle=cycle, members=members, notes=form.notes()
            )
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(
                request,
                _("已确认 %(count)s 名党员的初评积分。") % {"count": len(agreements)},
            )
            return redirect(_cycle_url(cycle, "committee_review") + "#members")
    return _render_committee(
        request, cycle, agree_form=form, errors={"agree": _form_errors(form)}, status=status
    )


@login_required
@require_POST
def committee_meeting(request: HttpRequest, pk: int) -> HttpResponse:
    """记录支委会 → ``services.committee_meeting_record``."""
    cycle = _cycle(request, pk)
    form = CommitteeMeetingForm(request.POST, members=_roster(cycle))
    status = INVALID
    if form.is_valid():
        data = form.cleaned_data
        try:
            meeting = services.committee_meeting_record(
                user=request.user,
                cycle=cycle,
                meeting_date=data["meeting_date"],
                attendees=data["attendees"],
                notes=data["notes"],
            )
        except (ValidationError, PermissionDenied) as error:
            status = _refuse(form, error)
        else:
            messages.success(
                request,
                _("已记录支委会（%(date)s）。") % {"date": meeting.meeting_date.isoformat()},
            )
            return redirect(_cycle_url(cycle, "committee_review") + "#meeting")
    return _render_committee(
        request, cycle, meeting_form=form, errors={"meeting": _form_errors(form)}, status=status
    )


@login_required
@require_POST
def committee_appraisals(request: HttpRequest, pk: int) -> HttpResponse:
    """年度评议等次 of every rated member → ``services.appraisal_record``, all or nothing."""
    cycle = _cycle(request, pk)
    form = AppraisalForm(request.POST, members=_roster(cycle))
    status = INVALID
    problems: list[str] = []
    if form.is_valid():
        ratings = form.ratings()
        try:
            services.appraisals_record(user=request.user, cycle=cycle, ratings=ratings)
        except ValidationError as error:
            problems = list(error.messages)
        except PermissionDenied as error:
            problems = _error_messages(error)
            status = 403
        else:
            messages.success(
                request,
                _("已录入 %(count)s 名党员的评议等次。") % {"count": len(ratings)},
            )
            return redirect(_cycle_url(cycle, "committee_review") + "#appraisals")
    else:
        problems = _form_errors(form)
    return _render_committee(
        request, cycle, appraisal_form=form, errors={"appraisals": problems}, status=status
    )


# --- the general meeting ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def general_meeting(request: HttpRequest, pk: int) -> HttpResponse:
    """党员大会评定: date, members with a vote, attendance and the vote →
    ``services.general_meeting_record``."""
    cycle = _cycle(request, pk)
    meeting = selectors.general_meeting_of(cycle)
    status = 200
    if request.method == "POST":
        form = GeneralMeetingForm(request.POST)
        status = INVALID
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.general_meeting_record(
                    user=request.user,
                    cycle=cycle,
                    meeting_date=data["meeting_date"],
                    **{name: data[name] for name in GeneralMeetingForm.COUNT_FIELDS},
                )
            except (ValidationError, PermissionDenied) as error:
                status = _refuse(form, error)
            else:
                messages.success(
                    request,
                    _("已记录党员大会（%(date)s）。") % {"date": data["meeting_date"].isoformat()},
                )
                return redirect(_cycle_url(cycle))
    elif meeting is not None:
        form = GeneralMeetingForm(
            initial={
                "meeting_date": meeting.meeting_date,
                **{name: getattr(meeting, name) for name in GeneralMeetingForm.COUNT_FIELDS},
            }
        )
    else:
        form = GeneralMeetingForm(
            initial={
                "meeting_date": timezone.localdate(),
                "voting_members": selectors.voting_member_count(cycle),
            }
        )
    return render(
        request,
        "reviews/general_meeting.html",
        {
            "branch": cycle.organization,
            "cycle": cycle,
            "year": cycle.year,
            "form": form,
            "meeting": meeting,
            "may_record": can(request.user, Action.ADVANCE_CYCLE, cycle.organization)
            and cycle.state == State.GENERAL_MEETING,
        },
        status=status,
    )


# --- acknowledgement -------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """签字确认 (phone): the member's final result of the period and the button →
    ``services.acknowledge``."""
    cycle, member = _members_cycle(request, pk, Action.ACKNOWLEDGE)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        try:
            services.acknowledge(user=request.user, cycle=cycle)
        except PermissionDenied as error:
            raise Http404 from error
        except ValidationError as error:
            errors = _error_messages(error)
            status = INVALID
        else:
            messages.success(request, _("已签字确认。"))
            return redirect(_cycle_url(cycle, "acknowledge"))
    return render(
        request,
        "reviews/acknowledge.html",
        {
            "cycle": cycle,
            "member": member,
            "score": selectors.member_period_score(member, cycle),
            "acknowledgement": cycle.acknowledgements.filter(member=member).first(),
            "errors": errors,
        },
        status=status,
    )


# --- my reviews, notifications ----------------------------------------------------------------


@login_required
@require_GET
def my_reviews(request: HttpRequest) -> HttpResponse:
    """我的评议 (phone): the reviews of the member's branch and what they can do in each now."""
    member = member_of(request.user)
    if member is None:
        return redirect("members:no_role")
    branch = member.organization
    return render(
        request,
        "reviews/my_reviews.html",
        {
            "member": member,
            "cycles": selectors.member_cycles(member),
            "may_self_assess": can(request.user, Action.SELF_ASSESS, branch),
            "may_acknowledge": can(request.user, Action.ACKNOWLEDGE, branch),
            "today": timezone.localdate(),
        },
    )


@login_required
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    """通知: newest first; those shown are marked read (the page still marks which were new)."""
    page = Paginator(selectors.user_notifications(request.user), NOTIFICATIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    items = list(page.object_list)
    allowed_hosts = {request.get_host()}
    rows = [
        {
            "notification": item,
            "is_new": item.read_at is None,
            "url": item.url
            if item.url and url_has_allowed_host_and_scheme(item.url, allowed_hosts)
            else "",
        }
        for item in items
    ]
    unread = [item.pk for item in items if item.read_at is None]
    if unread:
        notifications_mark_read(user=request.user, ids=unread)
    return render(request, "reviews/notifications.html", {"page": page, "rows": rows})
