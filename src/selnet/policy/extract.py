"""Read a compiled policy with setools into a :class:`PolicySnapshot`.

This is the only module that imports setools; it runs once per policy (the
result is cached), so it favours completeness over speed.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from selnet.errors import PolicyError
from selnet.kernel.classes import NETWORK_CLASSES
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


def load_setools_policy(path: str) -> Any:
    """Open a binary policy with setools, turning its failures into PolicyError."""
    try:
        import setools
    except ImportError as exc:  # pragma: no cover - environment problem
        raise PolicyError(
            "setools is not importable: install python3-setools and use a venv made "
            "with --system-site-packages (scripts/bootstrap does both)"
        ) from exc
    try:
        return setools.SELinuxPolicy(path)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"{path}: not a readable SELinux policy ({msg})") from exc


def extract(path: str, sha256: str) -> PolicySnapshot:
    p = load_setools_policy(path)
    try:
        return _extract(p, path, sha256)
    except PolicyError:
        raise
    except Exception as exc:  # a truncated file can load lazily and fail here
        raise PolicyError(f"{path}: policy could not be read ({exc})") from exc


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
    attr_types = {str(a): frozenset(str(t) for t in a.expand()) for a in p.typeattributes()}

    booleans = {str(b): bool(b.state) for b in p.bools()}
    bounds: dict[str, str] = {}
    for b in p.bounds():
        if str(b.ruletype) == "typebounds":
            bounds[str(b.child)] = str(b.parent)

    rules: list[AVRule] = []
    transitions: list[TypeTransition] = []
    for r in p.terules():
        tclass = str(r.tclass)
        if tclass not in NETWORK_CLASSES:
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
        if tclass not in NETWORK_CLASSES:
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
