"""Housekeeping jobs of the members app."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import IdempotencyKey


@shared_task(acks_late=True, reject_on_worker_lost=True)
def purge_idempotency_keys_task() -> int:
    """Forget API Idempotency-Keys older than IDEMPOTENCY_KEY_DAYS: a client retries within
    minutes, not weeks, and the table must not grow forever."""
    cutoff = timezone.now() - timedelta(days=settings.IDEMPOTENCY_KEY_DAYS)
    deleted, _by_model = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
