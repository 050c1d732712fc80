"""A real Dovecot (Debian's dovecot-imapd and dovecot-pop3d) for the fetch tests: a
throwaway config on free loopback ports (IMAPS, IMAP with STARTTLS, POP3S), one
user with a Maildir, and a self-signed certificate made with openssl.

Dovecot keeps its indexes and UID lists outside the Maildir (INDEX= and
CONTROL=), so the Maildir holds only the messages, and a test can compare it
byte for byte, file names (which carry the flags) included. Run as root, the
mail user is `nobody` and the master drops to Dovecot's own users.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulator.pipeline.parse import date_header

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "desk", "s3cret-pass"
SKIP = "Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)"

CONFIG = """
protocols = imap pop3
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir:INDEX={root}/index/%u:CONTROL={root}/control/%u
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    return Path(DOVECOT).exists() and shutil.which("openssl") is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    imap: int
    imaps: int
    pop3s: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def maildir(self) -> Path:
        return self.root / "home" / USER / "Maildir"

    @property
    def cert(self) -> Path:
        return self.root / "cert.pem"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                for port in (self.imaps, self.pop3s, self.imap):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Dovecot did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def forget_uids(self) -> None:
        """Drop Dovecot's UID list and indexes: the folder comes back with a new UIDVALIDITY."""
        self.stop()
        time.sleep(1.1)  # UIDVALIDITY is a time in seconds; make sure it moves on
        for name in ("index", "control"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        self.own_dirs()
        self.start()

    def deliver(self, raw: bytes, name: str) -> None:
        """Put one message at `name` under the Maildir ("new/N", ".Archive/cur/N:2,S")
        as a delivery agent would, its time (Dovecot's INTERNALDATE) its Date header."""
        path = self.maildir / name
        box = path.parent.parent
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        if box != self.maildir:
            (box / "maildirfolder").touch()
        path.write_bytes(raw)
        dated = date_header(raw)
        if dated is not None:
            os.utime(path, (dated.timestamp(), dated.timestamp()))
        for made in [self.root / "home", *(self.root / "home").rglob("*")]:
            self._own(made)

    def own_dirs(self) -> None:
        """The mail user's folders: its home and Dovecot's index and UID list folders."""
        for name in ("index", "control"):
            (self.root / name).mkdir(exist_ok=True)
        for top in ("home", "index", "control"):
            for path in [self.root / top, *(self.root / top).rglob("*")]:
                self._own(path)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(path, nobody.pw_uid, nobody.pw_gid)


def _self_signed(root: Path) -> None:
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def running_dovecot(messages: dict[str, bytes]) -> Iterator[Dovecot]:
    """Dovecot serving one user whose Maildir holds `messages` (file name -> bytes)."""
    root = Path(tempfile.mkdtemp(prefix="intake-sim-dovecot-"))
    root.chmod(0o755)  # the mail user (nobody) must reach its home
    try:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid, internal, login = nobody.pw_uid, nobody.pw_gid, "dovecot", "dovenull"
        else:
            me = pwd.getpwuid(os.geteuid())
            uid, gid, internal, login = me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
        server = Dovecot(root, free_port(), free_port(), free_port())
        _self_signed(root)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (root / "dovecot.conf").write_text(
            CONFIG.format(
                root=root,
                uid=uid,
                gid=gid,
                internal=internal,
                login=login,
                imap=server.imap,
                imaps=server.imaps,
                pop3s=server.pop3s,
            )
        )
        for name, raw in messages.items():
            server.deliver(raw, name)
        server.own_dirs()
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path (Maildir flags live in the names)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
