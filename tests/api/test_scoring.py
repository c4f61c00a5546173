"""Schemes, rules, the ledger, declarations and period scores through the API: every
endpoint × role (allowed / forbidden 403 / out of reach 404, a refused write changing
nothing), the business rules of the pages (locked periods, separation of duties, caps, veto
vote) and the fields only a process may set."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reviews.models import ReviewCycle
from scoring.models import Declaration, Entry, EvidenceFile, PeriodLock, PeriodScore, VetoVote
from tests.api.conftest import QUARTER, ROLES, YEAR, assert_error, declare, in_quarter
from tests.publicity.conftest import drive_cycle

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

# Who sees which of the ledger's entries (by member name).
VISIBLE_ENTRIES = {
    "superuser": ["张三", "王芳", "赵六"],
    "committee_staff": ["张三", "王芳", "赵六"],
    "general_staff": ["张三", "王芳", "赵六"],
    "secretary_a": ["张三", "王芳"],
    "recorder_a": ["张三", "王芳"],
    "discipline_a": ["张三", "王芳"],
    "member_a": ["张三"],
    "secretary_b": ["赵六"],
    "member_b": ["赵六"],
    "no_role": [],
}


def results(response) -> list[dict]:
    assert response.status_code == 200, response.json()
    return response.json()["results"]


# --- schemes and rules --------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_schemes_and_rules_are_those_of_the_users_organizations(api, ledger, role):
    client = api(role)

    schemes = results(client.get("/api/v1/schemes/"))
    rules = results(client.get("/api/v1/rules/", {"scheme": ledger.scheme.pk}))

    if role == "no_role":
        assert (schemes, rules) == ([], [])
        assert_error(client.get(f"/api/v1/schemes/{ledger.scheme.pk}/"), 404, "not_found")
    else:
        assert [scheme["name"] for scheme in schemes] == ["五星积分细则"]
        assert schemes[0]["base_score"] == "100.00"
        assert [band["label"] for band in schemes[0]["bands"] if band["dimension"] == "star"] == [
            "五星",
            "四星",
            "三星",
            "二星",
            "一星",
        ]
        assert len(rules) == 10
        detail = client.get(f"/api/v1/rules/{ledger.rules.volunteer.pk}/").json()
        assert (detail["points_min"], detail["points_max"]) == ("1.00", "10.00")


def test_rules_filter_by_declarable(api, ledger):
    rules = results(api("member_a").get("/api/v1/rules/", {"self_declarable": "true"}))

    assert [rule["code"] for rule in rules] == ["B01", "B03", "B05"]


def test_a_scheme_cannot_be_changed_through_the_api(api, ledger):
    response = api("committee_staff").patch(
        f"/api/v1/schemes/{ledger.scheme.pk}/", {"base_score": "60"}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    ledger.scheme.refresh_from_db()
    assert ledger.scheme.base_score == Decimal("100.00")


# --- reading the ledger -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_entries_listed_are_those_the_role_may_read(api, ledger, role):
    rows = results(api(role).get("/api/v1/entries/"))

    assert sorted(row["member_name"] for row in rows) == sorted(VISIBLE_ENTRIES[role])


@pytest.mark.parametrize("role", ROLES)
def test_an_entry_out_of_reach_is_404(api, ledger, role):
    response = api(role).get(f"/api/v1/entries/{ledger.a_lecture.pk}/")

    if "张三" in VISIBLE_ENTRIES[role]:
        assert response.status_code == 200
        body = response.json()
        assert (body["points"], body["kind"], body["rule_name"]) == ("50.00", "bonus", "讲微党课")
        assert body["recorded_by"]["name"] == "secretary_a"
    else:
        assert_error(response, 404, "not_found")


def test_entries_filter_by_organization_member_and_period(api, ledger):
    client = api("committee_staff")
    tree = ledger.tree

    by_branch = results(client.get("/api/v1/entries/", {"organization": tree.branch_b.pk}))
    by_member = results(client.get("/api/v1/entries/", {"member": ledger.members["other_a"].pk}))
    other_year = results(client.get("/api/v1/entries/", {"year": YEAR - 1}))
    in_quarter_four = results(client.get("/api/v1/entries/", {"year": YEAR, "quarter": QUARTER}))

    assert [row["member_name"] for row in by_branch] == ["赵六"]
    assert [row["member_name"] for row in by_member] == ["王芳"]
    assert other_year == []
    assert len(in_quarter_four) == 3


# --- recording --------------------------------------------------------------------------------

# role → status of recording a speech for 张三 (member_a) of branch A.
RECORD = {
    "superuser": 201,
    "committee_staff": 403,  # sees the member, may not record
    "general_staff": 403,
    "secretary_a": 201,
    "recorder_a": 201,
    "discipline_a": 403,
    "member_a": 403,  # their own record: visible, but members do not record
    "secretary_b": 400,  # 张三 is out of reach: "no such member"
    "member_b": 400,
    "no_role": 400,
    "anonymous": 401,
}


def _record_body(ledger, **changes) -> dict:
    return {
        "member": ledger.members["member_a"].pk,
        "rule": ledger.rules.speech.pk,
        "occurred_on": in_quarter(3, 5).isoformat(),
        "description": "支部研讨会发言",
        **changes,
    }


@pytest.mark.parametrize(("role", "expected"), RECORD.items())
def test_recording_an_entry_by_role(api, ledger, role, expected):
    before = Entry.objects.count()

    response = api(role).post("/api/v1/entries/", _record_body(ledger), format="json")

    assert response.status_code == expected, response.json()
    if expected == 201:
        body = response.json()
        assert (body["member_name"], body["points"], body["kind"]) == ("张三", "5.00", "bonus")
        assert response["Location"] == f"/api/v1/entries/{body['id']}/"
        assert Entry.objects.count() == before + 1
    else:
        assert Entry.objects.count() == before
    if expected == 400:
        body = assert_error(response, 400, "invalid")
        assert body["errors"]["member"] == [
            f"无效主键 “{ledger.members['member_a'].pk}” － 对象不存在。"
        ]
    if expected == 403:
        assert_error(response, 403, "permission_denied")


def test_a_recording_the_service_refuses_is_422_with_its_reason_and_changes_nothing(api, ledger):
    before = Entry.objects.count()

    response = api("secretary_a").post(
        "/api/v1/entries/",
        _record_body(ledger, rule=ledger.rules.task.pk, points="-20"),
        format="json",
    )

    body = assert_error(response, 422, "points_out_of_range")
    assert body["errors"] == {"points": ["分值 -20 超出细则项“未完成支部任务”的范围 -10 ~ -2。"]}
    assert body["message"] == "分值 -20 超出细则项“未完成支部任务”的范围 -10 ~ -2。"
    assert Entry.objects.count() == before


def test_a_locked_period_refuses_the_entry(api, ledger):
    PeriodLock.objects.create(organization=ledger.branch, year=YEAR, quarter=QUARTER)
    before = Entry.objects.count()

    response = api("secretary_a").post("/api/v1/entries/", _record_body(ledger), format="json")

    body = assert_error(response, 422, "period_locked")
    assert list(body["errors"]) == ["occurred_on"]
    assert Entry.objects.count() == before


def test_a_veto_rule_cannot_be_recorded_as_a_plain_entry(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/", _record_body(ledger, rule=ledger.rules.veto.pk), format="json"
    )

    assert_error(response, 422, "veto_needs_vote")
    assert Entry.objects.filter(kind=Entry.Kind.VETO).count() == 0


def test_fields_only_a_process_sets_cannot_be_written_when_recording(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/",
        _record_body(
            ledger,
            organization=ledger.tree.branch_b.pk,
            kind="deduction",
            year=2001,
            quarter=1,
            recorded_by=ledger.users["member_b"].pk,
            approved_by=ledger.users["member_b"].pk,
            reverses=ledger.b_speech.pk,
            rule_version=9,
            scheme_version=9,
        ),
        format="json",
    )

    assert response.status_code == 201
    entry = Entry.objects.get(pk=response.json()["id"])
    assert entry.organization_id == ledger.branch.pk
    assert (entry.kind, entry.year, entry.quarter) == ("bonus", YEAR, QUARTER)
    assert entry.recorded_by == ledger.users["secretary_a"]
    assert (entry.approved_by, entry.reverses) == (None, None)
    assert (entry.rule_version, entry.scheme_version) == (1, 1)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_the_ledger_is_never_edited_through_the_api(api, ledger, method):
    entry = ledger.a_lecture

    response = getattr(api("secretary_a"), method)(
        f"/api/v1/entries/{entry.pk}/", {"points": "1", "organization": 1}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    entry.refresh_from_db()
    assert (entry.points, entry.organization_id) == (Decimal("50.00"), ledger.branch.pk)


# --- caps -------------------------------------------------------------------------------------


def test_entries_past_a_cap_stay_in_the_ledger_but_do_not_count(
    api, ledger, django_capture_on_commit_callbacks
):
    client = api("secretary_a")
    body = _record_body(ledger, member=ledger.members["secretary_a"].pk)

    with django_capture_on_commit_callbacks(execute=True):
        statuses = [
            client.post("/api/v1/entries/", body, format="json").status_code for _ in range(3)
        ]

    assert statuses == [201, 201, 201]
    score = PeriodScore.objects.get(member=ledger.members["secretary_a"], year=YEAR, quarter=4)
    assert (score.bonus, score.uncounted_points) == (Decimal("10.00"), Decimal("5.00"))
    shown = api("secretary_a").get(f"/api/v1/period-scores/{score.pk}/").json()
    assert (shown["bonus"], shown["uncounted_points"], shown["total"]) == (
        "10.00",
        "5.00",
        "110.00",
    )


# --- veto -------------------------------------------------------------------------------------

VETO = {
    "superuser": 201,
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 201,
    "recorder_a": 403,  # records points, but a veto needs a branch leader
    "discipline_a": 403,
    "member_a": 403,
    "secretary_b": 400,
    "member_b": 400,
    "no_role": 400,
    "anonymous": 401,
}


def _veto_body(ledger, **changes) -> dict:
    return {
        "member": ledger.members["member_a"].pk,
        "rule": ledger.rules.veto.pk,
        "occurred_on": in_quarter(3, 1).isoformat(),
        "description": "受到党纪处分",
        "meeting_date": in_quarter(3, 10).isoformat(),
        "voting_members": 9,
        "attendance": 8,
        "votes_for": 6,
        "votes_against": 1,
        "votes_abstain": 1,
        **changes,
    }


@pytest.mark.parametrize(("role", "expected"), VETO.items())
def test_recording_a_veto_by_role(api, ledger, role, expected, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(role).post("/api/v1/entries/veto/", _veto_body(ledger), format="json")

    assert response.status_code == expected, response.json()
    assert Entry.objects.filter(kind=Entry.Kind.VETO).count() == (1 if expected == 201 else 0)
    if expected == 201:
        assert response.json()["veto_vote"]["votes_for"] == 6
        score = PeriodScore.objects.get(member=ledger.members["member_a"], year=YEAR, quarter=0)
        assert (score.is_vetoed, score.total) == (True, Decimal("0.00"))


def test_a_veto_vote_that_does_not_pass_writes_nothing(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/veto/", _veto_body(ledger, votes_for=4, votes_against=3), format="json"
    )

    body = assert_error(response, 422, "vote_failed")
    assert body["message"] == "表决未通过：赞成 4 票，未超过实到 8 人的半数，不予认定一票否决。"
    assert (Entry.objects.filter(kind="veto").count(), VetoVote.objects.count()) == (0, 0)


def test_a_vote_count_out_of_range_is_a_field_error(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/veto/", _veto_body(ledger, attendance=10**12), format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert list(body["errors"]) == ["attendance"]


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_records_one_entry_each_and_says_who_was_skipped(api, ledger):
    members = ledger.members
    response = api("recorder_a").post(
        "/api/v1/entries/bulk/",
        {
            "organization": ledger.branch.pk,
            "rule": ledger.rules.cadre_only.pk,
            "members": [members["member_a"].pk, members["secretary_a"].pk],
            "occurred_on": in_quarter(3, 2).isoformat(),
            "description": "领学党章",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert [row["member_name"] for row in body["entries"]] == ["李四"]
    assert [(row["member_name"], row["reason"]) for row in body["skipped"]] == [
        ("张三", "细则项“领学”不适用于张三（正式党员）。")
    ]


def test_bulk_that_records_nobody_is_422(api, ledger):
    before = Entry.objects.count()

    response = api("recorder_a").post(
        "/api/v1/entries/bulk/",
        {
            "organization": ledger.branch.pk,
            "rule": ledger.rules.cadre_only.pk,
            "members": [ledger.members["member_a"].pk],
            "occurred_on": in_quarter(3, 2).isoformat(),
            "description": "领学党章",
        },
        format="json",
    )

    body = assert_error(response, 422, "nothing_recorded")
    assert body["errors"]["members"][0] == "没有为任何党员记录积分。"
    assert Entry.objects.count() == before


@pytest.mark.parametrize(("role", "expected"), [("member_a", 403), ("secretary_b", 400)])
def test_bulk_by_a_role_that_may_not_record_there(api, ledger, role, expected):
    before = Entry.objects.count()

    response = api(role).post(
        "/api/v1/entries/bulk/",
        {
            "organization": ledger.branch.pk,
            "rule": ledger.rules.speech.pk,
            "members": [ledger.members["member_a"].pk],
            "occurred_on": in_quarter(3, 2).isoformat(),
            "description": "研讨",
        },
        format="json",
    )

    assert response.status_code == expected
    assert Entry.objects.count() == before


# --- reversing --------------------------------------------------------------------------------

REVERSE = {
    "superuser": 201,
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 201,
    "recorder_a": 403,
    "discipline_a": 403,
    "member_a": 403,  # their own entry: visible, not theirs to reverse
    "secretary_b": 404,
    "member_b": 404,
    "no_role": 404,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), REVERSE.items())
def test_reversing_an_entry_by_role(api, ledger, role, expected):
    entry = ledger.a_lecture
    before = Entry.objects.count()

    response = api(role).post(
        f"/api/v1/entries/{entry.pk}/reverse/", {"reason": "记录有误"}, format="json"
    )

    assert response.status_code == expected, response.json()
    if expected == 201:
        body = response.json()
        assert (body["points"], body["reverses"], body["reason"]) == (
            "-50.00",
            entry.pk,
            "记录有误",
        )
        assert (
            api("secretary_a").get(f"/api/v1/entries/{entry.pk}/").json()["reversed_by"]
            == (body["id"])
        )
        assert Entry.objects.count() == before + 1
    else:
        assert Entry.objects.count() == before
        assert Entry.objects.filter(reverses=entry).count() == 0


def test_an_entry_is_reversed_at_most_once(api, ledger):
    client = api("secretary_a")
    url = f"/api/v1/entries/{ledger.a_lecture.pk}/reverse/"
    assert client.post(url, {"reason": "记录有误"}, format="json").status_code == 201

    response = client.post(url, {"reason": "再冲一次"}, format="json")

    assert_error(response, 422, "already_reversed")
    assert Entry.objects.filter(reverses=ledger.a_lecture).count() == 1


def test_a_reversal_needs_a_reason(api, ledger):
    response = api("secretary_a").post(
        f"/api/v1/entries/{ledger.a_lecture.pk}/reverse/", {"reason": " "}, format="json"
    )

    body = assert_error(response, 422, "reason_required")
    assert body["errors"] == {"reason": ["请填写冲销原因。"]}


# --- declarations -----------------------------------------------------------------------------

DECLARE = {
    "superuser": 403,  # no roster entry: nobody to declare for
    "committee_staff": 403,
    "general_staff": 403,
    "secretary_a": 201,  # 李四 is on branch A's roster
    "recorder_a": 403,
    "discipline_a": 403,
    "member_a": 201,
    "secretary_b": 201,
    "member_b": 201,
    "no_role": 403,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), DECLARE.items())
def test_declaring_by_role(api, ledger, role, expected):
    before = Declaration.objects.count()

    response = api(role).post(
        "/api/v1/declarations/",
        {
            "rule": ledger.rules.suggestion.pk,
            "occurred_on": in_quarter(3, 1).isoformat(),
            "description": "提出合理化建议",
        },
        format="json",
    )

    assert response.status_code == expected, response.json()
    if expected == 201:
        body = response.json()
        assert (body["status"], body["points"], body["entry"]) == ("pending", "10.00", None)
        assert Declaration.objects.get(pk=body["id"]).member.user == ledger.users[role]
    else:
        assert Declaration.objects.count() == before


def test_declaring_with_evidence_files(api, ledger):
    response = api("member_a").post(
        "/api/v1/declarations/",
        {
            "rule": ledger.rules.volunteer.pk,
            "points": "6",
            "occurred_on": in_quarter(3, 1).isoformat(),
            "description": "社区志愿服务",
            "evidence": [SimpleUploadedFile("签到表.png", PNG, content_type="image/png")],
        },
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    evidence = response.json()["evidence"]
    assert [(row["original_name"], row["content_type"]) for row in evidence] == [
        ("签到表.png", "image/png")
    ]
    assert EvidenceFile.objects.count() == 1


def test_evidence_that_is_not_an_image_or_pdf_is_refused(api, ledger):
    response = api("member_a").post(
        "/api/v1/declarations/",
        {
            "rule": ledger.rules.volunteer.pk,
            "points": "6",
            "occurred_on": in_quarter(3, 1).isoformat(),
            "description": "社区志愿服务",
            "evidence": [SimpleUploadedFile("x.exe", b"MZ" + b"\x00" * 30)],
        },
        format="multipart",
    )

    body = assert_error(response, 422, "refused")
    assert (
        body["message"] == "佐证文件“x.exe”不是可接受的类型，请上传JPG、PNG、GIF 图片或 PDF 文件。"
    )
    assert (Declaration.objects.count(), EvidenceFile.objects.count()) == (0, 0)


def test_a_deduction_cannot_be_declared(api, ledger):
    response = api("member_a").post(
        "/api/v1/declarations/",
        {
            "rule": ledger.rules.task.pk,
            "points": "-2",
            "occurred_on": in_quarter(3, 1).isoformat(),
            "description": "x",
        },
        format="json",
    )

    body = assert_error(response, 422, "not_declarable")
    assert list(body["errors"]) == ["rule"]
    assert Declaration.objects.count() == 0


def test_fields_only_a_process_sets_cannot_be_written_when_declaring(api, ledger):
    response = api("member_a").post(
        "/api/v1/declarations/",
        {
            "rule": ledger.rules.suggestion.pk,
            "occurred_on": in_quarter(3, 1).isoformat(),
            "description": "提出合理化建议",
            "status": "approved",
            "member": ledger.members["other_a"].pk,
            "decided_by": ledger.users["secretary_a"].pk,
            "points": "10",
        },
        format="json",
    )

    assert response.status_code == 201
    declaration = Declaration.objects.get(pk=response.json()["id"])
    assert (declaration.status, declaration.member, declaration.decided_by) == (
        "pending",
        ledger.members["member_a"],
        None,
    )


# role → status of approving 张三's (member_a) declaration.
APPROVE = {
    "superuser": 201,
    "committee_staff": 403,  # reads the ledger, does not decide
    "general_staff": 403,
    "secretary_a": 201,
    "recorder_a": 403,
    "discipline_a": 201,  # on the branch committee
    "member_a": 403,  # their own declaration
    "secretary_b": 404,
    "member_b": 404,
    "no_role": 404,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), APPROVE.items())
def test_approving_a_declaration_by_role(api, ledger, role, expected):
    declaration = declare(ledger, "member_a")
    before = Entry.objects.count()

    response = api(role).post(f"/api/v1/declarations/{declaration.pk}/approve/", {}, format="json")

    assert response.status_code == expected, response.json()
    declaration.refresh_from_db()
    if expected == 201:
        body = response.json()
        assert (body["points"], body["declaration"]) == ("10.00", declaration.pk)
        assert body["approved_by"]["id"] == ledger.users[role].pk
        assert declaration.status == "approved"
        assert Entry.objects.count() == before + 1
    else:
        assert declaration.status == "pending"
        assert Entry.objects.count() == before


def test_nobody_approves_their_own_declaration(api, ledger):
    declaration = declare(ledger, "secretary_a")

    response = api("secretary_a").post(f"/api/v1/declarations/{declaration.pk}/approve/")

    body = assert_error(response, 403, "permission_denied")
    assert body["message"] == "不能审核本人的申报。"
    declaration.refresh_from_db()
    assert declaration.status == "pending"


def test_a_declaration_is_decided_once(api, ledger):
    declaration = declare(ledger, "member_a")
    client = api("secretary_a")
    assert client.post(f"/api/v1/declarations/{declaration.pk}/approve/").status_code == 201

    response = client.post(f"/api/v1/declarations/{declaration.pk}/reject/", {"reason": "重复"})

    assert_error(response, 422, "already_decided")
    assert Entry.objects.filter(declaration=declaration).count() == 1


def test_adjusting_writes_the_adjusted_points_with_the_reason(api, ledger):
    declaration = declare(ledger, "member_a", rule=ledger.rules.volunteer, points="8")

    response = api("secretary_a").post(
        f"/api/v1/declarations/{declaration.pk}/adjust/",
        {"points": "5", "reason": "服务时长不足"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert response.json()["points"] == "5.00"
    assert response.json()["reason"] == "审核调整：申报 +8 分，核定 +5 分。服务时长不足"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"points": "5", "reason": ""}, "reason_required", "reason"),
        ({"points": "50", "reason": "x"}, "points_out_of_range", "points"),
    ],
)
def test_an_adjustment_the_rules_refuse_changes_nothing(api, ledger, body, code, field):
    declaration = declare(ledger, "member_a", rule=ledger.rules.volunteer, points="8")

    response = api("secretary_a").post(
        f"/api/v1/declarations/{declaration.pk}/adjust/", body, format="json"
    )

    assert list(assert_error(response, 422, code)["errors"]) == [field]
    declaration.refresh_from_db()
    assert declaration.status == "pending"
    assert Entry.objects.filter(declaration=declaration).count() == 0


def test_an_adjustment_without_points_is_a_field_error(api, ledger):
    declaration = declare(ledger, "member_a", rule=ledger.rules.volunteer, points="8")

    response = api("secretary_a").post(
        f"/api/v1/declarations/{declaration.pk}/adjust/", {"reason": "x"}, format="json"
    )

    assert assert_error(response, 400, "invalid")["errors"] == {"points": ["该字段是必填项。"]}


@pytest.mark.parametrize(("role", "expected"), APPROVE.items())
def test_rejecting_a_declaration_by_role(api, ledger, role, expected):
    declaration = declare(ledger, "member_a")
    expected = 200 if expected == 201 else expected

    response = api(role).post(
        f"/api/v1/declarations/{declaration.pk}/reject/", {"reason": "不符合条件"}, format="json"
    )

    assert response.status_code == expected, response.json()
    declaration.refresh_from_db()
    if expected == 200:
        assert response.json()["status"] == "rejected"
        assert (declaration.status, declaration.decision_reason) == ("rejected", "不符合条件")
    else:
        assert declaration.status == "pending"
    assert Entry.objects.filter(declaration=declaration).count() == 0


def test_declarations_listed_are_those_the_role_may_read(api, ledger):
    declare(ledger, "member_a")
    declare(ledger, "member_b")

    def members_of(role: str) -> list[str]:
        return sorted(row["member_name"] for row in results(api(role).get("/api/v1/declarations/")))

    assert members_of("secretary_a") == ["张三"]
    assert members_of("member_a") == ["张三"]
    assert members_of("member_b") == ["赵六"]
    assert members_of("committee_staff") == ["张三", "赵六"]
    assert members_of("no_role") == []


def test_a_decision_cannot_be_written_straight_onto_the_declaration(api, ledger):
    declaration = declare(ledger, "member_a")

    response = api("secretary_a").patch(
        f"/api/v1/declarations/{declaration.pk}/", {"status": "approved"}, format="json"
    )

    assert_error(response, 405, "method_not_allowed")
    declaration.refresh_from_db()
    assert declaration.status == "pending"


# --- period scores and rankings ---------------------------------------------------------------


def test_rankings_are_ordered_by_rank_and_filtered(api, ledger):
    client = api("committee_staff")

    annual = results(client.get("/api/v1/period-scores/", {"year": YEAR, "quarter": 0}))
    party_in_a = results(
        client.get(
            "/api/v1/period-scores/",
            {"year": YEAR, "quarter": 0, "organization": ledger.branch.pk, "category": "full"},
        )
    )

    assert [(row["member_name"], row["total"], row["rank_in_committee"]) for row in annual] == [
        ("张三", "150.00", 1),
        ("赵六", "105.00", 2),  # ties share a rank; then the branch rank decides the order
        ("王芳", "105.00", 2),
        ("钱七", "100.00", 4),
        ("李四", "100.00", 4),
        ("孙八", "100.00", None),  # exempt: not ranked, last
    ]
    assert [row["member_name"] for row in party_in_a] == ["张三", "李四"]


def test_rankings_are_paginated(api, ledger):
    response = api("committee_staff").get(
        "/api/v1/period-scores/", {"year": YEAR, "quarter": 0, "page_size": 2, "page": 2}
    )

    body = response.json()
    assert (body["count"], len(body["results"])) == (6, 2)
    assert [row["member_name"] for row in body["results"]] == ["王芳", "钱七"]
    assert_error(
        api("committee_staff").get("/api/v1/period-scores/", {"page": 99}), 404, "not_found"
    )


def test_a_member_sees_only_their_own_score_and_no_rank_before_publicity(api, ledger):
    rows = results(api("member_a").get("/api/v1/period-scores/", {"year": YEAR, "quarter": 0}))

    assert len(rows) == 1
    row = rows[0]
    assert (row["member_name"], row["total"], row["star"]) == ("张三", "150.00", "五星")
    assert (row["ranks_published"], row["rank_in_branch"], row["grade"]) == (False, None, None)


def test_officers_see_ranks_at_once(api, ledger):
    rows = results(api("secretary_a").get("/api/v1/period-scores/", {"year": YEAR, "quarter": 0}))

    assert [(row["member_name"], row["rank_in_branch"], row["grade"]) for row in rows] == [
        ("张三", 1, "优秀"),
        ("王芳", 2, "合格"),
        ("李四", 3, "合格"),
    ]


@pytest.mark.parametrize("role", ["member_b", "secretary_b", "no_role"])
def test_a_score_out_of_reach_is_404(api, ledger, role):
    score = PeriodScore.objects.get(member=ledger.members["member_a"], year=YEAR, quarter=0)

    assert_error(api(role).get(f"/api/v1/period-scores/{score.pk}/"), 404, "not_found")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_totals_ranks_and_veto_cannot_be_written(api, ledger, method):
    score = PeriodScore.objects.get(member=ledger.members["member_a"], year=YEAR, quarter=0)
    before = (score.total, score.rank_in_branch, score.is_vetoed, score.grade)

    response = getattr(api("superuser"), method)(
        f"/api/v1/period-scores/{score.pk}/",
        {"total": "999", "rank_in_branch": 9, "is_vetoed": True, "grade": "不合格"},
        format="json",
    )

    assert_error(response, 405, "method_not_allowed")
    score.refresh_from_db()
    assert (score.total, score.rank_in_branch, score.is_vetoed, score.grade) == before


# --- the remaining endpoints × every role ----------------------------------------------------


@pytest.mark.parametrize(("role", "expected"), RECORD.items())
def test_bulk_recording_by_role(api, ledger, role, expected):
    before = Entry.objects.count()

    response = api(role).post(
        "/api/v1/entries/bulk/",
        {
            "organization": ledger.branch.pk,
            "rule": ledger.rules.speech.pk,
            "members": [ledger.members["member_a"].pk],
            "occurred_on": in_quarter(3, 2).isoformat(),
            "description": "研讨",
        },
        format="json",
    )

    assert response.status_code == expected, response.json()
    assert Entry.objects.count() == before + (1 if expected == 201 else 0)
    if expected == 400:
        assert "organization" in assert_error(response, 400, "invalid")["errors"]


@pytest.mark.parametrize(("role", "expected"), APPROVE.items())
def test_adjusting_by_role(api, ledger, role, expected):
    declaration = declare(ledger, "member_a", rule=ledger.rules.volunteer, points="8")

    response = api(role).post(
        f"/api/v1/declarations/{declaration.pk}/adjust/",
        {"points": "5", "reason": "时长不足"},
        format="json",
    )

    assert response.status_code == expected, response.json()
    declaration.refresh_from_db()
    assert declaration.status == ("approved" if expected == 201 else "pending")
    assert Entry.objects.filter(declaration=declaration).count() == (1 if expected == 201 else 0)


SEES_A_DECLARATIONS = {
    "superuser",
    "committee_staff",
    "general_staff",
    "secretary_a",
    "recorder_a",
    "discipline_a",
    "member_a",
}


@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_a_declaration_out_of_reach_is_404(api, ledger, role):
    declaration = declare(ledger, "member_a")

    response = api(role).get(f"/api/v1/declarations/{declaration.pk}/")

    if role == "anonymous":
        assert_error(response, 401, "not_authenticated")
    elif role in SEES_A_DECLARATIONS:
        assert response.json()["description"] == "提出合理化建议"
    else:
        assert_error(response, 404, "not_found")


ANNUAL_SCORES = {
    "superuser": ["张三", "赵六", "王芳", "钱七", "李四", "孙八"],
    "committee_staff": ["张三", "赵六", "王芳", "钱七", "李四", "孙八"],
    "general_staff": ["张三", "赵六", "王芳", "钱七", "李四"],
    "secretary_a": ["张三", "王芳", "李四"],
    "recorder_a": ["张三", "王芳", "李四"],
    "discipline_a": ["张三", "王芳", "李四"],
    "member_a": ["张三"],
    "secretary_b": ["赵六", "钱七"],
    "member_b": ["赵六"],
    "no_role": [],
}


@pytest.mark.parametrize("role", ROLES)
def test_period_scores_listed_are_those_the_role_may_read(api, ledger, role):
    rows = results(api(role).get("/api/v1/period-scores/", {"year": YEAR, "quarter": 0}))

    assert [row["member_name"] for row in rows] == ANNUAL_SCORES[role]


def test_anonymous_reads_no_scores(api, ledger):
    assert_error(api("anonymous").get("/api/v1/period-scores/"), 401, "not_authenticated")


def test_a_member_sees_the_rank_of_a_period_once_its_review_is_published(api, ledger):
    drive_cycle(ledger, ReviewCycle.State.PUBLICITY)  # last year's Q4

    quarter = results(api("member_a").get("/api/v1/period-scores/", {"year": YEAR, "quarter": 4}))
    annual = results(api("member_a").get("/api/v1/period-scores/", {"year": YEAR, "quarter": 0}))

    assert [(row["ranks_published"], row["rank_in_branch"]) for row in quarter] == [(True, 1)]
    assert [(row["ranks_published"], row["rank_in_branch"]) for row in annual] == [(False, None)]
