"""Write (or check) docs/permissions.md: the posts × actions table of members/permissions.py.

The table is generated from ``POST_ACTIONS`` itself, so the document cannot drift from the
code: ``--check`` (run by the tests) fails when the file differs from what the code says."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from members.models import Role
from members.permissions import MEMBER_POST, POST_ACTIONS, Action

DOC = Path(settings.BASE_DIR) / "docs" / "permissions.md"

# What each action lets its holder do, in the words of domain.md.
ACTION_TEXT: dict[Action, str] = {
    Action.VIEW_ROSTER: "see the branch roster and member details",
    Action.MANAGE_ROSTER: "import the roster, add and edit members",
    Action.EXPORT_ROSTER: "export the roster to Excel",
    Action.VIEW_OVERVIEW: "the committee overview of every branch below",
    Action.VIEW_PUBLICITY: "read the branch's publicity board 公示",
    Action.VIEW_LEDGER: "read the branch ledger, quarter table and members' entries",
    Action.RECORD_ENTRY: "record points straight into the ledger (one, many, grid, import)",
    Action.RECORD_VETO: "record a one-vote veto 一票否决 with the branch's vote",
    Action.REVERSE_ENTRY: "correct the ledger with a reversal entry 冲销",
    Action.REVIEW_DECLARATION: "approve, adjust or reject members' declarations (never one's own)",
    Action.RECOMPUTE: "recompute an organization's totals on demand",
    Action.DECLARE: "declare points for oneself with evidence 自主申报",
    Action.MANAGE_SCHEME: "schemes, rule categories, rules and adoptions 积分细则",
    Action.VIEW_REVIEW: "see a branch's review cycles, timeline and records",
    Action.ADVANCE_CYCLE: "move a review cycle forward and record its meetings",
    Action.REOPEN_CYCLE: "reopen a finalized period (the committee must agree again)",
    Action.SELF_ASSESS: "write one's own self-assessment 自评",
    Action.ACKNOWLEDGE: "acknowledge one's finalized result 签字确认",
    Action.RAISE_OBJECTION: "object to one's own published points 异议",
    Action.RECHECK_OBJECTION: "recheck an objection and answer it 复核",
    Action.HANDLE_APPEAL: "examine an appeal 申诉",
    Action.RULE_OBJECTION: "the branch committee's final ruling on an objection 认定",
    Action.EXPORT_RANKING: "export ranking workbooks (annual, quarterly)",
    Action.EXPORT_LEDGER: "export a branch's ledger workbook 台账",
    Action.VIEW_AUDIT: "read the audit history of every change 操作记录 (members/audit.py)",
}


def render() -> str:
    with translation.override("zh-hans"):
        posts = [(post.value, str(post.label)) for post in Role.Post] + [(MEMBER_POST, "党员本人")]
    header = "| action | what it allows | " + " | ".join(label for _v, label in posts) + " |"
    rule = "|---|---|" + "---|" * len(posts)
    rows = []
    for action in Action:
        marks = ["✓" if action in POST_ACTIONS[post] else "" for post, _label in posts]
        rows.append(f"| `{action.value}` | {ACTION_TEXT[action]} | " + " | ".join(marks) + " |")
    return "\n".join(
        [
            "# Permission matrix: posts × actions",
            "",
            "Generated from `members/permissions.py` (`POST_ACTIONS`) by",
            "`python manage.py permission_matrix`; a test runs it with `--check`, so this table",
            "cannot drift from the code. A post held in an organization reaches that organization",
            "and every organization below it; 党员本人 is a member's own login on their branch.",
            "Anything outside a user's reach answers 404, so its existence does not leak.",
            "",
            "Separation of duties, enforced by the services whatever the post:",
            "- nobody approves, adjusts or rejects a declaration they declared or that is their own;",
            "- a veto is recorded only with the branch vote that decided it;",
            "- a reversal names its reason, and only a ledger leader may record one;",
            "- review cycles move only by the posts with `advance_cycle`; reopening a finalized",
            "  period is committee staff's alone (`reopen_cycle`);",
            "- an objection is rechecked by the recorder, an appeal examined by the discipline",
            "  commissioner, and ruled by the branch committee.",
            "",
            header,
            rule,
            *rows,
            "",
        ]
    )


class Command(BaseCommand):
    help = "生成权限矩阵文档 docs/permissions.md（--check 只核对，不一致时以非零状态退出）。"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="只核对文档是否与代码一致")

    def handle(self, *args, **options) -> None:
        text = render()
        if options["check"]:
            if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
                raise CommandError(
                    "docs/permissions.md 与 members/permissions.py 不一致："
                    "请运行 python manage.py permission_matrix 重新生成。"
                )
            self.stdout.write("docs/permissions.md 与代码一致。")
            return
        DOC.write_text(text, encoding="utf-8")
        self.stdout.write(f"已写入 {DOC}")
