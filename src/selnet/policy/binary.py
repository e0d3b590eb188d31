"""The TE rules of a kernel binary policy, read straight from the file.

setools builds a Python object for every one of a policy's ~100,000 TE rules
(0.8 s on the reference policy) when selnet keeps the ~12,000 of its network
classes and ``fd``.  This reader walks the file's layout (libsepol's
``policydb_read`` for kernel policies, versions 24-33: the symbol tables, the
access vector table, the conditional lists, the role rules and the filename
transitions) and builds records for the kept classes only.

It runs only after libsepol (through setools) has read the same file without an
error, and its output is checked against setools' own rule counts by the caller;
anything it does not handle exactly raises :class:`Unsupported`, and the caller
then reads the rules through setools.  The rules come out in setools' order:
the unconditional table in libsepol's hash-bucket order (the bucket of
``avtab_hash``, then source, target and class, then the file's order), then each
conditional's true and false lists in the file's order.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from selnet.policy.snapshot import AVRule, TypeTransition

_MAGIC = 0xF97CFF8C
_TARGET = b"SE Linux"
_MIN_VERSION = 24  # POLICYDB_VERSION_BOUNDARY: the symbol layout read below
_MAX_VERSION = 33  # POLICYDB_VERSION_COMP_FTRANS
_SYM_NUM = 8

# avtab key.specified (libsepol avtab.h)
_ALLOWED, _AUDITALLOW, _AUDITDENY = 0x1, 0x2, 0x4
_TRANSITION, _MEMBER, _CHANGE = 0x10, 0x20, 0x40
_XPERMS = 0x100 | 0x200 | 0x400
_ENABLED = 0x8000
_RULETYPE = {_ALLOWED: "allow", _AUDITALLOW: "auditallow", _AUDITDENY: "dontaudit"}
# What setools calls each kind, for the counts the caller compares with its own.
KINDS = {_ALLOWED: "allow", _AUDITALLOW: "auditallow", _AUDITDENY: "dontaudit",
         _TRANSITION: "type_transition", _MEMBER: "type_member", _CHANGE: "type_change"}

_CEXPR_NAMES = 5
_PRIMARY = 0x1  # TYPEDATUM_PROPERTY_PRIMARY
_COND_OPS = {2: "!", 3: "||", 4: "&&", 5: "^", 6: "==", 7: "!="}
_COND_BOOL = 1

_U32 = struct.Struct("<I")
_ENTRY = struct.Struct("<HHHHI")  # an avtab key and a plain access vector


class Unsupported(ValueError):
    """A policy (or a part of one) this reader does not read exactly."""


@dataclass(slots=True)
class TERules:
    rules: list[AVRule]
    transitions: list[TypeTransition]
    counts: Counter[str]  # every rule of the policy by kind, for the caller's check


class _Reader:
    __slots__ = ("data", "off")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.off = 0

    def u32(self) -> int:
        (v,) = _U32.unpack_from(self.data, self.off)
        self.off += 4
        return int(v)

    def u32s(self, n: int) -> tuple[int, ...]:
        v = struct.unpack_from(f"<{n}I", self.data, self.off)
        self.off += 4 * n
        return v

    def text(self, n: int) -> str:
        end = self.off + n
        if n == 0 or end > len(self.data):
            raise Unsupported("a name runs past the end of the policy")
        raw = self.data[self.off:end]
        self.off = end
        return raw.decode("utf-8", "surrogateescape")

    def ebitmap(self) -> None:
        mapsize, _highbit, count = self.u32s(3)
        if mapsize != 64:
            raise Unsupported("ebitmap map size")
        self.off += 12 * count  # startbit u32 + map u64 each
        if self.off > len(self.data):
            raise Unsupported("an ebitmap runs past the end of the policy")

    def constraints(self, n: int) -> None:
        for _ in range(n):
            _perms, nexpr = self.u32s(2)
            for _ in range(nexpr):
                expr_type, _attr, _op = self.u32s(3)
                if expr_type == _CEXPR_NAMES:
                    self.ebitmap()
                    self.ebitmap()  # type_set: types, negset, flags (version >= 29)
                    self.ebitmap()
                    self.off += 4

    def level(self) -> None:
        self.off += 4
        self.ebitmap()

    def mls_range(self) -> None:
        items = self.u32()
        if items > 2:
            raise Unsupported("MLS range of more than two levels")
        self.off += 4 * items
        self.ebitmap()
        if items > 1:
            self.ebitmap()


def _names(table: dict[int, str], n: int, what: str) -> list[str]:
    """Values 1..n as a list indexed by value - 1 (libsepol's val_to_name)."""
    if sorted(table) != list(range(1, n + 1)):
        raise Unsupported(f"{what} values are not 1..{n}")
    return [table[v] for v in range(1, n + 1)]


def _mixed(v: int) -> int:
    v = (v * 0xCC9E2D51) & 0xFFFFFFFF
    v = ((v << 15) | (v >> 17)) & 0xFFFFFFFF
    return (v * 0x1B873593) & 0xFFFFFFFF


def _mix(h: int, v: int) -> int:
    h ^= v
    h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
    return (h * 5 + 0xE6546B64) & 0xFFFFFFFF


class _AvtabHash:
    """libsepol's avtab_hash (murmur3 over class, target, source, then masked), with the
    state after class and target kept: a policy's rules share a few of each."""

    def __init__(self, mask: int) -> None:
        self.mask = mask
        self.prefix: dict[tuple[int, int], int] = {}

    def __call__(self, cls: int, target: int, source: int) -> int:
        h = self.prefix.get((cls, target))
        if h is None:
            h = _mix(_mix(0, _mixed(cls)), _mixed(target))
            self.prefix[(cls, target)] = h
        h = _mix(h, _mixed(source))
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        h ^= h >> 16
        return h & self.mask


def _avtab_mask(nel: int) -> int:
    """avtab_alloc's bucket mask for a table of ``nel`` rules."""
    shift = nel.bit_length()
    if shift > 2:
        shift -= 2
    return (1 << min(shift, 20)) - 1


def read_te_rules(data: bytes, keep: Collection[str]) -> TERules:
    """The AV rules and type transitions of the classes in ``keep``, as setools lists them.

    Raises :class:`Unsupported` (or ``struct.error``) for anything not read exactly.
    """
    r = _Reader(data)
    magic, n = r.u32s(2)
    if magic != _MAGIC or data[8:8 + n] != _TARGET:
        raise Unsupported("not an SELinux kernel policy")
    r.off = 8 + n
    version, _config, sym_num, _ocon_num = r.u32s(4)
    if not _MIN_VERSION <= version <= _MAX_VERSION or sym_num != _SYM_NUM:
        raise Unsupported(f"policy version {version}")
    r.ebitmap()  # policy capabilities
    r.ebitmap()  # permissive types

    # commons: name -> {value: permission}
    commons: dict[str, dict[int, str]] = {}
    _nprim, nel = r.u32s(2)
    for _ in range(nel):
        klen, _value, _pnprim, pnel = r.u32s(4)
        name = r.text(klen)
        perms: dict[int, str] = {}
        for _ in range(pnel):
            plen, pval = r.u32s(2)
            perms[pval] = r.text(plen)
        commons[name] = perms

    # classes: value -> (name, nprim, {value: permission})
    class_table: dict[int, tuple[str, int, dict[int, str]]] = {}
    nclasses, nel = r.u32s(2)
    for _ in range(nel):
        klen, clen, value, pnprim, pnel, ncons = r.u32s(6)
        name = r.text(klen)
        perms = {}
        if clen:
            common = commons.get(r.text(clen))
            if common is None:
                raise Unsupported("class of an unknown common")
            perms.update(common)
        for _ in range(pnel):
            plen, pval = r.u32s(2)
            perms[pval] = r.text(plen)
        r.constraints(ncons)
        r.constraints(r.u32())  # validatetrans
        if version >= 27:
            r.off += 12  # default user, role, range
        if version >= 28:
            r.off += 4  # default type
        class_table[value] = (name, pnprim, perms)
    classes = _names({v: c[0] for v, c in class_table.items()}, nclasses, "class")

    # roles
    _nprim, nel = r.u32s(2)
    for _ in range(nel):
        klen, _value, _bounds = r.u32s(3)
        r.off += klen
        r.ebitmap()  # dominates
        r.ebitmap()  # types

    # types and attributes share one value space
    type_table: dict[int, str] = {}
    ntypes, nel = r.u32s(2)
    for _ in range(nel):
        klen, value, properties, _bounds = r.u32s(4)
        name = r.text(klen)
        if properties & _PRIMARY:  # an alias shares its type's value (type_index)
            if value in type_table:
                raise Unsupported("two types of one value")
            type_table[value] = name
    types = _names(type_table, ntypes, "type")

    # users
    _nprim, nel = r.u32s(2)
    for _ in range(nel):
        klen, _value, _bounds = r.u32s(3)
        r.off += klen
        r.ebitmap()  # roles
        r.mls_range()
        r.level()

    # booleans
    bool_table: dict[int, str] = {}
    nbools, nel = r.u32s(2)
    for _ in range(nel):
        value, _state, klen = r.u32s(3)
        bool_table[value] = r.text(klen)
    bools = _names(bool_table, nbools, "boolean")

    # sensitivities, categories
    _nprim, nel = r.u32s(2)
    for _ in range(nel):
        klen, _isalias = r.u32s(2)
        r.off += klen
        r.level()
    _nprim, nel = r.u32s(2)
    for _ in range(nel):
        klen, _value, _isalias = r.u32s(3)
        r.off += klen

    kept = {v: name for v, name in enumerate(classes, 1) if name in keep}
    # Permission names of each kept class by bit, as setools' PermissionVectorIterator
    # reads an access vector: bits 0..nprim-1, value = bit + 1.
    perm_bits: dict[int, list[tuple[int, str]]] = {}
    for v in kept:
        _name, pnprim, perms = class_table[v]
        perm_bits[v] = [(1 << (p - 1), perms[p]) for p in sorted(perms) if p <= pnprim]
    perm_sets: dict[tuple[int, int], frozenset[str]] = {}

    def perm_set(cls: int, vector: int) -> frozenset[str]:
        key = (cls, vector)
        got = perm_sets.get(key)
        if got is None:
            got = frozenset(name for bit, name in perm_bits[cls] if vector & bit)
            perm_sets[key] = got
        return got

    counts: Counter[str] = Counter()

    def count(specs: Counter[int]) -> None:
        for spec, n in specs.items():
            spec &= ~_ENABLED
            if spec & _XPERMS:
                counts["xperm"] += n
                continue
            kind = KINDS.get(spec)
            if kind is None:
                raise Unsupported(f"avtab entry specifier {spec:#x}")
            counts[kind] += n

    def avtab_entries(n: int) -> list[tuple[int, int, int, int, int]]:
        """(source, target, class, specified, data) of the kept classes' entries, in the
        file's order."""
        off = r.off
        end = off + 12 * n
        if end > len(data):
            raise Unsupported("the rule table runs past the end of the policy")
        # Each entry's 16-bit fields as one array (the file is little-endian): the class
        # and specifier columns are counted and filtered in C, and only the kept
        # classes' entries are unpacked.
        fields = array("H", data[off:end])
        if sys.byteorder != "little":
            fields.byteswap()
        specs = Counter(fields[3::6])
        if any(spec & _XPERMS for spec in specs):
            return avtab_entries_xperms(n)  # entries of two sizes: one at a time
        count(specs)
        r.off = end
        unpack = _ENTRY.unpack_from
        return [unpack(data, off + 12 * i) for i, c in enumerate(fields[2::6]) if c in kept]

    def avtab_entries_xperms(n: int) -> list[tuple[int, int, int, int, int]]:
        out = []
        specs: Counter[int] = Counter()
        unpack, off = _ENTRY.unpack_from, r.off
        for _ in range(n):
            e = unpack(data, off)
            specs[e[3]] += 1
            if e[3] & _XPERMS:
                off += 8 + 34  # specified and driver bytes, eight u32
                continue
            off += 12
            if e[2] in kept:
                out.append(e)
        if off > len(data):
            raise Unsupported("the rule table runs past the end of the policy")
        count(specs)
        r.off = off
        return out

    rules: list[AVRule] = []
    transitions: list[TypeTransition] = []

    def emit(entries: list[tuple[int, int, int, int, int]],
             cond: tuple[str, ...] | None, branch: bool) -> None:
        for s, t, c, spec, datum in entries:
            spec &= ~_ENABLED
            if not (0 < s <= ntypes and 0 < t <= ntypes):
                raise Unsupported("rule on a type value out of range")
            if spec & (_ALLOWED | _AUDITALLOW | _AUDITDENY):
                vector = (~datum & 0xFFFFFFFF) if spec == _AUDITDENY else datum
                rules.append(AVRule(_RULETYPE[spec], types[s - 1], types[t - 1], kept[c],
                                    perm_set(c, vector), cond, branch))
            elif spec == _TRANSITION:
                if not 0 < datum <= ntypes:
                    raise Unsupported("type transition to a type value out of range")
                transitions.append(TypeTransition(types[s - 1], types[t - 1], kept[c],
                                                  types[datum - 1], cond, branch))

    nel = r.u32()
    plain = avtab_entries(nel)
    mask = _avtab_mask(nel)
    # libsepol's bucket order; the sort is stable, so equal keys keep the file's order
    bucket = _AvtabHash(mask)
    plain.sort(key=lambda e: (bucket(e[2], e[1], e[0]), e[0], e[1], e[2]))

    conditionals = []
    for _ in range(r.u32()):
        _state, nexpr = r.u32s(2)
        expr = []
        for _ in range(nexpr):
            etype, ebool = r.u32s(2)
            if etype == _COND_BOOL:
                if not 0 < ebool <= nbools:
                    raise Unsupported("conditional on a boolean value out of range")
                expr.append(bools[ebool - 1])
            elif etype in _COND_OPS:
                expr.append(_COND_OPS[etype])
            else:
                raise Unsupported("conditional operator")
        true_list = avtab_entries(r.u32())
        false_list = avtab_entries(r.u32())
        conditionals.append((tuple(expr), true_list, false_list))

    # role_trans, role_allow, then the filename transitions, which setools lists
    # between the two tables in its own hash order: a kept class among them is left
    # to setools.
    n = r.u32()
    r.off += n * (16 if version >= 26 else 12)  # role, type, new role (, class)
    n = r.u32()
    r.off += n * 8  # role allow: role, new role
    for _ in range(r.u32()):
        klen = r.u32()
        r.off += klen
        if version < 33:
            _stype, _ttype, tclass, _otype = r.u32s(4)
            ndatum = 0
            counts["type_transition"] += 1
        else:
            _ttype, tclass, ndatum = r.u32s(3)
        if tclass in kept:
            raise Unsupported("a filename transition on a kept class")
        for _ in range(ndatum):
            mapsize, _highbit, nodes = r.u32s(3)
            if mapsize != 64:
                raise Unsupported("ebitmap map size")
            for _ in range(nodes):
                r.off += 4
                (bits,) = struct.unpack_from("<Q", data, r.off)
                r.off += 8
                counts["type_transition"] += int(bits).bit_count()
            r.off += 4
    if r.off > len(data):
        raise Unsupported("the policy ends early")

    emit(plain, None, True)
    for cond, true_list, false_list in conditionals:
        emit(true_list, cond, True)
        emit(false_list, cond, False)
    return TERules(rules, transitions, counts)
