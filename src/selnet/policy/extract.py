"""Read a compiled policy with setools into a :class:`PolicySnapshot`.

This is the only module that imports setools; it runs once per policy (the
result is cached).  Every fact comes through setools (libsepol): selnet has no
binary-policy reader of its own, by design — a second reader of the format is a
second place for the format's facts to go wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import ipaddress
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from selnet.errors import PolicyError
from selnet.kernel.classes import SNAPSHOT_CLASSES
from selnet.policy.snapshot import (
    AVRule,
    Constraint,
    Context,
    Netifcon,
    Nodecon,
    PolicySnapshot,
    Portcon,
    TypeTransition,
    UserInfo,
)

_AV_RULETYPES = {"allow", "auditallow", "dontaudit"}


def _mls(text: str) -> str:
    # setools prints ranges as "s0 - s0:c0.c15"; contexts spell them "s0-s0:c0.c15".
    return text.replace(" - ", "-")


def _ctx(c: Any, mls: bool) -> Context:
    return Context(str(c.user), str(c.role), str(c.type_), _mls(str(c.range_)) if mls else "")


def _cond(rule: Any) -> tuple[tuple[str, ...] | None, bool]:
    try:
        cond = rule.conditional
    except Exception:  # setools raises RuleNotConditional
        return None, True
    return tuple(str(tok) for tok in cond.expression()), bool(rule.conditional_block)


class _Captured:
    """What libsepol and setools said while captured."""

    text = ""

    def first_libsepol_line(self) -> str | None:
        for line in self.text.splitlines():
            line = line.strip()
            if line.startswith("libsepol."):
                return line.removeprefix("libsepol.")
        return None


@contextlib.contextmanager
def _quiet() -> Iterator[_Captured]:
    """Capture fd 2 (libsepol writes there itself), sys.stderr and unraisable-exception
    reports (setools' logging callback fails on non-UTF-8 messages), and silence
    setools' logger: a corrupt policy must not print before selnet's one line."""
    captured = _Captured()
    logger = logging.getLogger("setools")
    was_disabled, logger.disabled = logger.disabled, True
    old_hook, old_stderr = sys.unraisablehook, sys.stderr
    sys.unraisablehook = lambda _unraisable: None
    buffer = io.StringIO()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved: int | None = None
    with tempfile.TemporaryFile() as tmp:
        try:
            try:
                saved = os.dup(2)
                os.dup2(tmp.fileno(), 2)
            except OSError:  # no fd 2 to redirect: capture what Python prints only
                saved = None
            sys.stderr = buffer
            yield captured
        finally:
            sys.stderr = old_stderr
            sys.unraisablehook = old_hook
            logger.disabled = was_disabled
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            raw = tmp.read(65536).decode("utf-8", errors="replace")
            captured.text = raw + "\n" + buffer.getvalue()


def _invalid(path: str, captured: _Captured, exc: BaseException | None = None) -> PolicyError:
    reason = captured.first_libsepol_line()
    if reason is not None:
        return PolicyError(f"{path}: not a valid compiled policy (libsepol: {reason})")
    detail = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    if exc is None or type(exc).__name__ == "InvalidPolicy" or not detail:
        # setools' InvalidPolicy text ("A binary policy must be specified...") misleads.
        return PolicyError(f"{path}: not a valid compiled policy (libsepol could not read it)")
    return PolicyError(f"{path}: not a valid compiled policy ({detail})")


def _import_setools() -> Any:
    try:
        import setools
    except ImportError as exc:  # pragma: no cover - environment problem
        raise PolicyError(
            "setools is not importable: install python3-setools and use a venv made "
            "with --system-site-packages (scripts/bootstrap does both)"
        ) from exc
    return setools


def import_reader_only() -> None:
    """Import setools' policy reader (``setools.policyrep``) without the package's
    ``__init__``, which imports every query, networkx and pkg_resources (~0.35 s of
    CPU, when a first read of the reference policy takes ~0.3 s).  For the loader's
    child process, which reads one policy and exits; the package is left unimported,
    so a later ``import setools`` anywhere else runs it in full."""
    if "setools" in sys.modules:
        return
    spec = importlib.util.find_spec("setools")
    if spec is None or not spec.submodule_search_locations:
        return
    stub = type(sys)("setools")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__spec__ = spec
    sys.modules["setools"] = stub
    try:
        importlib.import_module("setools.policyrep")
    except ImportError:
        sys.modules.pop("setools.policyrep", None)
    finally:
        if sys.modules.get("setools") is stub:
            del sys.modules["setools"]


def _selinux_policy() -> Any:
    """setools' SELinuxPolicy class: from the reader alone if it was imported so."""
    rep = sys.modules.get("setools.policyrep")
    if rep is not None:
        return rep.SELinuxPolicy
    return _import_setools().SELinuxPolicy


def load_setools_policy(path: str) -> Any:
    """Open a binary policy with setools, turning its failures into one PolicyError line."""
    setools = _import_setools()
    with _quiet() as captured:
        try:
            return setools.SELinuxPolicy(path)
        except Exception as exc:
            failure: Exception = exc
    raise _invalid(path, captured, failure) from failure


def extract(path: str, sha256: str) -> PolicySnapshot:
    selinux_policy = _selinux_policy()
    failure: Exception | None = None
    with _quiet() as captured:
        try:
            p = selinux_policy(path)
            return _extract(p, path, sha256)
        except PolicyError:
            raise
        except Exception as exc:  # a truncated file can load lazily and fail here
            failure = exc
    raise _invalid(path, captured, failure) from failure


def _extract(p: Any, path: str, sha256: str) -> PolicySnapshot:
    mls = bool(p.mls)
    classes: dict[str, frozenset[str]] = {}
    for c in p.classes():
        perms = {str(x) for x in c.perms}
        with contextlib.suppress(Exception):  # setools raises NoCommon
            perms |= {str(x) for x in c.common.perms}
        classes[str(c)] = frozenset(perms)

    initial_sids = {str(s): _ctx(s.context, mls) for s in p.initialsids()}

    portcons = [
        Portcon(str(pc.protocol), int(pc.ports.low), int(pc.ports.high), _ctx(pc.context, mls), i)
        for i, pc in enumerate(p.portcons())
    ]
    nodecons = []
    for i, nc in enumerate(p.nodecons()):
        net = nc.network
        fam = 4 if isinstance(net, ipaddress.IPv4Network) else 6
        nodecons.append(
            Nodecon(
                fam,
                str(net.network_address),
                str(net.netmask),
                net.prefixlen,
                int(net.network_address),
                int(net.netmask),
                _ctx(nc.context, mls),
                i,
            )
        )
    netifcons = [
        Netifcon(str(n.netif), _ctx(n.context, mls), _ctx(n.packet, mls), i)
        for i, n in enumerate(p.netifcons())
    ]

    type_attrs: dict[str, frozenset[str]] = {}
    aliases: dict[str, str] = {}
    permissive = set()
    for t in p.types():
        name = str(t)
        type_attrs[name] = frozenset(str(a) for a in t.attributes())
        for a in t.aliases():
            aliases[str(a)] = name
        if t.ispermissive:
            permissive.add(name)
    # Each attribute's types, as the inverse of each type's attributes (libsepol keeps the
    # two maps as each other's inverse): a.expand() for each attribute costs as much again.
    members: dict[str, list[str]] = {str(a): [] for a in p.typeattributes()}
    for name, attrs in type_attrs.items():
        for a in attrs:
            members[a].append(name)
    attr_types = {a: frozenset(ts) for a, ts in members.items()}

    booleans = {str(b): bool(b.state) for b in p.bools()}
    bounds: dict[str, str] = {}
    for b in p.bounds():
        if str(b.ruletype) == "typebounds":
            bounds[str(b.child)] = str(b.parent)

    rules: list[AVRule] = []
    transitions: list[TypeTransition] = []
    for r in p.terules():
        tclass = str(r.tclass)
        if tclass not in SNAPSHOT_CLASSES:
            continue
        rt = r.ruletype.name
        cond, branch = _cond(r)
        if rt in _AV_RULETYPES:
            rules.append(
                AVRule(
                    rt,
                    str(r.source),
                    str(r.target),
                    tclass,
                    frozenset(str(x) for x in r.perms),
                    cond,
                    branch,
                )
            )
        elif rt == "type_transition":
            transitions.append(
                TypeTransition(str(r.source), str(r.target), tclass, str(r.default), cond, branch)
            )

    constraints = []
    for c in p.constraints():
        tclass = str(c.tclass)
        if tclass not in SNAPSHOT_CLASSES:
            continue
        postfix: list[str | frozenset[str]] = []
        for tok in c.expression:
            if isinstance(tok, (frozenset, set, list, tuple)):
                names: set[str] = set()
                for obj in tok:
                    n = str(obj)
                    names |= attr_types.get(n, frozenset((n,)))
                postfix.append(frozenset(names))
            else:
                postfix.append(str(tok))
        constraints.append(
            Constraint(
                tclass,
                frozenset(str(x) for x in c.perms),
                c.ruletype.name.startswith("mls"),
                tuple(postfix),
                str(c.statement()) if hasattr(c, "statement") else str(c),
            )
        )

    users = {}
    for u in p.users():
        level = rng = ""
        if mls:
            level, rng = _mls(str(u.mls_level)), _mls(str(u.mls_range))
        users[str(u)] = UserInfo(frozenset(str(r) for r in u.roles), level, rng)
    role_types = {str(r): frozenset(str(t) for t in r.types()) for r in p.roles()}

    sensitivities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    sens_aliases: dict[str, str] = {}
    cat_aliases: dict[str, str] = {}
    if mls:
        sensitivities = tuple(str(s) for s in sorted(p.sensitivities()))
        categories = tuple(str(c) for c in sorted(p.categories()))
        for s in p.sensitivities():
            for a in s.aliases():
                sens_aliases[str(a)] = str(s)
        for c in p.categories():
            for a in c.aliases():
                cat_aliases[str(a)] = str(c)

    return PolicySnapshot(
        sha256=sha256,
        path=path,
        version=int(p.version),
        mls=mls,
        handle_unknown=str(p.handle_unknown),
        polcaps=frozenset(str(c) for c in p.polcaps()),
        classes=classes,
        initial_sids=initial_sids,
        portcons=portcons,
        nodecons=nodecons,
        netifcons=netifcons,
        type_attrs=type_attrs,
        attr_types=attr_types,
        aliases=aliases,
        booleans=booleans,
        permissive=frozenset(permissive),
        bounds=bounds,
        rules=rules,
        transitions=transitions,
        constraints=constraints,
        users=users,
        role_types=role_types,
        sensitivities=sensitivities,
        categories=categories,
        sens_aliases=sens_aliases,
        cat_aliases=cat_aliases,
    )
