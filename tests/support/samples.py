"""The sample data tests run on: org files in tests/orgs/, and fixtures/emails/ with
the outcome written beside each sample email."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from simulator.smtp.mailfiles import MailFile
from simulator.store.db import Store
from simulator.store.models import Delivery, User

TESTS = Path(__file__).parent.parent
ORGS = TESTS / "orgs"
FIXTURES = TESTS.parent / "fixtures" / "emails"
CASES = sorted(FIXTURES.glob("*.eml"))


def org_file(name: str) -> Path:
    return ORGS / name


def expected_for(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.stem + ".expected.json").read_text(encoding="utf-8"))


def stored_rows(store: Store, mail: list[MailFile], codes: list[int]) -> dict[str, dict[str, Any]]:
    """Per sample file: its SMTP reply code and what intake stored for it."""
    with store.sessions() as session:
        deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        users = {u.id: u for u in session.scalars(select(User))}
        first_delivery_of = {}
        for delivery in deliveries:
            first_delivery_of.setdefault(delivery.user_id, delivery.id)
        rows = {}
        for item, code, delivery in zip(mail, codes, deliveries, strict=True):
            user = users.get(delivery.user_id) if delivery.user_id else None
            rows[Path(item.source).name] = {
                "code": code,
                "outcome": delivery.outcome,
                "reason": delivery.reason,
                "issue": delivery.issue_number,
                "sender": delivery.sender,
                "subject": delivery.subject,
                "role": user.role if user else None,
                "new_user": bool(
                    user
                    and user.origin != "directory"
                    and first_delivery_of[user.id] == delivery.id
                ),
            }
    return rows
