"""docker-compose.yml and the settings must agree: same commands, same environment variables."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .test_replica import load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS_SOURCE = (ROOT / "config" / "settings.py").read_text()
APP_SERVICES = ["web", "worker", "beat"]


def _variables_read_by_settings() -> set[str]:
    return set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z_]+)["']""", SETTINGS_SOURCE))


def test_settings_declare_exactly_the_variables_they_read():
    assert _variables_read_by_settings() == set(settings.ENVIRONMENT_VARIABLES)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_only_set_variables_the_settings_read(service):
    environment = COMPOSE["services"][service]["environment"]
    assert set(environment) <= set(settings.ENVIRONMENT_VARIABLES)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_set_the_production_stack(service):
    environment = COMPOSE["services"][service]["environment"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/party_points")
    assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert environment["REDIS_URL"] == "redis://redis:6379/1"
    assert environment["DJANGO_SECRET_KEY"] == "${DJANGO_SECRET_KEY:?set DJANGO_SECRET_KEY}"


def test_database_name_and_user_match_the_postgres_service():
    postgres = COMPOSE["services"]["postgres"]["environment"]
    url = COMPOSE["services"]["web"]["environment"]["DATABASE_URL"]
    assert url.startswith(f"postgres://{postgres['POSTGRES_USER']}:")
    assert url.endswith(f"/{postgres['POSTGRES_DB']}")


def test_web_runs_the_wsgi_application_under_gunicorn():
    command = " ".join(COMPOSE["services"]["web"]["command"])
    target = re.search(r"gunicorn (\S+):(\S+)", command)
    assert target is not None
    module = importlib.import_module(target.group(1))
    assert callable(getattr(module, target.group(2)))
    assert "manage.py migrate --noinput" in command


@pytest.mark.parametrize(("service", "kind"), [("worker", "worker"), ("beat", "beat")])
def test_celery_services_run_the_project_app(service, kind):
    command = COMPOSE["services"][service]["command"]
    assert command[:4] == ["celery", "-A", "config", kind]
    project = importlib.import_module(command[2])
    assert project.celery_app.main == "party_points"


def test_compose_builds_the_image_from_this_repository():
    assert COMPOSE["services"]["web"]["build"] == "."
    assert (ROOT / "Dockerfile").exists()


# --- the recompute's memory -------------------------------------------------------------------


@pytest.mark.parametrize("size", ["64MB", "1GB", "512kB"])
def test_the_recompute_work_mem_is_read_from_the_environment(monkeypatch, size):
    assert load_settings(monkeypatch, RECOMPUTE_WORK_MEM=size)["RECOMPUTE_WORK_MEM"] == size


def test_the_recompute_work_mem_defaults_to_256mb(monkeypatch):
    monkeypatch.delenv("RECOMPUTE_WORK_MEM", raising=False)
    assert load_settings(monkeypatch)["RECOMPUTE_WORK_MEM"] == "256MB"


@pytest.mark.parametrize("size", ["256", "lots", "0MB", "256 MB", "2TB"])
def test_a_recompute_work_mem_postgresql_cannot_take_is_refused_at_startup(monkeypatch, size):
    with pytest.raises(ImproperlyConfigured, match=f"RECOMPUTE_WORK_MEM must be .* not '{size}'"):
        load_settings(monkeypatch, RECOMPUTE_WORK_MEM=size)
