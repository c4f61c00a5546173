"""A minimal HTTP client for the reliability tests: real requests over loopback to the live
server, each session with its own cookies and CSRF token, so that several can be sent at
the same moment from threads."""

from __future__ import annotations

import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from tests.factories import TEST_PASSWORD


@dataclass
class Response:
    status: int
    url: str
    text: str
    location: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Session:
    """One browser's worth of cookies against ``base_url``; redirects are not followed, so a
    test sees the 302 that a successful form post answers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def request(self, method: str, path: str, data: dict | list | None = None) -> Response:
        body = None
        headers = {"Accept-Language": "zh-hans"}
        if data is not None:
            fields = list(data.items()) if isinstance(data, dict) else list(data)
            fields.append(("csrfmiddlewaretoken", self.csrf_token))
            body = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers
        )
        try:
            with self.opener.open(request, timeout=30) as answer:
                return Response(answer.status, answer.url, answer.read().decode())
        except urllib.error.HTTPError as error:
            location = error.headers.get("Location", "")
            return Response(error.code, error.url, error.read().decode(), location)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict | list) -> Response:
        return self.request("POST", path, data)

    @property
    def csrf_token(self) -> str:
        for cookie in self.cookies:
            if cookie.name == "csrftoken":
                return cookie.value
        return ""

    def sign_in(self, username: str, password: str = TEST_PASSWORD) -> None:
        self.get("/login/")
        answer = self.post("/login/", {"username": username, "password": password})
        assert answer.status == 302, answer.text[:500]


def hidden_value(html: str, name: str) -> str:
    """The value of the hidden input ``name`` in a rendered form."""
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{re.escape(name)}"', html
    )
    assert match, f"no input {name!r} in the page"
    return match.group(1)


def post_together(*posts: tuple[Session, str, dict | list]) -> list[Response]:
    """Send ``(session, path, data)`` posts from threads released together by a barrier;
    their responses in order."""
    barrier = threading.Barrier(len(posts))
    results: list[Response | BaseException | None] = [None] * len(posts)

    def run(index: int, post: tuple[Session, str, dict | list]) -> None:
        session, path, data = post
        barrier.wait()
        try:
            results[index] = session.post(path, data)
        except BaseException as error:  # reported below, in the test's thread
            results[index] = error

    threads = [threading.Thread(target=run, args=item) for item in enumerate(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
