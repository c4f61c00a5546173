"""How a page answers a service's refusal: the messages, and the status (403 or 422)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

# A form the service refused: the page is shown again with the reasons, status 422.
INVALID = 422


def refusal_status(error: Exception) -> int:
    return 403 if isinstance(error, PermissionDenied) else INVALID


def error_messages(error: ValidationError | PermissionDenied) -> list[str]:
    if isinstance(error, PermissionDenied):
        return [str(error) or _("您没有进行此操作的权限。")]
    return list(error.messages)


def refuse(form, error: ValidationError | PermissionDenied) -> int:
    """Put every message of the service's refusal on the form; the status to answer with."""
    for message in error_messages(error):
        form.add_error(None, message)
    return refusal_status(error)
