"""Noise classification: mail that a helpdesk must record but never answer.

Pure functions over parsed headers. The order matters only for the recorded
reason: loop first (our own mail must never be processed again), then complaint
(feedback) reports, bounces, auto-replies, list mail and no-reply senders.

Every rule reads only what a damaged mail still offers (headers, the parts that
were found, the first text body), because intake asks here before it quarantines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice

from simulator.domain import Reason
from simulator.pipeline.parse import InboundMail

PRECEDENCE_NOISE = {"bulk", "junk", "list", "auto_reply"}
SUPPRESS_NOISE = {"all", "oof", "autoreply"}
# Presence of any of these marks a machine-written reply, whatever the value.
AUTOREPLY_MARKERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponse",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-loop",
)
# Compared with "-", "_" and "." taken out: post_master, Mailer_Daemon ...
BOUNCE_SENDERS = {"mailerdaemon", "postmaster"}
# A From header naming the mail system, even with no address in it ("MAILER-DAEMON",
# "Mail Delivery Subsystem <MAILER-DAEMON>", "<>").
BOUNCE_FROM = re.compile(
    r"mailer[-_.]?daemon|post[-_.]?master|mail delivery (sub)?system|^\s*<\s*>\s*$", re.I
)
# What plain-text bounces say: DSN fields written into the body, and the fixed
# sentences of the MTAs that send no delivery-status part.
DSN_FIELD_NAMES = ("final-recipient", "diagnostic-code", "reporting-mta", "remote-mta")
# A character every DSN field name has, and that no case folding makes: a text without
# it names no DSN field.
DSN_NAME_MARK = "-"
DSN_FIELDS = re.compile(rf"^\s*({'|'.join(map(re.escape, DSN_FIELD_NAMES))})\s*:", re.I | re.M)
# Amazon SES relays bounces as an SNS notification: JSON in a text/plain body.
SES_BOUNCE = re.compile(r'"notificationType"\s*:\s*"Bounce"')
DSN_PHRASES = re.compile(
    r"this is the mail system at host"
    r"|following addresses? had permanent fatal errors"
    r"|message was created automatically by mail delivery software"
    r"|could not be delivered to (one|all) or more"
    r"|delivery to the following recipients? (failed|has been delayed)"
    r"|undeliverable message|delivery (status )?notification \(failure\)"
    r"|returned mail: see transcript|mail delivery failed|error: invalid user address"
    r"|user unknown|unknown user|no such user|mailbox (is )?(full|unavailable)"
    r"|recipient address rejected|message rejected|delivery has failed",
    re.I,
)
DSN_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (status )?notification|delivery fail|mail delivery"
    r"|failure notice|delivery problem|nondeliverable|bounce",
    re.I,
)
# The subjects vacation responders write (Outlook, Apple, Exchange, many webmails).
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)\s*:|autorespons|out of (the )?office\s*:"
    r"|abwesenheitsnotiz|r[ée]ponse automatique)",
    re.I,
)
# Hotmail/Outlook.com complaint reports (JMRP) come as multipart/mixed, not ARF.
COMPLAINT_SUBJECT = re.compile(r"^\s*complaint about message from", re.I)
# List managers that do not send List-Id: fml, ezmlm, Mailman, and LISTSERV.
LIST_MARKERS = ("mailing-list", "x-mlserver", "x-mailing-list", "x-list")
LIST_PREFIXES = ("x-ml-", "x-mailman-")
NO_REPLY_LOCAL_PARTS = {"noreply", "no-reply", "donotreply", "do-not-reply"}


def _values(mail: InboundMail, name: str) -> list[str]:
    return [v.strip().lower() for v in mail.headers.get(name, ())]


def _local_part(address: str | None) -> str:
    return (address or "").rpartition("@")[0]


LOOP_HEADER = "X-Intake-Sim-Loop"  # set on every automatic email we send (notify.py)


def is_loop(mail: InboundMail, our_domain: str) -> bool:
    """Our own outgoing mail coming back: its Message-ID is in our domain, or it
    carries our loop marker (a forwarder may give it a new Message-ID)."""
    if mail.message_id and mail.message_id.lower().endswith("@" + our_domain):
        return True
    return our_domain in _values(mail, LOOP_HEADER.lower())


def is_complaint(mail: InboundMail) -> bool:
    """An abuse or spam feedback report: ARF (RFC 5965) or Hotmail's multipart/mixed kind."""
    if "message/feedback-report" in mail.content_types:
        return True
    # Apple Mail's one-click unsubscribe is a complaint about the list it answers.
    if "true" in _values(mail, "x-apple-unsubscribe"):
        return True
    return "message/rfc822" in mail.content_types and bool(COMPLAINT_SUBJECT.match(mail.subject))


def is_bounce(mail: InboundMail, envelope_from: str | None) -> bool:
    return _null_sender(envelope_from) or _reports_failure(mail, envelope_from)


def _null_sender(envelope_from: str | None) -> bool:
    return envelope_from is not None and envelope_from.strip("<> ") == ""


def _reports_failure(mail: InboundMail, envelope_from: str | None) -> bool:
    """What only a bounce shows. A null envelope alone is weaker: RFC 3834 sends
    auto-replies with one too, so those are asked for in between."""
    if _is_mail_system(_local_part(mail.sender)) or _is_mail_system(envelope_from or ""):
        return True
    if any(BOUNCE_FROM.search(v) for v in mail.headers.get("from", ())):
        return True
    if mail.content_types & {"multipart/report", "message/delivery-status"}:
        return True
    return "x-failed-recipients" in mail.headers or _reads_as_dsn(mail)


def _is_mail_system(address: str) -> bool:
    local = address.strip("<> ").partition("@")[0].lower()
    return local.translate(_SEPARATORS) in BOUNCE_SENDERS


_SEPARATORS = str.maketrans("", "", "-_.")


def _reads_as_dsn(mail: InboundMail) -> bool:
    """A plain-text bounce: DSN fields in the body, or an MTA's wording under a bounce
    subject (a person's mail may say "mailbox full"; it rarely has both)."""
    if _has_dsn_fields(mail.text) or SES_BOUNCE.search(mail.text):
        return True
    return bool(DSN_SUBJECT.search(mail.subject) and DSN_PHRASES.search(mail.text))


def _has_dsn_fields(text: str) -> bool:
    """Two DSN field lines or more. Most bodies name no DSN field at all: every name has
    a hyphen, which no case folding makes, and an ASCII text shows the names by its
    lower-cased words (under re.I, four non-ASCII letters also match ASCII ones, so
    other text is left to the pattern). The count stops at two."""
    if DSN_NAME_MARK not in text:
        return False
    if text.isascii():
        lowered = text.lower()
        if not any(name in lowered for name in DSN_FIELD_NAMES):
            return False
    return len(list(islice(DSN_FIELDS.finditer(text), 2))) == 2


def is_auto_reply(mail: InboundMail) -> bool:
    # RFC 3834: any Auto-Submitted value other than "no" is automatic.
    if any(v.split(";")[0].strip() != "no" for v in _values(mail, "auto-submitted")):
        return True
    precedence = _values(mail, "precedence") + _values(mail, "x-precedence")
    if any(v in PRECEDENCE_NOISE for v in precedence):
        return True
    if any(name in mail.headers for name in AUTOREPLY_MARKERS):
        return True
    if "reply" in _values(mail, "x-autogenerated"):
        return True
    # Apple iCloud's vacation replies carry no RFC 3834 header, only their own.
    if "vacation" in _values(mail, "x-apple-action"):
        return True
    if AUTO_REPLY_SUBJECT.match(mail.subject):
        return True
    suppress = _values(mail, "x-auto-response-suppress")
    return any(part.strip() in SUPPRESS_NOISE for v in suppress for part in v.split(","))


def is_list_mail(mail: InboundMail) -> bool:
    if "list-id" in mail.headers or "list-unsubscribe" in mail.headers:
        return True
    if any(name in mail.headers for name in LIST_MARKERS):
        return True
    return any(name.startswith(LIST_PREFIXES) for name in mail.headers)


def is_no_reply(mail: InboundMail) -> bool:
    return _local_part(mail.sender) in NO_REPLY_LOCAL_PARTS


Check = Callable[[InboundMail, str | None, str], bool]
# In order; built once rather than as closures on every call.
NOISE_CHECKS: tuple[tuple[str, Check], ...] = (
    (Reason.LOOP, lambda mail, envelope_from, our_domain: is_loop(mail, our_domain)),
    (Reason.COMPLAINT, lambda mail, envelope_from, our_domain: is_complaint(mail)),
    (Reason.BOUNCE, lambda mail, envelope_from, our_domain: _reports_failure(mail, envelope_from)),
    (Reason.AUTO_REPLY, lambda mail, envelope_from, our_domain: is_auto_reply(mail)),
    (Reason.BOUNCE, lambda mail, envelope_from, our_domain: _null_sender(envelope_from)),
    (Reason.LIST, lambda mail, envelope_from, our_domain: is_list_mail(mail)),
    (Reason.NO_REPLY, lambda mail, envelope_from, our_domain: is_no_reply(mail)),
)


def noise_reason(mail: InboundMail, envelope_from: str | None, our_domain: str) -> str | None:
    """The reason this mail is noise, or None when a person wrote it."""
    for reason, check in NOISE_CHECKS:
        if check(mail, envelope_from, our_domain):
            return reason
    return None
