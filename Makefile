# The two commands of the README, and the steps they are made of.
#   make run   — set up and serve the app on http://127.0.0.1:8000 (SQLite, Celery eager, demo data)
#   make test  — set up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test browser lint migrate demo screenshots clean bench-deps

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("需要 Python 3.11 或更高版本 (Python 3.11+ required)") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# The browser tests drive Debian's Chromium (Playwright's own browser download does not
# work on our intranet machines); CHROMIUM names another binary.
CHROMIUM ?= /usr/bin/chromium
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@test -x $(CHROMIUM) || { echo "安装 Chromium（浏览器测试用）: apt-get install chromium"; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "没有找到 $(CHROMIUM)：请安装 Chromium 或设置 CHROMIUM=…"; exit 1; }

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test browser

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo

run: demo
	@echo "党员积分 is starting on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	DJANGO_DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install-test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The README's screenshots, from the demo data (needs a CJK font for the Chinese text).
screenshots: install-test
	@fc-list :lang=zh | grep -q . || { echo "安装中文字体 fonts-noto-cjk（截图用）"; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq fonts-noto-cjk >/dev/null; }
	$(BIN)/python docs/screenshots/take.py

# The load benchmark (python -m bench load) drives the app with Debian's wrk.
bench-deps:
	@test -x /usr/bin/wrk || { echo "安装 wrk（负载测试用）: apt-get install wrk"; \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq wrk >/dev/null; }

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
