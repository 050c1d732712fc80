"""Column lists: which keys of each listing's rows a table or CSV shows, in order.

JSON output carries every key of a row; these lists pick and order the columns
for tables and CSV headers.
"""

from __future__ import annotations

from typing import Any

USER_COLUMNS = [
    "email",
    "name",
    "role",
    "origin",
    "support_seat",
    "team_seat",
    "first_seen",
    "messages",
]
ISSUE_COLUMNS = ["number", "subject", "submitter", "messages", "created_at"]
MESSAGE_COLUMNS = [
    "id",
    "received_at",
    "sender",
    "subject",
    "outcome",
    "reason",
    "issue",
    "channel",
    "message_id",
]


def message_columns(rows: list[dict[str, Any]]) -> list[str]:
    """MESSAGE_COLUMNS, and `intake_address` once deliveries came to more than one
    mailbox: a column that always reads the same only narrows the others."""
    mailboxes = {row.get("intake_address") for row in rows}
    return MESSAGE_COLUMNS + (["intake_address"] if len(mailboxes) > 1 else [])


LEDGER_COLUMNS = ["seq", "at", "model", "user", "delta", "reason", "delivery"]
OUTBOX_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "issue",
    "recipient",
    "subject",
    "status",
    "attempts",
    "last_error",
    "sent_at",
]
SEND_COLUMNS = ["source", "code", "reply"]
OUTCOME_COLUMNS = ["outcome", "deliveries"]
FIGURE_COLUMNS = ["figure", "value"]
# The report as CSV: one row per licensing model.
MODEL_COLUMNS = ["model", "seats", "unit_price", "cost", "cheaper", "recommended"]
# `report --compare` as CSV: one row per price book.
COMPARE_COLUMNS = [
    "book",
    "currency",
    "term",
    "support_seats",
    "support_unit_price",
    "support_cost",
    "team_seats",
    "team_unit_price",
    "team_cost",
    "cheaper_model",
    "breakeven_team_seats",
    "source",
    "read",
]
MONTH_COLUMNS = [
    "month",
    "support_seats",
    "support_billed",
    "support_cost",
    "team_seats",
    "team_billed",
    "team_cost",
    "cheaper_model",
    "active_senders",
    "new_users",
]
SWEEP_COLUMNS = [
    "volume",
    "support_seats",
    "support_cost",
    "team_seats",
    "team_cost",
    "cheaper_model",
    "margin",
    "contract_support",
    "contract_team",
    "recommended_model",
    "crossover",
]
SWEEP_MONTH_COLUMNS = [
    "volume",
    "month",
    "support_seats",
    "support_billed",
    "support_cost",
    "team_seats",
    "team_billed",
    "team_cost",
    "cheaper_model",
]
# The demo's short views: issues without their date, users without first_seen and
# messages, and the outbox without ids and times.
DEMO_ISSUE_COLUMNS = ISSUE_COLUMNS[:-1]
DEMO_USER_COLUMNS = USER_COLUMNS[:-2]
DEMO_OUTBOX_COLUMNS = ["kind", "issue", "recipient", "status", "attempts", "last_error"]


def flat_month(month: dict[str, Any]) -> dict[str, Any]:
    """One month of the engine's bill (`MonthBill.as_row()`) with one level of keys:
    every model's seats, billed seats and cost. `report --by month`, `sweep --months`
    and `forecast` add their own keys; their column lists pick what each shows."""
    flat = {"month": month["month"]}
    for model in ("support", "team"):
        flat[f"{model}_seats"] = month[model]["seats"]
        flat[f"{model}_billed"] = month[model]["billed_seats"]
        flat[f"{model}_cost"] = month[model]["cost"]
    flat["cheaper_model"] = month["cheaper_model"]
    return flat
