"""The app's URLs plus one page that exists only under the load benchmark: a view that
requires a signed-in user and answers a few bytes of text. Under load it shows the floor
of any signed-in page — the middleware, the session and the user read from the database —
against which the real pages are compared. Production URLs (``config.urls``) are unchanged."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path

TRIVIAL_PATH = "bench/trivial/"


@login_required
def trivial(request: HttpRequest) -> HttpResponse:
    """The floor: signed in, nothing else."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")


urlpatterns = [
    path(TRIVIAL_PATH, trivial, name="bench_trivial"),
    path("", include("config.urls")),
]
