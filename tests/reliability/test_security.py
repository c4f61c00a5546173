"""Sign-in throttling, password rules, session expiry and the security headers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import TEST_PASSWORD, UserFactory

OFFICE = "10.20.30.40"  # a whole branch office behind one NAT address
ELSEWHERE = "10.99.0.7"
LOCKED = "该用户名在本机连续登录失败次数过多，已暂时锁定，请 15 分钟后再试，或联系党委管理员解锁。"


def sign_in(address: str, username: str, password: str) -> tuple[Client, int, str]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response.status_code, response.content.decode()


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def people(db):
    return UserFactory(username="shuji"), UserFactory(username="jiluyuan")


def test_five_failures_lock_that_username_from_that_address(people):
    for _attempt in range(4):
        _client, status, html = sign_in(OFFICE, "shuji", "wrong-password")
        assert status == 200
        assert "请输入一个正确的用户名和密码。注意，两者都区分大小写。" in html
    # the fifth failure locks
    _client, status, html = sign_in(OFFICE, "shuji", "wrong-password")
    assert status == 429
    assert LOCKED in html

    # the right password from the same address is refused now, with the reason
    client, status, html = sign_in(OFFICE, "shuji", TEST_PASSWORD)
    assert status == 429
    assert LOCKED in html
    assert not is_signed_in(client)


def test_a_lock_does_not_shut_out_the_office_or_the_user_elsewhere(people):
    for _attempt in range(5):
        sign_in(OFFICE, "shuji", "wrong-password")

    colleague, status, _html = sign_in(OFFICE, "jiluyuan", TEST_PASSWORD)
    assert status == 302 and is_signed_in(colleague)
    at_home, status, _html = sign_in(ELSEWHERE, "shuji", TEST_PASSWORD)
    assert status == 302 and is_signed_in(at_home)


def test_a_successful_sign_in_resets_the_count(people):
    for _attempt in range(4):
        sign_in(OFFICE, "shuji", "wrong-password")
    _client, status, _html = sign_in(OFFICE, "shuji", TEST_PASSWORD)
    assert status == 302
    for _attempt in range(4):
        sign_in(OFFICE, "shuji", "wrong-password")

    client, status, _html = sign_in(OFFICE, "shuji", TEST_PASSWORD)
    assert status == 302 and is_signed_in(client)


def test_the_lock_ends_after_the_cool_off(people, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for _attempt in range(5):
        sign_in(OFFICE, "shuji", "wrong-password")
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    client, status, _html = sign_in(OFFICE, "shuji", TEST_PASSWORD)
    assert status == 302 and is_signed_in(client)


@pytest.mark.parametrize(
    ("new_password", "message"),
    [
        ("Ab1!", "密码太短，至少需要 8 个字符。"),
        ("38461729", "密码只包含数字。"),
        ("password123", "这个密码太常见了。"),
        ("shuji2026", "密码跟 用户名 太相似了。"),
    ],
)
def test_a_weak_new_password_is_refused_and_the_old_one_still_works(people, new_password, message):
    user = people[0]
    client = Client()
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": new_password,
            "new_password2": new_password,
        },
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


def test_a_good_new_password_replaces_the_old_one(people):
    user = people[0]
    client = Client()
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "Hong-Qi-2026",
            "new_password2": "Hong-Qi-2026",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("password_change_done")
    user.refresh_from_db()
    assert user.check_password("Hong-Qi-2026")
    assert not user.check_password(TEST_PASSWORD)


def test_an_expired_session_must_sign_in_again(people):
    client = Client()
    client.force_login(people[0])
    assert client.get(reverse("password_change")).status_code == 200

    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    response = client.get(reverse("password_change"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('password_change')}"


def test_sessions_last_a_working_day_and_end_with_the_browser(settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert settings.SESSION_COOKIE_HTTPONLY is True


def test_every_page_carries_the_security_headers(client, db):
    response = client.get(reverse("login"))

    directives = set(response["Content-Security-Policy"].split("; "))
    assert directives == {
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    }
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
