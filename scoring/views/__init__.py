"""Ledger pages: ``branch`` for the secretary and recorder (desktop), ``member`` for the
member's own ledger (phone-first). Each module ends with its ``urlpatterns``."""
