"""The English catalogue: the switchable second language of a UI written in Chinese.

The msgids are Simplified Chinese (the default language), so an untranslated msgid shows up
in the English UI as Chinese text. These tests pin a few key translations, read pages in
English, and check that locale/en/LC_MESSAGES/django.po is complete and that the compiled
django.mo next to it carries exactly the same translations.
"""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from members.models import Member
from scoring import services
from tests.factories import UserFactory

LC_MESSAGES = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES"
PO_FILE = LC_MESSAGES / "django.po"
MO_FILE = LC_MESSAGES / "django.mo"

LANGUAGE_OPTION = "简体中文 (Simplified Chinese)"
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
PLACEHOLDER = re.compile(r"%\([A-Za-z_]+\)[sd]|%[sd]|\{\{[^}]*\}\}|</?[A-Za-z][^>]*>")


# --- a tiny .po reader ---------------------------------------------------------------------


@dataclass
class PoEntry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def translations(self) -> list[str]:
        if self.msgid_plural is None:
            return [self.msgstr]
        return [self.msgstr_plural.get(index, "") for index in range(2)]


def read_po(path: Path) -> list[PoEntry]:
    """Entries of a .po file, the header (empty msgid) and obsolete (#~) entries left out."""
    entries: list[PoEntry] = []
    entry = PoEntry()
    target: tuple[str, int | None] | None = None

    def finish() -> None:
        nonlocal entry, target
        if target is not None and entry.msgid:
            entries.append(entry)
        entry, target = PoEntry(), None

    def append(text: str) -> None:
        assert target is not None, f"string outside an entry: {text!r}"
        name, index = target
        if index is None:
            setattr(entry, name, (getattr(entry, name) or "") + text)
        else:
            entry.msgstr_plural[index] = entry.msgstr_plural.get(index, "") + text

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            if not line:
                finish()
            continue
        if line.startswith("#,"):
            if target is not None and target[0].startswith("msgstr"):
                finish()
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        if line.startswith('"'):
            append(ast.literal_eval(line))
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgctxt", "msgid") and target is not None and target[0] == "msgstr":
            finish()
        if not entry.line:
            entry.line = number
        plural = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
        if plural:
            target = ("msgstr", int(plural.group(1)))
        elif keyword in ("msgctxt", "msgid", "msgid_plural", "msgstr"):
            target = (keyword, None)
            setattr(entry, keyword, "")
        else:
            raise AssertionError(f"{path}:{number}: unexpected line {raw!r}")
        append(ast.literal_eval(rest))
    finish()
    return entries


@pytest.fixture(scope="module")
def po_entries() -> list[PoEntry]:
    return read_po(PO_FILE)


def english_client(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    return client


def visible_chinese(html: str) -> list[str]:
    """Chinese text left on an English page, apart from the language switcher's own option."""
    return CJK.findall(html.replace(LANGUAGE_OPTION, ""))


# --- pages in English ----------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_in_english(client):
    # when
    html = english_client(client).get(reverse("login")).content.decode()

    # then
    assert '<html lang="en">' in html
    assert "<title>Sign in · Party Member Points</title>" in html
    assert '<button class="btn btn-party w-100" type="submit">Sign in</button>' in html
    assert "Party Member Points Management" in html
    assert ">Username</label>" in html
    assert ">Password</label>" in html
    assert visible_chinese(html) == []


@pytest.mark.django_db
def test_signed_in_page_in_english(client):
    # given: a login with neither a post nor a roster entry lands on the "no post" page
    client.force_login(UserFactory(username="zhangsan"))
    english_client(client)

    # when
    html = client.get(reverse("members:no_role")).content.decode()

    # then
    assert "No post assigned yet" in html
    assert "Your account is not yet linked to a member record or post" in html
    assert ">Sign out</button>" in html
    assert f">{LANGUAGE_OPTION}</option>" in html
    assert visible_chinese(html) == []


# --- key strings ---------------------------------------------------------------------------


def test_member_categories_in_english():
    with translation.override("en"):
        labels = [str(label) for label in Member.Category.labels]

    assert labels == ["Full member", "Probationary member", "Development target", "Activist"]


def test_member_statuses_in_english():
    with translation.override("en"):
        labels = [str(label) for label in Member.Status.labels]

    assert labels == [
        "Active",
        "Retired",
        "Floating member",
        "Exempt from points assessment",
        "Transferred out",
    ]


def test_chinese_stays_the_default():
    with translation.override("zh-hans"):
        assert str(Member.Category.FULL.label) == "正式党员"


@pytest.mark.parametrize(
    ("msgid", "english"),
    [
        ("一票否决", "One-vote veto"),
        ("积分台账", "Points ledger"),
        ("积分记录员", "Points recorder"),
        ("纪检委员", "Discipline commissioner"),
        ("党总支", "General party branch"),
        ("基本合格", "Basically competent"),
        ("签字确认", "Acknowledgement"),
        ("您没有进行此操作的权限。", "You do not have permission to do this."),
    ],
)
def test_glossary_terms(msgid, english):
    with translation.override("en"):
        assert translation.gettext(msgid) == english


@pytest.mark.parametrize(
    ("count", "english"),
    [(1, "1 entry"), (2, "2 entries")],
)
def test_plural_forms(count, english):
    with translation.override("en"):
        text = translation.ngettext("共 %(counter)s 条记录", "共 %(counter)s 条记录", count)

    assert text % {"counter": count} == english


def test_scoring_service_errors_in_english():
    with translation.override("en"), pytest.raises(ValidationError) as not_a_number:
        services.parse_points("abc")
    with translation.override("en"), pytest.raises(ValidationError) as three_places:
        services.parse_points("1.234")

    assert not_a_number.value.messages == ["Points “abc” is not a valid number."]
    assert three_places.value.messages == ["Points can have at most two decimal places."]


@pytest.mark.django_db
def test_zero_points_are_refused_in_english():
    # given: a branch member and a deduction rule of −10..−2 of the adopted scheme
    from tests.scoring.conftest import YEAR, build_world

    world = build_world()
    member = world.member("张三")

    # when
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        services.validate_scoring(
            member=member,
            rule=world.rules.task,
            points=Decimal("0"),
            occurred_on=date(YEAR, 5, 1),
        )

    # then
    assert refused.value.messages == ["Points cannot be 0."]
    assert refused.value.code == "zero_points"


# --- the catalogue -------------------------------------------------------------------------


def test_every_msgid_is_translated(po_entries):
    assert len(po_entries) > 100  # the reader found the catalogue, not an empty file
    untranslated = [
        entry.msgid for entry in po_entries if not all(text.strip() for text in entry.translations)
    ]
    assert untranslated == []


def test_no_fuzzy_entries(po_entries):
    assert [entry.msgid for entry in po_entries if "fuzzy" in entry.flags] == []


def test_plural_entries_have_both_forms(po_entries):
    plurals = [entry for entry in po_entries if entry.msgid_plural is not None]

    assert plurals
    assert [entry.msgid for entry in plurals if sorted(entry.msgstr_plural) != [0, 1]] == []


def test_placeholders_are_kept(po_entries):
    def placeholders(text: str) -> list[str]:
        return sorted(PLACEHOLDER.findall(text))

    broken = [
        (entry.msgid, text)
        for entry in po_entries
        for text in entry.translations
        if placeholders(text) != placeholders(entry.msgid)
    ]
    assert broken == []


def test_compiled_catalogue_matches_the_po_file(po_entries):
    with MO_FILE.open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)

    stale = []
    for entry in po_entries:
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            if catalogue._catalog.get(key) != entry.msgstr:
                stale.append(entry.msgid)
        elif any(
            catalogue._catalog.get((key, index)) != text
            for index, text in enumerate(entry.translations)
        ):
            stale.append(entry.msgid)
    assert stale == [], "run: python manage.py compilemessages -l en"
    assert catalogue.info()["language"] == "en"
