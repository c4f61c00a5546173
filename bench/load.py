"""python -m bench load [--scale S] [--database-url URL] [--generate] [--duration 20] …

Pages under load, and scaling out (issue 8, items 3 and 6). On the dataset of ``python -m
bench --scale S --generate-only --skip-fk-checks`` (checked by the marker that run leaves on
the database; ``--generate`` makes it first when it is missing), the app runs as in
production — gunicorn with 2 sync workers (``config.wsgi``), production settings from the
environment, one Celery worker on a Redis broker, so recording enqueues its recomputes —
and wrk loads one page at a time over loopback, each signed in as the user it is for:

- member ledger (``scoring:my_points``, the member's phone page);
- branch quarter table (``scoring:branch_table``, a finished quarter);
- publicity board (``publicity:board``, a review cycle in publicity, as the secretary);
- committee overview (``members:overview``, committee staff, the year);
- bulk recording: a real POST of the bulk form (``scoring:branch_record_bulk``), one rule
  for ~50 members, a fresh one-time form token per request, CSRF cookie and field; a 302
  is success, anything else an error;
- the floor: a view that only requires a signed-in user (served by the bench's URL module,
  bench/load_urls.py, never by production's).

The same load then runs against two gunicorn instances (each 2 workers; the connections
split evenly over two wrk processes running at once) with two Celery workers, and the time
to drain the recomputes that many branches recording at once leave behind (a stale-totals
mark and a recompute_members_task per branch) is measured with one worker and with two.

Prepared idempotently with the app's own models and services: the year's totals (one
``recompute_organization`` if there are none), the branch whose roster is closest to 50
members, its secretary, one of its members given a login, its review of the year's last
quarter taken to publicity through ``reviews.services``, committee staff on the committee,
and fresh sessions (no login form, no django-axes). The bulk POSTs record into a second
branch of about 50 members (the next closest), so that the ledger the read pages show does
not grow with the recording load; its own secretary posts them.

The results are printed and written to bench/out/load-<scale>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

from bench.__main__ import DEFAULT_URL, ROOT, admin_connection, code_version, machine, marker

OUT = ROOT / "bench" / "out"
LUA_SCRIPT = ROOT / "bench" / "load_wrk.lua"
TARGET_MEMBERS = 50
QUARTER = 4  # the dataset's year is over: its last quarter is a finished one
GOAL_P95_MS = {"member_ledger": 100.0, "branch_table": 100.0, "committee_overview": 300.0}
GOAL_THROUGHPUT_RATIO = 2.0  # a page's throughput within 2x of the trivial view's
USERNAMES = {
    "staff": "bench_load_staff",
    "secretary": "bench_load_secretary",
    "recording_secretary": "bench_load_recording_secretary",
    "member": "bench_load_member",
}
POLL_SECONDS = 0.02
# As docker-compose.yml runs them (the worker with one process, the web with 2 workers).
CELERY_WORKER = ["-m", "celery", "-A", "config", "worker", "--concurrency", "1", "-l", "info"]
GUNICORN = ["-m", "gunicorn", "config.wsgi:application", "--workers", "2", "--access-logfile", "-"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__.split("\n\n")[1],
        epilog=(
            "By default one run measures both configurations: one instance (1 gunicorn with "
            "2 workers, 1 Celery worker), then scale-out (2 gunicorns with 2 workers each on "
            "two ports, 2 Celery workers, the wrk load split evenly over two wrk processes "
            "running at once; their throughputs are summed and their latency percentiles "
            "reported as the worse of the two). --no-scale-out measures one instance only. "
            "wrk comes from Debian: make bench-deps."
        ),
    )
    parser.add_argument("--scale", type=float, default=1.0, help="the dataset's scale")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--generate",
        action="store_true",
        help="when the database does not hold this scale's dataset, (re)create it and "
        "generate it first (python -m bench --generate-only --skip-fk-checks)",
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per page")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each")
    parser.add_argument("--connections", type=int, default=4, help="open connections in all")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads in all (1-2)")
    parser.add_argument("--timeout", type=int, default=10, help="wrk's timeout per request")
    parser.add_argument(
        "--pages",
        help="comma-separated page keys to load (default all): "
        + ", ".join(key for key, _title in PAGE_TITLES),
    )
    parser.add_argument("--no-scale-out", action="store_true", help="one instance only")
    parser.add_argument(
        "--drain-branches",
        type=int,
        default=100,
        help="recompute-drain batch: this many branches' after-recording recomputes "
        "(recompute_members_task, one each; 0: skip)",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=7,
        help="the Redis database (127.0.0.1:6379) of the bench's broker and cache; "
        "emptied at the start and at the end",
    )
    parser.add_argument("--out", help="the JSON file (default bench/out/load-<scale>.json)")
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= args.connections:
        parser.error("--threads must be between 1 and --connections")
    if not args.no_scale_out and args.connections < 2:
        parser.error("scale-out splits the connections over two instances: --connections ≥ 2")
    return args


# --- the dataset and the pages --------------------------------------------------------------

PAGE_TITLES = [
    ("trivial", "trivial signed-in view (floor)"),
    ("member_ledger", "member ledger (my_points, phone)"),
    ("branch_table", "branch quarter table"),
    ("publicity_board", "publicity board"),
    ("committee_overview", "committee overview"),
    ("bulk_record", "bulk recording, 50 members (POST)"),
]


@dataclass
class Page:
    """One URL to load, and who asks for it."""

    key: str
    title: str
    path: str
    user: str  # a key of USERNAMES
    method: str = "GET"
    expect: int = 200
    body: str = ""  # POST: urlencoded, FORM_TOKEN stands for the one-time token
    queries: int | None = None  # database queries of one request (Django's test client)
    alone_ms: float | None = None  # one request alone, in-process (median)


@dataclass
class Fixture:
    """What the pages were prepared with."""

    year: int
    quarter: int
    committee_id: int
    branch: dict
    recording_branch: dict
    member: dict
    cycle: dict
    rule: dict
    recorded_members: list[int]
    sessions: dict[str, str] = field(default_factory=dict)
    csrf_token: str = ""
    pages: list[Page] = field(default_factory=list)

    def cookie(self, user: str) -> str:
        from django.conf import settings

        return (
            f"{settings.SESSION_COOKIE_NAME}={self.sessions[user]}; "
            f"{settings.CSRF_COOKIE_NAME}={self.csrf_token}"
        )


def dataset_marker(url: str) -> str:
    """The first line of the database's comment ('' when it has none or does not exist)."""
    conn, name = admin_connection(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                [name],
            )
            row = cursor.fetchone()
    finally:
        conn.close()
    return ((row[0] or "") if row else "").split("\n")[0]


def ensure_dataset(args: argparse.Namespace) -> None:
    """Check the marker; with --generate, make the dataset with the recompute bench's own
    generation when it is missing (that recreates the database)."""
    from bench import __main__ as bench_main
    from bench import generate

    expected = marker(args.scale, generate.SEED)
    found = dataset_marker(args.database_url)
    if found == expected:
        return
    if not args.generate:
        raise SystemExit(
            f"{args.database_url} does not hold the scale-{args.scale:g} dataset "
            f"(its marker: {found or 'none'}). Generate it with\n"
            f"  python -m bench --scale {args.scale:g} --generate-only --skip-fk-checks "
            f"--database-url {args.database_url}\nor pass --generate."
        )
    print(f"generating the scale-{args.scale:g} dataset into {args.database_url} …")
    bench_main.main(
        [
            "--scale",
            f"{args.scale:g}",
            "--generate-only",
            "--skip-fk-checks",
            "--database-url",
            args.database_url,
        ]
    )


def ensure_totals(committee, year: int) -> float | None:
    """One full recompute if the year has no totals yet; its wall time, or None."""
    from scoring.models import PeriodScore
    from scoring.recompute import recompute_organization

    if PeriodScore.objects.filter(year=year).exists():
        return None
    print(f"no totals for {year} yet: recompute_organization(committee, {year}) …", flush=True)
    started = time.perf_counter()
    recompute_organization(committee, year)
    elapsed = time.perf_counter() - started
    print(f"  done in {elapsed:.1f} s")
    return elapsed


def branches_near(size: int, count: int) -> list[tuple[int, int]]:
    """(branch id, roster size) of the ``count`` branches whose rosters are closest to
    ``size`` members, closest first (ties: lower id)."""
    from django.db.models import Count

    from members.models import Member

    rosters = Member.objects.order_by().values_list("organization_id").annotate(n=Count("id"))
    return sorted(rosters, key=lambda row: (abs(row[1] - size), row[0]))[:count]


def ensure_user(username: str):
    """A login of the bench's own (no usable password: it signs in by session only)."""
    from django.contrib.auth.models import User

    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def ensure_member_login(user, branch, year: int):
    """Link ``user`` to a typical member of ``branch``: the active full member with the
    median number of ledger entries in ``year`` (kept from an earlier run if it is there)."""
    from django.db.models import Count, Q

    from members.models import Member

    linked = Member.objects.filter(user=user).first()
    if linked is not None and linked.organization_id == branch.pk:
        return linked
    if linked is not None:
        linked.user = None
        linked.save(update_fields=["user", "updated_at"])
    candidates = list(
        Member.objects.filter(
            organization=branch,
            category=Member.Category.FULL,
            status=Member.Status.ACTIVE,
            user__isnull=True,
        )
        .annotate(year_entries=Count("entries", filter=Q(entries__year=year)))
        .order_by("year_entries", "id")
    )
    if not candidates:
        raise SystemExit(f"{branch} has no active full member without a login")
    member = candidates[len(candidates) // 2]
    member.user = user
    member.save(update_fields=["user", "updated_at"])
    return member


def ensure_publicity_cycle(branch, secretary, year: int, quarter: int):
    """The branch's review of the quarter, taken to publicity through ``reviews.services``
    as the secretary would on the pages: open, self-assessment deadline, committee review
    (the committee meeting, every ranked member's score agreed), the general meeting (all
    voting members present, carried), publicity from today. Each step runs only if the
    cycle is not past it, so a second run changes nothing."""
    from django.utils import timezone

    from reviews import services as reviews
    from reviews.demo import general_meeting_record_unanimous
    from reviews.models import CommitteeMeeting, GeneralMeeting, ReviewCycle

    state = ReviewCycle.State
    today = timezone.localdate()
    cycle = reviews.cycle_open(user=secretary, branch=branch, year=year, quarter=quarter)
    while cycle.state not in (state.PUBLICITY, state.FINALIZED):
        if cycle.state == state.OPEN and cycle.self_assessment_deadline is None:
            cycle = reviews.cycle_set_deadline(user=secretary, cycle=cycle, deadline=today)
        if cycle.state == state.COMMITTEE_REVIEW:
            ranked = list(reviews.ranked_members(branch))
            if not CommitteeMeeting.objects.filter(cycle=cycle).exists():
                reviews.committee_meeting_record(
                    user=secretary, cycle=cycle, meeting_date=today, attendees=ranked[:1]
                )
            reviews.scores_agree(user=secretary, cycle=cycle, members=ranked)
        if cycle.state == state.GENERAL_MEETING and not (
            GeneralMeeting.objects.filter(cycle=cycle).exists()
        ):
            general_meeting_record_unanimous(user=secretary, cycle=cycle, meeting_date=today)
        cycle = reviews.cycle_advance(
            user=secretary,
            cycle=cycle,
            expected_state=cycle.state,
            publicity_starts_on=today if cycle.state == state.GENERAL_MEETING else None,
        )
    if cycle.state != state.PUBLICITY:
        print(f"note: the review {cycle} is already {cycle.get_state_display()}")
    return cycle


def recording_rule(branch, year: int):
    """The rule the bulk POSTs record: current, not a veto, no per-quarter cap (so every
    POST records); a bonus without a yearly cap if there is one."""
    from scoring import selectors
    from scoring.models import Rule

    rules = [rule for rule in selectors.current_rules(branch, year) if rule.kind != Rule.Kind.VETO]
    uncapped = [rule for rule in rules if rule.max_times_per_quarter is None]
    if not uncapped:
        print("note: every rule has a per-quarter cap; the bulk POSTs may record less")
    return sorted(
        uncapped or rules,
        key=lambda rule: (
            rule.kind != Rule.Kind.BONUS,
            rule.max_times_per_quarter is not None,
            rule.max_points_per_year is not None,
            rule.position,
        ),
    )[0]


def new_session(user) -> str:
    """A signed-in session for ``user``, written as ``django.contrib.auth.login`` would."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def prepare(year: int, quarter: int) -> Fixture:
    """Totals, users, roles, sessions, the review in publicity, and the pages to load."""
    from django.urls import reverse

    from bench.load_urls import TRIVIAL_PATH
    from members.models import Member, Organization, Role
    from members.services import role_assign

    committee = Organization.objects.get(depth=1)
    recompute_seconds = ensure_totals(committee, year)
    (branch_id, branch_size), (recording_id, recording_size) = branches_near(TARGET_MEMBERS, 2)
    branch = Organization.objects.get(pk=branch_id)
    recording = Organization.objects.get(pk=recording_id)
    users = {key: ensure_user(name) for key, name in USERNAMES.items()}
    role_assign(user=users["staff"], organization=committee, post=Role.Post.STAFF)
    role_assign(user=users["secretary"], organization=branch, post=Role.Post.SECRETARY)
    role_assign(user=users["recording_secretary"], organization=recording, post=Role.Post.SECRETARY)
    member = ensure_member_login(users["member"], branch, year)
    cycle = ensure_publicity_cycle(branch, users["secretary"], year, quarter)
    rule = recording_rule(recording, year)
    recorded = [
        candidate
        for candidate in Member.objects.filter(organization=recording)
        .exclude(status=Member.Status.TRANSFERRED_OUT)
        .order_by("name", "id")
        if rule.applies_to_member(candidate)
    ]
    fixture = Fixture(
        year=year,
        quarter=quarter,
        committee_id=committee.pk,
        branch={"id": branch.pk, "name": branch.name, "members": branch_size},
        recording_branch={"id": recording.pk, "name": recording.name, "members": recording_size},
        member={
            "id": member.pk,
            "entries_in_year": member.entries.filter(year=year).count(),
        },
        cycle={"id": cycle.pk, "state": cycle.state, "period": f"{year} Q{quarter}"},
        rule={"id": rule.pk, "code": rule.code, "points": str(rule.points_min)},
        recorded_members=[candidate.pk for candidate in recorded],
        sessions={key: new_session(user) for key, user in users.items()},
        csrf_token="".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32)),
    )
    if recompute_seconds is not None:
        fixture.branch["full_recompute_s"] = round(recompute_seconds, 1)
    body = urlencode(
        [
            ("csrfmiddlewaretoken", fixture.csrf_token),
            ("year", year),
            ("form_token", "FORM_TOKEN"),
            ("occurred_on", date(year, 12, 1).isoformat()),
            ("description", "负载测试：批量记录"),
            ("rule", rule.pk),
            ("points", "" if rule.is_fixed else str(rule.points_min)),
            *(("members", pk) for pk in fixture.recorded_members),
        ]
    )
    table = reverse("scoring:branch_table", kwargs={"pk": branch.pk})
    specs = {
        "trivial": {"path": "/" + TRIVIAL_PATH, "user": "member"},
        "member_ledger": {"path": reverse("scoring:my_points") + f"?year={year}", "user": "member"},
        "branch_table": {"path": f"{table}?year={year}&quarter={quarter}", "user": "secretary"},
        "publicity_board": {
            "path": reverse("publicity:board", kwargs={"pk": cycle.pk}),
            "user": "secretary",
        },
        "committee_overview": {
            "path": reverse("members:overview") + f"?year={year}",
            "user": "staff",
        },
        "bulk_record": {
            "path": reverse("scoring:branch_record_bulk", kwargs={"pk": recording.pk}),
            "user": "recording_secretary",
            "method": "POST",
            "expect": 302,
            "body": body,
        },
    }
    fixture.pages = [Page(key=key, title=title, **specs[key]) for key, title in PAGE_TITLES]
    return fixture


def measure_alone(fixture: Fixture, repeat: int = 5) -> None:
    """Each page requested alone, in this process, through Django's test client (no HTTP,
    no other request at the same time): its database queries, and the median time of
    ``repeat`` requests after one warm-up — what a page costs before any queueing."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    for page in fixture.pages:
        client = Client()
        client.cookies.load(fixture.cookie(page.user))
        timings = []
        for _attempt in range(repeat + 1):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                if page.method == "POST":
                    body = page.body.replace("FORM_TOKEN", str(uuid.uuid4()))
                    response = client.post(
                        page.path, body, content_type="application/x-www-form-urlencoded"
                    )
                else:
                    response = client.get(page.path)
                timings.append(time.perf_counter() - started)
            if response.status_code != page.expect:
                raise SystemExit(
                    f"{page.title}: {page.method} {page.path} answered "
                    f"{response.status_code} in-process, expected {page.expect}"
                )
        page.queries = len(captured.captured_queries)
        page.alone_ms = round(statistics.median(timings[1:]) * 1000, 1)


# --- the servers ----------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Service:
    """A process of ours (in a session of its own, so its children go with it)."""

    name: str
    process: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}"
            )

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 30 s; then nothing of it is left."""
        group = self.process.pid
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            try:
                os.killpg(group, 0)  # a child still there after its parent ended?
            except ProcessLookupError:
                break
        self.process.wait(timeout=10)


def start(name: str, command: list[str], env: dict[str, str], log: Path) -> Service:
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name=name, process=process, log=log)


def wait_until(ready, what: str, services: list[Service], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for service in services:
            service.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def answers(port: int, path: str = "/login/") -> bool:
    try:
        return request(port, "GET", path, {})[0] == 200
    except OSError:
        return False


@contextmanager
def stack(instances: int, workers: int, env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    """``workers`` Celery workers and ``instances`` gunicorns (2 sync workers each) on free
    loopback ports, as docker-compose.yml runs them; yields the ports. Everything is stopped
    on the way out, whatever happens."""
    services: list[Service] = []
    ports: list[int] = []
    try:
        for number in range(1, workers + 1):
            services.append(
                start(
                    f"celery worker {number}",
                    [sys.executable, *CELERY_WORKER, "-n", f"bench-load-{number}@%h"],
                    {**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
                    logs / f"celery-{number}.log",
                )
            )
        for number in range(1, instances + 1):
            port = free_port()
            ports.append(port)
            services.append(
                start(
                    f"gunicorn {number}",
                    [sys.executable, *GUNICORN, "--bind", f"127.0.0.1:{port}"],
                    {**env, "DJANGO_SETTINGS_MODULE": "bench.load_settings"},
                    logs / f"gunicorn-{number}.log",
                )
            )
        for service in services[:workers]:
            wait_until(lambda s=service: " ready." in s.log_tail(100_000), service.name, services)
        for port in ports:
            wait_until(lambda p=port: answers(p), f"gunicorn on port {port}", services)
        yield ports
        for service in services:
            service.check_alive()
    finally:
        for service in reversed(services):  # the web first: nothing enqueues after it
            service.stop()


# --- requests and wrk -----------------------------------------------------------------------


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body.encode() or None, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def page_headers(fixture: Fixture, page: Page) -> dict[str, str]:
    headers = {"Cookie": fixture.cookie(page.user)}
    if page.method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return headers


def verify(port: int, fixture: Fixture, page: Page) -> None:
    """One request before loading: the expected status, or stop here."""
    body = page.body.replace("FORM_TOKEN", str(uuid.uuid4()))
    status, headers, content = request(
        port, page.method, page.path, page_headers(fixture, page), body
    )
    if status != page.expect:
        where = headers.get("Location", "")
        raise SystemExit(
            f"{page.title}: {page.method} {page.path} on port {port} answered {status} "
            f"{where}, expected {page.expect}\n{content[:2000].decode(errors='replace')}"
        )


def check_bulk(port: int, fixture: Fixture, page: Page) -> int:
    """One bulk POST, before timing: it must answer 302 and record one entry per member."""
    from scoring.models import Entry

    description = f"负载测试：核对 {uuid.uuid4()}"
    body = page.body.replace("FORM_TOKEN", str(uuid.uuid4())).replace(
        urlencode({"description": "负载测试：批量记录"}), urlencode({"description": description})
    )
    status, headers, content = request(port, "POST", page.path, page_headers(fixture, page), body)
    recorded = Entry.objects.filter(
        organization_id=fixture.recording_branch["id"], description=description
    ).count()
    expected = len(fixture.recorded_members)
    if status != 302 or recorded != expected:
        raise SystemExit(
            f"the bulk POST answered {status} {headers.get('Location', '')} and recorded "
            f"{recorded} entries, expected 302 and {expected}\n"
            f"{content[:2000].decode(errors='replace')}"
        )
    return recorded


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: run `make bench-deps` (apt-get install wrk)")
    return found


def run_wrk(
    ports: list[int], fixture: Fixture, page: Page, seconds: int, args: argparse.Namespace
) -> dict:
    """``page`` under load for ``seconds``: the connections (and threads) split evenly over
    one wrk process per port, all at once. Merged: requests, errors and throughputs summed;
    latency percentiles the worse of the parts (not a merged histogram)."""
    share, extra = divmod(args.connections, len(ports))
    threads = max(1, args.threads // len(ports))
    processes = []
    try:
        for index, port in enumerate(ports):
            connections = share + (1 if index < extra else 0)
            prefix = secrets.token_hex(6)
            env = {
                **os.environ,
                "LOAD_COOKIE": fixture.cookie(page.user),
                "LOAD_EXPECT": str(page.expect),
                "LOAD_METHOD": page.method,
                "LOAD_BODY": page.body,
                "LOAD_TOKEN_PREFIX": f"{prefix[:8]}-{prefix[8:]}",
            }
            command = [
                wrk_binary(),
                "--threads",
                str(min(threads, connections)),
                "--connections",
                str(connections),
                "--duration",
                f"{seconds}s",
                "--timeout",
                f"{args.timeout}s",
                "--script",
                str(LUA_SCRIPT),
                f"http://127.0.0.1:{port}{page.path}",
            ]
            processes.append(
                subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
        parts = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=seconds + args.timeout + 60)
            lines = [line for line in stdout.splitlines() if line.startswith("{")]
            if process.returncode != 0 or not lines:
                raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout}\n{stderr}")
            parts.append(json.loads(lines[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return merge(parts)


def merge(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    requests = sum(part["requests"] for part in parts)
    latency = {
        key: max(part["latency_ms"][key] for part in parts)
        for key in ("p50", "p90", "p95", "p99", "max")
    }
    latency["mean"] = sum(p["latency_ms"]["mean"] * p["requests"] for p in parts) / max(requests, 1)
    merged = {
        key: sum(part[key] for part in parts)
        for key in (
            "requests",
            "throughput",
            "errors",
            "unexpected_status",
            "socket_errors",
            "timeouts",
            "non_2xx_3xx",
            "bytes",
        )
    }
    merged["throughput"] = round(merged["throughput"], 2)
    merged["duration_s"] = max(part["duration_s"] for part in parts)
    merged["an_unexpected_status"] = max(part["an_unexpected_status"] for part in parts)
    merged["latency_ms"] = latency
    merged["parts"] = parts
    return merged


# --- the Celery queue -------------------------------------------------------------------------


def queued(broker) -> int:
    """Tasks waiting in the broker plus tasks delivered but not yet acknowledged (running,
    or held for a countdown): kombu's Redis transport keeps those in its ``unacked`` hash."""
    waiting = sum(
        broker.llen(key) for key in broker.scan_iter(match="celery*") if broker.type(key) == b"list"
    )
    return waiting + broker.hlen("unacked")


def wait_for_quiet(broker, timeout: float = 900) -> float:
    """Wait until no task is queued or running (three empty looks 0.1 s apart); seconds."""
    started = time.monotonic()
    empty = 0
    while empty < 3:
        empty = empty + 1 if queued(broker) == 0 else 0
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the Celery queue still has {queued(broker)} tasks")
        time.sleep(0.1)
    return time.monotonic() - started


def measure_drain(fixture: Fixture, branches: int, broker) -> dict:
    """What many branches recording at once leave to the workers: for each of the first
    ``branches`` branches, the stale-totals mark a recording writes
    (``scoring.services.mark_totals_stale``) and the ``recompute_members_task`` it enqueues
    on commit, for one of the branch's members. Timed until every mark has been taken by
    its recompute (polled every 20 ms)."""
    from members.models import Member, Organization
    from scoring.models import StaleTotals
    from scoring.services import mark_totals_stale
    from scoring.tasks import recompute_members_task

    wait_for_quiet(broker)
    branch_ids = list(
        Organization.objects.filter(kind=Organization.Kind.BRANCH)
        .order_by("path")
        .values_list("id", flat=True)[:branches]
    )
    member_of: dict[int, int] = {}
    for member_id, branch_id in (
        Member.objects.filter(organization_id__in=branch_ids)
        .order_by("organization_id", "id")
        .values_list("id", "organization_id")
    ):
        member_of.setdefault(branch_id, member_id)
    branch_ids = [branch_id for branch_id in branch_ids if branch_id in member_of]

    def waiting() -> int:
        return StaleTotals.objects.filter(organization_id__in=branch_ids, year=fixture.year).count()

    started = time.perf_counter()
    mark_totals_stale(branch_ids, fixture.year)
    for branch_id in branch_ids:
        recompute_members_task.delay([member_of[branch_id]], fixture.year)
    enqueued = time.perf_counter() - started
    deadline = time.monotonic() + 60 + 5 * len(branch_ids)
    while waiting():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{waiting()} branch recomputes never finished")
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    wait_for_quiet(broker)
    return {
        "tasks": len(branch_ids),
        "enqueue_s": round(enqueued, 3),
        "wall_s": round(wall, 3),
        "per_task_ms": round(wall / max(len(branch_ids), 1) * 1000, 1),
    }


# --- one configuration ----------------------------------------------------------------------


def measure_configuration(
    name: str,
    instances: int,
    workers: int,
    fixture: Fixture,
    pages: list[Page],
    args: argparse.Namespace,
    env: dict[str, str],
    broker,
) -> dict:
    """Start the stack, verify every page on every instance, load them one after the other,
    drain the recompute backlog after the POSTs, time a batch of recomputes; stop."""
    logs = OUT / f"load-{args.scale:g}-logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    print(f"\n== {name}: {instances} gunicorn × 2 workers, {workers} Celery worker(s) ==")
    result: dict = {"instances": instances, "celery_workers": workers, "pages": {}}
    with stack(instances, workers, env, logs) as ports:
        print(f"serving on port(s) {', '.join(map(str, ports))}; logs in {logs}")
        for page in pages:
            for port in ports:
                verify(port, fixture, page)
            if page.method == "POST":
                result["bulk_check_entries"] = check_bulk(ports[0], fixture, page)
                print(f"  one bulk POST answered 302 and recorded {result['bulk_check_entries']}")
        wait_for_quiet(broker)
        for page in pages:
            if args.warmup:
                run_wrk(ports, fixture, page, args.warmup, args)
            figures = run_wrk(ports, fixture, page, args.duration, args)
            figures["load_average_1min"] = round(os.getloadavg()[0], 2)  # how quiet it was
            result["pages"][page.key] = figures
            latency = figures["latency_ms"]
            print(
                f"  {page.title:<36} p50 {latency['p50']:7.1f} ms  p95 {latency['p95']:7.1f} ms  "
                f"{figures['throughput']:7.1f} req/s  errors {figures['errors']}"
                + (
                    f" (e.g. status {figures['an_unexpected_status']})"
                    if figures["unexpected_status"]
                    else ""
                ),
                flush=True,
            )
            if page.method == "POST":
                backlog = queued(broker)
                drained = wait_for_quiet(broker)
                result["bulk_backlog"] = {"tasks_at_end": backlog, "drained_s": round(drained, 1)}
                print(
                    f"  recompute backlog after the bulk load: {backlog} task(s), "
                    f"drained in {drained:.1f} s (committee ranks follow 30 s after a change)"
                )
        if args.drain_branches > 0:
            drain = measure_drain(fixture, args.drain_branches, broker)
            result["recompute_drain"] = drain
            print(
                f"  recompute drain: {drain['tasks']} branches' recompute_members_task "
                f"in {drain['wall_s']:.2f} s = {drain['per_task_ms']:.0f} ms a task"
            )
    return result


# --- report ---------------------------------------------------------------------------------


def ratios(pages: dict, key: str) -> tuple[float | None, float | None]:
    """(trivial throughput / page throughput, page p95 / trivial p95)."""
    floor = pages.get("trivial")
    figures = pages[key]
    if floor is None or not figures["throughput"] or not floor["latency_ms"]["p95"]:
        return None, None
    return (
        floor["throughput"] / figures["throughput"],
        figures["latency_ms"]["p95"] / floor["latency_ms"]["p95"],
    )


def goals(pages: dict) -> list[dict]:
    """Every goal of issue 8 that the measured pages allow to judge."""
    verdicts = []
    for key, limit in GOAL_P95_MS.items():
        if key in pages:
            value = pages[key]["latency_ms"]["p95"]
            verdicts.append(
                {
                    "goal": f"{key} p95 ≤ {limit:g} ms",
                    "value": f"{value:.1f} ms",
                    "met": value <= limit,
                }
            )
    for key in pages:
        ratio = ratios(pages, key)[0]
        if key != "trivial" and ratio is not None:
            verdicts.append(
                {
                    "goal": f"{key} throughput within {GOAL_THROUGHPUT_RATIO:g}× of the trivial view",
                    "value": f"{ratio:.2f}×",
                    "met": ratio <= GOAL_THROUGHPUT_RATIO,
                }
            )
    return verdicts


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for number, row in enumerate([headers, *rows]):
        print(
            "  ".join(
                str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if number == 0:
            print("  ".join("-" * width for width in widths))


def report(result: dict, fixture: Fixture) -> None:
    titles = {page.key: page.title for page in fixture.pages}
    alone = {page.key: page for page in fixture.pages}
    single = result["one_instance"]["pages"]
    print("\n== one instance (gunicorn 2 sync workers, 1 Celery worker) ==")
    rows = []
    for key, figures in single.items():
        throughput_ratio, p95_ratio = ratios(single, key)
        latency = figures["latency_ms"]
        rows.append(
            [
                titles[key],
                f"{latency['p50']:.1f}",
                f"{latency['p95']:.1f}",
                f"{latency['p99']:.1f}",
                f"{figures['throughput']:.1f}",
                str(figures["errors"]),
                "—" if throughput_ratio is None else f"{throughput_ratio:.2f}×",
                "—" if p95_ratio is None else f"{p95_ratio:.1f}×",
                str(alone[key].queries),
                f"{alone[key].alone_ms:.0f}",
            ]
        )
    print_table(
        [
            "page",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "errors",
            "trivial/page req/s",
            "p95 / trivial",
            "queries",
            "alone ms",
        ],
        rows,
    )
    print(
        "(queries and 'alone ms': one request by itself, in-process through Django's test "
        "client, median of 5 — the cost of the page before any queueing)\n"
    )
    for verdict in result["goals"]:
        print(
            f"goal {verdict['goal']}: {verdict['value']} — {'met' if verdict['met'] else 'NOT met'}"
        )
    if "scale_out" in result:
        scaled = result["scale_out"]["pages"]
        print(
            "\n== scale out: 2 gunicorn instances × 2 workers, 2 Celery workers "
            "(two wrk at once; req/s summed, p95 the worse of the two) =="
        )
        rows = []
        for key, figures in scaled.items():
            one = single.get(key)
            if one is None:
                continue
            gain = figures["throughput"] / one["throughput"] if one["throughput"] else 0
            rows.append(
                [
                    titles[key],
                    f"{one['throughput']:.1f}",
                    f"{figures['throughput']:.1f}",
                    f"{gain:.2f}×",
                    f"{one['latency_ms']['p95']:.1f}",
                    f"{figures['latency_ms']['p95']:.1f}",
                    str(figures["errors"]),
                ]
            )
        print_table(
            ["page", "1× req/s", "2× req/s", "gain", "1× p95 ms", "2× p95 ms", "2× errors"], rows
        )
    drains = [
        (label, result[name].get("recompute_drain"))
        for label, name in (("1 worker", "one_instance"), ("2 workers", "scale_out"))
        if name in result
    ]
    if any(drain for _label, drain in drains):
        print("\n== recompute drain (one recompute_members_task per branch) ==")
        print_table(
            ["Celery workers", "tasks", "wall s", "ms a task"],
            [
                [label, str(d["tasks"]), f"{d['wall_s']:.2f}", f"{d['per_task_ms']:.0f}"]
                for label, d in drains
                if d
            ],
        )
        print(
            "Every recompute of a committee-year takes the committee's RankingState row lock "
            "(scoring/recompute.py _lock_state) and holds it to commit, so within one committee "
            "a second worker can only overlap what lies outside the lock."
        )
    print()
    for key, value in result["machine"].items():
        print(f"{key}: {value}")
    print(f"load average (1 min) before / after: {result['load_average']}")
    print(f"code: {result['code']}")
    print(f"command: {result['command']}")


# --- main -----------------------------------------------------------------------------------


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    wrk_binary()
    import redis

    command = "python -m bench load " + " ".join(shlex.quote(a) for a in argv)
    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    # The environment of the parent (Django, for preparing and counting) and of the stack.
    os.environ.pop("DJANGO_DEBUG", None)
    os.environ.pop("DJANGO_HTTPS", None)
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "CELERY_BROKER_URL": broker_url,
            "REDIS_URL": broker_url,
            "DJANGO_SETTINGS_MODULE": "bench.load_settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    signal.signal(signal.SIGTERM, _interrupted)
    ensure_dataset(args)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench import generate

    if connection.vendor != "postgresql":
        raise SystemExit("the load benchmark needs PostgreSQL")
    call_command("migrate", verbosity=0)
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    year = generate.YEAR
    print("preparing users, sessions and the review in publicity …", flush=True)
    fixture = prepare(year, QUARTER)
    measure_alone(fixture)
    selected = args.pages.split(",") if args.pages else [key for key, _title in PAGE_TITLES]
    unknown = set(selected) - {key for key, _title in PAGE_TITLES}
    if unknown:
        raise SystemExit(f"unknown pages: {', '.join(sorted(unknown))}")
    pages = [page for page in fixture.pages if page.key in selected]
    print(
        f"branch {fixture.branch['name']} ({fixture.branch['members']} members), "
        f"member #{fixture.member['id']} ({fixture.member['entries_in_year']} entries in {year}), "
        f"review {fixture.cycle['period']} ({fixture.cycle['state']}); bulk POSTs into "
        f"{fixture.recording_branch['name']}: rule {fixture.rule['code']} for "
        f"{len(fixture.recorded_members)} members"
    )
    for page in pages:
        print(
            f"  {page.title}: {page.method} {page.path} ({page.queries} queries, "
            f"{page.alone_ms:.0f} ms alone)"
        )

    info = machine(connection)
    connection.close()  # the children work on the database meanwhile
    env = dict(os.environ)
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1"
    result: dict = {
        "scale": args.scale,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "code": code_version(),
        "machine": info,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "timeout_s": args.timeout,
            "gunicorn": "2 sync workers an instance",
            "celery": "concurrency 1 a worker",
            "merge": "two instances: req/s summed, latency percentiles the worse of the two",
        },
        "dataset": {
            "year": fixture.year,
            "quarter": fixture.quarter,
            "branch": fixture.branch,
            "recording_branch": fixture.recording_branch,
            "member": fixture.member,
            "cycle": fixture.cycle,
            "rule": fixture.rule,
            "recorded_members": len(fixture.recorded_members),
        },
        "pages": [{k: v for k, v in asdict(page).items() if k != "body"} for page in fixture.pages],
    }
    load_before = os.getloadavg()[0]
    if load_before > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load_before:.1f} on {os.cpu_count()} cores before measuring")
    try:
        result["one_instance"] = measure_configuration(
            "one-instance", 1, 1, fixture, pages, args, env, broker
        )
        if not args.no_scale_out:
            result["scale_out"] = measure_configuration(
                "scale-out", 2, 2, fixture, pages, args, env, broker
            )
    except KeyboardInterrupt:
        print("\ninterrupted: the servers and workers are stopped", file=sys.stderr)
        return 130
    finally:
        broker.flushdb()
    result["load_average"] = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    result["goals"] = goals(result["one_instance"]["pages"])
    report(result, fixture)
    out = Path(args.out) if args.out else OUT / f"load-{args.scale:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0
