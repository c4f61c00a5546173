"""Review cycles through the API: who sees them, who may open one and make each move (a
refused move changes nothing), what a move needs, and a whole review walked through the
API from open to finalized, acknowledged and reopened."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reviews.models import Acknowledgement, CycleEvent, ReviewCycle, SelfAssessment
from reviews.services import cycle_open, cycle_set_deadline
from scoring.models import PeriodLock
from tests.api.conftest import QUARTER, ROLES, YEAR, assert_error
from tests.publicity.conftest import drive_cycle
from tests.reviews.conftest import end_window

State = ReviewCycle.State
SEES_A = {
    "superuser",
    "committee_staff",
    "general_staff",
    "secretary_a",
    "recorder_a",
    "discipline_a",
    "member_a",
}


def _open(ledger, *, deadline: bool = True) -> ReviewCycle:
    cycle = cycle_open(
        user=ledger.users["secretary_a"], branch=ledger.branch, year=YEAR, quarter=QUARTER
    )
    if deadline:
        cycle_set_deadline(
            user=ledger.users["secretary_a"], cycle=cycle, deadline=timezone.localdate()
        )
    return cycle


def _state(cycle: ReviewCycle) -> tuple[str, int]:
    cycle.refresh_from_db()
    return cycle.state, CycleEvent.objects.filter(cycle=cycle).count()


@pytest.mark.parametrize("role", ROLES)
def test_cycles_are_seen_by_the_branch_and_those_above_it(api, ledger, role):
    cycle = _open(ledger)
    client = api(role)

    listed = client.get("/api/v1/review-cycles/").json()["results"]
    detail = client.get(f"/api/v1/review-cycles/{cycle.pk}/")

    if role in SEES_A:
        assert [row["id"] for row in listed] == [cycle.pk]
        assert detail.status_code == 200
        assert detail.json()["period_label"] == f"{YEAR}年第4季度"
    else:
        assert listed == []
        assert_error(detail, 404, "not_found")


def test_officers_see_the_timeline_and_what_the_next_move_needs(api, ledger):
    cycle = _open(ledger, deadline=False)

    officer = api("secretary_a").get(f"/api/v1/review-cycles/{cycle.pk}/").json()
    member = api("member_a").get(f"/api/v1/review-cycles/{cycle.pk}/").json()

    assert officer["blockers"] == ["请先设定党员自评截止日期。"]
    assert [event["to_state"] for event in officer["events"]] == ["open"]
    assert (member["blockers"], member["events"]) == ([], [])


OPEN = {
    "superuser": 201,
    "committee_staff": 403,  # watches the branches, does not run their reviews
    "general_staff": 403,
    "secretary_a": 201,
    "recorder_a": 403,
    "discipline_a": 403,
    "member_a": 403,
    "secretary_b": 400,  # branch A is out of reach: "no such organization"
    "member_b": 400,
    "no_role": 400,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), OPEN.items())
def test_opening_a_review_by_role(api, ledger, role, expected):
    response = api(role).post(
        "/api/v1/review-cycles/",
        {"organization": ledger.branch.pk, "year": YEAR, "quarter": QUARTER, "state": "finalized"},
        format="json",
    )

    assert response.status_code == expected, response.json()
    if expected == 201:
        assert response.json()["state"] == "open"
        assert ReviewCycle.objects.get().state == State.OPEN
    else:
        assert ReviewCycle.objects.count() == 0


def test_opening_a_started_review_returns_it(api, ledger):
    cycle = _open(ledger)

    response = api("secretary_a").post(
        "/api/v1/review-cycles/",
        {"organization": ledger.branch.pk, "year": YEAR, "quarter": QUARTER},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["id"] == cycle.pk
    assert ReviewCycle.objects.count() == 1


# role → status of starting the self-assessment of branch A's cycle.
MOVE = {
    "superuser": 200,
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 200,
    "recorder_a": 403,
    "discipline_a": 403,
    "member_a": 403,
    "secretary_b": 404,
    "member_b": 404,
    "no_role": 404,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), MOVE.items())
def test_moving_a_cycle_by_role(api, ledger, role, expected):
    cycle = _open(ledger)
    before = _state(cycle)

    response = api(role).post(
        f"/api/v1/review-cycles/{cycle.pk}/start-self-assessment/", {}, format="json"
    )

    assert response.status_code == expected, response.json()
    if expected == 200:
        assert response.json()["state"] == "self_assessment"
        assert _state(cycle) == (State.SELF_ASSESSMENT, before[1] + 1)
    else:
        assert _state(cycle) == before


def test_a_move_that_is_not_ready_says_everything_missing(api, ledger):
    cycle = _open(ledger, deadline=False)
    before = _state(cycle)

    response = api("secretary_a").post(f"/api/v1/review-cycles/{cycle.pk}/start-self-assessment/")

    body = assert_error(response, 422, "not_ready")
    assert body["errors"] == {"non_field_errors": ["请先设定党员自评截止日期。"]}
    assert _state(cycle) == before


def test_a_move_from_another_state_is_refused_as_stale(api, ledger):
    cycle = _open(ledger)
    before = _state(cycle)

    response = api("secretary_a").post(f"/api/v1/review-cycles/{cycle.pk}/finalize/")

    body = assert_error(response, 422, "stale_state")
    assert body["message"] == "该评议已由他人推进到“记录中”，您的操作没有执行，请刷新页面查看。"
    assert _state(cycle) == before


def test_a_cycle_cannot_be_written_directly(api, ledger):
    cycle = _open(ledger)

    response = api("superuser").patch(
        f"/api/v1/review-cycles/{cycle.pk}/", {"state": "finalized"}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    assert _state(cycle)[0] == State.OPEN


def test_a_whole_review_through_the_api(api, ledger):
    secretary, member, staff = api("secretary_a"), api("member_a"), api("committee_staff")
    members = ledger.members
    cycle = secretary.post(
        "/api/v1/review-cycles/",
        {"organization": ledger.branch.pk, "year": YEAR, "quarter": QUARTER},
        format="json",
    ).json()
    url = f"/api/v1/review-cycles/{cycle['id']}/"
    today = timezone.localdate().isoformat()

    def post(client, action, body=None, expected=200):
        response = client.post(f"{url}{action}/", body or {}, format="json")
        assert response.status_code == expected, (action, response.json())
        return response.json()

    post(secretary, "deadline", {"deadline": today})
    assert post(secretary, "start-self-assessment")["state"] == "self_assessment"
    assessment = post(member, "self-assessment", {"text": "本季度按时参加组织生活。"})
    assert assessment["member"] == members["member_a"].pk
    assert post(secretary, "start-committee-review")["state"] == "committee_review"
    meeting = post(
        secretary,
        "committee-meeting",
        {"meeting_date": today, "attendees": [members["secretary_a"].pk], "notes": "初评"},
    )
    assert meeting["attendees"] == [members["secretary_a"].pk]
    agreed = post(
        secretary,
        "agreements",
        {
            "agreements": [
                {"member": members[key].pk, "note": ""} for key in ("member_a", "secretary_a")
            ]
        },
    )
    assert [row["proposed_total"] for row in agreed] == ["150.00", "100.00"]
    not_ready = secretary.post(f"{url}start-general-meeting/")
    assert assert_error(not_ready, 422, "not_ready")["errors"] == {
        "non_field_errors": ["还有 1 名党员的初评积分未经支委会确认。"]
    }
    post(secretary, "agreements", {"agreements": [{"member": members["other_a"].pk}]})
    assert post(secretary, "start-general-meeting")["state"] == "general_meeting"
    general = post(
        secretary,
        "general-meeting",
        {
            "meeting_date": today,
            "voting_members": 2,
            "attendance": 2,
            "votes_for": 2,
            "votes_against": 0,
            "votes_abstain": 0,
        },
    )
    assert (general["has_quorum"], general["passed"]) == (True, True)
    started = post(secretary, "start-publicity", {"publicity_starts_on": today})
    assert (started["state"], started["publicity_starts_on"]) == ("publicity", today)
    end_window(ReviewCycle.objects.get(pk=cycle["id"]))
    assert post(secretary, "finalize")["state"] == "finalized"
    assert PeriodLock.objects.filter(organization=ledger.branch, year=YEAR, quarter=4).count() == 1
    assert post(member, "acknowledge")["member"] == members["member_a"].pk
    assert_error(api("recorder_a").post(f"{url}acknowledge/"), 403, "permission_denied")
    assert_error(secretary.post(f"{url}reopen/", {"reason": "更正"}), 403, "permission_denied")
    reopened = post(staff, "reopen", {"reason": "发现记录错误，需更正"})
    assert reopened["state"] == "committee_review"
    assert PeriodLock.objects.filter(organization=ledger.branch, year=YEAR).count() == 0
    assert Acknowledgement.objects.count() == 1


def test_only_the_member_writes_their_self_assessment(api, ledger):
    cycle = _open(ledger)

    response = api("recorder_a").post(
        f"/api/v1/review-cycles/{cycle.pk}/self-assessment/", {"text": "代写"}, format="json"
    )

    body = assert_error(response, 403, "permission_denied")
    assert body["message"] == "只有本支部党员可以提交本人的自评。"
    assert SelfAssessment.objects.count() == 0


def test_a_general_meeting_with_more_voters_than_full_members_is_refused(api, ledger):
    cycle = drive_cycle(ledger, State.COMMITTEE_REVIEW)
    api("secretary_a").post(f"/api/v1/review-cycles/{cycle.pk}/start-general-meeting/")

    response = api("secretary_a").post(
        f"/api/v1/review-cycles/{cycle.pk}/general-meeting/",
        {
            "meeting_date": timezone.localdate().isoformat(),
            "voting_members": 9,
            "attendance": 9,
            "votes_for": 9,
            "votes_against": 0,
            "votes_abstain": 0,
        },
        format="json",
    )

    body = assert_error(response, 422, "refused")
    assert body["message"] == "有表决权党员人数（9）多于本支部正式党员人数（2）。"
    assert hasattr(ReviewCycle.objects.get(pk=cycle.pk), "general_meeting") is False


def test_appraisals_are_only_for_the_annual_review(api, ledger):
    cycle = drive_cycle(ledger, State.COMMITTEE_REVIEW)

    response = api("secretary_a").post(
        f"/api/v1/review-cycles/{cycle.pk}/appraisals/",
        {
            "ratings": [
                {
                    "member": ledger.members["member_a"].pk,
                    "democratic": "excellent",
                    "mass": "competent",
                }
            ]
        },
        format="json",
    )

    body = assert_error(response, 422, "refused")
    assert body["message"] == "张三：评议等次只在年度评议中录入。"


# --- every move and record × every role --------------------------------------------------------

ADVANCERS = {"superuser": 200, "secretary_a": 200}
MEMBERS_OF_A = {"member_a": 200, "secretary_a": 200}  # 李四 (secretary_a) is on A's roster
STAFF_ABOVE_A = {"superuser": 200, "committee_staff": 200, "general_staff": 200}


def _expected(allowed: dict[str, int]) -> dict[str, int]:
    """``allowed`` roles get their status; the others who see branch A 403, the rest 404."""
    return {
        role: allowed.get(role, 403 if role in SEES_A else 401 if role == "anonymous" else 404)
        for role in (*ROLES, "anonymous")
    }


def _snapshot(cycle: ReviewCycle) -> tuple:
    cycle = ReviewCycle.objects.get(pk=cycle.pk)
    meeting = getattr(cycle, "committee_meeting", None)
    general = getattr(cycle, "general_meeting", None)
    return (
        cycle.state,
        cycle.self_assessment_deadline,
        CycleEvent.objects.filter(cycle=cycle).count(),
        sorted(SelfAssessment.objects.filter(cycle=cycle).values_list("member_id", "text")),
        meeting.notes if meeting else None,
        sorted(cycle.agreements.values_list("member_id", "note")),
        general.attendance if general else None,
        cycle.acknowledgements.count(),
        PeriodLock.objects.filter(organization=cycle.organization).count(),
    )


def _today(days: int = 0) -> str:
    from datetime import timedelta

    return (timezone.localdate() + timedelta(days=days)).isoformat()


# action → (state the cycle is driven to, body, roles allowed and their status)
ACTIONS = {
    "deadline": (State.OPEN, lambda ledger: {"deadline": _today(1)}, ADVANCERS),
    "self-assessment": (
        State.SELF_ASSESSMENT,
        lambda ledger: {"text": "按时参加组织生活。"},
        MEMBERS_OF_A,
    ),
    "start-committee-review": (State.SELF_ASSESSMENT, lambda ledger: {}, ADVANCERS),
    "committee-meeting": (
        State.COMMITTEE_REVIEW,
        lambda ledger: {
            "meeting_date": _today(),
            "attendees": [ledger.members["secretary_a"].pk],
            "notes": "新纪要",
        },
        ADVANCERS,
    ),
    "agreements": (
        State.COMMITTEE_REVIEW,
        lambda ledger: {"agreements": [{"member": ledger.members["member_a"].pk, "note": "好"}]},
        ADVANCERS,
    ),
    # A quarter's review has no appraisals: those who may record them are told so (422).
    "appraisals": (
        State.COMMITTEE_REVIEW,
        lambda ledger: {
            "ratings": [
                {
                    "member": ledger.members["member_a"].pk,
                    "democratic": "excellent",
                    "mass": "basic",
                }
            ]
        },
        {"superuser": 422, "secretary_a": 422},
    ),
    "start-general-meeting": (State.COMMITTEE_REVIEW, lambda ledger: {}, ADVANCERS),
    "general-meeting": (
        State.GENERAL_MEETING,
        lambda ledger: {
            "meeting_date": _today(),
            "voting_members": 2,
            "attendance": 1,
            "votes_for": 1,
            "votes_against": 0,
            "votes_abstain": 0,
        },
        ADVANCERS,
    ),
    "start-publicity": (State.GENERAL_MEETING, lambda ledger: {}, ADVANCERS),
    "finalize": (State.PUBLICITY, lambda ledger: {}, ADVANCERS),
    "acknowledge": (State.FINALIZED, lambda ledger: {}, MEMBERS_OF_A),
    "reopen": (State.FINALIZED, lambda ledger: {"reason": "发现记录错误"}, STAFF_ABOVE_A),
}
MATRIX = [
    (name, role, status)
    for name, (_state_, _body, allowed) in ACTIONS.items()
    for role, status in _expected(allowed).items()
]


@pytest.mark.parametrize(("name", "role", "expected"), MATRIX)
def test_every_move_and_record_by_role(api, ledger, name, role, expected):
    state, body, _allowed = ACTIONS[name]
    cycle = drive_cycle(ledger, state)
    if state == State.PUBLICITY:
        end_window(cycle)
    before = _snapshot(cycle)

    response = api(role).post(
        f"/api/v1/review-cycles/{cycle.pk}/{name}/", body(ledger), format="json"
    )

    assert response.status_code == expected, response.json()
    if expected == 200:
        assert _snapshot(cycle) != before
    else:
        assert _snapshot(cycle) == before
