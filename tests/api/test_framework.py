"""The API's frame: authentication (token and session), the one error shape for every
failure, throttling, the OpenAPI schema and its docs page served without a CDN."""

from __future__ import annotations

import re

import pytest
import yaml
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from members.api.errors import api_exception_handler
from scoring.models import Entry
from tests.api.conftest import assert_error
from tests.factories import TEST_PASSWORD

ME = "/api/v1/members/me/"


# --- authentication ---------------------------------------------------------------------------


def test_anonymous_is_asked_to_sign_in(db):
    response = APIClient().get(ME)

    body = assert_error(response, 401, "not_authenticated")
    assert body["errors"] == {}
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_refused(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    assert_error(client.get(ME), 401, "authentication_failed")


def test_password_gets_a_token_that_signs_in(members, users):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "member_a", "password": TEST_PASSWORD}, format="json"
    )

    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=users["member_a"]).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = client.get(ME)
    assert me.status_code == 200
    assert me.json()["name"] == "张三"


def test_a_wrong_password_gets_no_token(users):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "member_a", "password": "wrong"}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert body["message"] == "用户名或密码不正确。"
    assert body["errors"] == {"non_field_errors": ["用户名或密码不正确。"]}
    assert Token.objects.count() == 0


def test_a_missing_password_is_a_field_error(users):
    response = APIClient().post("/api/v1/auth/token/", {"username": "member_a"}, format="json")

    body = assert_error(response, 400, "invalid")
    assert body["errors"] == {"password": ["该字段是必填项。"]}


def test_a_revoked_token_no_longer_signs_in(api, members, users):
    client = api("member_a")

    assert client.post("/api/v1/auth/token/revoke/").status_code == 204

    assert Token.objects.filter(user=users["member_a"]).count() == 0
    assert_error(client.get(ME), 401, "authentication_failed")


def test_the_browser_session_signs_in_too(members, users):
    client = Client()
    client.force_login(users["member_a"])

    response = client.get(ME)

    assert response.status_code == 200
    assert response.json()["name"] == "张三"


def test_a_session_post_needs_the_csrf_token(ledger):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ledger.users["secretary_a"])
    before = Entry.objects.count()

    response = client.post(
        "/api/v1/entries/",
        {
            "member": ledger.members["member_a"].pk,
            "rule": ledger.rules.speech.pk,
            "occurred_on": "2020-01-01",
            "description": "x",
        },
        content_type="application/json",
    )

    body = assert_error(response, 403, "permission_denied")
    assert "CSRF" in body["message"]
    assert Entry.objects.count() == before


# --- the error shape --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nothing/", "/api/v1/entries/abc/", "/api/elsewhere"])
def test_an_address_that_names_no_endpoint_answers_the_api_404(api, members, path):
    response = api("secretary_a").get(path)

    assert_error(response, 404, "not_found")
    assert response["Content-Type"] == "application/json"


def test_an_unknown_id_is_404(api, members):
    assert_error(api("secretary_a").get("/api/v1/members/987654321/"), 404, "not_found")


def test_a_huge_id_is_404_not_a_server_error(api, members):
    response = api("secretary_a").get("/api/v1/members/99999999999999999999999/")

    assert_error(response, 404, "not_found")


def test_a_method_the_endpoint_does_not_have_is_405_and_changes_nothing(api, ledger):
    entry = ledger.a_lecture

    response = api("secretary_a").delete(f"/api/v1/entries/{entry.pk}/")

    assert_error(response, 405, "method_not_allowed")
    assert Entry.objects.filter(pk=entry.pk).count() == 1


def test_an_unsupported_content_type_is_415(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/", data="member=1", content_type="text/plain"
    )

    assert_error(response, 415, "unsupported_media_type")


def test_only_json_is_offered(api, members):
    response = api("secretary_a").get(ME, HTTP_ACCEPT="text/html")

    assert response.status_code == 406


def test_malformed_json_is_400(api, ledger):
    response = api("secretary_a").post(
        "/api/v1/entries/", data="{not json", content_type="application/json"
    )

    assert_error(response, 400, "parse_error")


def test_an_unexpected_error_is_500_without_details():
    response = api_exception_handler(RuntimeError("secret detail"), {})

    assert response.status_code == 500
    assert response.data == {
        "code": "server_error",
        "message": "服务器内部错误，请稍后再试。",
        "errors": {},
    }


def test_the_message_is_in_the_users_language(db):
    chinese = APIClient().get(ME, HTTP_ACCEPT_LANGUAGE="zh-hans")
    english = APIClient().get(ME, HTTP_ACCEPT_LANGUAGE="en")

    assert chinese.json()["message"] == "身份认证信息未提供。"
    assert english.json()["message"] == "Authentication credentials were not provided."


# --- throttling -------------------------------------------------------------------------------


def _rates(settings, **rates) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_anonymous_clients_are_throttled(db, settings):
    _rates(settings, anon="2/minute")
    client = APIClient()

    statuses = [client.get(ME).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]
    response = client.get(ME)
    body = assert_error(response, 429, "throttled")
    assert re.fullmatch(r"请求过于频繁，请 \d+ 秒后再试。", body["message"])
    assert 1 <= int(response["Retry-After"]) <= 60


def test_signed_in_clients_are_throttled_per_user(api, members, settings):
    _rates(settings, user="3/hour")
    member_a, member_b = api("member_a"), api("member_b")

    statuses = [member_a.get(ME).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert_error(member_a.get(ME), 429, "throttled")
    assert member_b.get(ME).status_code == 200


# --- the schema and its docs ------------------------------------------------------------------


@pytest.fixture
def schema(db) -> dict:
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_the_schema_is_openapi_3_with_every_endpoint(schema):
    assert schema["openapi"].startswith("3.")
    assert sorted(schema["paths"]) == sorted(EXPECTED_PATHS)


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in _operations(schema):
        expected = {"400", "401", "403", "404", "406", "429", "500"}
        if method == "post":
            expected |= {"415", "422"}
        responses = operation["responses"]
        assert expected <= set(responses), (method, path)
        for code in expected:
            content = responses[code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path, code)
            assert responses[code]["description"] != "", (method, path, code)


def test_every_parameter_is_described(schema):
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description", "") != "", (method, path, parameter["name"])


def test_every_post_that_creates_takes_an_idempotency_key(schema):
    for path, method, operation in _operations(schema):
        if method != "post" or path.startswith("/api/v1/auth/"):
            continue
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, path


def test_the_docs_page_loads_nothing_from_elsewhere_and_nothing_inline(db):
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"(?:src|href)=\"(https?:)?//", html) == []
    assert "<style" not in html
    assert "style=" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 3
    assert all("src=" in attributes and body.strip() == "" for attributes, body in scripts)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Served under the site's strict policy, which it needs no exception from.
    policy = {
        directive.strip().split(" ", 1)[0]: directive.strip().split(" ", 1)[1]
        for directive in response["Content-Security-Policy"].split(";")
    }
    assert (policy["script-src"], policy["style-src"]) == ("'self'", "'self'")


def test_the_docs_start_up_script_is_served_from_a_url(db):
    response = APIClient().get("/api/docs/", {"script": ""})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()


EXPECTED_PATHS = [
    "/api/v1/auth/token/",
    "/api/v1/auth/token/revoke/",
    "/api/v1/organizations/",
    "/api/v1/organizations/{id}/",
    "/api/v1/members/",
    "/api/v1/members/{id}/",
    "/api/v1/members/me/",
    "/api/v1/schemes/",
    "/api/v1/schemes/{id}/",
    "/api/v1/rules/",
    "/api/v1/rules/{id}/",
    "/api/v1/entries/",
    "/api/v1/entries/{id}/",
    "/api/v1/entries/{id}/reverse/",
    "/api/v1/entries/bulk/",
    "/api/v1/entries/veto/",
    "/api/v1/declarations/",
    "/api/v1/declarations/{id}/",
    "/api/v1/declarations/{id}/adjust/",
    "/api/v1/declarations/{id}/approve/",
    "/api/v1/declarations/{id}/reject/",
    "/api/v1/period-scores/",
    "/api/v1/period-scores/{id}/",
    "/api/v1/exports/",
    "/api/v1/exports/{id}/",
    "/api/v1/exports/{id}/download/",
    "/api/v1/review-cycles/",
    "/api/v1/review-cycles/{id}/",
    "/api/v1/review-cycles/{id}/acknowledge/",
    "/api/v1/review-cycles/{id}/agreements/",
    "/api/v1/review-cycles/{id}/appraisals/",
    "/api/v1/review-cycles/{id}/committee-meeting/",
    "/api/v1/review-cycles/{id}/deadline/",
    "/api/v1/review-cycles/{id}/finalize/",
    "/api/v1/review-cycles/{id}/general-meeting/",
    "/api/v1/review-cycles/{id}/reopen/",
    "/api/v1/review-cycles/{id}/self-assessment/",
    "/api/v1/review-cycles/{id}/start-committee-review/",
    "/api/v1/review-cycles/{id}/start-general-meeting/",
    "/api/v1/review-cycles/{id}/start-publicity/",
    "/api/v1/review-cycles/{id}/start-self-assessment/",
    "/api/v1/objections/",
    "/api/v1/objections/{id}/",
    "/api/v1/objections/{id}/accept/",
    "/api/v1/objections/{id}/appeal/",
    "/api/v1/objections/{id}/examine/",
    "/api/v1/objections/{id}/recheck/",
    "/api/v1/objections/{id}/rule/",
]


def test_every_operation_has_a_summary(schema):
    for path, method, operation in _operations(schema):
        assert operation.get("summary", "") != "", (method, path)


def test_too_many_wrong_passwords_lock_the_api_sign_in_too(users, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = APIClient()

    def sign_in(password: str):
        return client.post(
            "/api/v1/auth/token/", {"username": "member_a", "password": password}, format="json"
        )

    statuses = [sign_in("wrong").status_code for _ in range(2)]
    locked = sign_in("wrong")
    right = sign_in(TEST_PASSWORD)

    assert statuses == [400, 400]
    for response in (locked, right):
        body = assert_error(response, 429, "locked_out")
        assert body["message"] == "登录失败次数过多，该账号在此地址已被暂时锁定，请 15 分钟后再试。"
        assert response["Retry-After"] == "900"
    assert Token.objects.count() == 0
