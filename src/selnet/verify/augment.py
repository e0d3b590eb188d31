"""The guest policy of `selnet verify`: the user's policy, its modules and the harness's rules.

The user's policy is a compiled binary (a CIL or policy.conf is compiled first), turned
back into CIL with ``checkpolicy -b -C`` (``-M`` for MLS/MCS) and compiled with secilc
together with the user's modules (as CIL: :mod:`selnet.policy.modules` converts a .te or
.pp) and one generated module, the harness (:class:`Harness`).  The harness only lets the
guest's plumbing run:

* PID 1 and every peer process run in the type of the ``kernel`` initial SID (the kernel
  type, K).  K is made permissive (``typepermissive``): mounting, loading the policy,
  setting booleans, enforce and sysctls, NetLabel and nftables all work on any policy,
  and a permissive type changes the decisions of no other subject.  K is also allowed
  every network permission, so the peers' own checks log nothing;
* PID 1 moves the test process into its domain by writing /proc/self/attr/current
  (``process setcurrent`` on K, ``process dyntransition`` from K to the first domain and,
  for a socket made by another domain (``--socket-from``), from that creator to the test
  domain); the test process reads its context back (``file read`` on its own /proc
  entry) and, with ``--sockcreate``, writes /proc/self/attr/sockcreate;
* every network check of every subject but K is audited (``auditallow``), so the kernel
  logs granted checks too (every check of the kernel check table, kernel.checks).

None of it grants a network permission to anything but K, and ``auditallow`` changes
what is logged, never a decision.  `selnet verify` does not take that on trust: it
decides every scenario on the user's policy and on the guest policy and refuses to
report agreement when a check differs (:mod:`selnet.verify.run`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selnet.errors import PolicyError, ToolMissingError
from selnet.kernel.checks import CAP_CLASS, CHECKS, SOCKET_CLASS
from selnet.kernel.classes import INET_SOCKET_CLASSES
from selnet.policy.atomic import write_atomic


def _audited() -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Every (class, permission) of the kernel check table, so that the kernel logs a
    granted check as well as a denied one: per class, and the capabilities (audited on
    the subject itself, as the kernel checks them).  Permissions a policy's class lacks
    are dropped when the module is written (``_perms``)."""
    per: dict[str, set[str]] = {}
    caps: set[str] = set()
    for c in CHECKS:
        if c.tclass == CAP_CLASS:
            caps.add(c.perm)
            continue
        for cls in sorted(INET_SOCKET_CLASSES) if c.tclass == SOCKET_CLASS else (c.tclass,):
            per.setdefault(cls, set()).add(c.perm)
    return {cls: tuple(sorted(p)) for cls, p in sorted(per.items())}, tuple(sorted(caps))


AUDITED, CAPABILITIES = _audited()
ANY = "selnet_verify_any"  # every type
AUDITED_ATTR = "selnet_verify_audited"  # every type but the kernel type


@dataclass(frozen=True, slots=True)
class TestDomains:
    """The domains one scenario's test process runs in: it starts in ``first`` (the
    socket's creator with --socket-from, else the domain) and moves to ``domain``."""

    domain: str
    creator: str | None = None
    sockcreate: bool = False

    @property
    def first(self) -> str:
        return self.creator or self.domain


@dataclass(frozen=True, slots=True)
class Harness:
    """The generated module: what the guest needs beyond the user's policy."""

    kernel_type: str
    statements: tuple[str, ...]  # CIL, one statement each

    def text(self) -> str:
        head = ("; selnet verify: the harness's additions to the user's policy (generated).\n"
                "; Only the kernel type (PID 1 and the peers) gains a network permission;\n"
                "; auditallow only makes the kernel log granted checks.\n")
        return head + "".join(f"{s}\n" for s in self.statements)


@dataclass(frozen=True, slots=True)
class GuestPolicy:
    """The policy the guest loads, and what it was made of."""

    path: Path  # guest-<sha>.33
    sha256: str
    harness: Harness
    base_cil: Path  # the user's policy as CIL (checkpolicy -b -C)
    harness_cil: Path
    module_cils: tuple[Path, ...]


def declared_classes(cil: str) -> dict[str, frozenset[str]]:
    """Every class of a CIL policy and its permissions (its own and its common's)."""
    commons = {m[1]: m[2].split() for m in re.finditer(r"^\(common (\S+) \(([^)]*)\)\)", cil, re.M)}
    own = {m[1]: m[2].split() for m in re.finditer(r"^\(class (\S+) \(([^)]*)\)\)", cil, re.M)}
    inherit = {m[1]: m[2] for m in re.finditer(r"^\(classcommon (\S+) (\S+)\)", cil, re.M)}
    return {c: frozenset(p + commons.get(inherit.get(c, ""), [])) for c, p in own.items()}


def _perms(classes: dict[str, frozenset[str]], cls: str, wanted: Iterable[str]) -> str:
    have = classes.get(cls, frozenset())
    return " ".join(p for p in wanted if p in have)


def harness_for(kernel_type: str, tests: Sequence[TestDomains],
                classes: dict[str, frozenset[str]]) -> Harness:
    """The harness module for these scenarios on a policy declaring ``classes``."""
    k = kernel_type
    out = [f"(typeattribute {ANY})", f"(typeattributeset {ANY} (all))",
           f"(typeattribute {AUDITED_ATTR})",
           f"(typeattributeset {AUDITED_ATTR} (and ({ANY}) (not ({k}))))",
           f"(typepermissive {k})"]

    def allow(src: str, tgt: str, cls: str, perms: Iterable[str], kind: str = "allow") -> None:
        p = _perms(classes, cls, perms)
        line = f"({kind} {src} {tgt} ({cls} ({p})))"
        if p and line not in out:
            out.append(line)

    allow(k, "self", "process", ("setcurrent",))
    for t in tests:
        allow(k, t.first, "process", ("dyntransition",))
        if t.creator:
            allow(t.creator, "self", "process", ("setcurrent",))
            allow(t.creator, t.domain, "process", ("dyntransition",))
        for d in dict.fromkeys((t.first, t.domain)):
            allow(d, "self", "file", ("open", "read", "getattr"))
        if t.sockcreate:
            allow(t.first, "self", "process", ("setsockcreate",))
            allow(t.first, "self", "file", ("write",))
    # the peers: every network permission on every type, and the capabilities they use
    for cls in sorted(AUDITED):
        if cls in classes:
            out.append(f"(allow {k} {ANY} ({cls} (all)))")
    allow(k, "self", "capability", CAPABILITIES)
    for cls, perms in sorted(AUDITED.items()):
        allow(AUDITED_ATTR, ANY, cls, perms, "auditallow")
    allow(AUDITED_ATTR, "self", "capability", CAPABILITIES, "auditallow")
    return Harness(k, tuple(out))


def _tool(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ToolMissingError(f"{name} is not installed (Debian package {package})")
    return exe


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if "rror" in ln] or lines or [f"exit {proc.returncode}"]
        raise PolicyError(f"{what}: {errs[0]}")


def policy_cil(binary: Path, mls: bool) -> str:
    """The compiled policy ``binary`` as CIL (checkpolicy -b -C; -M for MLS/MCS)."""
    checkpolicy = _tool("checkpolicy", "checkpolicy")
    with tempfile.TemporaryDirectory(prefix="selnet-verify-") as tmp:
        out = Path(tmp) / "policy.cil"
        _run([checkpolicy, *(["-M"] if mls else []), "-b", "-C", "-o", str(out), str(binary)],
             f"checkpolicy -b -C {binary}")
        return out.read_text(encoding="utf-8", errors="replace")


def compile_guest(base_cil: str, module_cils: Sequence[Path], harness: Harness,
                  outdir: Path) -> GuestPolicy:
    """base + modules + harness, compiled by secilc for the guest kernel (version 33).
    Every file is named by its content's hash and written atomically, so a boot's cached
    result (keyed by the policy's file name) always belongs to this exact policy."""
    secilc = _tool("secilc", "secilc")
    outdir.mkdir(parents=True, exist_ok=True)
    base_b = base_cil.encode()
    base_path = outdir / f"base-{hashlib.sha256(base_b).hexdigest()[:16]}.cil"
    write_atomic(base_path, base_b)
    h_b = harness.text().encode()
    h_path = outdir / f"harness-{hashlib.sha256(h_b).hexdigest()[:16]}.cil"
    write_atomic(h_path, h_b)
    # A compile of these exact inputs by this secilc is reused only while its record names
    # a guest file whose sha256 is still the one recorded (secilc takes seconds on a full
    # policy; the proof and the boot then find their caches keyed by the same file).
    try:
        st = os.stat(secilc)
        tool = f"{secilc}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        tool = secilc
    h = hashlib.sha256(f"guest-v1\0{tool}\0".encode() + base_b + b"\0" + h_b)
    for m in module_cils:
        h.update(b"\0" + m.read_bytes())
    record = outdir / f"inputs-{h.hexdigest()[:24]}.sha256"
    hit = _recorded(record, outdir)
    if hit is not None:
        return GuestPolicy(hit[0], hit[1], harness, base_path, h_path, tuple(module_cils))
    with tempfile.TemporaryDirectory(prefix=".guest-", dir=outdir) as tmp:
        out = Path(tmp) / "guest.33"
        _run([secilc, "-c", "33", "-o", str(out), "-f", os.devnull, str(base_path),
              *map(str, module_cils), str(h_path)],
             "the guest policy (your policy, modules and the harness) does not compile")
        data = out.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    path = outdir / f"guest-{digest[:16]}.33"
    write_atomic(path, data)
    write_atomic(record, f"{digest}\n".encode())
    return GuestPolicy(path, digest, harness, base_path, h_path, tuple(module_cils))


def _recorded(record: Path, outdir: Path) -> tuple[Path, str] | None:
    try:
        digest = record.read_text(encoding="ascii").strip()
        path = outdir / f"guest-{digest[:16]}.33"
        ok = re.fullmatch(r"[0-9a-f]{64}", digest) and (
            hashlib.sha256(path.read_bytes()).hexdigest() == digest)
    except (OSError, UnicodeDecodeError):
        return None
    return (path, digest) if ok else None
