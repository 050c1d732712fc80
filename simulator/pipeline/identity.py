"""Whether a sender's role may be believed from the From address alone.

Anyone can write `From: ava@acme.example`. Under `[identity] verify_roles` a
sender in one of those roles (by the directory or an internal domain) is
believed only with proof: an Authentication-Results header written by one of
`authserv_ids` that says the From domain passed DMARC or an aligned DKIM
signature, or delivery by one of `trusted_relays`. The decision is recorded on
the delivery (`sender_trust`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from simulator.domain import Channel
from simulator.org import IdentityPolicy

NOT_ASKED = ""
AUTHENTICATED = "authenticated"
RELAY = "relay"
UNVERIFIED = "unverified"

_COMMENT = re.compile(r"\([^()]*\)")
# The client IP of a Received hop: `from host (name [192.0.2.1])` or `from [192.0.2.1]`.
_HOP_ADDRESS = re.compile(r"\[(?:ipv6:)?([0-9a-f.:]+)\]", re.IGNORECASE)


def decide(
    policy: IdentityPolicy,
    sender: str,
    headers: Mapping[str, tuple[str, ...]],
    channel: Channel,
    peer: str,
) -> str:
    """AUTHENTICATED, RELAY or UNVERIFIED for a sender whose role needs proof."""
    if authenticated(policy, sender, headers):
        return AUTHENTICATED
    # Over SMTP the client is who handed us the mail; from a file or a mailbox, the
    # topmost Received hop says who handed it to the last server.
    client = peer if channel is Channel.SMTP else _top_hop(headers.get("received", ()))
    if client and _in_networks(client, policy.trusted_relays):
        return RELAY
    return UNVERIFIED


def authenticated(
    policy: IdentityPolicy, sender: str, headers: Mapping[str, tuple[str, ...]]
) -> bool:
    """Whether a trusted Authentication-Results header vouches for the sender's domain."""
    domain = sender.rpartition("@")[2]
    return any(
        _passes(value, domain, policy.authserv_ids)
        for value in headers.get("authentication-results", ())
    )


def _passes(value: str, domain: str, authserv_ids: Iterable[str]) -> bool:
    """Whether one Authentication-Results header (RFC 8601) from a trusted host says
    the From domain passed DMARC, or DKIM with a signature of that domain."""
    parts = [p.strip() for p in _COMMENT.sub(" ", value).split(";")]
    server = parts[0].split()[0].lower() if parts and parts[0].split() else ""
    if server not in authserv_ids:
        return False
    for result in parts[1:]:
        fields = dict(token.lower().split("=", 1) for token in result.split() if "=" in token)
        if fields.get("dmarc") == "pass" and fields.get("header.from", domain) == domain:
            return True
        if fields.get("dkim") == "pass" and fields.get("header.d") == domain:
            return True
    return False


def _top_hop(received: Iterable[str]) -> str:
    for value in received:
        found = _HOP_ADDRESS.search(value.partition(" by ")[0])
        return found.group(1) if found else ""
    return ""


def _in_networks(address: str, networks: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
