"""The OpenAPI schema: every operation lists the errors it can answer, in the one error shape.

``ApiAutoSchema`` (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``) adds to each operation the
error responses that can occur for it, each described and pointing at the ``Error``
component, so that no endpoint has to repeat them; an endpoint documents its own success
responses (and any error it adds, such as 409) with ``extend_schema``.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.permissions import AllowAny

from .errors import ErrorSerializer

ERROR_DESCRIPTIONS: dict[str, str] = {
    "400": _("请求无法读取或字段无效（code 为 invalid、parse_error 等），errors 按字段列出原因。"),
    "401": _("未登录，或令牌无效（code 为 not_authenticated / authentication_failed）。"),
    "403": _(
        "对象在您的权限范围内可见，但您无权进行此操作（code 为 permission_denied），"
        "例如不能审核本人的申报。"
    ),
    "404": _("对象不存在，或不在您的权限范围内（为不泄露其存在，一律答复 404）；页码无效。"),
    "406": _("Accept 请求头要求的格式无法提供（本 API 只返回 JSON）。"),
    "409": _("对象尚未就绪（如导出任务仍在生成中）。"),
    "415": _("Content-Type 不受支持。"),
    "422": _(
        "业务规则拒绝了请求，未作任何修改（code 为服务给出的原因，如 period_locked、"
        "already_decided、stale_state、vote_failed；或 idempotency_key_reused）。"
    ),
    "429": _("请求过于频繁（code 为 throttled），Retry-After 响应头给出等待秒数。"),
    "500": _("服务器内部错误（code 为 server_error），已记录，不返回内部细节。"),
}

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=_(
        "幂等键（1–255 个可打印 ASCII 字符，每个用户内唯一）。用同一个键重试同一请求时，"
        "只执行一次，并返回首次成功的响应（带 Idempotent-Replayed: true 响应头）；"
        "同一个键用于不同的请求时答复 422（idempotency_key_reused）。失败的请求不保存，可用同一键重试。"
    ),
)


def error_response(code: str, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(
        response=ErrorSerializer, description=description or ERROR_DESCRIPTIONS[code]
    )


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the error responses every operation can give."""

    def _error_codes(self) -> list[str]:
        codes: list[str] = ["400"]
        is_public = any(
            permission is AllowAny or isinstance(permission, AllowAny)
            for permission in getattr(self.view, "permission_classes", [])
        )
        if not is_public:
            codes += ["401", "403"]
        codes += ["404", "406"]
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["415", "422"]
        codes += ["429", "500"]
        return codes

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict]:
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if not parameter.get("description"):
                parameter["description"] = str(
                    _("对象 id；不存在或不在您权限范围内的对象答复 404。")
                )
        return parameters

    def get_override_parameters(self) -> list:
        parameters = super().get_override_parameters()
        handler = getattr(self.view, getattr(self.view, "action", None) or "", None)
        if self.method == "POST" and getattr(handler, "is_idempotent", False):
            parameters = [*parameters, IDEMPOTENCY_KEY]
        return parameters

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    error_response(code), code, media_types=["application/json"]
                )
        return responses
