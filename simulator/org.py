"""The org file: the organisation's directory, intake policy and prices, and the
price books (`--prices`) that can bill with a vendor's prices instead.

Loaded and validated once, before any socket opens, so that a typo in the file
is one clear error line rather than a surprise on the first delivery. Who an
address is (aliases, plus addresses) is decided here too, in `Org.identity`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.domain import Role
from simulator.errors import ConfigError, IntakeSimError, OrgFileError
from simulator.licensing.prices import (
    Band,
    Billing,
    LicensingRules,
    PricePair,
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
    aliases: tuple[str, ...] = ()  # other addresses of the same person
    light: bool = False  # a light agent / collaborator: free up to the plan's allowance
    system: bool = False  # a billed system or admin account (`[[system_accounts]]`)

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
    per_recipient_cap: int = 10  # at most this many to one mailbox per window (0 = no cap)
    cap_window_hours: float = 3.0
    # Acknowledgements (not updates) over the same window: forged senders are where
    # backscatter comes from, so new issues are what these count (0 = no limit).
    acknowledgements_per_window: int = 500  # in all
    acknowledgements_per_client: int = 50  # per SMTP client address
    # Acknowledge only when: "any" (a new issue; default), "aligned" (and the From
    # domain is the envelope sender's), "authenticated" (and an Authentication-Results
    # pass from one of `[identity] authserv_ids` vouches for the From domain).
    acknowledge_only: str = "any"
    signing_key: str = ""  # signs our Message-IDs; default: a secret kept in the database

    @property
    def enabled(self) -> bool:
        return self.acknowledge or self.notify_participants_on_reply


ACKNOWLEDGE_ONLY = ("any", "aligned", "authenticated")


@dataclass(frozen=True)
class IdentityPolicy:
    """`[identity]`: which addresses are one person, and which roles a From address
    alone does not prove, and what does."""

    merge_plus_addresses: bool = False  # jo+billing@x.example is jo@x.example
    plus_separator: str = "+"
    verify_roles: tuple[str, ...] = ()  # e.g. ("agent",); empty: From is believed (default)
    # Authentication-Results headers count only when written by one of these hosts
    # (RFC 8601 section 5: anyone can write the header; only our own border's counts).
    authserv_ids: tuple[str, ...] = ()
    # SMTP clients (IP addresses or networks) whose mail is believed as it stands.
    trusted_relays: tuple[str, ...] = ()

    def needs_proof(self, role: str) -> bool:
        return role in self.verify_roles


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
    identities: IdentityPolicy = field(default_factory=IdentityPolicy)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> directory address
    # `[[system_accounts]]` with `billed = false`: the tool's own accounts, never a user.
    free_system_accounts: frozenset[str] = frozenset()
    price_book: str = ""  # the `--prices` book whose pricing replaced the file's, if any

    def identity(self, address: str) -> str:
        """The person a well-formed address belongs to: its directory user when it is
        one of their aliases; with `merge_plus_addresses`, the address without its
        `+tag`. Intake maps every sender, To and Cc address through this one function
        after `parse.normalise_address` (the syntax), so `jo+billing@` and `jo@` are
        one user, one seat and one flood count."""
        found = self.aliases.get(address)
        if found is not None:
            return found
        if self.identities.merge_plus_addresses:
            local, _, domain = address.rpartition("@")
            base, separator, _ = local.partition(self.identities.plus_separator)
            if separator and base:
                address = f"{base}@{domain}"
                return self.aliases.get(address, address)
        return address

    def with_pricing(self, pricing: Pricing, book: str = "") -> Org:
        """The org billed by other prices (a price book); the light-agent allowance
        decides again which light agents are billed as agents."""
        directory = _light_allowance(self.directory, pricing.light_agents_free)
        return dataclasses.replace(self, pricing=pricing, directory=directory, price_book=book)

    def for_address(self, address: str) -> Org:
        """The org as intake sees it for mail to `address`: with that mailbox's policy."""
        policy = self.intake_by_address.get(address.lower())
        return self if policy is None else dataclasses.replace(self, intake=policy)

    def is_internal(self, address: str) -> bool:
        domain = address.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)

    def is_intake_address(self, address: str) -> bool:
        return address.lower() in self.intake_addresses

    def is_postmaster(self, address: str) -> bool:
        """`postmaster` alone or at an intake address's domain: RFC 5321 4.5.1 says a
        host that takes mail for a domain takes mail for its postmaster."""
        local, at, domain = address.strip().strip("<>").strip().lower().partition("@")
        if local != "postmaster":
            return False
        domains = {a.rpartition("@")[2] for a in self.intake_addresses}
        return not at or domain.rstrip(".") in domains


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
    licensing = _build_licensing(_table(data, "licensing"))
    pricing = build_pricing(_table(data, "pricing"), licensing.billing)
    directory, free_system = _build_directory(data)
    return Org(
        name=name,
        internal_domains=domains,
        intake_addresses=intake_addresses,
        intake=_build_intake(_table(data, "intake")),
        intake_by_address=_build_overrides(_table(data, "intake"), intake_addresses),
        pricing=pricing,
        directory=_light_allowance(directory, pricing.light_agents_free),
        licensing=licensing,
        message_id_domain=message_id_domain.lower(),
        source=source,
        notify=_build_notify(data, intake_addresses[0]),
        identities=_build_identity(_table(data, "identity")),
        aliases=_aliases(directory),
        free_system_accounts=free_system,
    )


def _build_identity(table: dict[str, Any]) -> IdentityPolicy:
    unknown = sorted(set(table) - set(IdentityPolicy.__dataclass_fields__))
    if unknown:
        raise OrgFileError(f"identity: unknown key(s) {', '.join(unknown)}")
    lists = {key: _address_list(table, key) for key in TRUST_LISTS}
    roles = {role.value for role in Role}
    for role in lists["verify_roles"]:
        if role not in roles:
            raise OrgFileError(f"identity.verify_roles: {role!r} is not one of {sorted(roles)}")
    for relay in lists["trusted_relays"]:
        try:
            ipaddress.ip_network(relay, strict=False)
        except ValueError:
            raise OrgFileError(
                f"identity.trusted_relays: {relay!r} is not an IP address or network"
            ) from None
    if lists["verify_roles"] and not (lists["authserv_ids"] or lists["trusted_relays"]):
        raise OrgFileError(
            "identity.verify_roles needs authserv_ids or trusted_relays: "
            "otherwise nobody in those roles could ever be believed"
        )
    policy = IdentityPolicy(
        merge_plus_addresses=_typed(table, "identity", "merge_plus_addresses", bool, False),
        plus_separator=_typed(table, "identity", "plus_separator", str, "+"),
        **lists,
    )
    if len(policy.plus_separator) != 1 or policy.plus_separator in "@ \t":
        raise OrgFileError("identity.plus_separator must be one character, such as + or -")
    return policy


TRUST_LISTS = ("verify_roles", "authserv_ids", "trusted_relays")


def _address_list(table: dict[str, Any], key: str) -> tuple[str, ...]:
    values = table.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise OrgFileError(f"identity.{key} must be a list of strings")
    return tuple(v.strip().lower() for v in values if v.strip())


def _aliases(directory: dict[str, DirectoryEntry]) -> dict[str, str]:
    """alias -> its directory address; an alias that is itself a directory address, or
    that two people claim, is an error."""
    found: dict[str, str] = {}
    for entry in directory.values():
        for alias in entry.aliases:
            if alias in directory or found.get(alias, entry.email) != entry.email:
                raise OrgFileError(f"alias {alias} belongs to more than one directory entry")
            found[alias] = entry.email
    return found


def _light_allowance(
    directory: dict[str, DirectoryEntry], allowance: int
) -> dict[str, DirectoryEntry]:
    """Light agents, in file order: the first `allowance` are free under Support (an
    employee who logs in, the README's "partial role"); the rest are billed as agents."""
    result, free = {}, 0
    for email, entry in directory.items():
        if entry.light:
            billed = free >= allowance
            free += 0 if billed else 1
            entry = dataclasses.replace(entry, role="agent" if billed else "employee")
        result[email] = entry
    return result


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
        acknowledgements_per_window=_typed(
            table, "notify", "acknowledgements_per_window", int, 500
        ),
        acknowledgements_per_client=_typed(table, "notify", "acknowledgements_per_client", int, 50),
        acknowledge_only=_typed(table, "notify", "acknowledge_only", str, "any").strip().lower(),
    )
    if policy.acknowledge_only not in ACKNOWLEDGE_ONLY:
        raise OrgFileError(
            f"notify.acknowledge_only must be one of {', '.join(ACKNOWLEDGE_ONLY)}, "
            f"not {policy.acknowledge_only!r}"
        )
    if policy.per_recipient_cap < 0 or policy.cap_window_hours <= 0:
        raise OrgFileError("notify.per_recipient_cap must be >= 0 and cap_window_hours > 0")
    if policy.acknowledgements_per_window < 0 or policy.acknowledgements_per_client < 0:
        raise OrgFileError("notify.acknowledgements_per_window and _per_client must be >= 0")
    if policy.signing_key and len(policy.signing_key) < SIGNING_KEY_MIN_LENGTH:
        raise OrgFileError(
            f"notify.signing_key must be at least {SIGNING_KEY_MIN_LENGTH} characters"
        )
    return policy


def build_pricing(table: dict[str, Any], billing: Billing = Billing.MONTHLY) -> Pricing:
    """A `[pricing]` table (an org file's or a price book's) under a billing term: where
    a monthly/annual pair is listed, the unit price is the term's."""
    support_pair = _pair(table, "support_per_agent", 25.0)
    team_pair = _pair(table, "team_per_user", 10.0)
    annual = billing is Billing.ANNUAL
    pricing = Pricing(
        currency=_typed(table, "pricing", "currency", str, "USD"),
        period=_typed(table, "pricing", "period", str, "month"),
        support_per_agent=support_pair.annual if annual else support_pair.monthly,
        team_per_user=team_pair.annual if annual else team_pair.monthly,
        support_pair=support_pair if "support_per_agent_annual" in table else None,
        team_pair=team_pair if "team_per_user_annual" in table else None,
        light_agents_free=_typed(table, "pricing", "light_agents_free", int, 0),
    )
    if pricing.support_per_agent < 0 or pricing.team_per_user < 0:
        raise OrgFileError("prices must not be negative")
    if pricing.light_agents_free < 0:
        raise OrgFileError("pricing.light_agents_free must not be negative")
    return dataclasses.replace(
        pricing,
        support_rule=_price_rule(table, "support", pricing.support_per_agent),
        team_rule=_price_rule(table, "team", pricing.team_per_user),
    )


def _pair(table: dict[str, Any], key: str, default: float) -> PricePair:
    """`KEY` (the monthly price) and `KEY_annual` (per period on a yearly contract)."""
    monthly = _typed(table, "pricing", key, float, default)
    annual = _typed(table, "pricing", f"{key}_annual", float, monthly)
    if monthly < 0 or annual < 0:
        raise OrgFileError("prices must not be negative")
    return PricePair(monthly=monthly, annual=annual)


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
    counts = {
        key: _typed(table, "pricing", f"{model}_{key}", int, 0)
        for key in ("free", "free_plan", "block", "minimum")
    }
    for key, value in counts.items():
        if value < 0:
            raise OrgFileError(f"pricing.{model}_{key} must not be negative")
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
    return PriceRule(unit_price=unit_price, shape=shape, bands=bands, **counts)


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


def _build_directory(data: dict[str, Any]) -> tuple[dict[str, DirectoryEntry], frozenset[str]]:
    """The agents, employees and billed system accounts; and the free system accounts
    (the tool's own, such as Zammad's system user: never a user, never a seat)."""
    directory: dict[str, DirectoryEntry] = {}
    free_system: set[str] = set()
    for section in ("agents", "employees", "system_accounts"):
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
            if email in directory or email in free_system:
                raise OrgFileError(f"{email} appears twice in the directory")
            if section == "system_accounts" and not _typed(entry, where, "billed", bool, False):
                free_system.add(email)
                continue
            directory[email] = _entry(entry, where, section, email)
    return directory, frozenset(free_system)


def _entry(entry: dict[str, Any], where: str, section: str, email: str) -> DirectoryEntry:
    """One directory entry. A billed system account (Issuetrak's administrator) is an
    agent who logs in; only an agent can be light."""
    role = "employee" if section == "employees" else "agent"
    since, until = _moment(entry, where, "since"), _moment(entry, where, "until")
    if since and until and until <= since:
        raise OrgFileError(f"{where}.until must be later than its since")
    return DirectoryEntry(
        email=email,
        name=_typed(entry, where, "name", str, ""),
        role=role,
        # Agents always log in: owning requests is done in the agent UI.
        logs_in=True if role == "agent" else _typed(entry, where, "logs_in", bool, True),
        since=since,
        until=until,
        aliases=_addresses(entry.get("aliases", []), f"{where}.aliases"),
        light=section == "agents" and _typed(entry, where, "light", bool, False),
        system=section == "system_accounts",
    )


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


# --- price books ---------------------------------------------------------------------

PRICE_BOOKS = "prices"  # the folder of simulator.samples holding the shipped books
PRICING_KEYS = {
    "currency",
    "period",
    "light_agents_free",
    "support_per_agent",
    "support_per_agent_annual",
    "team_per_user",
    "team_per_user_annual",
    *(
        f"{model}_{key}"
        for model in ("support", "team")
        for key in ("shape", "bands", "free", "free_plan", "block", "minimum")
    ),
}


@dataclass(frozen=True)
class PriceBook:
    """A vendor's published prices as a `[pricing]` table, with where and when they
    were read: `--prices` bills an org's seats with it instead of the file's."""

    name: str
    title: str
    source: str  # the vendor's page the figures come from
    read: str  # the date (ISO) the figures were written down
    note: str
    pricing: Pricing


def price_book_names() -> list[str]:
    """The books that ship in the package, by name (their file name without .toml)."""
    folder = resources.files("simulator.samples") / PRICE_BOOKS
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".toml") for n in names if n.endswith(".toml"))


def load_price_book(name_or_file: str, billing: Billing = Billing.MONTHLY) -> PriceBook:
    """A shipped book by name, or a book file; its prices under the org's billing term.
    A name that is neither is one error line naming the books there are."""
    path = Path(name_or_file)
    if name_or_file in price_book_names():
        shipped = resources.files("simulator.samples") / PRICE_BOOKS / f"{name_or_file}.toml"
        path = Path(str(shipped))
    elif path.suffix != ".toml" or not path.is_file():
        books = ", ".join(price_book_names())
        raise ConfigError(f"no price book {name_or_file!r}: name one of {books}, or a .toml file")
    data = read_toml(path, "price book", OrgFileError)
    try:
        book = _table(data, "book")
        text = {key: str(book.get(key, "")).strip() for key in ("title", "source", "read", "note")}
        if not text["source"] or not text["read"]:
            raise OrgFileError("[book] must give its source (the page) and the date it was read")
        # A misspelt key would silently bill the default price: a book names known keys only.
        unknown = sorted(set(_table(data, "pricing")) - PRICING_KEYS)
        if unknown:
            raise OrgFileError(f"pricing: unknown key(s) {', '.join(unknown)}")
        return PriceBook(
            name=path.stem,
            pricing=build_pricing(_table(data, "pricing"), billing),
            **text,
        )
    except OrgFileError as exc:
        raise OrgFileError(f"{path}: {exc}") from None


def with_price_book(org: Org, name_or_file: str | None) -> Org:
    """The org billed by a price book (`--prices`); unchanged when none is named."""
    if not name_or_file:
        return org
    book = load_price_book(name_or_file, org.licensing.billing)
    return org.with_pricing(book.pricing, book.name)
