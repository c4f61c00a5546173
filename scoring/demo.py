"""The demo 积分管理实施细则 and a demo points ledger, recorded through the services.

``build_demo_scheme`` builds the committee's rule book for a year (five stars, base 100) from
the items in the source articles; ``seed_demo_ledger`` adopts it on the demo committee and
records a year of realistic entries and declarations up to a day (never later), through
``scoring.services`` so every rule the product enforces is enforced here too. Both are
idempotent: a scheme that exists is returned as is, and a year whose demo scheme already has
entries or declarations is left alone. ``seed_demo_scoring`` does both demo years; the
``seed_demo`` command calls it.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from members.models import Member, Organization, Role

from . import services
from .models import Declaration, Entry, Rule, RuleCategory, Scheme, SchemeAdoption
from .recompute import recompute_organization, stored_totals_mismatches
from .schemes import scheme_adopt, scheme_create_from_preset

DEMO_COMMITTEE = "城关镇党委"
DEMO_SCHEME_NAME = "城关镇党委党员积分管理实施细则（{year}）"
DEMO_SCHEME_DESCRIPTION = (
    "基础分 100 分，年度积分 = 基础分 + 加分 − 减分。按季度记录、季度公示，年终评定星级和等次："
    "≥120 分五星，≥110 分四星，≥100 分三星，≥90 分二星，90 分以下一星。"
    "支部评为优秀的人数不超过 40%，排名前 5 名予以表扬，后 3 名进行谈心谈话。"
    "违法违纪的，经支部党员大会举手表决通过，年度积分清零，评定为不合格。"
)

# The categories in order: bonus side, deduction side, then the veto.
DEMO_CATEGORIES = (
    "学习教育",
    "组织生活",
    "履职尽责",
    "志愿奉献",
    "创新服务",
    "政治立场不坚定",
    "纪律规矩不严明",
    "工作履职不认真",
    "违法违纪",
)

ALL = ()
CANDIDATES_AND_PROBATIONARY = (
    Member.Category.PROBATIONARY,
    Member.Category.DEVELOPMENT_TARGET,
    Member.Category.ACTIVIST,
)


@dataclass(frozen=True)
class RuleSpec:
    code: str
    category: str
    name: str
    kind: str
    points_min: str
    points_max: str
    max_times_per_quarter: int | None = None
    max_points_per_year: str | None = None
    evidence_required: bool = False
    self_declarable: bool = False
    applies_to: tuple[str, ...] = ALL


BONUS, DEDUCTION, VETO = Rule.Kind.BONUS, Rule.Kind.DEDUCTION, Rule.Kind.VETO

# The items of the sources (codes as in the project's seed facts); points the sources leave
# open are the suggested demo values. Columns: code, category, name, kind, points min and max,
# times per quarter, points per year, evidence required, self-declarable, applies to.
DEMO_RULES: tuple[RuleSpec, ...] = tuple(
    RuleSpec(*row)
    for row in (
        ("B-STUDY-01", "学习教育", "研讨会、微讲堂发言", BONUS, "5", "5", 3, None, True, True),
        ("B-STUDY-02", "学习教育", "主讲微讲堂", BONUS, "50", "50", 1, None, True, True),
        ("B-STUDY-03", "学习教育", "讲党课、作辅导报告", BONUS, "10", "20", None, "40", True, True),
        ("B-STUDY-08", "学习教育", "撰写学习心得体会", BONUS, "2", "5", 2, None, True, True),
        ("B-ORG-01", "组织生活", "参加“三会一课”", BONUS, "0.5", "0.5", 6, "4"),
        ("B-ORG-02", "组织生活", "参加主题党日活动", BONUS, "1", "1", 3, "6"),
        ("B-ORG-03", "组织生活", "按时足额交纳党费", BONUS, "0.5", "0.5", 1),
        ("B-ORG-04", "组织生活", "按时向党组织汇报思想", BONUS, "2", "2", 1, None, True, True,
         CANDIDATES_AND_PROBATIONARY),
        ("B-DUTY-02", "履职尽责", "参加抢险救灾等急难险重任务", BONUS, "10", "30", None, None, True, True),
        ("B-DUTY-04", "履职尽责", "个人获评先进、获得荣誉", BONUS, "10", "20", None, None, True, True),
        ("B-VOL-01", "志愿奉献", "参加志愿服务、公益活动", BONUS, "3", "10", None, "30", True, True),
        ("B-VOL-03", "志愿奉献", "结对帮扶困难群众", BONUS, "5", "5", None, None, True, True),
        ("B-INNOV-01", "创新服务", "提出意见建议", BONUS, "10", "10", None, None, True, True),
        ("B-INNOV-02", "创新服务", "意见建议被采纳", BONUS, "20", "20", None, None, True),
        ("D-POL-02", "政治立场不坚定", "参加党内政治活动不积极", DEDUCTION, "-10", "-5"),
        ("D-DISC-01", "纪律规矩不严明", "无故缺席“三会一课”、主题党日", DEDUCTION, "-5", "-1"),
        ("D-DISC-02", "纪律规矩不严明", "未按时交纳党费", DEDUCTION, "-5", "-1"),
        ("D-DUTY-01", "工作履职不认真", "未完成支部安排的任务", DEDUCTION, "-10", "-5"),
        ("D-DUTY-02", "工作履职不认真", "未完成年初理论学习计划", DEDUCTION, "-5", "-5"),
        ("D-DUTY-03", "工作履职不认真", "被通报批评", DEDUCTION, "-150", "-150"),
        ("V-LAW-01", "违法违纪", "违法违纪", VETO, "0", "0"),
    )
)  # fmt: skip


def demo_scheme_name(year: int) -> str:
    return DEMO_SCHEME_NAME.format(year=year)


@transaction.atomic
def build_demo_scheme(owner: Organization, year: int) -> Scheme:
    """The demo rule book of ``owner`` for ``year``; the existing one if it was built before."""
    name = demo_scheme_name(year)
    existing = Scheme.objects.filter(owner=owner, year=year, name=name).first()
    if existing is not None:
        return existing
    scheme = scheme_create_from_preset(
        owner=owner,
        year=year,
        name=name,
        preset="five_stars_base_100",
        excellent_share_cap=Decimal("0.400"),
        top_n_flag=5,
        bottom_n_flag=3,
        description=DEMO_SCHEME_DESCRIPTION,
    )
    categories = {
        category_name: RuleCategory.objects.create(
            scheme=scheme, name=category_name, position=position
        )
        for position, category_name in enumerate(DEMO_CATEGORIES, start=1)
    }
    Rule.objects.bulk_create(
        Rule(
            scheme=scheme,
            category=categories[spec.category],
            code=spec.code,
            name=spec.name,
            kind=spec.kind,
            points_min=Decimal(spec.points_min),
            points_max=Decimal(spec.points_max),
            max_times_per_quarter=spec.max_times_per_quarter,
            max_points_per_year=(
                Decimal(spec.max_points_per_year) if spec.max_points_per_year else None
            ),
            evidence_required=spec.evidence_required,
            self_declarable=spec.self_declarable,
            applies_to=list(spec.applies_to),
            position=position,
        )
        for position, spec in enumerate(DEMO_RULES, start=1)
    )
    return scheme


# --- the demo ledger -------------------------------------------------------------------------

PARTY_DAY_THEMES = {
    1: "学习贯彻全会精神专题研讨",
    2: "新春走访慰问困难党员",
    3: "学雷锋志愿服务",
    4: "清明祭英烈",
    5: "重温入党誓词",
    6: "“七一”前党性教育",
    7: "庆祝建党纪念日",
    8: "国防教育参观学习",
    9: "廉政警示教育",
    10: "爱国主义教育",
    11: "宪法宣传进社区",
    12: "年终组织生活会准备",
}
LECTURE_TOPICS = [
    "学习新修订的《中国共产党纪律处分条例》",
    "弘扬伟大建党精神",
    "以高质量党建引领基层治理",
    "新时代共产党员的初心使命",
    "学习身边的先进典型",
    "作风建设永远在路上",
]
VOLUNTEER_ITEMS = [
    "参加社区文明创建志愿服务",
    "参加无偿献血志愿活动",
    "参加防汛值守志愿服务",
    "到敬老院开展慰问志愿服务",
    "参加垃圾分类宣传志愿服务",
    "参加交通路口文明劝导志愿服务",
]
SPEECH_ITEMS = [
    "在支部专题研讨会上作交流发言",
    "在微讲堂上结合本职工作谈学习体会",
    "在理论学习研讨中作重点发言",
]
INSIGHT_ITEMS = ["撰写学习心得体会", "撰写读书笔记并在支部分享", "撰写主题党日活动心得"]
SUGGESTIONS = [
    "提出优化便民服务窗口排队流程的建议",
    "提出在老旧小区增设休息座椅的建议",
    "提出党员积分在手机上公示的建议",
    "提出开展“党员帮带新人”活动的建议",
    "提出改进会议通知方式的建议",
]
EMERGENCY_ITEMS = ["参加防汛抢险一线值守", "参加森林防火巡查", "参加突发事件现场处置"]
HONOURS = ["获评县级“优秀共产党员”", "获评单位年度先进工作者", "获评镇“最美志愿者”"]
PAIRING_ITEMS = ["走访结对帮扶困难户，帮助解决实际困难", "看望结对帮扶的空巢老人"]

REJECTION_REASONS = [
    "佐证照片无法看出本人参加，请补充活动签到表后重新申报。",
    "该活动不属于志愿服务，属于本职工作，不予加分。",
    "同一事项已由记录员登记，不重复加分。",
]
ADJUSTMENT_REASON = "服务时长约 2 小时，不足半天，按细则核定为 5 分。"


def tiny_png() -> bytes:
    """A valid 1×1 PNG (one red pixel), made in memory: the evidence of the demo declarations."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes((200, 16, 46)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _seeding():
    """Recompute each seeded year once at the end instead of once per recorded change."""
    return services.recomputes_deferred()


def _quarter_bounds(year: int, quarter: int) -> tuple[date, date]:
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end - timedelta(days=1)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    """The last ``weekday`` (Monday 0) of a month."""
    day = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    day -= timedelta(days=1)
    return day - timedelta(days=(day.weekday() - weekday) % 7)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))


@dataclass
class LedgerSeed:
    """What ``seed_demo_ledger`` did for one year."""

    year: int
    skipped: str = ""
    entries: int = 0
    declarations: dict[str, int] = field(default_factory=dict)


@dataclass
class _Branch:
    organization: Organization
    secretary: User
    recorder: User
    members: list[Member]  # the roster by phone number, without transferred-out members
    declarers: list[Member]  # members with a login and no post: they declare for themselves

    def scored(self) -> list[Member]:
        return [m for m in self.members if m.status != Member.Status.EXEMPT]

    def ordinary(self) -> list[Member]:
        """Active full members with neither a post nor a login: the highlights pick from these."""
        return [
            m
            for m in self.members
            if m.user_id is None
            and m.status == Member.Status.ACTIVE
            and m.category == Member.Category.FULL
        ]


class _LedgerWriter:
    """Records one year of one committee's demo ledger through the services."""

    def __init__(self, scheme: Scheme, year: int, until: date) -> None:
        self.scheme = scheme
        self.year = year
        self.until = until
        self.rules = {
            rule.code: rule for rule in Rule.objects.filter(scheme=scheme, is_current=True)
        }
        self.png = tiny_png()
        self.entries = 0
        self.declarations: dict[str, int] = {}
        self.evidence_number = 0

    # -- low level: one services call each --

    def record(
        self, user: User, member: Member, code: str, day: date, text: str, points=None
    ) -> Entry:
        entry = services.entry_record(
            user=user,
            member=member,
            rule=self.rules[code],
            occurred_on=day,
            description=text,
            points=None if points is None else Decimal(points),
        )
        self.entries += 1
        return entry

    def record_bulk(
        self, branch: _Branch, members: Sequence[Member], code: str, day: date, text: str
    ) -> None:
        if not members:
            return
        result = services.entries_record_bulk(
            user=branch.recorder,
            branch=branch.organization,
            rule=self.rules[code],
            members=members,
            occurred_on=day,
            description=text,
        )
        self.entries += len(result.entries)

    def declare(self, member: Member, code: str, day: date, text: str, points=None) -> Declaration:
        self.evidence_number += 1
        upload = SimpleUploadedFile(
            f"佐证{self.evidence_number:03d}.png", self.png, content_type="image/png"
        )
        declaration = services.declaration_submit(
            user=member.user,
            member=member,
            rule=self.rules[code],
            occurred_on=day,
            description=text,
            points=None if points is None else Decimal(points),
            files=[upload],
        )
        return declaration

    def decide(
        self,
        branch: _Branch,
        declaration: Declaration,
        outcome: str,
        rng: random.Random,
    ) -> Entry | None:
        self.declarations[outcome] = self.declarations.get(outcome, 0) + 1
        if outcome == "pending":
            return None
        if outcome == "rejected":
            services.declaration_reject(
                user=branch.secretary, declaration=declaration, reason=rng.choice(REJECTION_REASONS)
            )
            return None
        if outcome == "adjusted":
            entry = services.declaration_approve(
                user=branch.secretary,
                declaration=declaration,
                points=Decimal("5"),
                reason=ADJUSTMENT_REASON,
            )
        else:
            entry = services.declaration_approve(user=branch.secretary, declaration=declaration)
        self.entries += 1
        return entry

    # -- one branch, one quarter --

    def quarter(self, branch: _Branch, quarter: int, rng: random.Random) -> None:
        start, end = _quarter_bounds(self.year, quarter)
        last = min(end, self.until)
        if start > last:
            return
        absences: dict[int, list[tuple[date, str]]] = {}
        months = [3 * quarter - 2, 3 * quarter - 1, 3 * quarter]

        def attendees(day: date, what: str) -> list[Member]:
            present = []
            for member in branch.scored():
                chance = {Member.Status.FLOWING: 0.5, Member.Status.RETIRED: 0.8}.get(
                    member.status, 0.92
                )
                if rng.random() < chance:
                    present.append(member)
                else:
                    absences.setdefault(member.pk, []).append((day, what))
            return present

        # Dues for the quarter (exempt members pay dues too).
        dues_day = date(self.year, months[0], 10)
        late_payers = []
        if dues_day <= last:
            payers = []
            for member in branch.members:
                (late_payers if rng.random() < 0.04 else payers).append(member)
            self.record_bulk(
                branch,
                payers,
                "B-ORG-03",
                dues_day,
                f"按时足额交纳{self.year}年第{quarter}季度党费",
            )
        # 主题党日: the last Friday of each month.
        for month in months:
            day = _last_weekday(self.year, month, 4)
            if day <= last:
                theme = PARTY_DAY_THEMES[month]
                self.record_bulk(
                    branch,
                    attendees(day, "主题党日"),
                    "B-ORG-02",
                    day,
                    f"参加{month}月主题党日活动：{theme}",
                )
        # 三会一课: the monthly party-group meeting, the party lecture, the general meeting.
        meetings = [
            (_nth_weekday(self.year, month, 1, 2), "党小组会", f"{month}月党小组学习讨论")
            for month in months
        ] + [
            (
                _nth_weekday(self.year, months[1], 3, 3),
                "党课",
                f"党课：{LECTURE_TOPICS[(self.year + quarter) % len(LECTURE_TOPICS)]}",
            ),
            (_nth_weekday(self.year, months[2], 2, 3), "党员大会", f"第{quarter}季度支部党员大会"),
        ]
        meetings.sort()
        for day, what, text in meetings:
            if day <= last:
                self.record_bulk(branch, attendees(day, what), "B-ORG-01", day, f"参加{text}")

        def some_day(earliest: date = start) -> date:
            return earliest + timedelta(days=rng.randrange((last - earliest).days + 1))

        for member in branch.scored():
            if member in branch.declarers:
                self.declarer_quarter(branch, member, quarter, start, last, rng)
            else:
                self.member_extras(branch, member, quarter, some_day, rng)
            if member.category in CANDIDATES_AND_PROBATIONARY and rng.random() < 0.85:
                self.record(
                    branch.recorder,
                    member,
                    "B-ORG-04",
                    some_day(),
                    f"向党组织提交{self.year}年第{quarter}季度思想汇报",
                )
            # Deductions: about one member-quarter in five.
            if member in late_payers:
                self.record(
                    branch.recorder,
                    member,
                    "D-DISC-02",
                    min(dues_day + timedelta(days=20), last),
                    f"未按时交纳第{quarter}季度党费，经提醒后补交",
                    points=-2,
                )
            elif rng.random() < 0.18:
                missed = absences.get(member.pk)
                if missed and rng.random() < 0.6:
                    day, what = rng.choice(missed)
                    self.record(
                        branch.recorder,
                        member,
                        "D-DISC-01",
                        day,
                        f"无故缺席{what}，未事先请假",
                        points=-rng.choice([2, 3]),
                    )
                elif quarter == 4 and rng.random() < 0.4:
                    self.record(
                        branch.recorder,
                        member,
                        "D-DUTY-02",
                        some_day(),
                        "未完成年初制定的理论学习计划，学习笔记不足规定篇数",
                    )
                elif rng.random() < 0.25:
                    self.record(
                        branch.recorder,
                        member,
                        "D-POL-02",
                        some_day(),
                        "参加支部专题学习讨论不积极，会上未发言、会后未交心得",
                        points=-5,
                    )
                else:
                    self.record(
                        branch.recorder,
                        member,
                        "D-DUTY-01",
                        some_day(),
                        rng.choice(
                            [
                                "未按期完成支部安排的入户走访任务",
                                "未按时完成支部分配的政策宣传任务",
                                "未参加支部安排的结对帮扶走访",
                            ]
                        ),
                        points=-rng.choice([5, 6, 8, 10]),
                    )

    def member_extras(self, branch, member, quarter, some_day, rng) -> None:
        """A few items the recorder records for a member without a login."""
        retired = member.status == Member.Status.RETIRED
        count = rng.choices([0, 1, 2, 3], weights=[6, 3, 1, 0] if not retired else [8, 2, 0, 0])[0]
        for _number in range(count):
            kind = rng.choices(
                ["speech", "insight", "volunteer", "suggestion", "pairing", "emergency"],
                weights=[3, 3, 4, 2, 1, 0 if retired else 1],
            )[0]
            day = some_day()
            if kind == "speech":
                self.record(branch.recorder, member, "B-STUDY-01", day, rng.choice(SPEECH_ITEMS))
            elif kind == "insight":
                self.record(
                    branch.recorder,
                    member,
                    "B-STUDY-08",
                    day,
                    rng.choice(INSIGHT_ITEMS),
                    points=rng.choice([2, 3, 4, 5]),
                )
            elif kind == "volunteer":
                self.record(
                    branch.recorder,
                    member,
                    "B-VOL-01",
                    day,
                    rng.choice(VOLUNTEER_ITEMS),
                    points=rng.choice([3, 5, 6, 8, 10]),
                )
            elif kind == "suggestion":
                suggestion = rng.choice(SUGGESTIONS)
                self.record(
                    branch.recorder, member, "B-INNOV-01", day, f"在组织生活会上{suggestion}"
                )
                adopted_on = day + timedelta(days=rng.randrange(10, 40))
                if rng.random() < 0.35 and adopted_on <= min(self.until, date(self.year, 12, 31)):
                    self.record(
                        branch.recorder,
                        member,
                        "B-INNOV-02",
                        adopted_on,
                        f"所{suggestion.removeprefix('提出')}被支部采纳并落实",
                    )
            elif kind == "pairing":
                self.record(branch.recorder, member, "B-VOL-03", day, rng.choice(PAIRING_ITEMS))
            else:
                self.record(
                    branch.recorder,
                    member,
                    "B-DUTY-02",
                    day,
                    rng.choice(EMERGENCY_ITEMS),
                    points=rng.choice([10, 15, 20]),
                )

    def declarer_quarter(self, branch, member, quarter, start, last, rng) -> None:
        """A member with a login declares one to three items; the secretary decides them,
        except in the quarter still open on ``until``, where they wait."""
        open_quarter = start <= self.until <= _quarter_bounds(self.year, quarter)[1]
        earliest = max(start, self.until - timedelta(days=30)) if open_quarter else start
        items = [
            ("B-VOL-01", rng.choice(VOLUNTEER_ITEMS), rng.choice([6, 8, 10])),
            ("B-STUDY-01", rng.choice(SPEECH_ITEMS), None),
            ("B-STUDY-08", rng.choice(INSIGHT_ITEMS), rng.choice([3, 4, 5])),
            ("B-INNOV-01", f"在组织生活会上{rng.choice(SUGGESTIONS)}", None),
            ("B-VOL-03", rng.choice(PAIRING_ITEMS), None),
        ]
        rng.shuffle(items)
        # The first quarter opens with a volunteer declaration, so each year has one to adjust.
        if quarter == 1:
            items.sort(key=lambda item: item[0] != "B-VOL-01")
        count = rng.choice([1, 2, 2, 3])
        for index, (code, text, points) in enumerate(items[:count]):
            day = earliest + timedelta(days=rng.randrange((last - earliest).days + 1))
            declaration = self.declare(member, code, day, text, points)
            if open_quarter:
                outcome = "pending"
            elif quarter == 1 and index == 0 and member == branch.declarers[0]:
                outcome = "adjusted"
            elif quarter == 1 and index == 0 and member == branch.declarers[-1]:
                outcome = "rejected"
            else:
                outcome = rng.choices(["approved", "adjusted", "rejected"], weights=[8, 1, 1])[0]
            if outcome == "adjusted" and code != "B-VOL-01":
                outcome = "approved"
            self.decide(branch, declaration, outcome, rng)

    # -- the year's special items, each once --

    def highlights(self, branches: dict[str, _Branch]) -> None:
        year = self.year
        if self.until < date(year, 12, 31):
            raise ValueError("the once-only demo items need a complete year")
        first, second, third = (
            branches["机关第一党支部"],
            branches["机关第二党支部"],
            branches["东关社区党支部"],
        )
        # A notified criticism, −150.
        criticised = first.ordinary()[3]
        self.record(
            first.secretary,
            criticised,
            "D-DUTY-03",
            date(year, 5, 14),
            "负责的民生项目资金审核把关不严，被县纪委监委通报批评",
        )
        # A capped rule recorded past its cap: a fourth seminar speech in one quarter.
        speaker = first.ordinary()[0]
        for day in (date(year, 4, 10), date(year, 5, 8), date(year, 5, 29), date(year, 6, 19)):
            self.record(first.recorder, speaker, "B-STUDY-01", day, "在支部专题研讨会上作交流发言")
        # One micro-lecture a year in each of the first two branches.
        self.record(
            first.recorder,
            first.ordinary()[1],
            "B-STUDY-02",
            date(year, 8, 21),
            "主讲微讲堂《基层治理中的“枫桥经验”》",
        )
        self.record(
            second.recorder,
            second.ordinary()[1],
            "B-STUDY-02",
            date(year, 9, 18),
            "主讲微讲堂《数字政务服务实操》",
        )
        # The secretary's party lecture.
        for branch in (first, second, third):
            self.record(
                branch.recorder,
                branch.members[0],
                "B-STUDY-03",
                date(year, 6, 26),
                "“七一”前为支部党员讲专题党课",
                points=15,
            )
        # Honours at year end.
        for branch in (first, second, third):
            self.record(
                branch.recorder,
                branch.ordinary()[2],
                "B-DUTY-04",
                date(year, 12, 20),
                HONOURS[list(branches).index(branch.organization.name) % len(HONOURS)],
                points=15,
            )
        # A wrong entry, reversed with a reason, and recorded for the right member.
        wrong, right = third.ordinary()[4], third.ordinary()[3]
        mistaken = self.record(
            third.recorder, wrong, "B-VOL-01", date(year, 4, 18), "参加社区义诊志愿服务", points=8
        )
        services.entry_reverse(
            user=third.secretary,
            entry=mistaken,
            reason=f"误记：该次志愿服务实为{right.name}同志参加，冲销后改记",
            occurred_on=date(year, 4, 22),
        )
        self.entries += 1
        self.record(
            third.recorder, right, "B-VOL-01", date(year, 4, 18), "参加社区义诊志愿服务", points=8
        )
        # A veto, confirmed by the branch's show-of-hands vote.
        vetoed = second.ordinary()[4]
        voting = sum(1 for m in second.members if m.category == Member.Category.FULL)
        services.veto_record(
            user=second.secretary,
            member=vetoed,
            rule=self.rules["V-LAW-01"],
            occurred_on=date(year, 9, 8),
            description="酒后驾驶机动车，被公安机关依法处理，违反党的纪律",
            meeting_date=date(year, 9, 26),
            voting_members=voting,
            attendance=voting - 1,
            votes_for=voting - 2,
            votes_against=0,
            votes_abstain=1,
        )
        self.entries += 1


def _demo_branches(committee: Organization) -> dict[str, _Branch]:
    branches: dict[str, _Branch] = {}
    organizations = Organization.objects.filter(
        path__startswith=committee.path, kind=Organization.Kind.BRANCH
    ).order_by("path")
    for organization in organizations:
        posts = {
            role.post: role.user
            for role in Role.objects.filter(organization=organization).select_related("user")
        }
        members = list(
            Member.objects.filter(organization=organization)
            .exclude(status=Member.Status.TRANSFERRED_OUT)
            .select_related("organization", "user")
            .order_by("phone", "pk")
        )
        officers = {user.pk for user in posts.values()}
        branches[organization.name] = _Branch(
            organization=organization,
            secretary=posts[Role.Post.SECRETARY],
            recorder=posts.get(Role.Post.RECORDER, posts[Role.Post.SECRETARY]),
            members=members,
            declarers=[
                m
                for m in members
                if m.user_id is not None
                and m.user_id not in officers
                and m.status != Member.Status.EXEMPT
            ],
        )
    return branches


def _demo_committee() -> Organization:
    return Organization.objects.get_root_nodes().get(name=DEMO_COMMITTEE)


@transaction.atomic
def seed_demo_ledger(
    year: int, until: date, *, committee: Organization | None = None, highlights: bool = False
) -> LedgerSeed:
    """Adopt the demo scheme on the demo committee for ``year`` and record the year's demo
    ledger, dated up to ``until`` (never later). ``highlights`` adds the once-only items:
    a notified criticism, a confirmed veto, a reversal, a rule recorded past its cap.

    Leaves a year alone whose demo scheme already has entries or declarations, or where the
    committee has adopted some other scheme."""
    committee = committee or _demo_committee()
    result = LedgerSeed(year=year)
    adoption = SchemeAdoption.objects.filter(organization=committee, year=year).first()
    if adoption is not None and (
        adoption.scheme.owner_id != committee.pk or adoption.scheme.name != demo_scheme_name(year)
    ):
        result.skipped = f"{committee.name}{year}年度已采用其他积分细则"
        return result
    scheme = build_demo_scheme(committee, year)
    scheme_adopt(organization=committee, scheme=scheme)
    if (
        Entry.objects.filter(scheme=scheme).exists()
        or Declaration.objects.filter(rule__scheme=scheme).exists()
    ):
        result.skipped = "已有演示积分数据"
    elif date(year, 1, 1) > until:
        result.skipped = "该年度尚未开始"
    else:
        writer = _LedgerWriter(scheme, year, until)
        branches = _demo_branches(committee)
        with _seeding():
            for number, branch in enumerate(branches.values(), start=1):
                rng = random.Random(year * 100 + number)
                for quarter in (1, 2, 3, 4):
                    writer.quarter(branch, quarter, rng)
            if highlights:
                writer.highlights(branches)
        result.entries = writer.entries
        result.declarations = writer.declarations
    if not result.skipped or stored_totals_mismatches(year, committee):
        recompute_organization(committee, year)
    return result


def seed_demo_scoring(today: date | None = None) -> list[LedgerSeed]:
    """The demo ledger of last year (complete, with the once-only items) and of this year up
    to today."""
    today = today or timezone.localdate()
    return [
        seed_demo_ledger(today.year - 1, today, highlights=True),
        seed_demo_ledger(today.year, today),
    ]
