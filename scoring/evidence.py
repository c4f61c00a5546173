"""Evidence uploads: size limit, and the type read from the content, not from the name."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

# Magic numbers of the types we accept, with the content type we store.
SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
]
ALLOWED_DESCRIPTION = "JPG、PNG、GIF 图片或 PDF 文件"


def sniff(head: bytes) -> str | None:
    for signature, content_type in SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_evidence(upload: UploadedFile) -> tuple[UploadedFile, str]:
    """The upload and its real content type, or a ValidationError saying what is wrong."""
    limit = settings.EVIDENCE_MAX_BYTES
    if upload.size == 0:
        raise ValidationError(_("佐证文件“%(name)s”是空文件。") % {"name": upload.name})
    if upload.size > limit:
        raise ValidationError(
            _("佐证文件“%(name)s”太大（%(size)s MB），单个文件不能超过 %(limit)s MB。")
            % {
                "name": upload.name,
                "size": f"{upload.size / 1024 / 1024:.1f}",
                "limit": limit // 1024 // 1024,
            }
        )
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    content_type = sniff(head)
    if content_type is None:
        raise ValidationError(
            _("佐证文件“%(name)s”不是可接受的类型，请上传%(allowed)s。")
            % {"name": upload.name, "allowed": ALLOWED_DESCRIPTION}
        )
    return upload, content_type
