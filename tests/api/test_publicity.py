"""Objections through the API: raise, recheck, accept, appeal, examine and rule — each by
every role (allowed / 403 / 404, a refused step changing nothing) — and an upheld objection
becoming a correction in the ledger."""

from __future__ import annotations

import pytest

from publicity import services as publicity
from publicity.models import Objection
from reviews.models import ReviewCycle
from scoring.models import Entry
from tests.api.conftest import ROLES, assert_error
from tests.publicity.conftest import drive_cycle

State = ReviewCycle.State


@pytest.fixture
def cycle(ledger) -> ReviewCycle:
    """Branch A's review of last year's Q4, in publicity from today."""
    return drive_cycle(ledger, State.PUBLICITY)


@pytest.fixture
def objection(ledger, cycle) -> Objection:
    """张三 (member_a) objects to his 讲微党课 +50."""
    return publicity.objection_raise(
        user=ledger.users["member_a"],
        cycle=cycle,
        text="这次微党课是两人合讲。",
        entry=ledger.a_lecture,
    )


def _state(objection: Objection) -> str:
    objection.refresh_from_db()
    return objection.state


RAISE = {
    "superuser": 403,  # not on the roster
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 403,  # a member of A, but the entry is 张三's
    "recorder_a": 403,
    "discipline_a": 403,
    "member_a": 201,
    "secretary_b": 400,  # the cycle is out of reach: "no such cycle"
    "member_b": 400,
    "no_role": 400,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), RAISE.items())
def test_raising_an_objection_by_role(api, ledger, cycle, role, expected):
    response = api(role).post(
        "/api/v1/objections/",
        {"cycle": cycle.pk, "entry": ledger.a_lecture.pk, "text": "有误", "state": "upheld"},
        format="json",
    )

    assert response.status_code == expected, response.json()
    if expected == 201:
        body = response.json()
        assert (body["state"], body["member_name"], body["entry"]) == (
            "raised",
            "张三",
            ledger.a_lecture.pk,
        )
    else:
        assert Objection.objects.count() == 0


def test_no_objection_before_the_scores_are_published(api, ledger):
    cycle = drive_cycle(ledger, State.GENERAL_MEETING)

    response = api("member_a").post(
        "/api/v1/objections/", {"cycle": cycle.pk, "text": "总分有误"}, format="json"
    )

    body = assert_error(response, 422, "window_closed")
    assert body["message"] == "本期积分尚未公示，暂不能提出异议。"
    assert Objection.objects.count() == 0


def test_an_objection_needs_its_text(api, ledger, cycle):
    response = api("member_a").post(
        "/api/v1/objections/", {"cycle": cycle.pk, "text": "  "}, format="json"
    )

    body = assert_error(response, 422, "text_required")
    assert body["errors"] == {"text": ["请填写异议内容。"]}


@pytest.mark.parametrize("role", ROLES)
def test_objections_are_seen_by_the_branch_officers_and_the_member(api, objection, role):
    listed = [row["id"] for row in api(role).get("/api/v1/objections/").json()["results"]]
    detail = api(role).get(f"/api/v1/objections/{objection.pk}/")

    sees = role in {
        "superuser",
        "committee_staff",
        "general_staff",
        "secretary_a",
        "recorder_a",
        "discipline_a",
        "member_a",
    }
    assert listed == ([objection.pk] if sees else [])
    if sees:
        assert detail.json()["text"] == "这次微党课是两人合讲。"
    else:
        assert_error(detail, 404, "not_found")


RECHECK = {
    "superuser": 200,
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 200,
    "recorder_a": 200,
    "discipline_a": 403,
    "member_a": 403,  # nobody rechecks their own objection
    "secretary_b": 404,
    "member_b": 404,
    "no_role": 404,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), RECHECK.items())
def test_rechecking_by_role(api, objection, role, expected):
    response = api(role).post(
        f"/api/v1/objections/{objection.pk}/recheck/",
        {"answer": "经核实，记录无误。", "uphold": False},
        format="json",
    )

    assert response.status_code == expected, response.json()
    if expected == 200:
        assert response.json()["state"] == "answered"
        assert _state(objection) == "answered"
    else:
        assert _state(objection) == "raised"


def test_an_upheld_recheck_corrects_the_ledger(api, ledger, objection):
    response = api("secretary_a").post(
        f"/api/v1/objections/{objection.pk}/recheck/",
        {
            "answer": "经核实为两人合讲，按研讨发言计分。",
            "uphold": True,
            "correction": {"rule": ledger.rules.speech.pk, "description": "合讲微党课"},
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "upheld"
    reversal = Entry.objects.get(pk=body["reversal_entry"])
    correction = Entry.objects.get(pk=body["correction_entry"])
    assert (reversal.reverses_id, reversal.points) == (
        ledger.a_lecture.pk,
        -ledger.a_lecture.points,
    )
    assert (correction.rule, correction.member) == (ledger.rules.speech, ledger.members["member_a"])


def test_the_recorder_cannot_uphold_what_needs_a_reversal(api, ledger, objection):
    before = Entry.objects.count()

    response = api("recorder_a").post(
        f"/api/v1/objections/{objection.pk}/recheck/",
        {"answer": "成立", "uphold": True},
        format="json",
    )

    body = assert_error(response, 403, "permission_denied")
    assert body["message"].startswith("认定这件异议成立需要冲销原积分记录，您没有冲销权限。")
    assert (_state(objection), Entry.objects.count()) == ("raised", before)


def _answered(ledger, objection) -> Objection:
    return publicity.objection_recheck(
        user=ledger.users["recorder_a"], objection=objection, answer="记录无误。", uphold=False
    )


def _only_member_a(expected_ok: int) -> dict:
    return {
        "superuser": 403,
        "committee_staff": 403,
        "general_staff": 403,
        "secretary_a": 403,
        "recorder_a": 403,
        "discipline_a": 403,
        "member_a": expected_ok,
        "secretary_b": 404,
        "member_b": 404,
        "no_role": 404,
        "anonymous": 401,
    }


@pytest.mark.parametrize(("role", "expected"), _only_member_a(200).items())
def test_appealing_by_role(api, ledger, objection, role, expected):
    _answered(ledger, objection)

    response = api(role).post(
        f"/api/v1/objections/{objection.pk}/appeal/", {"text": "我仍有异议。"}, format="json"
    )

    assert response.status_code == expected, response.json()
    assert _state(objection) == ("appealed" if expected == 200 else "answered")


@pytest.mark.parametrize(("role", "expected"), _only_member_a(200).items())
def test_accepting_by_role(api, ledger, objection, role, expected):
    _answered(ledger, objection)

    response = api(role).post(f"/api/v1/objections/{objection.pk}/accept/")

    assert response.status_code == expected, response.json()
    assert _state(objection) == ("accepted" if expected == 200 else "answered")


def _appealed(ledger, objection) -> Objection:
    _answered(ledger, objection)
    return publicity.objection_appeal(
        user=ledger.users["member_a"], objection=objection, text="我仍有异议。"
    )


EXAMINE = {
    "superuser": 200,
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 403,
    "recorder_a": 403,
    "discipline_a": 200,
    "member_a": 403,
    "secretary_b": 404,
    "member_b": 404,
    "no_role": 404,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), EXAMINE.items())
def test_examining_an_appeal_by_role(api, ledger, objection, role, expected):
    _appealed(ledger, objection)

    response = api(role).post(
        f"/api/v1/objections/{objection.pk}/examine/",
        {"opinion": "建议支委会复议。"},
        format="json",
    )

    assert response.status_code == expected, response.json()
    assert _state(objection) == ("forwarded" if expected == 200 else "appealed")


RULE = {**EXAMINE, "secretary_a": 200, "discipline_a": 403}


@pytest.mark.parametrize(("role", "expected"), RULE.items())
def test_ruling_by_role(api, ledger, objection, role, expected):
    _appealed(ledger, objection)
    publicity.objection_examine(
        user=ledger.users["discipline_a"], objection=objection, opinion="建议支委会复议。"
    )

    response = api(role).post(
        f"/api/v1/objections/{objection.pk}/rule/",
        {"uphold": False, "reason": "支委会认定记录无误。"},
        format="json",
    )

    assert response.status_code == expected, response.json()
    assert _state(objection) == ("rejected" if expected == 200 else "forwarded")


def test_a_step_out_of_order_is_refused(api, objection):
    response = api("discipline_a").post(
        f"/api/v1/objections/{objection.pk}/examine/", {"opinion": "x"}, format="json"
    )

    body = assert_error(response, 422, "wrong_state")
    assert body["message"] == "这件异议目前为“待复核”，不能审查。请刷新页面查看最新情况。"
    assert _state(objection) == "raised"


def test_dismissing_with_a_correction_is_refused(api, ledger, objection):
    response = api("secretary_a").post(
        f"/api/v1/objections/{objection.pk}/recheck/",
        {
            "answer": "维持",
            "uphold": False,
            "correction": {"rule": ledger.rules.speech.pk, "description": "x"},
        },
        format="json",
    )

    body = assert_error(response, 422, "correction_not_upheld")
    assert list(body["errors"]) == ["correction"]
    assert _state(objection) == "raised"


def test_the_history_of_an_objection_cannot_be_written(api, objection):
    response = api("superuser").patch(
        f"/api/v1/objections/{objection.pk}/", {"state": "upheld"}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    assert _state(objection) == "raised"
