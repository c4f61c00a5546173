"""Exports through the API: create a job → 202 with its status URL → status with progress →
download; 409 while it is not ready or when the same export is already running; only the
requester, with the export right, sees and downloads it."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from scoring.models import ExportJob
from tests.api.conftest import YEAR, assert_error

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _ask(client, organization, **changes):
    return client.post(
        "/api/v1/exports/",
        {"kind": "annual_ranking", "organization": organization.pk, "year": YEAR, **changes},
        format="json",
    )


EXPORT = {
    "superuser": 202,
    "committee_staff": 202,
    "general_staff": 202,
    "secretary_a": 202,
    "recorder_a": 403,  # reads the ledger, exports nothing
    "discipline_a": 403,
    "member_a": 403,
    "secretary_b": 400,  # branch A is out of reach: "no such organization"
    "member_b": 400,
    "no_role": 400,
    "anonymous": 401,
}


@pytest.mark.parametrize(("role", "expected"), EXPORT.items())
def test_asking_for_an_export_by_role(api, ledger, role, expected):
    response = _ask(api(role), ledger.branch, status="done", rows_written=99)

    assert response.status_code == expected, response.json()
    if expected == 202:
        job = ExportJob.objects.get()
        assert response["Location"] == f"/api/v1/exports/{job.pk}/"
        body = response.json()
        assert (body["status"], body["percent"], body["download_url"]) == ("pending", 0, None)
        assert (job.status, job.rows_written, job.requested_by) == (
            "pending",
            0,
            ledger.users[role],
        )
    else:
        assert ExportJob.objects.count() == 0


def test_a_job_from_request_to_download(api, ledger, django_capture_on_commit_callbacks):
    client = api("committee_staff")

    with django_capture_on_commit_callbacks(execute=True):
        created = _ask(client, ledger.tree.committee)
    status = client.get(created["Location"])

    assert created.status_code == 202
    body = status.json()
    # 6 members on the ranking sheet and 3 branches on the summary sheet.
    assert (body["status"], body["percent"], body["rows_written"]) == ("done", 100, 9)
    assert body["title"] == f"测试党委 {YEAR} 年度党员积分排名"
    assert body["download_url"] == f"/api/v1/exports/{body['id']}/download/"
    download = client.get(body["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == XLSX
    workbook = load_workbook(io.BytesIO(b"".join(download.streaming_content)), read_only=True)
    cells = [cell for row in workbook.worksheets[0].iter_rows(values_only=True) for cell in row]
    assert cells.count("张三") == 1


def test_a_job_still_running_cannot_be_downloaded_yet(api, ledger):
    client = api("secretary_a")
    job_url = _ask(client, ledger.branch)["Location"]

    response = client.get(f"{job_url}download/")

    body = assert_error(response, 409, "export_not_ready")
    assert body["message"] == "导出仍在进行中（0%），完成后再下载。"
    assert response["Retry-After"] == "2"


def test_a_failed_job_says_why(api, ledger):
    client = api("secretary_a")
    job_url = _ask(client, ledger.branch)["Location"]
    ExportJob.objects.update(status="failed", error="生成文件时出错，导出失败。")

    response = client.get(f"{job_url}download/")

    assert assert_error(response, 409, "export_failed")["message"] == "生成文件时出错，导出失败。"


def test_the_same_export_is_not_started_twice(api, ledger):
    client = api("secretary_a")
    first = _ask(client, ledger.branch)

    again = _ask(client, ledger.branch)

    body = assert_error(again, 409, "export_running")
    assert body["message"].startswith("相同的导出（")
    assert again["Location"] == first["Location"]
    assert ExportJob.objects.count() == 1


def test_an_export_that_cannot_be_made_is_422_by_field(api, ledger):
    response = _ask(api("secretary_a"), ledger.branch, quarter=2)

    body = assert_error(response, 422, "refused")
    assert body["errors"] == {"quarter": ["年度积分排名不分季度，请选择“全年”。"]}
    assert ExportJob.objects.count() == 0


@pytest.mark.parametrize("role", ["secretary_b", "member_a", "committee_staff", "no_role"])
def test_only_the_requester_sees_and_downloads_a_job(api, ledger, role):
    job_url = _ask(api("secretary_a"), ledger.branch)["Location"]

    assert_error(api(role).get(job_url), 404, "not_found")
    assert_error(api(role).get(f"{job_url}download/"), 404, "not_found")
    assert api(role).get("/api/v1/exports/").json()["results"] == []


def test_jobs_are_listed_newest_first(api, ledger):
    client = api("committee_staff")
    _ask(client, ledger.tree.committee)
    _ask(client, ledger.branch, kind="branch_ledger")

    rows = client.get("/api/v1/exports/").json()["results"]

    assert [row["kind"] for row in rows] == ["branch_ledger", "annual_ranking"]
