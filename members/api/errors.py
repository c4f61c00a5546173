"""One error shape for every failure of the API.

Every error response, whatever its status, has the body::

    {"code": "period_locked", "message": "<in the user's language>", "errors": {"field": ["…"]}}

- ``code``: what went wrong, for programs: DRF's codes (``invalid``, ``not_authenticated``,
  ``permission_denied``, ``not_found``, ``throttled`` …) or the code a service gave its refusal
  (``period_locked``, ``already_decided``, ``stale_state`` …).
- ``message``: one sentence for people, in the request's language (Chinese by default).
- ``errors``: the messages by field (``non_field_errors`` for the request as a whole; nested
  fields are joined with dots: ``correction.rule``, ``ratings.0.member``); empty when the
  failure is not about the submitted data.

Statuses: 400 the request could not be read or a field is invalid; 401 not signed in;
403 signed in and the object is visible, but this user may not do this; 404 no such object
*or outside the user's reach* (its existence does not leak); 405/406/415 wrong method,
``Accept`` or content type; 409 not ready yet (an export still running); 422 a business rule
refused the request (locked period, separation of duties, caps, veto vote …: the services'
``ValidationError``, exactly as the pages answer 422); 429 throttled (with ``Retry-After``);
500 an unexpected error (logged, never a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

logger = logging.getLogger("party_points.api")

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY
INVALID = status.HTTP_422_UNPROCESSABLE_ENTITY


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (documentation only)."""

    code = serializers.CharField(help_text=gettext_lazy("错误代码，供程序判断。"))
    message = serializers.CharField(help_text=gettext_lazy("错误说明，使用用户的语言。"))
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text=gettext_lazy(
            "按字段列出的错误信息；non_field_errors 为整体错误；与提交内容无关时为空。"
        ),
    )


class BusinessRuleRefusal(exceptions.APIException):
    """A service refused the request (its ``ValidationError``): 422, with the service's code."""

    status_code = INVALID
    default_code = "refused"
    default_detail = gettext_lazy("请求未被受理。")

    def __init__(self, messages: list[str], code: str, errors: dict[str, list[str]]) -> None:
        super().__init__(detail=" ".join(messages), code=code)
        self.code = code
        self.errors = errors


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = gettext_lazy("请求与对象的当前状态冲突。")


def _refusal_code(error: DjangoValidationError) -> str:
    if getattr(error, "code", None):
        return error.code
    for item in getattr(error, "error_list", []):
        if getattr(item, "code", None):
            return item.code
    return "refused"


def refusal_from(error: DjangoValidationError, fields: Mapping[str, str]) -> BusinessRuleRefusal:
    """The 422 answer to a service's ``ValidationError``; ``fields`` maps the service's
    error codes to the request field they are about."""
    code = _refusal_code(error)
    if hasattr(error, "error_dict"):
        errors = {
            (NON_FIELD if name == "__all__" else name): list(messages)
            for name, messages in error.message_dict.items()
        }
        messages = [message for group in errors.values() for message in group]
    else:
        messages = list(error.messages)
        errors = {fields.get(code, NON_FIELD): messages}
    return BusinessRuleRefusal(messages, code, errors)


def flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.sub.0.name": [messages]}."""
    if isinstance(detail, Mapping):
        result: dict[str, list[str]] = {}
        for name, value in detail.items():
            result.update(flatten(value, f"{prefix}.{name}" if prefix else str(name)))
        return result
    if isinstance(detail, list):
        if all(not isinstance(item, Mapping | list) for item in detail):
            return {prefix or NON_FIELD: [str(item) for item in detail]} if detail else {}
        result = {}
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list):
                result.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
            elif item:
                result.setdefault(prefix or NON_FIELD, []).append(str(item))
        return result
    return {prefix or NON_FIELD: [str(detail)]}


def error_body(code: str, message: str, errors: dict[str, list[str]] | None = None) -> dict:
    return {"code": code, "message": message, "errors": errors or {}}


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def _message_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.Throttled):
        if exc.wait is not None:
            return _("请求过于频繁，请 %(seconds)s 秒后再试。") % {"seconds": int(exc.wait + 0.999)}
        return _("请求过于频繁，请稍后再试。")
    if isinstance(exc, exceptions.NotFound):
        return _("未找到。")
    return str(exc.detail)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``)."""
    view = context.get("view")
    if isinstance(exc, DjangoValidationError):
        exc = refusal_from(exc, getattr(view, "service_error_fields", {}))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    if not isinstance(exc, exceptions.APIException):
        request = context.get("request")
        logger.exception(
            "API error on %s %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            exc_info=exc,
        )
        return Response(
            error_body("server_error", _("服务器内部错误，请稍后再试。")),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait + 0.999))

    if isinstance(exc, BusinessRuleRefusal):
        body = error_body(exc.code, str(exc.detail), exc.errors)
    elif isinstance(exc, exceptions.ValidationError):
        errors = flatten(exc.detail)
        only = errors.get(NON_FIELD, [])
        message = (
            only[0]
            if len(errors) == 1 and len(only) == 1
            else _("提交的数据有误，请按提示修改后重试。")
        )
        body = error_body("invalid", message, errors)
    else:
        body = error_body(_code_of(exc), _message_of(exc))
    return Response(body, status=exc.status_code, headers=headers)


@csrf_exempt  # it changes nothing; CSRF's HTML 403 would break the one error shape
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any /api/ address that names no endpoint: the same 404 body as the endpoints'."""
    return JsonResponse(error_body("not_found", _("未找到。")), status=404)
