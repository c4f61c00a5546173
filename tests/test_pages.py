"""The pages every user meets: login, logout, the base template and the language switch."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.template.loader import get_template
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

WRONG_LOGIN = "请输入一个正确的用户名和密码。注意，两者都区分大小写。"
BASE_TEMPLATE_ASSETS = {
    "bootstrap/css/bootstrap.min.css",
    "css/app.css",
    "img/favicon.svg",
    "bootstrap/js/bootstrap.bundle.min.js",
    "js/app.js",
}


def static_paths_in(html: str) -> set[str]:
    return set(re.findall(r'(?:href|src)="/static/([^"]+)"', html))


def test_login_page_renders_in_chinese(client):
    # when
    response = client.get(reverse("login"))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in html
    assert "<title>登录 · 党员积分</title>" in html
    assert '<button class="btn btn-party w-100" type="submit">登录</button>' in html


def test_wrong_password_shows_the_chinese_error_and_stays_on_the_page(client):
    # given
    UserFactory(username="zhangsan")

    # when
    response = client.post(reverse("login"), {"username": "zhangsan", "password": "wrong"})

    # then
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [WRONG_LOGIN]
    assert f'<div class="alert alert-danger" role="alert">{WRONG_LOGIN}</div>' in (
        response.content.decode()
    )
    assert "_auth_user_id" not in client.session


def test_right_password_signs_in_and_goes_home(client):
    # given
    user = UserFactory(username="zhangsan")

    # when
    response = client.post(reverse("login"), {"username": "zhangsan", "password": TEST_PASSWORD})

    # then
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(user.pk)


def test_signed_in_user_opening_the_login_page_goes_home(client):
    client.force_login(UserFactory(username="zhangsan"))

    response = client.get(reverse("login"))

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logout_by_post_signs_out(client):
    # given
    client.force_login(UserFactory(username="zhangsan"))

    # when
    response = client.post(reverse("logout"))

    # then
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"] == "/login/?next=/"


def test_logout_by_get_is_not_allowed(client):
    client.force_login(UserFactory(username="zhangsan"))

    response = client.get(reverse("logout"))

    assert response.status_code == 405
    assert client.get(reverse("members:no_role")).status_code == 200


def test_base_template_references_no_external_url():
    source = get_template("base.html").template.source

    assert re.findall(r"https?://", source) == []


def test_every_static_asset_of_the_base_template_is_found():
    # given
    source = get_template("base.html").template.source

    # when
    assets = set(re.findall(r"{% static '([^']+)' %}", source))

    # then
    assert assets == BASE_TEMPLATE_ASSETS
    assert {asset for asset in assets if finders.find(asset) is None} == set()


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed in"])
def test_rendered_page_links_only_local_assets_that_exist(client, signed_in):
    # given
    if signed_in:
        client.force_login(UserFactory(username="zhangsan"))

    # when
    html = client.get(reverse("members:no_role" if signed_in else "login")).content.decode()

    # then: bootstrap, htmx (through its template tag) and our own files, all served by us
    assert re.findall(r"https?://", html) == []
    assets = static_paths_in(html)
    assert assets == BASE_TEMPLATE_ASSETS | {"django_htmx/htmx-2.min.js"}
    assert {asset for asset in assets if finders.find(asset) is None} == set()


def test_switching_the_language_to_english(client):
    # given
    assert '<html lang="zh-hans">' in client.get(reverse("login")).content.decode()

    # when
    response = client.post(reverse("set_language"), {"language": "en", "next": "/login/"})

    # then
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.cookies["django_language"].value == "en"
    assert '<html lang="en">' in client.get(reverse("login")).content.decode()


def test_switching_the_language_back_to_chinese(client):
    # given
    client.force_login(UserFactory(username="zhangsan"))
    client.post(reverse("set_language"), {"language": "en", "next": "/no-role/"})

    # when
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/no-role/"})

    # then
    html = client.get(reverse("members:no_role")).content.decode()
    assert '<html lang="zh-hans">' in html
    assert '<option value="zh-hans" selected>简体中文</option>' in html
