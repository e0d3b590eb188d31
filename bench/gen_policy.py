"""A policy generator for scale benchmarks (issue 13): N port types, each with portcons.

Usage: .venv/bin/python bench/gen_policy.py N [OUT.policy]   (writes OUT.cil beside it and
compiles it with secilc on top of tests/policies/base.cil; prints the policy's path).

The policy has N port types ``p<i>_port_t`` (each a tcp port, a two-port tcp range and a
udp port; types 0-9 below 1024), attributes over them (``gen_port_type`` for all of them,
``gen_reserved_port_type`` / ``gen_unreserved_port_type`` and one ``grp<k>_port_type`` per 100),
and four domains with rules on single types and on attributes, some under booleans:

* ``web_t``: binds ``p0``-``p4`` and ``grp1``; connects to ``grp2`` always, to every port type
  under ``web_can_network_connect``, to ``gen_unreserved_port_type`` under ``web_relay``;
* ``db_t``: binds its own ``p5``; connects to ``p6`` under ``db_can_replicate && !db_secure``;
* ``admin_t``: connects to ``gen_port_type`` (all of them), binds ``gen_unreserved_port_type``;
* ``cli_t``: connects to ``grp0`` and, under ``web_can_network_connect``, ``grp3``; binds
  ``gen_reserved_port_type`` (udp).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_CIL = ROOT / "tests" / "policies" / "base.cil"
GROUP = 100  # port types per grp<k>_port_type attribute


def port_of(i: int) -> int:
    """The first port of type i: types 0-9 below 1024, the rest spread over 1024-65535."""
    if i < 10:
        return 100 + i * 4
    return 1024 + ((i - 10) * 6) % 64000


def generate(n: int) -> str:
    if n < 10:
        raise ValueError("at least 10 port types")
    out = [
        "(typeattribute gen_port_type) (typeattribute gen_reserved_port_type)",
        "(typeattribute gen_unreserved_port_type)",
    ]
    groups: dict[int, list[str]] = {}
    reserved: list[str] = []
    unreserved: list[str] = []
    for i in range(n):
        t = f"p{i}_port_t"
        port = port_of(i)
        out.append(f"(type {t})")
        ctx = f"(system_u object_r {t} low_low)"
        out.append(f"(portcon tcp {port} {ctx})")
        out.append(f"(portcon tcp ({port + 2} {port + 3}) {ctx})")
        out.append(f"(portcon udp {port} {ctx})")
        groups.setdefault(i // GROUP, []).append(t)
        (reserved if port < 1024 else unreserved).append(t)
    names = [f"p{i}_port_t" for i in range(n)]
    out.append(f"(typeattributeset port_type ({' '.join(names)}))")
    out.append(f"(typeattributeset gen_port_type ({' '.join(names)}))")
    out.append(f"(typeattributeset gen_reserved_port_type ({' '.join(reserved)}))")
    out.append(f"(typeattributeset gen_unreserved_port_type ({' '.join(unreserved)}))")
    for k, members in groups.items():
        out.append(f"(typeattribute grp{k}_port_type)")
        out.append(f"(typeattributeset grp{k}_port_type ({' '.join(members)}))")
    for k in range(4):  # the rules below name grp0-grp3 whatever N is
        if k not in groups:
            out.append(f"(typeattribute grp{k}_port_type)")
            out.append(f"(typeattributeset grp{k}_port_type (p0_port_t))")
    out += [
        "(boolean web_can_network_connect false) (boolean web_relay false)",
        "(boolean db_can_replicate false) (boolean db_secure false)",
    ]
    for d in ("web_t", "db_t", "admin_t", "cli_t"):
        out.append(f"(type {d}) (roletype system_r {d}) (typeattributeset domain ({d}))")
        out.append(f"(allow {d} self (tcp_socket (create bind listen accept connect read write)))")
        out.append(f"(allow {d} self (udp_socket (create bind connect read write)))")
    out += [
        "(allow web_t self (capability (net_bind_service)))",
        *(f"(allow web_t p{i}_port_t (tcp_socket (name_bind)))" for i in range(5)),
        "(allow web_t grp1_port_type (tcp_socket (name_bind)))",
        "(allow web_t grp2_port_type (tcp_socket (name_connect)))",
        "(booleanif web_can_network_connect (true"
        " (allow web_t port_type (tcp_socket (name_connect)))"
        " (allow cli_t grp3_port_type (tcp_socket (name_connect)))))",
        "(booleanif web_relay (true"
        " (allow web_t gen_unreserved_port_type (tcp_socket (name_connect)))))",
        "(allow db_t p5_port_t (tcp_socket (name_bind)))",
        "(booleanif (and db_can_replicate (not db_secure)) (true"
        " (allow db_t p6_port_t (tcp_socket (name_connect)))))",
        "(allow admin_t gen_port_type (tcp_socket (name_connect)))",
        "(allow cli_t gen_reserved_port_type (udp_socket (name_bind)))",
        # on the attribute: sepolicy finds domains through it, and secilc drops attributes
        # no rule uses (a self rule is expanded per type)
        "(allow domain node_t (tcp_socket (node_bind)))",
        "(allow domain node_t (udp_socket (node_bind)))",
        "(allow admin_t gen_unreserved_port_type (tcp_socket (name_bind)))",
        "(allow admin_t gen_unreserved_port_type (udp_socket (name_bind)))",
        "(allow cli_t grp0_port_type (tcp_socket (name_connect)))",
    ]
    return "\n".join(out) + "\n"


def build(n: int, out: Path) -> Path:
    """Write OUT with N port types (and its CIL beside it); compiled once per N."""
    cil = out.with_suffix(".cil")
    text = generate(n)
    if out.exists() and cil.exists() and cil.read_text() == text:
        return out
    cil.write_text(text)
    subprocess.run(
        ["secilc", "-M", "false", "-o", str(out), "-f", os.devnull, str(BASE_CIL), str(cil)],
        check=True, capture_output=True, text=True,
    )
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(f"/tmp/selnet-gen-{n}.policy")
    print(build(n, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
