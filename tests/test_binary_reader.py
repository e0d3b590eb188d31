"""policy/binary.py reads the TE rules of a kernel policy as setools lists them.

Each policy is compiled by secilc; the reader's rules and transitions (in setools'
order), the extractor's whole snapshot and its attribute members are compared with
what setools itself gives for the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from selnet.kernel.classes import SNAPSHOT_CLASSES
from selnet.policy import extract as extractor
from selnet.policy.binary import Unsupported, read_te_rules

ROOT = Path(__file__).resolve().parent.parent
BASE_CIL = ROOT / "tests" / "policies" / "base.cil"

RULES = """
(type web_t) (roletype system_r web_t) (typeattributeset domain (web_t))
(type db_t) (roletype system_r db_t) (typeattributeset domain (db_t))
(type sock_t) (roletype object_r sock_t)
(typealias web_alias_t) (typealiasactual web_alias_t web_t)
(type http_port_t) (typeattributeset port_type (http_port_t))
(type data_t) (roletype object_r data_t)
(boolean b1 false)
(boolean b2 true)
(allow web_t http_port_t (tcp_socket (name_connect name_bind)))
(allow domain port_type (udp_socket (name_bind)))
(allow web_alias_t self (tcp_socket (create connect read write)))
(dontaudit web_t self (udp_socket (read write)))
(dontaudit db_t self (tcp_socket (ioctl)))
(auditallow db_t self (tcp_socket (connect)))
(allow web_t data_t (file (read)))
(allow db_t web_t (fd (use)))
(allowx web_t self (ioctl tcp_socket (range 0x8900 0x8905)))
(typetransition web_t web_t udp_socket sock_t)
(typemember web_t db_t tcp_socket sock_t)
(typechange db_t db_t tcp_socket sock_t)
(typetransition web_t data_t file "a.name" sock_t)
(booleanif (and b1 (not b2))
    (true (allow web_t db_t (tcp_socket (accept listen))))
    (false (allow db_t web_t (fd (use))) (dontaudit db_t web_t (udp_socket (read)))))
(booleanif (or b1 b2) (true (allow web_t self (tcp_socket (getopt)))))
(booleanif (xor b1 b2) (false (allow db_t self (udp_socket (create)))))
(booleanif (eq b1 b2) (true (auditallow web_t self (tcp_socket (setopt)))))
(booleanif (neq b1 b2)
    (true (typetransition db_t db_t tcp_socket sock_t) (allow db_t self (tcp_socket (bind)))))
"""


def _compile(tmp_path: Path, snippet: str, *, mls: bool = False, version: int | None = None) -> Path:
    src = tmp_path / "rules.cil"
    src.write_text(snippet)
    out = tmp_path / f"policy.{version or 'max'}.{int(mls)}"
    args = ["secilc", "-M", "true" if mls else "false", "-o", str(out), "-f", "/dev/null"]
    if version is not None:
        args += ["-c", str(version)]
    proc = subprocess.run([*args, str(BASE_CIL), str(src)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_setools(path: Path) -> Any:
    """The snapshot with every rule listed by setools (the reader not used)."""
    p = extractor.load_setools_policy(str(path))
    return extractor._extract(p, str(path), _sha(path), None)


@pytest.mark.parametrize(("mls", "version"), [(False, None), (True, None), (False, 31),
                                               (True, 30)])
def test_the_reader_lists_what_setools_lists(tmp_path: Path, mls: bool,
                                             version: int | None) -> None:
    policy = _compile(tmp_path, RULES, mls=mls, version=version)
    ref = _by_setools(policy)
    te = read_te_rules(policy.read_bytes(), SNAPSHOT_CLASSES)
    assert te.rules == ref.rules  # same records, same order
    assert te.transitions == ref.transitions
    # what the policy holds: every kind, both branches, an alias resolved, no file rule
    kinds = {(r.ruletype, r.cond is not None, r.branch) for r in te.rules}
    assert {("allow", False, True), ("dontaudit", False, True), ("auditallow", False, True),
            ("allow", True, True), ("allow", True, False), ("dontaudit", True, False)} <= kinds
    assert not any(r.tclass == "file" or "alias" in r.source for r in te.rules)
    assert any(t.cond == ("b1", "b2", "^") for t in te.transitions)  # secilc: neq as xor
    assert {r.cond for r in te.rules if r.cond} >= {("b1", "b2", "!", "&&"), ("b1", "b2", "||"),
                                                      ("b1", "b2", "^"), ("b1", "b2", "==")}
    # setools counts every rule the policy has, the reader too
    p = extractor.load_setools_policy(str(policy))
    for kind in ("allow", "auditallow", "dontaudit", "type_transition", "type_member",
                 "type_change"):
        assert te.counts[kind] == getattr(p, f"{kind}_count"), kind
    # the dontaudit vector is stored inverted: the names are the ones written
    assert any(r.ruletype == "dontaudit" and r.perms == {"ioctl"} for r in te.rules)
    # extract() takes the reader's rules and gives the same snapshot as setools alone
    assert extractor._te_rules(p, str(policy), _sha(policy)) is not None
    assert extractor.extract(str(policy), _sha(policy)) == ref
    # attribute members, computed as the inverse of each type's attributes
    assert ref.attr_types == {str(a): frozenset(str(t) for t in a.expand())
                              for a in p.typeattributes()}


def test_what_the_reader_does_not_read_is_left_to_setools(tmp_path: Path) -> None:
    # a filename transition on a kept class: setools lists those in its own hash order
    policy = _compile(tmp_path, RULES + '(typetransition web_t db_t tcp_socket "n" sock_t)\n')
    with pytest.raises(Unsupported):
        read_te_rules(policy.read_bytes(), SNAPSHOT_CLASSES)
    p = extractor.load_setools_policy(str(policy))
    assert extractor._te_rules(p, str(policy), _sha(policy)) is None
    snap = extractor.extract(str(policy), _sha(policy))
    assert snap == _by_setools(policy)
    # bytes that are not the policy the entry is keyed by are not read
    assert extractor._te_rules(p, str(policy), "0" * 64) is None


def test_mutants_raise_only_the_readers_errors(tmp_path: Path) -> None:
    """A flipped bit anywhere: the reader raises its own errors (the extractor then lets
    setools list the rules) or reads something, never anything else.  (libsepol itself
    is not run on mutants here: it can crash on some, which is why the loader reads a
    policy in a child process; tests/test_fuzz_policy runs selnet on them.)"""
    data = _compile(tmp_path, RULES).read_bytes()
    rng = random.Random(13)
    read = 0
    for _ in range(300):
        buf = bytearray(data)
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(Unsupported, struct.error):
            read_te_rules(bytes(buf), SNAPSHOT_CLASSES)
            read += 1
    assert read > 0
