"""Take the README's screenshots from the demo data: ``make screenshots``.

Serves the app on a throwaway SQLite database seeded with ``seed_demo`` and photographs
each user's main pages in Debian's headless Chromium (Playwright), desktop pages at
1366 px and the member's at a phone's 390 px. Chinese text needs a CJK font on the machine
(``fonts-noto-cjk``); the Makefile target installs it.
"""

from __future__ import annotations

import datetime
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openpyxl import load_workbook
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PORT = int(os.environ.get("SCREENSHOT_PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
PASSWORD = "Demo@2026"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=zh-CN",
]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def sign_in(page: Page, username: str) -> None:
    page.goto(f"{BASE}/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


def shoot(page: Page, path: str, name: str, *, full_page: bool = True) -> None:
    page.goto(f"{BASE}{path}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / f"{name}.png", full_page=full_page)
    print(f"  {name}.png  ← {path}")


def first_link(page: Page, pattern: str) -> str:
    """The first link on the current page whose href matches ``pattern``."""
    for href in page.eval_on_selector_all(
        "a[href]", "links => links.map(a => a.getAttribute('href'))"
    ):
        if re.search(pattern, href):
            return href
    raise SystemExit(f"no link matching {pattern!r} on {page.url}")


def preview_an_import(page: Page, ledger: str) -> None:
    """Fill the downloaded template with a few rows (one of them wrong) and photograph the
    preview the upload gives."""
    roster = ledger.removesuffix("ledger/")
    page.goto(f"{BASE}{roster}")
    names = page.locator("table a[href*='/members/']").all_inner_texts()[:4]
    page.goto(f"{BASE}{ledger}import/")
    template = page.request.get(f"{BASE}{first_link(page, r'/template')}")
    workbook = load_workbook(io.BytesIO(template.body()))
    guide = list(workbook["填写说明"].iter_rows(values_only=True))
    header = next(index for index, row in enumerate(guide) if row and row[0] == "编号")
    rules = [row for row in guide[header + 1 :] if row and row[3] == "加分"]
    sheet = workbook["积分台账"]
    sheet.delete_rows(2)
    day = datetime.date.today().replace(day=1)
    for index, name in enumerate(names):
        code, _name, _category, _kind, points = rules[index % len(rules)][:5]
        sheet.append(
            [name, "", code, re.match(r"[+-]?[0-9.]+", str(points)).group(), day, "十一月主题党日"]
        )
    sheet.append(["查无此人", "", rules[0][0], "", day, "十一月主题党日"])
    upload = io.BytesIO()
    workbook.save(upload)
    page.set_input_files(
        "input[type=file]",
        files=[
            {
                "name": "台账.xlsx",
                "mimeType": "application/octet-stream",
                "buffer": upload.getvalue(),
            }
        ],
    )
    page.get_by_role("button", name="上传并预览").click()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "ledger-import-preview.png", full_page=True)
    print(f"  ledger-import-preview.png  ← {page.url.removeprefix(BASE)}")


def take(browser) -> None:
    desktop = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = desktop.new_page()
    sign_in(page, "shuji1")
    ledger = page.url.removeprefix(BASE)
    shoot(page, ledger, "branch-ledger")
    shoot(page, first_link(page, r"/ledger/bulk/(\?|$)"), "bulk-record")
    page.goto(f"{BASE}{ledger}")
    shoot(page, first_link(page, r"/ledger/table/(\?|$)"), "quarter-table")
    page.goto(f"{BASE}{ledger}")
    shoot(page, first_link(page, r"/ledger/import/(\?|$)"), "ledger-import")
    preview_an_import(page, ledger)
    page.goto(f"{BASE}{ledger}")
    shoot(page, first_link(page, r"/reviews/(\?|$)"), "reviews")
    page.goto(f"{BASE}{ledger}")
    shoot(page, first_link(page, r"^/branches/\d+/$"), "roster")
    desktop.close()

    committee = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = committee.new_page()
    sign_in(page, "dangwei")
    shoot(page, "/overview/", "overview")
    shoot(page, "/audit/", "audit", full_page=False)
    page.goto(f"{BASE}{first_link(page, r'/exports/')}")
    page.get_by_role("button", name="开始导出").click()  # eager: done before the redirect
    page.wait_for_load_state("networkidle")
    page.screenshot(path=OUT / "exports.png", full_page=True)
    print(f"  exports.png  ← {page.url.removeprefix(BASE)} (after 开始导出)")
    committee.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
    page = phone.new_page()
    sign_in(page, "dangyuan1")
    shoot(page, page.url.removeprefix(BASE), "member-points")
    shoot(page, first_link(page, r"/declare/"), "member-declare")
    phone.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        environment = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{scratch}/screenshots.sqlite3",
            "MEDIA_ROOT": f"{scratch}/media",
            "DJANGO_DEBUG": "1",
        }
        environment.pop("CELERY_BROKER_URL", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=environment, check=True)
        subprocess.run(
            [*manage, "seed_demo"], env=environment, check=True, stdout=subprocess.DEVNULL
        )
        server = subprocess.Popen(
            [*manage, "runserver", "--noreload", f"127.0.0.1:{PORT}"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{BASE}/login/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                take(browser)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
