"""Settings of the load benchmark's app server (``python -m bench load``): production
settings (``config.settings``, read from the environment as always) with one addition,
the bench's URL module, which serves a trivial signed-in view beside the app's pages."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.load_urls"
