"""What a locked-out sign-in sees (django-axes calls ``locked_out`` instead of logging in)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

TOO_MANY_REQUESTS = 429


def locked_out(
    request: HttpRequest, credentials: dict | None = None, *args, **kwargs
) -> HttpResponse:
    """The sign-in page again, with the username kept and the reason in plain words."""
    form = AuthenticationForm(
        request, initial={"username": (credentials or {}).get("username", "")}
    )
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "registration/login.html",
        {
            "form": form,
            "locked_out": True,
            "cooloff_minutes": minutes,
            "next": request.POST.get("next", ""),
        },
        status=TOO_MANY_REQUESTS,
    )
