"""The model sandbox: bubblewrap namespaces, an unprivileged uid, a minimal environment and cgroup limits.

A sandboxed process sees the system directories read-only, the Python installations it needs read-only,
its own model directory read-only at ``/src``, a private writable ``/tmp`` and nothing else of the host: no
data directory, no other version, no host processes (own pid namespace), no host network (own network
namespace unless the operator shares the host's), and an environment built from scratch.

When the caller is root, the model runs as ``COGWHEEL_SANDBOX_UID``/``GID`` (65534, ``nobody``, by
default): bubblewrap sets up the namespaces as root, then ``setpriv`` drops to that uid with every
capability gone before the model's interpreter starts. A non-root caller gets an unprivileged user
namespace instead (the model keeps the caller's uid, but still sees only what is bound in).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.sandbox.cgroups import Cgroup, CgroupError, Limits, prune_stale
from libs.sandbox.files import Mount, SandboxFiles

log = logging.getLogger(__name__)

MODEL_DIR = "/src"
TMP_DIR = "/tmp"
INPUTS_DIR = "/inputs"
CODE_DIR = "/opt/cogwheel"
# Joins the cgroups named before "--" (while still privileged), then becomes bubblewrap.
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
# Passed through from the runner's own environment: locale and which GPUs this runner may use.
_PASSED_VARIABLES = ("LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
                     "NVIDIA_DRIVER_CAPABILITIES", "CUDA_DEVICE_ORDER")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group",
              "nsswitch.conf", "hosts", "mime.types", "ssl", "ca-certificates", "pki", "os-release")
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class SandboxSettings(BaseSettings):
    """``COGWHEEL_SANDBOX*`` variables, read by every process that runs model code (runner, gateway, seed)."""

    model_config = SettingsConfigDict(env_prefix="COGWHEEL_", extra="ignore")

    # "bwrap": model code always runs sandboxed, or not at all. "off": the operator's explicit opt-out.
    sandbox: Literal["bwrap", "off"] = "bwrap"
    sandbox_bwrap: str = "bwrap"
    sandbox_uid: int = 65534
    sandbox_gid: int = 65534
    # Per worker (the model process and everything it starts). 0 means no limit.
    sandbox_memory_mb: int = 8192
    sandbox_pids: int = 1024
    sandbox_cpus: float = 0.0
    # "none": own network namespace with only its own loopback. "host": the host's network namespace, so
    # outbound internet works, and so do the host's listening ports: only for installs that firewall them.
    sandbox_network: Literal["none", "host"] = "none"

    @property
    def limits(self) -> Limits:
        return Limits(memory_bytes=self.sandbox_memory_mb * 1024 * 1024, pids=self.sandbox_pids,
                      cpus=self.sandbox_cpus)


class SandboxUnavailable(RuntimeError):
    """The sandbox is required but cannot be set up on this host."""


@dataclass
class Launch:
    """One sandboxed process about to be started: its command line, environment and resources."""

    argv: list[str]
    env: dict[str, str]
    files: SandboxFiles
    scratch: Path
    cgroup: Cgroup | None = None
    memory_bytes: int = 0
    _closed: bool = field(default=False, repr=False)

    @property
    def inputs_dir(self) -> Path:
        """Where the runner puts a prediction's input files: readable by the model, not writable."""
        return self.scratch / "inputs"

    def members(self) -> set[int]:
        return self.cgroup.members() if self.cgroup is not None else set()

    def has_strays(self, keep: set[int]) -> bool:
        """Whether the sandbox holds a process not in ``keep`` (one read of a cgroup file: no blocking I/O)."""
        return self.cgroup is not None and bool(self.cgroup.members() - keep)

    def kill_strays(self, keep: set[int]) -> int:
        """Kill every process of the sandbox not in ``keep`` (the worker and what its setup started)."""
        return self.cgroup.kill(keep) if self.cgroup is not None else 0

    def out_of_memory(self) -> bool:
        return self.cgroup is not None and self.cgroup.oom_kills() > 0

    def close(self) -> None:
        """Kill whatever is left and remove the cgroup (the scratch directory is the caller's to remove)."""
        if self._closed:
            return
        self._closed = True
        if self.cgroup is not None:
            self.cgroup.remove()


class Sandbox:
    """Builds sandboxed command lines from the operator's settings."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self._checked: tuple[str | None, str | None] | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.sandbox != "off"

    @property
    def privileged(self) -> bool:
        """Whether models get a uid of their own (only a root caller can switch to it)."""
        return os.geteuid() == 0

    def check(self) -> str | None:
        """Why the sandbox cannot be used here, or None when it works (tried once, then remembered)."""
        with self._lock:
            if self._checked is None:
                self._checked = self._try()
            return self._checked[0]

    def limits_note(self) -> str | None:
        """Why limits fall back to rlimits (no usable cgroup), if they do."""
        self.check()
        assert self._checked is not None
        return self._checked[1]

    def describe(self) -> str:
        """One line for the start-up log."""
        if not self.enabled:
            return ("model sandbox is OFF (COGWHEEL_SANDBOX=off): model code runs with this service's user, "
                    "environment, files and network")
        reason = self.check()
        if reason is not None:
            return f"model sandbox unavailable, model code will not run: {reason}"
        s = self.settings
        who = f"uid {s.sandbox_uid}" if self.privileged else "this service's uid in a user namespace"
        limits = "cgroup" if self.limits_note() is None else f"rlimits ({self.limits_note()})"
        return (f"model sandbox: bubblewrap as {who}, network {s.sandbox_network}, memory "
                f"{s.sandbox_memory_mb or 'unlimited'} MiB, {s.sandbox_pids or 'unlimited'} processes, "
                f"cpus {s.sandbox_cpus or 'unlimited'}, limits by {limits}")

    def require(self) -> None:
        """Raise SandboxUnavailable when model code must not run (sandbox required but broken)."""
        if self.enabled and (reason := self.check()) is not None:
            raise SandboxUnavailable(
                f"the model sandbox cannot be set up on this host ({reason}); fix it, or set "
                "COGWHEEL_SANDBOX=off to run model code unsandboxed"
            )

    def _try(self) -> tuple[str | None, str | None]:
        s = self.settings
        if self.privileged and (s.sandbox_uid == 0 or s.sandbox_gid == 0):
            return "COGWHEEL_SANDBOX_UID/GID must not be 0 (root)", None
        if shutil.which(s.sandbox_bwrap) is None:
            return f"{s.sandbox_bwrap!r} not found (install the bubblewrap package)", None
        limits_note = None
        try:
            Cgroup.create("check", s.limits).remove()
        except CgroupError as exc:
            limits_note = str(exc)
        else:
            prune_stale()
        scratch = Path(tempfile.mkdtemp(prefix="cogwheel-sandbox-check-"))
        try:
            launch = self.launch(name="check", command=["/bin/sh", "-c", "exit 0"], model_dir=scratch,
                                 scratch=scratch / "box", use_cgroup=False)
            proc = subprocess.run(launch.argv, env=launch.env, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap failed: {exc}", limits_note
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-500:]
            return f"bubblewrap failed (exit {proc.returncode}): {detail}", limits_note
        return None, limits_note

    def launch(
        self,
        *,
        name: str,
        command: list[str],
        model_dir: Path,
        scratch: Path,
        env: dict[str, str] | None = None,
        python: str | None = None,
        code: dict[str, Path] | None = None,
        use_cgroup: bool = True,
    ) -> Launch:
        """The command line that runs ``command`` in a fresh sandbox.

        Args:
            name: Names the cgroup (a version id, ``probe``...).
            command: What runs inside; paths as the sandbox sees them.
            model_dir: The version's files, seen read-only at ``/src`` (the working directory).
            scratch: A new host directory for this sandbox: ``tmp`` (the model's writable ``/tmp``) and
                ``inputs`` (per-prediction input files, read-only inside at ``/inputs``).
            env: Variables on top of the minimal environment (cog.yaml's ``environment``).
            python: An interpreter (possibly a venv) whose installation must be visible.
            code: Files or directories of our own code to show read-only, keyed by their path inside.
        """
        s = self.settings
        scratch.mkdir(parents=True, exist_ok=True)
        os.chmod(scratch, 0o755)
        tmp, inputs = scratch / "tmp", scratch / "inputs"
        tmp.mkdir(mode=0o700, exist_ok=True)
        inputs.mkdir(mode=0o755, exist_ok=True)
        if self.privileged:
            os.chown(tmp, s.sandbox_uid, s.sandbox_gid)
        cgroup = None
        if use_cgroup and self.limits_note() is None:
            try:
                cgroup = Cgroup.create(_cgroup_name(name), s.limits)
            except CgroupError as exc:
                raise SandboxUnavailable(str(exc)) from None
        args = [
            s.sandbox_bwrap,
            "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "model",
            "--proc", "/proc", "--dev", "/dev",
            "--ro-bind", "/usr", "/usr",
        ]
        if s.sandbox_network == "none":
            args.append("--unshare-net")
        for link in _SYSTEM_LINKS:
            host = Path("/") / link
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                args += ["--ro-bind", str(host), str(host)]
        # /tmp first: installations that live below the host's /tmp (tests, scratch data dirs) are then
        # mounted on top of it instead of being hidden by it.
        binds: list[tuple[str, str, str]] = [("--bind", str(tmp), TMP_DIR)]
        for entry in _ETC_FILES:
            binds.append(("--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"))
        if s.sandbox_network == "host":
            binds.append(("--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"))
        for host_dir, inside in _python_dirs(python):
            binds.append(("--ro-bind", host_dir, inside))
        for inside, host_path in (code or {}).items():
            binds.append(("--ro-bind", str(host_path), inside))
        gpus = sorted(glob.glob("/dev/nvidia*"))
        for device in gpus:
            binds.append(("--dev-bind", device, device))
        if gpus:  # CUDA reads PCI topology from /sys; /proc/driver/nvidia is in the fresh /proc already
            binds.append(("--ro-bind-try", "/sys", "/sys"))
        binds += [
            ("--ro-bind", str(model_dir), MODEL_DIR),
            ("--ro-bind", str(inputs), INPUTS_DIR),
        ]
        args += _with_parents(binds)
        args += ["--chdir", MODEL_DIR]
        inner = list(command)
        if cgroup is None and use_cgroup:
            inner = _rlimits(s.limits) + inner
        if self.privileged:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                     "setpriv", f"--reuid={s.sandbox_uid}", f"--regid={s.sandbox_gid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *inner]
        else:
            args += ["--unshare-user", "--", *inner]
        if cgroup is not None:
            argv = ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", *map(str, cgroup.procs_files), "--", *args]
        else:
            argv = args
        files = SandboxFiles([
            Mount(MODEL_DIR, Path(model_dir)),
            Mount(TMP_DIR, tmp, removable=True),
            Mount(INPUTS_DIR, inputs),
        ])
        return Launch(argv=argv, env=self._environment(python, env or {}), files=files, scratch=scratch,
                      cgroup=cgroup, memory_bytes=s.limits.memory_bytes)

    def _environment(self, python: str | None, extra: dict[str, str]) -> dict[str, str]:
        bin_dirs = [str(Path(sandbox_python(python)).parent)] if python else []
        env = {
            "PATH": os.pathsep.join([*bin_dirs, "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": TMP_DIR,
            "TMPDIR": TMP_DIR,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update({k: os.environ[k] for k in _PASSED_VARIABLES if k in os.environ})
        env.update(extra)
        return env


def sandbox_python(python: str) -> str:
    """``python`` as the sandbox reaches it: a venv's own directory resolved, its interpreter link kept.

    A venv is recognised by the ``pyvenv.cfg`` next to its ``bin``; resolving the interpreter itself
    would lose the venv, so only the directory holding it is resolved.
    """
    path = Path(python)
    if (path.parent.parent / "pyvenv.cfg").is_file():
        return str(Path(os.path.realpath(path.parent.parent)) / path.parent.name / path.name)
    return os.path.realpath(path)


def _python_dirs(python: str | None) -> list[tuple[str, str]]:
    """Installations a sandboxed interpreter needs, as (host directory, path inside) pairs.

    Its venv, the runner's venv and the base installation; each at its real path, and also at the path
    this process knows it by when that goes through a symlink (a per-version venv's ``.pth`` file names the
    runner's site-packages that way).
    """
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    if python:
        real = Path(sandbox_python(python))
        candidates.append(str(real.parent.parent))
        candidates.append(str(Path(os.path.realpath(real)).parent.parent))
    pairs: dict[str, str] = {}
    for candidate in candidates:
        for inside in {os.path.realpath(candidate), os.path.abspath(candidate)}:
            if inside in ("/", "/usr") or inside.startswith("/usr/") or not os.path.isdir(inside):
                continue
            if any(inside == d or inside.startswith(d + "/") for d in pairs):
                continue
            for nested in [d for d in pairs if d.startswith(inside + "/")]:
                del pairs[nested]
            pairs[inside] = os.path.realpath(inside)
    return sorted((host, inside) for inside, host in pairs.items())


def _with_parents(binds: list[tuple[str, str, str]]) -> list[str]:
    """Bind arguments, each preceded by world-readable directories for the parents bubblewrap would create.

    Directories bubblewrap creates on its own are private to root, which the model's uid cannot enter.
    """
    made = {"/", "/usr", "/proc", "/dev", "/sys"}
    args: list[str] = []
    for flag, source, dest in binds:
        parents = list(reversed(Path(dest).parents))
        for parent in map(str, parents):
            if parent in made or parent.startswith(("/proc/", "/dev/", "/sys/", "/usr/")):
                continue
            args += ["--perms", "0755", "--dir", parent]
            made.add(parent)
        args += [flag, source, dest]
        made.add(dest)
    return args


def _rlimits(limits: Limits) -> list[str]:
    """Without a cgroup: address-space and process-count rlimits (per process, per uid respectively)."""
    args = ["prlimit"]
    if limits.memory_bytes:
        args.append(f"--as={limits.memory_bytes}")
    if limits.pids:
        args.append(f"--nproc={limits.pids}")
    return args + ["--"] if len(args) > 1 else []


def _cgroup_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "sandbox"
