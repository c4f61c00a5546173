"""A deterministic city-scale dataset, loaded with COPY.

Shape at ``scale=1``: one committee (the root), 150 general branches, 15,000 branches,
300,000 members, one recorder login per branch, a scheme adopted on the committee with 20
rules, and 10,000,000 ledger entries over one year. ``scale`` multiplies the counts of
general branches, branches, members and entries (never below one general branch).

Rows are streamed to ``COPY … FROM STDIN`` (text format) from generators, a few hundred
thousand rows per statement, so memory stays small and the database builds its indexes
and checks its constraints as it would for any insert. Ids are given explicitly (the
sequences are moved past them afterwards) so entries can refer to members, branches and
earlier entries without a round trip.

The ledger is written in date order — entry ids grow with ``occurred_on`` as a real
ledger's do — so one member's entries are spread over the whole table, not clustered.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import accumulate

SEED = 20250701
YEAR = 2025
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
STEPLEN = 4

FULL = {"general_branches": 150, "branches": 15_000, "members": 300_000, "entries": 10_000_000}

# Share of members reversed entries / vetoes (per member, over the year).
REVERSAL_RATE = 0.004
VETO_RATE = 0.0002

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅志强文斌海燕玉兰春梅"
EXEMPT_REASONS = ["长期病休", "出国（境）学习", "年老体弱，经支部大会同意"]

# code, category, name, kind, points_min, points_max, max_times_per_quarter,
# max_points_per_year, weight (share of the ledger lines of this rule, in thousandths)
RULES = [
    ("B01", "组织生活", "参加支部党员大会", "bonus", "2", "2", 3, None, 90),
    ("B02", "组织生活", "参加党小组会", "bonus", "1", "1", 3, None, 90),
    ("B03", "组织生活", "参加专题党课", "bonus", "2", "2", 1, None, 50),
    ("B04", "组织生活", "参加主题党日活动", "bonus", "2", "2", 1, None, 60),
    ("B05", "学习教育", "“学习强国”学习达标", "bonus", "0.5", "0.5", None, "10", 120),
    ("B06", "学习教育", "撰写学习心得", "bonus", "1", "1", 2, None, 60),
    ("B07", "学习教育", "参加集中培训并考核合格", "bonus", "1", "3", None, None, 30),
    ("B08", "志愿服务", "参加志愿服务活动", "bonus", "1", "3", None, "20", 120),
    ("B09", "志愿服务", "结对帮扶困难群众", "bonus", "2", "2", 2, "16", 30),
    ("B10", "志愿服务", "带头参与社区治理", "bonus", "1", "2", None, None, 40),
    ("B11", "先锋作用", "提出合理化建议被采纳", "bonus", "1", "3", None, "9", 30),
    ("B12", "先锋作用", "获得上级表彰", "bonus", "3", "10", None, "20", 10),
    ("B13", "先锋作用", "先进事迹被媒体报道", "bonus", "2", "5", None, None, 10),
    ("D01", "纪律规矩", "无故缺席组织生活", "deduction", "-3", "-3", None, None, 60),
    ("D02", "纪律规矩", "组织生活迟到早退", "deduction", "-1", "-1", None, None, 90),
    ("D03", "纪律规矩", "未按时足额交纳党费", "deduction", "-2", "-2", 1, None, 30),
    ("D04", "纪律规矩", "未完成学习任务", "deduction", "-1", "-1", 3, None, 60),
    ("D05", "作风表现", "违反工作纪律受到批评", "deduction", "-10", "-2", None, None, 15),
    ("D06", "作风表现", "言行造成不良影响", "deduction", "-20", "-5", None, None, 5),
    ("V01", "一票否决", "受到党纪处分或违法犯罪", "veto", "0", "0", None, None, 0),
]


@dataclass
class Counts:
    general_branches: int
    branches: int
    members: int
    entries: int

    @classmethod
    def at(cls, scale: float) -> Counts:
        return cls(
            general_branches=max(1, round(FULL["general_branches"] * scale)),
            branches=max(1, round(FULL["branches"] * scale)),
            members=max(1, round(FULL["members"] * scale)),
            entries=max(1, round(FULL["entries"] * scale)),
        )


@dataclass
class Dataset:
    """What the measurements need to know about the generated data."""

    scale: float
    year: int
    counts: Counts
    committee_id: int = 1
    scheme_id: int = 0
    member_ids: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    entry_rows: int = 0
    reversals: int = 0
    vetoes: int = 0


def path_segment(number: int) -> str:
    """treebeard's MP_Node step: ``number`` (from 1) in base 36, padded to 4 characters."""
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = ALPHABET[rest] + digits
    return digits.rjust(STEPLEN, "0")


class Stream:
    """A read()-able file over an iterator of str blocks, for ``copy_expert``."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._buffer = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        while self._pos >= len(self._buffer):
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._buffer, self._pos = block.encode(), 0
        end = len(self._buffer) if size < 0 else self._pos + size
        out = self._buffer[self._pos : end]
        self._pos += len(out)
        return out


def _copy(connection, table: str, columns: str, blocks) -> None:
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", Stream(blocks), size=1 << 18)


def _text(value) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _rows(rows) -> object:
    """Blocks of COPY text lines from tuples, ~10k lines a block."""
    lines = []
    for row in rows:
        lines.append("\t".join(_text(value) for value in row))
        if len(lines) >= 10_000:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def _branch_sizes(rng: random.Random, branches: int, members: int) -> list[int]:
    """Members per branch: a skewed spread (a few large branches, many of 10–30)."""
    weights = [rng.lognormvariate(0, 0.5) for _ in range(branches)]
    total = sum(weights)
    raw = [w / total * members for w in weights]
    sizes = [int(x) for x in raw]
    order = sorted(range(branches), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: members - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _member_profile(rng: random.Random) -> tuple[str, str, str, float]:
    """(category, status, exempt_reason, activity) with the mix of the brief:
    85% full, 5% probationary, 5% activists/development targets, 3% exempt, 2% transferred."""
    r = rng.random()
    if r < 0.85:
        s = rng.random()
        if s < 0.10:
            return "full", "retired", "", 0.7
        if s < 0.13:
            return "full", "flowing", "", 0.5
        return "full", "active", "", 1.0
    if r < 0.90:
        return "probationary", "active", "", 1.1
    if r < 0.95:
        category = "activist" if rng.random() < 0.6 else "development_target"
        return category, "active", "", 0.9
    if r < 0.98:
        return "full", "exempt", rng.choice(EXEMPT_REASONS), 0.2
    return "full", "transferred_out", "", 0.4


def _day_weights(year: int) -> list[tuple[date, float]]:
    """Fewer entries at weekends and around the Spring Festival, more around 1 July."""
    month_factor = {1: 0.8, 2: 0.6, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.2, 7: 1.4, 8: 0.9}
    month_factor.update({9: 1.0, 10: 0.8, 11: 1.0, 12: 1.2})
    days = []
    day = date(year, 1, 1)
    while day.year == year:
        weight = month_factor[day.month] * (0.35 if day.weekday() >= 5 else 1.0)
        days.append((day, weight))
        day += timedelta(days=1)
    return days


def _split(total: int, weights: list[float]) -> list[int]:
    whole = sum(weights)
    raw = [w / whole * total for w in weights]
    counts = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _point_choices(low: str, high: str) -> list[str]:
    """The values a recorder would enter for a rule: whole points, or the fixed value."""
    lo, hi = Decimal(low), Decimal(high)
    if lo == hi:
        return [f"{lo:.2f}"]
    values = []
    v = lo
    while v <= hi:
        values.append(f"{v:.2f}")
        v += 1
    return values


def _negate(points: str) -> str:
    return points[1:] if points.startswith("-") else "-" + points


def generate(
    connection,
    scale: float,
    year: int = YEAR,
    seed: int = SEED,
    log=print,
    skip_fk_checks: bool = False,
) -> Dataset:
    """Fill an empty, migrated database. ``connection`` is Django's (PostgreSQL)."""
    from members.models import Organization
    from scoring.models import Rule, RuleCategory
    from scoring.schemes import scheme_adopt, scheme_create_from_preset

    counts = Counts.at(scale)
    data = Dataset(scale=scale, year=year, counts=counts)
    rng = random.Random(seed)
    raw = connection.connection  # the psycopg2 connection under Django's wrapper
    started = time.perf_counter()

    # Organizations: committee 1, general branches 2.., then the branches.
    per_general = _split(counts.branches, [1.0] * counts.general_branches)
    org_rows = [
        (1, "0001", 1, counts.general_branches, "城区党委", "committee", "2025-01-01 08:00:00+08")
    ]
    branch_ids: list[int] = []
    next_id = 2 + counts.general_branches
    for g in range(counts.general_branches):
        gid = 2 + g
        gpath = "0001" + path_segment(g + 1)
        org_rows.append(
            (gid, gpath, 2, per_general[g], f"第{g + 1}党总支", "general_branch", "2025-01-01")
        )
        for b in range(per_general[g]):
            org_rows.append(
                (
                    next_id,
                    gpath + path_segment(b + 1),
                    3,
                    0,
                    f"第{g + 1}党总支第{b + 1}党支部",
                    "branch",
                    "2025-01-01",
                )
            )
            branch_ids.append(next_id)
            next_id += 1

    # One recorder login per branch (ids 2..), the bench admin is 1.
    user_rows = [(1, "!", "t", "bench_admin", "t")]
    recorder_of = {}
    for i, bid in enumerate(branch_ids):
        recorder_of[bid] = 2 + i
        user_rows.append((2 + i, "!", "f", f"bench_recorder_{i + 1:05d}", "f"))

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    _copy(
        raw,
        "auth_user",
        "id, password, is_superuser, username, is_staff, first_name, last_name, email, "
        "is_active, date_joined",
        _rows(row + ("", "", "", "t", "2025-01-01 08:00:00+08") for row in user_rows),
    )
    _copy(
        raw,
        "members_organization",
        "id, path, depth, numchild, name, kind, created_at",
        _rows(org_rows),
    )

    # Members, branch by branch (a roster import gives each branch a run of ids).
    sizes = _branch_sizes(rng, counts.branches, counts.members)
    member_prefix: list[str] = []  # "member\tbranch\trecorder\t" per member index
    activity: list[float] = []
    member_ids: list[int] = []

    def member_rows():
        mid = 0
        for bid, size in zip(branch_ids, sizes, strict=True):
            for _ in range(size):
                mid += 1
                category, status, reason, act = _member_profile(rng)
                activity.append(act * rng.lognormvariate(0, 0.35))
                member_prefix.append(f"{mid}\t{bid}\t{recorder_of[bid]}\t")
                member_ids.append(mid)
                name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
                birth = date(1950, 1, 1) + timedelta(days=rng.randrange(50 * 365))
                joined = birth + timedelta(days=rng.randrange(18 * 365, 30 * 365))
                yield (
                    mid,
                    bid,
                    name,
                    rng.choice(("male", "female")),
                    f"139{mid:08d}",
                    birth.isoformat(),
                    min(joined, date(year - 1, 12, 31)).isoformat(),
                    category,
                    status,
                    "t" if rng.random() < 0.1 else "f",
                    reason,
                    "2025-01-01 08:00:00+08",
                    "2025-01-01 08:00:00+08",
                )

    _copy(
        raw,
        "members_member",
        "id, organization_id, name, gender, phone, birth_date, joined_on, category, status, "
        "is_cadre, exempt_reason, created_at, updated_at",
        _rows(member_rows()),
    )
    data.member_ids = member_ids
    with connection.cursor() as cursor:
        for table in ("auth_user", "members_organization", "members_member"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}"
            )
    data.timings["organizations, users, members"] = time.perf_counter() - started

    # The scheme: the preset's bands, 20 rules, adopted on the committee.
    committee = Organization.objects.get(pk=1)
    scheme = scheme_create_from_preset(
        owner=committee,
        year=year,
        name=f"{year}年度党员积分管理实施细则",
        preset="five_stars_base_100",
        excellent_share_cap=Decimal("0.300"),
    )
    scheme_adopt(organization=committee, scheme=scheme)
    categories: dict[str, RuleCategory] = {}
    rules: list[Rule] = []
    for position, (code, cat, name, kind, low, high, times, cap, _w) in enumerate(RULES):
        if cat not in categories:
            categories[cat] = RuleCategory.objects.create(
                scheme=scheme, name=cat, position=len(categories)
            )
        rules.append(
            Rule.objects.create(
                scheme=scheme,
                category=categories[cat],
                code=code,
                name=name,
                kind=kind,
                points_min=Decimal(low),
                points_max=Decimal(high),
                max_times_per_quarter=times,
                max_points_per_year=Decimal(cap) if cap else None,
                self_declarable=kind == "bonus" and code in ("B05", "B08"),
                position=position,
            )
        )
    data.scheme_id = scheme.pk
    data.committee_id = committee.pk

    # The ledger.
    t0 = time.perf_counter()
    if skip_fk_checks:
        # The foreign keys are checked by row-level triggers; in replica mode they do not
        # fire. The references are then checked set-wise below, once, after the load.
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
    try:
        rows, reversals, vetoes = _copy_entries(raw, rng, data, rules, member_prefix, activity)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
    if skip_fk_checks:
        t1 = time.perf_counter()
        _check_entry_references(connection)
        data.timings["entries: reference check"] = time.perf_counter() - t1
    data.entry_rows, data.reversals, data.vetoes = rows, reversals, vetoes
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('scoring_entry', 'id'), MAX(id)) "
            "FROM scoring_entry"
        )
    data.timings["entries (COPY)"] = time.perf_counter() - t0
    log(f"  entries: {rows:,} rows ({reversals:,} reversals, {vetoes:,} vetoes)")

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    data.timings["ANALYZE"] = time.perf_counter() - t0
    data.timings["total"] = time.perf_counter() - started
    return data


def _check_entry_references(connection) -> None:
    """What the skipped foreign-key triggers would have checked, as anti-joins."""
    checks = {
        "member": "members_member",
        "organization": "members_organization",
        "recorded_by": "auth_user",
        "rule": "scoring_rule",
        "scheme": "scoring_scheme",
        "reverses": "scoring_entry",
    }
    with connection.cursor() as cursor:
        for column, table in checks.items():
            cursor.execute(
                f"SELECT COUNT(*) FROM scoring_entry e WHERE e.{column}_id IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = e.{column}_id)"
            )
            missing = cursor.fetchone()[0]
            if missing:
                raise RuntimeError(f"{missing} entries refer to a missing {column}")


def _copy_entries(raw, rng, data: Dataset, rules, member_prefix, activity) -> tuple[int, int, int]:
    """Stream the year's ledger in date order, one COPY (and commit) per ~250k rows."""
    year = data.year
    n_members = len(member_prefix)
    days = _day_weights(year)
    per_day = _split(data.counts.entries, [w for _d, w in days])

    ordinary = [r for r in rules if r.kind != "veto"]
    veto_rule = next(r for r in rules if r.kind == "veto")
    weights = {code: w for code, *_rest, w in RULES}
    rule_cum = list(accumulate(weights[r.code] for r in ordinary))
    rule_prefix = [
        f"{r.pk}\t1\t{r.scheme_id}\t1\t{r.kind}\t" for r in ordinary
    ]  # rule, rule_version, scheme, scheme_version, kind
    rule_points = [_point_choices(str(r.points_min), str(r.points_max)) for r in ordinary]
    rule_desc = [r.name for r in ordinary]
    member_cum = list(accumulate(activity))
    veto_prefix = f"{veto_rule.pk}\t1\t{veto_rule.scheme_id}\t1\tveto\t"

    # A few vetoes: members and days fixed up front; about a third are reversed later.
    n_vetoes = max(2, round(n_members * VETO_RATE))
    veto_days: dict[int, list[int]] = {}
    for _ in range(n_vetoes):
        member = bisect_right(member_cum, rng.random() * member_cum[-1])
        veto_days.setdefault(rng.randrange(30, 330), []).append(member)

    pending: dict[int, list[str]] = {}  # day index -> reversal line bodies (without id)
    state = {"id": 0, "reversals": 0, "vetoes": 0}
    hours = [f" {h:02d}:{m:02d}:00+08" for h in range(8, 21) for m in (0, 15, 30, 45)]

    def day_blocks():
        for index, ((day, _w), count) in enumerate(zip(days, per_day, strict=True)):
            day_text = f"{day.isoformat()}\t{year}\t{(day.month - 1) // 3 + 1}\t"
            created = [day.isoformat() + h for h in hours]
            lines = []
            eid = state["id"]
            # Vetoes of the day.
            for member in veto_days.get(index, ()):
                eid += 1
                lines.append(
                    f"{eid}\t{member_prefix[member]}{veto_prefix}0.00\t{day_text}"
                    f"{veto_rule.name}\t\t{created[0]}\t\\N"
                )
                state["vetoes"] += 1
                if rng.random() < 0.34 and index + 20 < len(days):
                    pending.setdefault(index + rng.randrange(5, 20), []).append(
                        (eid, f"{member_prefix[member]}{veto_prefix}0.00", veto_rule.name)
                    )
            # Reversals scheduled for today (they come after what they reverse).
            todays = pending.pop(index, [])
            ordinary_count = max(0, count - len(lines) - len(todays))
            members = rng.choices(range(n_members), cum_weights=member_cum, k=ordinary_count)
            picks = rng.choices(range(len(ordinary)), cum_weights=rule_cum, k=ordinary_count)
            random_ = rng.random
            last = len(days) - 1
            for member, r in zip(members, picks, strict=True):
                eid += 1
                choices = rule_points[r]
                points = choices[0] if len(choices) == 1 else choices[int(random_() * len(choices))]
                head = member_prefix[member] + rule_prefix[r]
                lines.append(
                    f"{eid}\t{head}{points}\t{day_text}{rule_desc[r]}\t\t"
                    f"{created[int(random_() * 52)]}\t\\N"
                )
                if random_() < REVERSAL_RATE:
                    target = index + 1 + int(random_() * 30)
                    if target <= last:
                        pending.setdefault(target, []).append(
                            (eid, head + _negate(points), rule_desc[r])
                        )
            for original, body, desc in todays:
                eid += 1
                lines.append(
                    f"{eid}\t{body}\t{day_text}{desc}\t录入错误，予以冲销\t{created[-1]}\t{original}"
                )
                state["reversals"] += 1
            state["id"] = eid
            if lines:
                yield len(lines), "\n".join(lines) + "\n"

    columns = (
        "id, member_id, organization_id, recorded_by_id, rule_id, rule_version, scheme_id, "
        "scheme_version, kind, points, occurred_on, year, quarter, description, reason, "
        "created_at, reverses_id"
    )
    blocks = day_blocks()
    done = False
    chunk_rows = 250_000
    while not done:
        taken = {"rows": 0}

        def chunk(taken=taken):
            nonlocal done
            while taken["rows"] < chunk_rows:
                item = next(blocks, None)
                if item is None:
                    done = True
                    return
                taken["rows"] += item[0]
                yield item[1]

        _copy(raw, "scoring_entry", columns, chunk())
        raw.commit()
    return state["id"], state["reversals"], state["vetoes"]
