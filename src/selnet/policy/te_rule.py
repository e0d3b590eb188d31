"""One TE access-vector rule as people paste it (``selnet whatif --rule``), as overlay changes.

``allow httpd_t { http_port_t http_cache_port_t }:tcp_socket { name_bind name_connect };``
is one rule per (source, target, class), each an :class:`~selnet.policy.overlay.AddRule`:
exactly what checkpolicy expands it to.  Only the av-rule forms (allow, auditallow,
dontaudit) are read: anything else is refused with a clear line.
"""

from __future__ import annotations

import re

from selnet.errors import InputError
from selnet.policy.overlay import RULE_KINDS, AddRule

_TOKEN = re.compile(r"\{|\}|:|;|~|\*|[A-Za-z0-9_.$-]+|\S")
_MAX = 4096  # a pasted rule, not a module


def _names(tokens: list[str], i: int, what: str) -> tuple[list[str], int]:
    """A name or a ``{ ... }`` set of names at tokens[i]."""
    if i >= len(tokens):
        raise InputError(f"--rule: {what} missing")
    if tokens[i] == "{":
        j = i + 1
        out: list[str] = []
        while j < len(tokens) and tokens[j] != "}":
            if tokens[j] in ("~", "*", "-") or not re.fullmatch(r"[A-Za-z0-9_.$]+", tokens[j]):
                raise InputError(f"--rule: {what}: only plain names are supported, "
                                 f"got {tokens[j]!r}")
            out.append(tokens[j])
            j += 1
        if j >= len(tokens):
            raise InputError(f"--rule: {what}: '{{' without '}}'")
        if not out:
            raise InputError(f"--rule: {what}: empty set")
        return out, j + 1
    tok = tokens[i]
    if not re.fullmatch(r"[A-Za-z0-9_.$]+", tok):
        raise InputError(f"--rule: {what}: expected a name, got {tok!r}")
    return [tok], i + 1


def parse_rule(text: str) -> list[AddRule]:
    """``KIND SOURCE TARGET:CLASS PERMS;`` -> one AddRule per source, target and class."""
    if len(text) > _MAX:
        raise InputError(f"--rule: longer than {_MAX} characters")
    tokens = _TOKEN.findall(text.strip())
    if not tokens:
        raise InputError("--rule needs a rule, e.g. 'allow httpd_t http_port_t:tcp_socket "
                         "name_connect;'")
    kind = tokens[0]
    if kind not in RULE_KINDS:
        raise InputError(f"--rule: {kind!r} is not an av rule (expected one of "
                         f"{', '.join(RULE_KINDS)})")
    sources, i = _names(tokens, 1, "source")
    targets, i = _names(tokens, i, "target")
    if i >= len(tokens) or tokens[i] != ":":
        raise InputError("--rule: expected ':' between the target and the class")
    classes, i = _names(tokens, i + 1, "class")
    perms, i = _names(tokens, i, "permissions")
    if i < len(tokens) and tokens[i] == ";":
        i += 1
    if i != len(tokens):
        raise InputError(f"--rule: unexpected {tokens[i]!r} after the rule (one rule per --rule)")
    return [AddRule(kind, s, t, c, frozenset(perms)) for s in sources for t in targets
            for c in classes]
