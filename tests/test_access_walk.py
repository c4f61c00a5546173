"""The access-control walk: every URL the resolver knows, with every kind of user, filled in
with *another branch's* object ids — and CSRF on every form.

The URL list is not written down here: it is discovered from ``get_resolver()`` (pages, the
API router under /api/v1/, downloads, exports), so a view added later is walked at once. Each
path parameter is filled from the world by what it names (the literal segment before a
``pk``, or the parameter's own name); a parameter the walk does not know fails the test and
says which mapping to extend. The Django admin (/admin/) is left out of the walk on purpose:
it has its own staff checks (``is_staff``), tested here by sending non-staff to its login.

The world: committee 测试党委 → general branch → branches 甲 (A) and 乙 (B), and a second
committee 第二党委 with its own branch. A and B each have one of every object — members, an
entry, a declaration with evidence, a review cycle in publicity with an objection, an export
job of the secretary, a ledger import, period scores, a scheme of their own with a rule.

What is asserted:

- anonymous: every page sends to the login, every API address answers 401 (error shape);
- A's users (secretary, recorder, discipline commissioner, committee member, member, a login
  with no role) and the other committee's staff, on every URL naming one of B's objects:
  404 — never 200, never 403 — for GET and POST; a method the view does not take may answer
  405, but only as it does for an id that does not exist (nothing leaks). URLs mixing an
  object of A with one of B are walked too;
- every URL naming no object (lists, /me/…), for every user, with and without B's ids in the
  query string: none of B's marker texts in the body;
- the owners' matrix: what B's secretary, B's member and the committee's staff get on B's
  pages (so the URLs are shown reachable for the right person, not only closed);
- CSRF: a POST without the token to every page is refused 403 and changes nothing; a
  session-authenticated API POST without it is refused 403 in the API's error shape.
"""

from __future__ import annotations

import io
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.admin import site as admin_site
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone
from openpyxl import Workbook

from members.excel import XLSX_CONTENT_TYPE
from members.models import Member, Organization, Role
from members.services import member_create, organization_add, role_assign
from publicity import services as publicity_services
from publicity.models import Objection
from reviews import services as review_services
from reviews.demo import general_meeting_record_unanimous
from reviews.models import ReviewCycle
from scoring import exports as export_services
from scoring import services as scoring_services
from scoring.ledger_import import HEADERS as LEDGER_HEADERS
from scoring.ledger_import import ledger_import_preview
from scoring.models import (
    Declaration,
    Entry,
    EvidenceFile,
    ExportJob,
    LedgerImport,
    PeriodScore,
    Rule,
    RuleCategory,
    Scheme,
)
from scoring.recompute import recompute_organization
from scoring.schemes import scheme_adopt, scheme_create_from_preset
from tests.factories import UserFactory, build_tree

pytestmark = pytest.mark.django_db

YEAR = timezone.localdate().year - 1
QUARTER = 4  # last year's Q4: always in the past; the cycle under review
DECLARED_ON = date(YEAR, 8, 1)  # Q3: a declaration outside the period under review
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24

# --- how the walk fills a URL ----------------------------------------------------------------

# A ``pk`` is what the literal segment before it names.
SEGMENT_OBJECTS: dict[str, str] = {
    # pages
    "branches": "branch",
    "members": "member",  # also /api/v1/members/<pk>/
    "reviews": "cycle",
    "publicity": "cycle",
    "exports": "export_job",  # also /api/v1/exports/<pk>/
    "evidence": "evidence",
    # the API
    "organizations": "branch",
    "schemes": "scheme",
    "rules": "rule",
    "entries": "entry",
    "declarations": "declaration",
    "period-scores": "period_score",
    "review-cycles": "cycle",
    "objections": "objection",
}
# Any other parameter is what its name says.
NAMED_OBJECTS: dict[str, str] = {
    "declaration_pk": "declaration",
    "entry_pk": "entry",
    "objection_pk": "objection",
    "token": "import_token",
}
# Regular-expression patterns have no parameters to fill: a sample path for each.
REGEX_SAMPLES: dict[str, str] = {
    r"^[\s\S]*$": "no-such-endpoint/",  # the API's 404 for any other /api/ address
}
# Left out of the walk, with the reason (tested separately below).
EXCLUDED_PREFIXES: dict[str, str] = {
    "admin/": "the Django admin has its own staff checks (is_staff): see test_admin_*",
}
# Open without signing in (everything else must send anonymous users to the login / 401).
PUBLIC: set[str] = {
    "login",
    "logout",
    "set_language",
    "api:auth-token-list",  # signing in to the API
    "api:schema",
    "api:docs",
    "api:<regex>",  # the API's 404 for unknown addresses
}

PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    name: str  # namespaced url name ("scoring:branch_ledger"), "api:<regex>" for the catch-all
    route: str  # the full route, "branches/<int:pk>/ledger/"
    parameters: tuple[tuple[str, str], ...]  # (parameter name, world key), in route order
    methods: frozenset[str] | None  # what a DRF view set maps; None: not known (a plain view)

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")

    @property
    def names_object(self) -> bool:
        return bool(self.parameters)

    def url(self, values: dict[str, object]) -> str:
        def fill(match: re.Match) -> str:
            return str(values[match.group("name")])

        return "/" + PARAMETER.sub(fill, self.route)


class UnknownParameter(Exception):
    pass


def _object_key(route: str, match: re.Match) -> str:
    name = match.group("name")
    if name == "pk":
        segment = route[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        if segment in SEGMENT_OBJECTS:
            return SEGMENT_OBJECTS[segment]
        raise UnknownParameter(
            f"{route}: the walk does not know what <pk> after '{segment}/' names — "
            "extend SEGMENT_OBJECTS in tests/test_access_walk.py"
        )
    if name in NAMED_OBJECTS:
        return NAMED_OBJECTS[name]
    raise UnknownParameter(
        f"{route}: the walk does not know the parameter <{match.group(0)[1:-1]}> — "
        "extend NAMED_OBJECTS in tests/test_access_walk.py"
    )


def discover(resolver=None, prefix: str = "", namespace: str = "") -> tuple[list[Route], list]:
    """Every URL pattern below ``resolver`` (the project's by default) as a Route, and the
    patterns the walk cannot fill (their error messages)."""
    resolver = resolver or get_resolver()
    routes: list[Route] = []
    problems: list[str] = []
    for pattern in resolver.url_patterns:
        if any((prefix + _route_text(pattern.pattern)).startswith(x) for x in EXCLUDED_PREFIXES):
            continue
        if isinstance(pattern, URLResolver):
            if isinstance(pattern.pattern, RegexPattern):
                problems.append(
                    f"{prefix}{pattern.pattern._regex}: an include() under a regular expression "
                    "— give the walk its sample prefix in tests/test_access_walk.py"
                )
                continue
            inner_namespace = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            inner, inner_problems = discover(
                pattern, prefix + _route_text(pattern.pattern), inner_namespace
            )
            routes += inner
            problems += inner_problems
            continue
        assert isinstance(pattern, URLPattern)
        if isinstance(pattern.pattern, RegexPattern):
            regex = pattern.pattern._regex
            if regex not in REGEX_SAMPLES:
                problems.append(
                    f"{prefix}{regex}: no sample path for this regular expression — "
                    "extend REGEX_SAMPLES in tests/test_access_walk.py"
                )
                continue
            routes.append(
                Route(
                    name=f"{namespace}{pattern.name or '<regex>'}",
                    route=prefix + REGEX_SAMPLES[regex],
                    parameters=(),
                    methods=None,
                )
            )
            continue
        route = prefix + str(pattern.pattern)
        try:
            parameters = tuple(
                (match.group("name"), _object_key(route, match))
                for match in PARAMETER.finditer(route)
            )
        except UnknownParameter as error:
            problems.append(str(error))
            continue
        actions = getattr(pattern.callback, "actions", None)
        routes.append(
            Route(
                name=f"{namespace}{pattern.name}",
                route=route,
                parameters=parameters,
                methods=frozenset(method.upper() for method in actions) if actions else None,
            )
        )
    return routes, problems


def _route_text(pattern) -> str:
    """The route of a path() pattern; a regular expression as written (for the exclusions)."""
    if isinstance(pattern, RoutePattern):
        return str(pattern)
    return pattern._regex


# --- the world -------------------------------------------------------------------------------


@dataclass
class Side:
    """One branch and one of each of its objects."""

    branch: Organization
    secretary: User
    member_user: User
    member: Member
    scheme: Scheme
    rule: Rule
    entry: Entry
    declaration: Declaration
    evidence: EvidenceFile
    cycle: ReviewCycle
    objection: Objection
    export_job: ExportJob
    ledger_import: LedgerImport
    period_score: PeriodScore
    markers: tuple[str, ...]  # texts only this branch's pages may show

    def values(self) -> dict[str, object]:
        return {
            "branch": self.branch.pk,
            "member": self.member.pk,
            "scheme": self.scheme.pk,
            "rule": self.rule.pk,
            "entry": self.entry.pk,
            "declaration": self.declaration.pk,
            "evidence": self.evidence.pk,
            "cycle": self.cycle.pk,
            "objection": self.objection.pk,
            "export_job": self.export_job.pk,
            "import_token": self.ledger_import.token,
            "period_score": self.period_score.pk,
        }


@dataclass
class World:
    a: Side
    b: Side
    users: dict[str, User | None] = field(default_factory=dict)


# The users of branch A (and the other committee's staff): none may see anything of B.
OUTSIDERS = (
    "secretary_a",
    "recorder_a",
    "discipline_a",
    "committee_member_a",
    "member_a",
    "no_role",
    "staff_c2",
)
MISSING_ID = 987_654_321


def _ledger_upload(member_name: str, description: str) -> SimpleUploadedFile:
    book = Workbook()
    sheet = book.active
    sheet.append(LEDGER_HEADERS)
    sheet.append([member_name, "", "B01", 5, date(YEAR, 11, 2), description])
    buffer = io.BytesIO()
    book.save(buffer)
    return SimpleUploadedFile("台账.xlsx", buffer.getvalue(), content_type=XLSX_CONTENT_TYPE)


def _drive_to_publicity(cycle: ReviewCycle, secretary: User, secretary_member: Member):
    today = timezone.localdate()
    branch = cycle.organization
    review_services.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today)
    cycle = review_services.cycle_advance(user=secretary, cycle=cycle, expected_state="open")
    cycle = review_services.cycle_advance(
        user=secretary, cycle=cycle, expected_state="self_assessment"
    )
    review_services.committee_meeting_record(
        user=secretary, cycle=cycle, meeting_date=today, attendees=[secretary_member]
    )
    review_services.scores_agree(
        user=secretary, cycle=cycle, members=list(review_services.ranked_members(branch))
    )
    cycle = review_services.cycle_advance(
        user=secretary, cycle=cycle, expected_state="committee_review"
    )
    general_meeting_record_unanimous(user=secretary, cycle=cycle, meeting_date=today)
    return review_services.cycle_advance(
        user=secretary, cycle=cycle, expected_state="general_meeting", publicity_starts_on=today
    )


def _side(branch: Organization, prefix: str, phone: int, committee_scheme: Scheme, run) -> Side:
    """Branch ``prefix`` (甲 / 乙): its secretary and member with logins, and every object."""
    secretary = UserFactory(username=f"secretary_{'ab'['甲乙'.index(prefix)]}")
    member_user = UserFactory(username=f"member_{'ab'['甲乙'.index(prefix)]}")
    role_assign(user=secretary, organization=branch, post=Role.Post.SECRETARY)
    secretary_member = member_create(
        organization=branch,
        name=f"{prefix}支部李书记",
        phone=f"1390000{phone:04d}",
        category=Member.Category.FULL,
        is_cadre=True,
        user=secretary,
    )
    member = member_create(
        organization=branch,
        name=f"{prefix}支部张三",
        phone=f"1390000{phone + 1:04d}",
        category=Member.Category.FULL,
        user=member_user,
    )
    speech = Rule.objects.get(scheme=committee_scheme, code="B01")
    entry = run(
        scoring_services.entry_record,
        user=secretary,
        member=member,
        rule=speech,
        occurred_on=date(YEAR, 10, 15),
        description=f"{prefix}支部事项",
    )
    declaration = run(
        scoring_services.declaration_submit,
        user=member_user,
        member=member,
        rule=speech,
        occurred_on=DECLARED_ON,
        description=f"{prefix}支部申报",
        files=[SimpleUploadedFile(f"{prefix}支部证明.png", PNG, content_type="image/png")],
    )
    recompute_organization(branch, YEAR)
    cycle = review_services.cycle_open(user=secretary, branch=branch, year=YEAR, quarter=QUARTER)
    cycle = _drive_to_publicity(cycle, secretary, secretary_member)
    objection = publicity_services.objection_raise(
        user=member_user, cycle=cycle, text=f"{prefix}支部异议", entry=entry
    )
    export_job = run(
        export_services.export_job_create,
        user=secretary,
        kind=ExportJob.Kind.BRANCH_LEDGER,
        organization=branch,
        year=YEAR,
    )
    ledger_import = ledger_import_preview(
        branch=branch, user=secretary, upload=_ledger_upload(member.name, f"{prefix}支部导入")
    )
    # A scheme of the branch's own (not adopted), with one rule.
    scheme = scheme_create_from_preset(
        owner=branch, year=YEAR + 5, name=f"{prefix}支部细则", preset="five_stars_base_100"
    )
    category = RuleCategory.objects.create(scheme=scheme, name=f"{prefix}支部类别", position=1)
    rule = Rule.objects.create(
        scheme=scheme,
        category=category,
        code="X01",
        name=f"{prefix}支部规则",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("1"),
        points_max=Decimal("1"),
    )
    return Side(
        branch=Organization.objects.get(pk=branch.pk),
        secretary=secretary,
        member_user=member_user,
        member=member,
        scheme=scheme,
        rule=rule,
        entry=entry,
        declaration=declaration,
        evidence=declaration.evidence.get(),
        cycle=ReviewCycle.objects.get(pk=cycle.pk),
        objection=objection,
        export_job=ExportJob.objects.get(pk=export_job.pk),
        ledger_import=ledger_import,
        period_score=PeriodScore.objects.get(member=member, year=YEAR, quarter=QUARTER),
        markers=(
            f"{prefix}支部张三",
            f"{prefix}支部李书记",
            f"{prefix}支部事项",
            f"{prefix}支部申报",
            f"{prefix}支部异议",
            f"{prefix}支部导入",
            f"{prefix}支部细则",
            f"{prefix}支部规则",
        ),
    )


@pytest.fixture
def world(settings, tmp_path, django_capture_on_commit_callbacks) -> World:
    settings.MEDIA_ROOT = tmp_path / "media"
    # The walk makes thousands of API requests: the throttles are not under test here.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1000000/minute", "user": "1000000/minute"},
    }
    cache.clear()

    def run(service, /, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    tree = build_tree()
    scheme = scheme_create_from_preset(
        owner=tree.committee,
        year=YEAR,
        name="五星积分细则",
        preset="five_stars_base_100",
        top_n_flag=0,
        bottom_n_flag=0,
    )
    scheme_adopt(organization=tree.committee, scheme=scheme)
    study = RuleCategory.objects.create(scheme=scheme, name="学习教育", position=1)
    Rule.objects.create(
        scheme=scheme,
        category=study,
        code="B01",
        name="研讨发言",
        kind=Rule.Kind.BONUS,
        points_min=Decimal("5"),
        points_max=Decimal("5"),
        self_declarable=True,
    )
    a = _side(tree.branch_a, "甲", 10, scheme, run)
    b = _side(tree.branch_b, "乙", 20, scheme, run)

    users: dict[str, User | None] = {"anonymous": None}
    users["secretary_a"] = a.secretary
    users["member_a"] = a.member_user
    users["secretary_b"] = b.secretary
    users["member_b"] = b.member_user
    for key, post in (
        ("recorder_a", Role.Post.RECORDER),
        ("discipline_a", Role.Post.DISCIPLINE_COMMISSIONER),
        ("committee_member_a", Role.Post.COMMITTEE_MEMBER),
    ):
        users[key] = UserFactory(username=key)
        role_assign(user=users[key], organization=tree.branch_a, post=post)
    users["no_role"] = UserFactory(username="no_role")
    users["committee_staff"] = UserFactory(username="committee_staff")
    role_assign(user=users["committee_staff"], organization=tree.committee, post=Role.Post.STAFF)
    second = organization_add(parent=None, name="第二党委", kind=Organization.Kind.COMMITTEE)
    organization_add(parent=second, name="丁党支部", kind=Organization.Kind.BRANCH)
    users["staff_c2"] = UserFactory(username="staff_c2")
    role_assign(user=users["staff_c2"], organization=second, post=Role.Post.STAFF)
    return World(a=a, b=b, users=users)


# --- requests --------------------------------------------------------------------------------


class Walker:
    """Signed-in clients per user, and a tally of the requests made."""

    def __init__(self, world: World, **client_options) -> None:
        self.world = world
        self.client_options = client_options
        self.clients: dict[str, Client] = {}
        self.requests: Counter[str] = Counter()

    def client(self, key: str) -> Client:
        if key not in self.clients:
            client = Client(**self.client_options)
            user = self.world.users[key]
            if user is not None:
                client.force_login(user)
            self.clients[key] = client
        return self.clients[key]

    def request(self, key: str, method: str, url: str, **extra):
        client = self.client(key)
        response = client.generic(method, url, **extra)
        self.requests[key] += 1
        user = self.world.users[key]
        if user is not None and "_auth_user_id" not in client.session:
            client.force_login(user)  # the walk went through /logout/ or revoked the session
        return response


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _is_error_shape(response, status: int) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.status_code == status
        and set(body) == {"code", "message", "errors"}
        and isinstance(body["message"], str)
        and body["message"] != ""
    )


def _values(route: Route, sides: list[Side], missing: bool = False) -> dict[str, object]:
    values: dict[str, object] = {}
    for (name, key), side in zip(route.parameters, sides, strict=True):
        value = side.values()[key]
        if missing:
            value = uuid.UUID(int=MISSING_ID) if key == "import_token" else MISSING_ID
        values[name] = value
    return values


# --- the walk --------------------------------------------------------------------------------


def test_every_url_pattern_can_be_filled():
    routes, problems = discover()
    assert problems == []
    names = {route.name for route in routes}
    assert names >= PUBLIC, f"PUBLIC names patterns that no longer exist: {PUBLIC - names}"


def test_an_unknown_parameter_fails_the_walk_with_what_to_extend():
    from django.urls import include, path

    class Fake:
        url_patterns = [
            path("branches/<int:pk>/", lambda request: None, name="known"),
            path("gadgets/<int:pk>/", lambda request: None, name="gadget"),
            path("x/<slug:colour>/", lambda request: None, name="colour"),
            path("api/", include([path("things/<int:pk>/", lambda r: None, name="thing")])),
        ]

    routes, problems = discover(Fake())
    assert [route.name for route in routes] == ["known"]
    assert problems == [
        "gadgets/<int:pk>/: the walk does not know what <pk> after 'gadgets/' names — "
        "extend SEGMENT_OBJECTS in tests/test_access_walk.py",
        "x/<slug:colour>/: the walk does not know the parameter <slug:colour> — "
        "extend NAMED_OBJECTS in tests/test_access_walk.py",
        "api/things/<int:pk>/: the walk does not know what <pk> after 'things/' names — "
        "extend SEGMENT_OBJECTS in tests/test_access_walk.py",
    ]


def test_access_walk(world: World, capsys):
    routes, problems = discover()
    assert problems == []
    walker = Walker(world)
    a, b = world.a, world.b
    before = _state()
    leaks: list[str] = []
    walked: set[str] = set()

    for route in routes:
        walked.add(route.route)
        b_url = route.url(_values(route, [b] * len(route.parameters)))
        # anonymous
        for method in ("GET", "POST"):
            response = walker.request("anonymous", method, b_url)
            if route.name in PUBLIC:
                if response.status_code >= 500:
                    leaks.append(f"anonymous {method} {b_url}: {response.status_code}")
            elif route.is_api:
                if not _is_error_shape(response, 401):
                    leaks.append(f"anonymous {method} {b_url}: {response.status_code}, not 401")
            elif not (
                response.status_code == 302 and response["Location"].startswith("/login/?next=")
            ):
                leaks.append(f"anonymous {method} {b_url}: {response.status_code}, not to login")

        if route.names_object:
            variants = [[b] * len(route.parameters)]
            # An object of A with one of B: A's officers may open A's branch, not B's object.
            for position in range(1, len(route.parameters)):
                variants.append([a] * position + [b] * (len(route.parameters) - position))
            for key in OUTSIDERS:
                for sides in variants:
                    url = route.url(_values(route, sides))
                    missing_url = route.url(_values(route, sides, missing=True))
                    found_404 = False
                    for method in ("GET", "POST"):
                        response = walker.request(key, method, url)
                        status = response.status_code
                        if status == 404:
                            found_404 = True
                            if route.is_api and not _is_error_shape(response, 404):
                                leaks.append(f"{key} {method} {url}: 404 not in the error shape")
                        elif status == 405:
                            missing = walker.request(key, method, missing_url)
                            if missing.status_code != 405:
                                leaks.append(
                                    f"{key} {method} {url}: 405 where a missing id gives "
                                    f"{missing.status_code}"
                                )
                        else:
                            leaks.append(f"{key} {method} {url}: {status}, not 404")
                        body = _body(response)
                        leaks += [
                            f"{key} {method} {url}: shows {marker}"
                            for marker in b.markers
                            if marker in body
                        ]
                    if not found_404:
                        leaks.append(f"{key} {url}: neither GET nor POST answered 404")
        else:
            query = "?" + "&".join(
                f"{name}={b.branch.pk}"
                for name in ("organization", "branch", "member", "cycle", "year")
            )
            for key in OUTSIDERS:
                for suffix in ("", query):
                    for method in ("GET", "POST"):
                        url = route.url({}) + suffix
                        response = walker.request(key, method, url)
                        if response.status_code >= 500:
                            leaks.append(f"{key} {method} {url}: {response.status_code}")
                        body = _body(response)
                        leaks += [
                            f"{key} {method} {url}: shows {marker}"
                            for marker in b.markers
                            if marker in body
                        ]

    assert leaks == []
    assert _state() == before  # nothing any outsider posted was carried out
    assert walked == {route.route for route in routes}
    total = sum(walker.requests.values())
    with capsys.disabled():
        print(
            f"\naccess walk: {len(routes)} URL patterns × {len(walker.requests)} users = "
            f"{total} requests, {len(leaks)} leaks; per user: {dict(sorted(walker.requests.items()))}"
        )
    assert set(walker.requests) == {"anonymous", *OUTSIDERS}
    assert len(routes) == len({route.route for route in routes})


# --- the owners: the same URLs are open to the right people ----------------------------------

# GET on every URL filled with B's objects: (B's secretary, B's member 乙支部张三, the staff of
# the committee above A and B). 405: the address takes POST only. Branch A's secretary and
# member get the same on A's objects (the world is symmetric). A new URL needs its row here.
OWNER_MATRIX: dict[str, tuple[int, int, int]] = {
    "home": (302, 302, 302),
    "login": (302, 302, 302),
    "logout": (405, 405, 405),
    "password_change": (200, 200, 200),
    "password_change_done": (200, 200, 200),
    "set_language": (302, 302, 302),
    "api:auth-token-list": (405, 405, 405),
    "api:auth-token-revoke": (405, 405, 405),
    "api:organization-list": (200, 200, 200),
    "api:organization-detail": (200, 200, 200),
    "api:member-list": (200, 200, 200),
    "api:member-me": (200, 200, 404),
    "api:member-detail": (200, 200, 200),
    "api:scheme-list": (200, 200, 200),
    "api:scheme-detail": (200, 200, 200),
    "api:rule-list": (200, 200, 200),
    "api:rule-detail": (200, 200, 200),
    "api:entry-list": (200, 200, 200),
    "api:entry-bulk": (405, 405, 405),
    "api:entry-veto": (405, 405, 405),
    "api:entry-detail": (200, 200, 200),
    "api:entry-reverse": (405, 405, 405),
    "api:declaration-list": (200, 200, 200),
    "api:declaration-detail": (200, 200, 200),
    "api:declaration-adjust": (405, 405, 405),
    "api:declaration-approve": (405, 405, 405),
    "api:declaration-reject": (405, 405, 405),
    "api:period-score-list": (200, 200, 200),
    "api:period-score-detail": (200, 200, 200),
    "api:export-list": (200, 200, 200),
    "api:export-detail": (200, 404, 404),  # an export job is its requester's only
    "api:export-download": (200, 404, 404),
    "api:review-cycle-list": (200, 200, 200),
    "api:review-cycle-detail": (200, 200, 200),
    "api:review-cycle-acknowledge": (405, 405, 405),
    "api:review-cycle-agreements": (405, 405, 405),
    "api:review-cycle-appraisals": (405, 405, 405),
    "api:review-cycle-committee-meeting": (405, 405, 405),
    "api:review-cycle-deadline": (405, 405, 405),
    "api:review-cycle-finalize": (405, 405, 405),
    "api:review-cycle-general-meeting": (405, 405, 405),
    "api:review-cycle-reopen": (405, 405, 405),
    "api:review-cycle-self-assessment": (405, 405, 405),
    "api:review-cycle-start-committee-review": (405, 405, 405),
    "api:review-cycle-start-general-meeting": (405, 405, 405),
    "api:review-cycle-start-publicity": (405, 405, 405),
    "api:review-cycle-start-self-assessment": (405, 405, 405),
    "api:objection-list": (200, 200, 200),
    "api:objection-detail": (200, 200, 200),
    "api:objection-accept": (405, 405, 405),
    "api:objection-appeal": (405, 405, 405),
    "api:objection-examine": (405, 405, 405),
    "api:objection-recheck": (405, 405, 405),
    "api:objection-rule": (405, 405, 405),
    "api:schema": (200, 200, 200),
    "api:docs": (200, 200, 200),
    "api:<regex>": (404, 404, 404),
    "members:overview": (404, 404, 200),
    "members:audit": (404, 404, 200),  # the discipline commissioner and committee staff
    "members:roster": (200, 404, 200),
    "members:roster_template": (200, 404, 404),
    "members:roster_import": (200, 404, 404),
    "members:roster_export": (200, 404, 200),
    "members:member_detail": (200, 200, 200),  # B's member is the member himself
    "members:me": (200, 200, 302),
    "members:no_role": (200, 200, 200),
    "scoring:branch_ledger": (200, 404, 200),
    "scoring:branch_record": (200, 404, 404),
    "scoring:branch_points_field": (200, 404, 404),
    "scoring:branch_record_bulk": (200, 404, 404),
    "scoring:branch_record_grid": (200, 404, 404),
    "scoring:branch_record_veto": (200, 404, 404),
    "scoring:branch_declarations": (200, 404, 404),
    "scoring:branch_declaration_decide": (405, 405, 405),
    "scoring:branch_entries": (200, 404, 200),
    "scoring:branch_entry_reverse": (200, 404, 404),
    "scoring:branch_table": (200, 404, 200),
    "scoring:branch_recompute": (405, 405, 405),
    "scoring:my_points": (200, 200, 302),
    "scoring:declare": (200, 200, 404),
    "scoring:declare_rule": (200, 200, 404),
    "scoring:my_declarations": (200, 200, 302),
    "scoring:evidence": (200, 200, 200),  # the declarer's own file
    "scoring:branch_ledger_import": (200, 404, 404),
    "scoring:branch_ledger_import_template": (200, 404, 404),
    "scoring:branch_ledger_import_preview": (200, 404, 404),
    "scoring:branch_ledger_import_confirm": (405, 405, 405),
    "scoring:branch_ledger_import_discard": (405, 405, 405),
    "scoring:exports": (200, 404, 200),
    "scoring:export_status": (200, 404, 404),
    "scoring:export_download": (200, 404, 404),
    "scoring:branch_ledger_export": (302, 404, 302),  # to the export job it starts
    "publicity:board": (200, 200, 200),
    "publicity:board_print": (200, 200, 200),
    "publicity:objections": (200, 200, 200),
    "publicity:raise": (200, 200, 404),
    "publicity:recheck": (405, 405, 405),
    "publicity:examine": (405, 405, 405),
    "publicity:rule": (405, 405, 405),
    "publicity:appeal": (405, 405, 405),
    "publicity:accept": (405, 405, 405),
    "reviews:branch_cycles": (200, 404, 200),
    "reviews:cycle_open": (405, 405, 405),
    "reviews:cycle": (200, 404, 200),
    "reviews:cycle_advance": (405, 405, 405),
    "reviews:cycle_deadline": (405, 405, 405),
    "reviews:cycle_reopen": (405, 405, 405),
    "reviews:self_assessment": (200, 200, 404),  # B's secretary is a member of B too
    "reviews:committee_review": (200, 404, 200),
    "reviews:committee_decide": (405, 405, 405),
    "reviews:committee_agree": (405, 405, 405),
    "reviews:committee_meeting": (405, 405, 405),
    "reviews:committee_appraisals": (405, 405, 405),
    "reviews:general_meeting": (200, 404, 200),
    "reviews:acknowledge": (200, 200, 404),
    "reviews:my_reviews": (200, 200, 302),
    "reviews:notifications": (200, 200, 200),
}
OWNERS = ("secretary_b", "member_b", "committee_staff")


def test_owners_matrix(world: World):
    routes, problems = discover()
    assert problems == []
    assert {route.name for route in routes} - set(OWNER_MATRIX) == set(), (
        "a URL without its row in OWNER_MATRIX: say who may open it"
    )
    assert set(OWNER_MATRIX) - {route.name for route in routes} == set()
    walker = Walker(world)
    got: dict[str, tuple[int, ...]] = {}
    mirrored: dict[str, tuple[int, ...]] = {}
    shown: set[str] = set()
    for route in routes:
        b_url = route.url(_values(route, [world.b] * len(route.parameters)))
        a_url = route.url(_values(route, [world.a] * len(route.parameters)))
        responses = [walker.request(key, "GET", b_url) for key in OWNERS]
        got[route.name] = tuple(response.status_code for response in responses)
        for response in responses:
            body = _body(response)
            shown |= {marker for marker in world.b.markers if marker in body}
        mirrored[route.name] = (
            walker.request("secretary_a", "GET", a_url).status_code,
            walker.request("member_a", "GET", a_url).status_code,
            got[route.name][2],
        )
    assert got == OWNER_MATRIX
    assert mirrored == OWNER_MATRIX
    # Every marker the walk looks for is on some page B's people may open: its absence from
    # the outsiders' pages means something.
    assert shown == set(world.b.markers)


# --- CSRF ------------------------------------------------------------------------------------


def _state() -> dict[str, list]:
    """What a refused POST must leave as it was."""
    return {
        "entries": list(Entry.objects.order_by("pk").values_list("pk", "points")),
        "declarations": list(Declaration.objects.order_by("pk").values_list("pk", "status")),
        "cycles": list(ReviewCycle.objects.order_by("pk").values_list("pk", "state")),
        "objections": list(Objection.objects.order_by("pk").values_list("pk", "state")),
        "exports": list(ExportJob.objects.order_by("pk").values_list("pk", "status")),
        "imports": list(LedgerImport.objects.order_by("pk").values_list("pk", "imported_count")),
        "members": list(Member.objects.order_by("pk").values_list("pk", "name", "status")),
        "roles": list(Role.objects.order_by("pk").values_list("pk", "post")),
    }


def _legitimate(route: Route) -> str:
    """The first of B's owners who may open the address (so the POST is theirs to make)."""
    expected = OWNER_MATRIX[route.name]
    return next(
        (key for key, status in zip(OWNERS, expected, strict=True) if status != 404), "secretary_b"
    )


def test_a_page_post_without_the_csrf_token_is_refused_and_changes_nothing(world: World):
    routes, _problems = discover()
    pages = [route for route in routes if not route.is_api]
    walker = Walker(world, enforce_csrf_checks=True)
    before = _state()
    refused: list[str] = []
    for route in pages:
        key = _legitimate(route)
        url = route.url(_values(route, [world.b] * len(route.parameters)))
        response = walker.request(
            key, "POST", url, data="", content_type="application/x-www-form-urlencoded"
        )
        if response.status_code != 403 or "CSRF" not in _body(response):
            refused.append(f"{key} POST {url}: {response.status_code}")
        assert "_auth_user_id" in walker.client(key).session  # not signed out by /logout/
    assert refused == []
    assert _state() == before
    assert len(pages) == sum(walker.requests.values())


def test_a_session_api_post_without_the_csrf_token_is_refused_in_the_error_shape(world: World):
    routes, _problems = discover()
    posts = [
        route for route in routes if route.is_api and route.methods and "POST" in route.methods
    ]
    walker = Walker(world, enforce_csrf_checks=True)
    before = _state()
    refused: list[str] = []
    for route in posts:
        url = route.url(_values(route, [world.b] * len(route.parameters)))
        response = walker.request(
            "secretary_b", "POST", url, data="{}", content_type="application/json"
        )
        if not _is_error_shape(response, 403) or response.json()["code"] != "permission_denied":
            refused.append(f"POST {url}: {response.status_code} {_body(response)[:200]}")
    assert refused == []
    assert _state() == before
    assert walker.requests == {"secretary_b": len(posts)}
    assert "api:entry-list" in {route.name for route in posts}


# --- the Django admin ------------------------------------------------------------------------


def _admin_routes() -> list[tuple[str, str]]:
    """(name, URL) of every admin pattern, any parameter filled with 1."""
    admin = next(
        pattern
        for pattern in get_resolver().url_patterns
        if isinstance(pattern, URLResolver) and str(pattern.pattern) == "admin/"
    )
    found: list[tuple[str, str]] = []

    def walk(resolver, prefix: str) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern, prefix + _route_text(pattern.pattern))
            elif isinstance(pattern.pattern, RegexPattern):
                # admin/^(?P<app_label>auth|…)/$: the app index
                found.append(("app_list", prefix + "members/"))
            else:
                url = PARAMETER.sub("1", prefix + str(pattern.pattern))
                found.append((str(pattern.name), url))

    walk(admin, "/admin/")
    return found


# Admin addresses open without signing in to the admin: its login and logout, the
# contenttypes shortcut (redirects to an object's page; no model here has one: 404), and
# treebeard's translation catalogue for its drag-and-drop script (static texts, no data).
ADMIN_OPEN = {"login", "logout", "view_on_site", "javascript-catalog"}


def test_admin_sends_everyone_but_staff_to_its_login(world: World):
    routes = _admin_routes()
    walker = Walker(world)
    wrong: list[str] = []
    for key in ("anonymous", "secretary_b", "member_b", "committee_staff", "no_role"):
        for name, url in routes:
            response = walker.request(key, "GET", url)
            if name in ADMIN_OPEN:
                if response.status_code not in (200, 302, 404, 405):
                    wrong.append(f"{key} {url}: {response.status_code}")
            elif not (
                response.status_code == 302
                and response["Location"].startswith("/admin/login/?next=")
            ):
                wrong.append(f"{key} {url}: {response.status_code}")
    assert wrong == []
    # Every model of the admin was walked: its list, its add page and its object pages.
    walked = {url for _name, url in routes}
    for model in admin_site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert {base, f"{base}add/", f"{base}1/change/", f"{base}1/delete/"} <= walked
