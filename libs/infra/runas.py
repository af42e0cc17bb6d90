"""Run PostgreSQL binaries as an unprivileged account when this process is root.

PostgreSQL refuses to start as root, yet containers and CI runners usually are root. Rather than
adding a system user, we borrow an existing unprivileged account (``nobody`` unless
``COGWHEEL_PG_RUN_AS`` names another) and make sure it can reach the binaries and the data directory.
"""

import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.infra.errors import InfraError

__all__ = ["RunAs", "run_as_for_postgres"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunAs:
    """The account a child process switches to (``subprocess`` ``user=``/``group=``)."""

    uid: int
    gid: int
    name: str

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        """Hand a directory tree we created over to this account."""
        for root, dirs, files in os.walk(path):
            os.chown(root, self.uid, self.gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)

    def ensure_reachable(self, path: Path) -> None:
        """Let the account traverse every ancestor of ``path``.

        Only the search bit is added for "others" and only where it is missing, so nothing becomes listable.
        """
        for ancestor in reversed(path.resolve().parents):
            st = ancestor.stat()
            if self._can_search(st):
                continue
            _log.info("granting o+x on %s so that %s can reach %s", ancestor, self.name, path)
            os.chmod(ancestor, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _can_search(self, st: os.stat_result) -> bool:
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def run_as_for_postgres() -> RunAs | None:
    """The account to run PostgreSQL as, or None when we are not root and can run it ourselves."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    name = os.environ.get("COGWHEEL_PG_RUN_AS", "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InfraError(f"postgres: running as root needs an unprivileged account; '{name}' does not exist") from None
    if entry.pw_uid == 0:
        raise InfraError(f"postgres: COGWHEEL_PG_RUN_AS={name} is root; PostgreSQL refuses to run as root")
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=name)
