"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

For every operation of ``/api/schema/``, requests generated from the schema are sent to the
WSGI application in-process — signed in with a token as a branch secretary and as a plain
member, over the ledger of ``tests/api/conftest.py`` with a review in publicity — and every
response must be no server error, have a documented status code and content type, and match
its documented schema. Each generated request is sent twice: as generated (random ids: the
404 and 400 paths) and with its path id and body references replaced by real objects' ids
(so that it reaches the permission checks and the services: 2xx, 403, 422). The number of
examples per operation is kept small so that the run takes a few minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from members.models import Member, Organization
from publicity.models import Objection
from publicity.services import objection_raise
from reviews.models import ReviewCycle
from scoring.exports import export_job_create, export_job_run
from scoring.models import Declaration, Entry, ExportJob, PeriodScore, Rule, Scheme
from tests.api.conftest import YEAR, declare
from tests.publicity.conftest import drive_cycle

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 6


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Requests sent straight to the WSGI application share the test's connection and its
    transaction; Django would close that connection at the start and end of each request
    (the test client disconnects these handlers for the same reason)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=["secretary_a", "member_a"])
def token(request, ledger, settings) -> str:
    """The token of the signed-in role. Branch A also has a review in publicity, a pending
    declaration, an objection and secretary_a's finished export, so that requests naming real
    objects reach the services."""
    cycle = drive_cycle(ledger, ReviewCycle.State.PUBLICITY)
    declare(ledger, "member_a")
    objection_raise(user=ledger.users["member_a"], cycle=cycle, text="有误", entry=ledger.a_lecture)
    job = export_job_create(
        user=ledger.users["secretary_a"],
        kind="annual_ranking",
        organization=ledger.branch,
        year=YEAR,
    )
    export_job_run(job_id=job.pk)
    # Thousands of requests in a few minutes: throttling is tested elsewhere.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}
    return Token.objects.get_or_create(user=ledger.users[request.param])[0].key


# The objects each path's {id} and each body's reference may name.
MODELS = {
    "organizations": Organization,
    "members": Member,
    "schemes": Scheme,
    "rules": Rule,
    "entries": Entry,
    "declarations": Declaration,
    "period-scores": PeriodScore,
    "review-cycles": ReviewCycle,
    "objections": Objection,
    "exports": ExportJob,
}
BODY_REFERENCES = {
    "member": Member,
    "members": Member,
    "attendees": Member,
    "rule": Rule,
    "organization": Organization,
    "cycle": ReviewCycle,
    "entry": Entry,
}


def _real(model, value):
    """A real object's id chosen by the generated value (so the choice still varies)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    ids = sorted(model.objects.values_list("pk", flat=True))
    if isinstance(value, bool) or not isinstance(value, int) or not ids:
        return value
    return ids[value % len(ids)]


def _with_real_references(value, model=None):
    if isinstance(value, dict):
        return {
            key: _with_real_references(item, BODY_REFERENCES.get(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_real_references(item, model) for item in value]
    return _real(model, value) if model is not None else value


def realistic(case):
    """The generated request, naming real objects in its path and body instead of random ids."""
    resource = case.path.split("/")[3]
    if "id" in (case.path_parameters or {}) and resource in MODELS:
        case.path_parameters["id"] = _real(MODELS[resource], case.path_parameters["id"])
    if isinstance(case.body, dict):
        case.body = _with_real_references(case.body)
    return case


# Loaded when the module is collected: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_response_conforms_to_the_schema(case, token, in_process_requests):
    headers = {"Authorization": f"Token {token}"}
    # As generated (mostly unknown ids and invalid bodies), then naming real objects.
    case.call_and_validate(headers=headers, checks=CHECKS)
    realistic(case).call_and_validate(headers=headers, checks=CHECKS)
