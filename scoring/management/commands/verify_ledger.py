"""Check that every stored total equals its ledger; exit non-zero naming any that do not."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from members.models import Member
from scoring.models import PeriodScore
from scoring.recompute import stored_totals_mismatches


class Command(BaseCommand):
    help = "核对每一条已存储的期间积分是否与积分台账一致；不一致时列出并以非零状态退出。"

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--year",
            type=int,
            action="append",
            help="要核对的年度（可重复）；默认核对所有已有积分的年度。",
        )

    def handle(self, *args, **options) -> None:
        years = (
            options["year"]
            or sorted(set(PeriodScore.objects.values_list("year", flat=True).distinct()))
            or [timezone.localdate().year]
        )
        problems = []
        for year in years:
            problems.extend((year, mismatch) for mismatch in stored_totals_mismatches(year))
        if not problems:
            self.stdout.write(
                self.style.SUCCESS(
                    f"台账核对通过：{', '.join(map(str, years))} 年度的期间积分均与台账一致。"
                )
            )
            return
        names = dict(
            Member.objects.filter(id__in={m["member_id"] for _y, m in problems}).values_list(
                "id", "name"
            )
        )
        for year, mismatch in problems:
            period = "全年" if mismatch["quarter"] == 0 else f"第{mismatch['quarter']}季度"
            detail = (
                f"存储 {mismatch['stored']}，台账 {mismatch['ledger']}"
                if "stored" in mismatch
                else "记录缺失或多余"
            )
            self.stderr.write(
                f"{year}年{period} {names.get(mismatch['member_id'], mismatch['member_id'])}"
                f"（#{mismatch['member_id']}）{mismatch['field']}：{detail}"
            )
        raise CommandError(f"台账核对未通过：{len(problems)} 处不一致。")
