"""The org file: the organisation's directory, intake policy and prices.

Loaded and validated once, before any socket opens, so that a typo in the file
is one clear error line rather than a surprise on the first delivery.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.errors import IntakeSimError, OrgFileError
from simulator.licensing.prices import (
    Band,
    Billing,
    LicensingRules,
    PriceRule,
    PriceShape,
    Pricing,
    TeamCountsFrom,
)

SAMPLE_ORG_NAME = "org.toml"


class UnknownSenders(StrEnum):
    CREATE = "create"
    EXISTING_ONLY = "existing_only"
    SHARED_USER = "shared_user"


@dataclass(frozen=True)
class DirectoryEntry:
    email: str
    name: str
    role: str  # "agent" or "employee"
    logs_in: bool
    since: datetime | None = None  # in the directory from this moment (UTC) ...
    until: datetime | None = None  # ... up to this one; None: open-ended

    def ended_by(self, moment: datetime) -> bool:
        return self.until is not None and self.until <= moment


@dataclass(frozen=True)
class IntakePolicy:
    unknown_senders: UnknownSenders = UnknownSenders.CREATE
    shared_user: str = ""
    create_users_from_cc: bool = False
    cc_users_per_message: int = 10
    noise_creates_users: bool = False
    flood_limit: int = 20
    flood_window_minutes: int = 60


@dataclass(frozen=True)
class NotifyPolicy:
    """`[notify]`: automatic email to customers. Without the table nothing is sent."""

    acknowledge: bool = False  # "[Issue #N] subject" to the submitter of a new issue
    notify_participants_on_reply: bool = False  # an update to the others on each reply
    from_address: str = ""  # default: the first intake address
    per_recipient_cap: int = 10  # at most this many to one address per window (0 = no cap)
    cap_window_hours: float = 3.0
    signing_key: str = ""  # signs our Message-IDs; default: a secret kept in the database

    @property
    def enabled(self) -> bool:
        return self.acknowledge or self.notify_participants_on_reply


@dataclass(frozen=True)
class Org:
    name: str
    internal_domains: tuple[str, ...]
    intake_addresses: tuple[str, ...]
    intake: IntakePolicy
    pricing: Pricing
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)
    licensing: LicensingRules = field(default_factory=LicensingRules)
    message_id_domain: str = "intake-sim.invalid"
    source: str = ""
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)
    # `[intake.by_address."help@acme.example"]`: one mailbox's own intake policy.
    intake_by_address: dict[str, IntakePolicy] = field(default_factory=dict)

    def for_address(self, address: str) -> Org:
        """The org as intake sees it for mail to `address`: with that mailbox's policy."""
        policy = self.intake_by_address.get(address.lower())
        return self if policy is None else dataclasses.replace(self, intake=policy)

    def is_internal(self, address: str) -> bool:
        domain = address.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)

    def is_intake_address(self, address: str) -> bool:
        return address.lower() in self.intake_addresses


def sample_org_path() -> Path:
    """The sample org that ships inside the package (works from any directory)."""
    return Path(str(resources.files("simulator.samples") / SAMPLE_ORG_NAME))


def read_toml(file: Path, what: str, error: type[IntakeSimError]) -> dict[str, Any]:
    """A TOML file's tables; a missing, unreadable or malformed file is one `error` line."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {file}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{file} is not valid TOML: {exc}") from None


def load_org(path: str | Path | None = None) -> Org:
    """Read and validate an org file; the packaged sample when `path` is None."""
    file = Path(path) if path else sample_org_path()
    data = read_toml(file, "org file", OrgFileError)
    try:
        return _build_org(data, str(file))
    except OrgFileError as exc:
        raise OrgFileError(f"{file}: {exc}") from None


def org_from_tables(data: dict[str, Any], source: str) -> Org:
    """An org from already-parsed TOML tables (a scenario file's inline `[org]`)."""
    try:
        return _build_org(data, source)
    except OrgFileError as exc:
        raise OrgFileError(f"{source}: {exc}") from None


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise OrgFileError(f"[{key}] must be a table")
    return value


def _typed(table: dict[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    # bool is an int subclass; keep "flood_limit = true" from passing as 1.
    if kind in (int, float) and isinstance(value, bool):
        raise OrgFileError(f"{section}.{key} must be a number, not {value!r}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise OrgFileError(f"{section}.{key} must be {kind.__name__}, not {value!r}")
    return value


def _addresses(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OrgFileError(f"{where} must be a list of strings")
    cleaned = tuple(v.strip().lower() for v in values if v.strip())
    for value in cleaned:
        if value.count("@") != 1 and "@" in value:
            raise OrgFileError(f"{where}: {value!r} is not an address")
    return cleaned


def _build_org(data: dict[str, Any], source: str) -> Org:
    organization = _table(data, "organization")
    name = _typed(organization, "organization", "name", str, "Unnamed organisation")
    domains = _addresses(organization.get("internal_domains", []), "internal_domains")
    intake_addresses = _addresses(organization.get("intake_addresses", []), "intake_addresses")
    if not intake_addresses:
        raise OrgFileError("organization.intake_addresses must name at least one address")
    message_id_domain = _typed(
        organization, "organization", "message_id_domain", str, "intake-sim.invalid"
    )
    return Org(
        name=name,
        internal_domains=domains,
        intake_addresses=intake_addresses,
        intake=_build_intake(_table(data, "intake")),
        intake_by_address=_build_overrides(_table(data, "intake"), intake_addresses),
        pricing=_build_pricing(_table(data, "pricing")),
        directory=_build_directory(data),
        licensing=_build_licensing(_table(data, "licensing")),
        message_id_domain=message_id_domain.lower(),
        source=source,
        notify=_build_notify(data, intake_addresses[0]),
    )


def _build_intake(table: dict[str, Any]) -> IntakePolicy:
    raw_policy = _typed(table, "intake", "unknown_senders", str, "create")
    try:
        policy = UnknownSenders(raw_policy)
    except ValueError:
        choices = ", ".join(p.value for p in UnknownSenders)
        raise OrgFileError(f"intake.unknown_senders must be one of {choices}") from None
    shared = _typed(table, "intake", "shared_user", str, "").strip().lower()
    if policy is UnknownSenders.SHARED_USER and "@" not in shared:
        raise OrgFileError(
            "intake.shared_user must be an address when unknown_senders is shared_user"
        )
    intake = IntakePolicy(
        unknown_senders=policy,
        shared_user=shared,
        create_users_from_cc=_typed(table, "intake", "create_users_from_cc", bool, False),
        cc_users_per_message=_typed(table, "intake", "cc_users_per_message", int, 10),
        noise_creates_users=_typed(table, "intake", "noise_creates_users", bool, False),
        flood_limit=_typed(table, "intake", "flood_limit", int, 20),
        flood_window_minutes=_typed(table, "intake", "flood_window_minutes", int, 60),
    )
    for key in ("cc_users_per_message", "flood_limit", "flood_window_minutes"):
        if getattr(intake, key) < 0:
            raise OrgFileError(f"intake.{key} must not be negative")
    return intake


def _build_overrides(
    table: dict[str, Any], intake_addresses: tuple[str, ...]
) -> dict[str, IntakePolicy]:
    """Each `[intake.by_address."ADDRESS"]` table over `[intake]`: keys it leaves out
    keep the organisation's value."""
    overrides = table.get("by_address", {})
    if not isinstance(overrides, dict):
        raise OrgFileError("intake.by_address must be a table of intake addresses")
    shared = {key: value for key, value in table.items() if key != "by_address"}
    found = {}
    for address, override in overrides.items():
        if address.lower() not in intake_addresses:
            raise OrgFileError(f"intake.by_address: {address} is not an intake address")
        if not isinstance(override, dict):
            raise OrgFileError(f"intake.by_address.{address} must be a table")
        found[address.lower()] = _build_intake({**shared, **override})
    return found


SIGNING_KEY_MIN_LENGTH = 16


def _build_notify(data: dict[str, Any], first_intake_address: str) -> NotifyPolicy:
    if "notify" not in data:
        return NotifyPolicy()
    table = _table(data, "notify")
    known = {f for f in NotifyPolicy.__dataclass_fields__}
    unknown = sorted(set(table) - known)
    if unknown:
        raise OrgFileError(f"notify: unknown key(s) {', '.join(unknown)}")
    from_address = _typed(table, "notify", "from_address", str, first_intake_address)
    from_address = from_address.strip().lower()
    if from_address.count("@") != 1 or any(c.isspace() or c in "<>," for c in from_address):
        raise OrgFileError(f"notify.from_address: {from_address!r} is not an address")
    policy = NotifyPolicy(
        acknowledge=_typed(table, "notify", "acknowledge", bool, True),
        notify_participants_on_reply=_typed(
            table, "notify", "notify_participants_on_reply", bool, False
        ),
        from_address=from_address,
        per_recipient_cap=_typed(table, "notify", "per_recipient_cap", int, 10),
        cap_window_hours=_typed(table, "notify", "cap_window_hours", float, 3.0),
        signing_key=_typed(table, "notify", "signing_key", str, ""),
    )
    if policy.per_recipient_cap < 0 or policy.cap_window_hours <= 0:
        raise OrgFileError("notify.per_recipient_cap must be >= 0 and cap_window_hours > 0")
    if policy.signing_key and len(policy.signing_key) < SIGNING_KEY_MIN_LENGTH:
        raise OrgFileError(
            f"notify.signing_key must be at least {SIGNING_KEY_MIN_LENGTH} characters"
        )
    return policy


def pricing_from_table(table: dict[str, Any]) -> Pricing:
    """A `[pricing]` table on its own (a price book file), checked as in an org file."""
    return _build_pricing(table)


def _build_pricing(table: dict[str, Any]) -> Pricing:
    pricing = Pricing(
        currency=_typed(table, "pricing", "currency", str, "USD"),
        period=_typed(table, "pricing", "period", str, "month"),
        support_per_agent=_typed(table, "pricing", "support_per_agent", float, 25.0),
        team_per_user=_typed(table, "pricing", "team_per_user", float, 10.0),
    )
    if pricing.support_per_agent < 0 or pricing.team_per_user < 0:
        raise OrgFileError("prices must not be negative")
    return dataclasses.replace(
        pricing,
        support_rule=_price_rule(table, "support", pricing.support_per_agent),
        team_rule=_price_rule(table, "team", pricing.team_per_user),
    )


def _choice(
    table: dict[str, Any], section: str, key: str, kind: type[StrEnum], default: str
) -> Any:
    raw = _typed(table, section, key, str, default)
    try:
        return kind(raw)
    except ValueError:
        choices = ", ".join(c.value for c in kind)
        raise OrgFileError(f"{section}.{key} must be one of {choices}") from None


def _price_rule(table: dict[str, Any], model: str, unit_price: float) -> PriceRule:
    shape = _choice(table, "pricing", f"{model}_shape", PriceShape, "flat")
    free = _typed(table, "pricing", f"{model}_free", int, 0)
    if free < 0:
        raise OrgFileError(f"pricing.{model}_free must not be negative")
    raw_bands = table.get(f"{model}_bands", [])
    if not isinstance(raw_bands, list) or not all(isinstance(b, dict) for b in raw_bands):
        raise OrgFileError(f"pricing.{model}_bands must be a list of {{up_to, price}} tables")
    where = f"pricing.{model}_bands"
    bands = tuple(
        Band(
            up_to=_typed(b, where, "up_to", int, 0) if "up_to" in b else None,
            price=_typed(b, where, "price", float, 0.0),
        )
        for b in raw_bands
    )
    if shape is not PriceShape.FLAT:
        _check_bands(bands, where)
    elif bands:
        raise OrgFileError(f'{where} needs pricing.{model}_shape = "step" or "graduated"')
    return PriceRule(unit_price=unit_price, shape=shape, bands=bands, free=free)


def _check_bands(bands: tuple[Band, ...], where: str) -> None:
    if not bands or bands[-1].up_to is not None:
        raise OrgFileError(f"{where}: the last band must have no up_to (it holds every seat above)")
    edges = [b.up_to for b in bands[:-1]]
    if any(e is None or e < 1 for e in edges) or edges != sorted(set(edges)):  # type: ignore[type-var]
        raise OrgFileError(f"{where}: up_to must be positive and rise from band to band")
    if any(b.price < 0 for b in bands):
        raise OrgFileError(f"{where}: prices must not be negative")


def _build_licensing(table: dict[str, Any]) -> LicensingRules:
    rules = LicensingRules(
        team_counts_from=_choice(
            table, "licensing", "team_counts_from", TeamCountsFrom, "first_email"
        ),
        inactive_after_days=_typed(table, "licensing", "inactive_after_days", int, 0),
        billing=_choice(table, "licensing", "billing", Billing, "monthly"),
    )
    if rules.inactive_after_days < 0:
        raise OrgFileError("licensing.inactive_after_days must not be negative (0 = never)")
    return rules


def _build_directory(data: dict[str, Any]) -> dict[str, DirectoryEntry]:
    directory: dict[str, DirectoryEntry] = {}
    for section, role in (("agents", "agent"), ("employees", "employee")):
        entries = data.get(section, [])
        if not isinstance(entries, list):
            raise OrgFileError(f"[[{section}]] must be an array of tables")
        for index, entry in enumerate(entries):
            where = f"{section}[{index}]"
            if not isinstance(entry, dict):
                raise OrgFileError(f"{where} must be a table")
            email = _typed(entry, where, "email", str, "").strip().lower()
            if email.count("@") != 1:
                raise OrgFileError(f"{where}.email must be an address")
            if email in directory:
                raise OrgFileError(f"{email} appears twice in the directory")
            since, until = _moment(entry, where, "since"), _moment(entry, where, "until")
            if since and until and until <= since:
                raise OrgFileError(f"{where}.until must be later than its since")
            directory[email] = DirectoryEntry(
                email=email,
                name=_typed(entry, where, "name", str, ""),
                role=role,
                # Agents always log in: owning requests is done in the agent UI.
                logs_in=True if role == "agent" else _typed(entry, where, "logs_in", bool, True),
                since=since,
                until=until,
            )
    return directory


def _moment(entry: dict[str, Any], where: str, key: str) -> datetime | None:
    """A TOML date (`2025-01-01`: its midnight), date-time or ISO string, in UTC;
    a time without an offset is taken as UTC."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise OrgFileError(f"{where}.{key} must be a date, e.g. 2025-01-01") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise OrgFileError(f"{where}.{key} must be a date, e.g. 2025-01-01")
