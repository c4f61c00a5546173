"""``Idempotency-Key``: a POST retried with the same key is carried out once.

How: the key row (``members.models.IdempotencyKey``, unique per user and key) is inserted
first, in the transaction that then carries out the request. A second request with the same
key — a retry after a lost answer, or the same request sent twice at once — blocks on the
unique constraint until the first transaction ends; then it finds the stored answer and
replays it (status, body, ``Location``; marked ``Idempotent-Replayed: true``). If the first
request failed, its transaction rolled back with the key row, and the retry is carried out
as new. The same key with another method, path or body is refused (422,
``idempotency_key_reused``), so a client bug cannot silently return the wrong object.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from members.models import IdempotencyKey

from .errors import BusinessRuleRefusal, Conflict

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("Location",)


def _checked_key(value: str) -> str:
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in value):
        raise exceptions.ValidationError(
            {
                HEADER: [
                    _("Idempotency-Key 须为 1–%(max)s 个可打印 ASCII 字符。")
                    % {"max": MAX_KEY_LENGTH}
                ]
            }
        )
    return value


def _file_digest(upload: UploadedFile) -> dict:
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return {"name": upload.name, "size": upload.size, "sha256": digest.hexdigest()}


def _canonical(value: object) -> object:
    if isinstance(value, QueryDict):
        return {key: [_canonical(item) for item in value.getlist(key)] for key in sorted(value)}
    if isinstance(value, UploadedFile):
        return _file_digest(value)
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def fingerprint(request: Request) -> str:
    """What makes two requests "the same": method, path and the parsed body (files by content)."""
    payload = json.dumps(
        [request.method, request.path, _canonical(request.data)],
        sort_keys=True,
        ensure_ascii=False,
        cls=JSONEncoder,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _replay(record: IdempotencyKey, fingerprint_now: str) -> Response:
    if record.fingerprint != fingerprint_now:
        message = _("这个 Idempotency-Key 已用于另一个请求；新的请求请使用新的键。")
        raise BusinessRuleRefusal([message], "idempotency_key_reused", {HEADER: [message]})
    if record.status_code is None:  # not expected: the answer is stored before the commit
        raise Conflict(_("使用这个 Idempotency-Key 的请求仍在处理中，请稍后再试。"))
    headers = {**record.response_headers, REPLAYED_HEADER: "true"}
    return Response(record.response_body, status=record.status_code, headers=headers)


def _json_safe(data: object) -> object:
    return json.loads(json.dumps(data, cls=JSONEncoder, ensure_ascii=False))


def idempotent(view_method: Callable) -> Callable:
    """Make a POST view method honour the ``Idempotency-Key`` header.

    Put it innermost (below ``@action`` and ``@extend_schema``)."""

    @functools.wraps(view_method)
    def wrapper(self, request: Request, *args, **kwargs) -> Response:
        value = request.headers.get(HEADER)
        if value is None:
            return view_method(self, request, *args, **kwargs)
        key = _checked_key(value)
        fingerprint_now = fingerprint(request)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyKey.objects.create(
                        user=request.user,
                        key=key,
                        method=request.method,
                        path=request.path[:500],
                        fingerprint=fingerprint_now,
                    )
            except IntegrityError:
                # The first request with this key has committed (we waited for it): replay.
                record = IdempotencyKey.objects.get(user=request.user, key=key)
                return _replay(record, fingerprint_now)
            # An exception from here on rolls the key row back with everything else.
            response = view_method(self, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                record.status_code = response.status_code
                record.response_body = _json_safe(response.data)
                record.response_headers = {
                    name: response[name] for name in KEPT_HEADERS if response.has_header(name)
                }
                record.save(update_fields=["status_code", "response_body", "response_headers"])
            else:
                record.delete()
            return response

    # ApiAutoSchema documents the header on every method marked so.
    wrapper.is_idempotent = True
    return wrapper
