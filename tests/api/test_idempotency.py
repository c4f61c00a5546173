"""``Idempotency-Key``: a retried POST creates one object and gets the first answer — also
when the two requests arrive at the same time (on the real PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from members.models import IdempotencyKey
from members.tasks import purge_idempotency_keys_task
from scoring.models import Declaration, Entry, EvidenceFile, PeriodLock
from tests.api.conftest import QUARTER, YEAR, assert_error, in_quarter, token_client
from tests.factories import UserFactory

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _entry(ledger, **changes) -> dict:
    return {
        "member": ledger.members["member_a"].pk,
        "rule": ledger.rules.speech.pk,
        "occurred_on": in_quarter(3, 5).isoformat(),
        "description": "支部研讨会发言",
        **changes,
    }


def test_a_retry_with_the_same_key_creates_one_entry_and_replays_the_answer(api, ledger):
    client = api("secretary_a")
    before = Entry.objects.count()

    first = client.post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = client.post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert first.has_header("Idempotent-Replayed") is False
    assert Entry.objects.count() == before + 1


def test_without_a_key_every_post_is_carried_out(api, ledger):
    client = api("secretary_a")
    before = Entry.objects.count()

    statuses = [
        client.post("/api/v1/entries/", _entry(ledger), format="json").status_code for _ in range(2)
    ]

    assert statuses == [201, 201]
    assert Entry.objects.count() == before + 2


def test_the_same_key_for_another_request_is_refused(api, ledger):
    client = api("secretary_a")
    client.post("/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    before = Entry.objects.count()

    other_body = client.post(
        "/api/v1/entries/",
        _entry(ledger, description="另一件事"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    other_path = client.post(
        f"/api/v1/entries/{ledger.a_lecture.pk}/reverse/",
        {"reason": "记录有误"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )

    for response in (other_body, other_path):
        body = assert_error(response, 422, "idempotency_key_reused")
        assert body["errors"] == {
            "Idempotency-Key": ["这个 Idempotency-Key 已用于另一个请求；新的请求请使用新的键。"]
        }
    assert Entry.objects.count() == before


def test_keys_are_per_user(api, ledger):
    before = Entry.objects.count()

    first = api("secretary_a").post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    second = api("recorder_a").post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert Entry.objects.count() == before + 2


def test_a_refused_request_is_not_remembered_and_may_be_retried_with_its_key(api, ledger):
    lock = PeriodLock.objects.create(organization=ledger.branch, year=YEAR, quarter=QUARTER)
    client = api("secretary_a")

    refused = client.post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert_error(refused, 422, "period_locked")
    assert IdempotencyKey.objects.count() == 0
    lock.delete()

    retried = client.post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )

    assert retried.status_code == 201
    assert IdempotencyKey.objects.get().status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "键"])
def test_a_malformed_key_is_a_400(api, ledger, key):
    before = Entry.objects.count()

    response = api("secretary_a").post(
        "/api/v1/entries/", _entry(ledger), format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    body = assert_error(response, 400, "invalid")
    assert list(body["errors"]) == ["Idempotency-Key"]
    assert Entry.objects.count() == before


def test_a_retried_declaration_with_evidence_is_one_declaration(api, ledger):
    client = api("member_a")

    def post():
        return client.post(
            "/api/v1/declarations/",
            {
                "rule": ledger.rules.volunteer.pk,
                "points": "6",
                "occurred_on": in_quarter(3, 1).isoformat(),
                "description": "社区志愿服务",
                "evidence": [SimpleUploadedFile("签到表.png", PNG, content_type="image/png")],
            },
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="declare-1",
        )

    first, again = post(), post()

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (Declaration.objects.count(), EvidenceFile.objects.count()) == (1, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_post_sent_twice_at_once_creates_exactly_one_entry(ledger):
    body = _entry(ledger)
    user = ledger.users["secretary_a"]
    token_client(user)  # the token exists before the race
    before = Entry.objects.count()
    start = threading.Barrier(2)
    answers: list = [None, None]

    def send(slot: int) -> None:
        try:
            client = token_client(user)
            start.wait(timeout=10)
            answers[slot] = client.post(
                "/api/v1/entries/", body, format="json", HTTP_IDEMPOTENCY_KEY="at-once"
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    replayed = sorted(answer.has_header("Idempotent-Replayed") for answer in answers)
    assert replayed == [False, True]
    assert Entry.objects.count() == before + 1
    assert IdempotencyKey.objects.count() == 1


def test_keys_older_than_a_week_are_purged_and_newer_ones_kept(db, settings):
    # given: a key of 8 days ago and one of 6 days ago
    settings.IDEMPOTENCY_KEY_DAYS = 7
    user = UserFactory(username="phone_app")
    now = timezone.now()
    for key, age in (("old", 8), ("recent", 6)):
        row = IdempotencyKey.objects.create(
            user=user, key=key, method="POST", path="/api/v1/entries/", fingerprint="x" * 64
        )
        IdempotencyKey.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=age))

    # when
    purged = purge_idempotency_keys_task()

    # then
    assert purged == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]
