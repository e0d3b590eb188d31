"""Reference-policy interfaces that grant a needed permission.

For a denial fix selnet proposes an interface call such as
``corenet_tcp_connect_postgresql_port(httpd_t)`` rather than a raw ``allow``
rule.  The candidates come from parsing the installed interface definitions
(selinux-policy-dev, ``/usr/share/selinux/devel/include``) -- never from a
hard-coded table, so the answer follows the policy actually installed.

The parser is a small, symbolic subset of m4 tailored to refpolicy:

* ``interface(`name',`body')`` / ``template(...)`` in ``*/*.if`` and
  ``define(`name',`body')`` in ``support/*.spt`` (patterns, perm sets);
* m4 quoting (nested backtick/apostrophe), ``#`` comments, ``##`` docs;
* ``allow``/``dontaudit``/``auditallow``/``typeattribute`` statements with
  ``{ }`` sets, ``~`` complements, ``-type`` exclusions and ``self``;
* calls to other interfaces/patterns, expanded transitively with ``$N``
  substitution (depth bounded, cycles cut);
* ``gen_require``, ``optional_policy``, ``tunable_policy``, ``ifdef``,
  ``ifndef``, ``ifelse`` and raw ``if (bool) { } else { }`` -- anything under
  a condition is recorded as conditional and never used for exact matching;
* ``refpolicywarn`` marks an interface deprecated (never proposed).

Each interface is evaluated once with symbolic parameters, and a call's
effect is the callee's flattened rules with ``$N`` replaced by the call's
arguments -- equivalent to m4's textual expansion for the refpolicy idioms
and far faster.  The result is cached on disk (marshal, checksummed) keyed by
the paths, mtimes and sizes of the input files.
"""

from __future__ import annotations

import marshal
import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from selnet.policy.atomic import write_atomic
from selnet.policy.digest import cache_digest, cache_digest_bytes
from selnet.policy.source import caches_allowed, private_cache_dir

__all__ = [
    "DEFAULT_INCLUDE_DIR",
    "InterfaceIndex",
    "InterfaceInfo",
    "InterfaceMatch",
    "InterfacePlan",
    "Triple",
]

DEFAULT_INCLUDE_DIR = Path("/usr/share/selinux/devel/include")

#: (target, class, permission); a target equal to the source is ``"self"``.
Triple = tuple[str, str, str]

# One allow rule of $1, compact: (targets, classes, permissions).
_Compact = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

# Bump whenever the parser (fix/ifparse.py) or the cache layout changes (part of the key).
_FORMAT = 7  # 7: digests BLAKE2b (policy/digest.py)
_BLOCK = 64  # rows per checksummed block of the cache file
_MAGIC = b"selnet-ifidx\n"
def _policy_files(root: Path) -> list[Path]:
    return _files(root, _policy_entries(root))


def _files(root: Path, entries: list[tuple[str, os.stat_result]]) -> list[Path]:
    return [root / rel for rel, _ in entries]


def _policy_entries(root: Path) -> list[tuple[str, os.stat_result]]:
    """Each ``*/*.if`` and ``support/*.spt`` under ``root`` (path relative to it, stat), in
    the order of sorted paths: listed with scandir and plain strings, because pathlib's
    glob, sort and joins cost more than the 420 stats of the cache key on every fix."""
    top = os.fspath(root)

    def names(sub: str, suffix: str) -> list[tuple[str, os.stat_result]]:
        try:
            with os.scandir(os.path.join(top, sub)) as it:
                found = [(e.name, e) for e in it if e.name.endswith(suffix) and e.is_file()]
        except OSError:
            return []
        out = []
        for name, e in sorted(found, key=lambda ne: ne[0]):
            try:
                out.append((f"{sub}/{name}", e.stat()))
            except OSError:
                continue  # removed while listed
        return out

    try:
        with os.scandir(top) as it:
            dirs = sorted(e.name for e in it if e.is_dir())
    except OSError:
        return []
    return [x for d in dirs for x in names(d, ".if")] + names("support", ".spt")


# --------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class InterfaceInfo:
    """What one interface grants to its first (domain) parameter."""

    name: str
    module: str
    kind: str  # "interface" or "template"
    params: int  # highest $N used in the body
    required_params: int  # from the ## <param> docs when present
    deprecated: bool
    broad: bool  # joins $1 to attributes, or grants on attributes/wildcards
    has_conditionals: bool
    needs_more_args: bool  # unconditional $1 grants use $2 or later
    joined_attributes: frozenset[str]  # unconditional `typeattribute $1 x'
    conditional_attributes: frozenset[str]
    rules: tuple[_Compact, ...]  # unconditional allow rules of $1
    conditional_rules: tuple[_Compact, ...]
    n_dontaudit: int = 0
    n_auditallow: int = 0

    @cached_property
    def grants(self) -> frozenset[Triple]:
        """Unconditional (target, class, perm) allowed to ``$1``."""
        return _explode(self.rules)

    @cached_property
    def conditional_grants(self) -> frozenset[Triple]:
        """Grants only under ifdef/optional_policy/tunable/if, minus ``grants``."""
        return _explode(self.conditional_rules) - self.grants

    @property
    def one_arg(self) -> bool:
        """Usable as ``name(domain)``."""
        return self.required_params <= 1 and not self.needs_more_args

    def call(self, domain: str) -> str:
        return f"{self.name}({domain})"


def _explode(rules: Iterable[_Compact]) -> frozenset[Triple]:
    return frozenset((t, c, p) for tgts, clss, perms in rules
                     for t in tgts for c in clss for p in perms)


@dataclass(frozen=True)
class InterfaceMatch:
    """An interface that grants everything asked for."""

    name: str
    module: str
    grants: frozenset[Triple]
    extra: frozenset[Triple]  # grants beyond the needed ones
    exact: bool  # needed targets matched by name, not through an attribute
    via: tuple[str, ...] = ()  # attributes through which targets matched
    broad: bool = False
    joined_attributes: frozenset[str] = frozenset()
    conditional_grants: frozenset[Triple] = frozenset()

    def call(self, domain: str) -> str:
        return f"{self.name}({domain})"


@dataclass(frozen=True)
class InterfacePlan:
    """Interfaces covering several needed triples, and what none covers."""

    matches: tuple[InterfaceMatch, ...]
    uncovered: frozenset[Triple]


def _rank(
    m: InterfaceMatch, attr_order: Mapping[str, int]
) -> tuple[bool, bool, int, bool, int, int, str]:
    return (
        bool(m.joined_attributes),  # grants unknowable from the .if alone
        not m.exact,
        len(m.extra) + len(m.conditional_grants),
        m.broad,
        # callers list a target's attributes narrowest first
        max((attr_order.get(a, len(attr_order)) for a in m.via), default=0),
        len(m.name),
        m.name,
    )


# --------------------------------------------------------------------------
# The index

# A cache row holds only str/int so marshal loads ~9000 of them in a few ms;
# rules are encoded as "targets|classes|perms" lines of space-separated
# words and decoded only for interfaces actually looked at.
# (name, module, kind, params, required_params, flags, joined, cond_joined,
#  rules, cond_rules, n_dontaudit, n_auditallow)
_Row = tuple[str, str, str, int, int, int, str, str, str, str, int, int]
_DEPRECATED, _BROAD, _CONDITIONAL, _MORE_ARGS = 1, 2, 4, 8


def _encode(rules: Iterable[_Compact]) -> str:
    return "\n".join("|".join(" ".join(ws) for ws in rule) for rule in rules)


def _decode(text: str) -> tuple[_Compact, ...]:
    out: list[_Compact] = []
    for line in text.split("\n") if text else ():
        t, c, p = line.split("|")
        out.append((tuple(t.split(" ")), tuple(c.split(" ")), tuple(p.split(" "))))
    return tuple(out)


def _to_row(i: InterfaceInfo) -> _Row:
    flags = (
        (_DEPRECATED if i.deprecated else 0) | (_BROAD if i.broad else 0)
        | (_CONDITIONAL if i.has_conditionals else 0)
        | (_MORE_ARGS if i.needs_more_args else 0)
    )
    return (
        i.name, i.module, i.kind, i.params, i.required_params, flags,
        " ".join(sorted(i.joined_attributes)), " ".join(sorted(i.conditional_attributes)),
        _encode(i.rules), _encode(i.conditional_rules), i.n_dontaudit, i.n_auditallow,
    )


def _from_row(r: _Row) -> InterfaceInfo:
    return InterfaceInfo(
        name=r[0], module=r[1], kind=r[2], params=r[3], required_params=r[4],
        deprecated=bool(r[5] & _DEPRECATED), broad=bool(r[5] & _BROAD),
        has_conditionals=bool(r[5] & _CONDITIONAL), needs_more_args=bool(r[5] & _MORE_ARGS),
        joined_attributes=frozenset(r[6].split()), conditional_attributes=frozenset(r[7].split()),
        rules=_decode(r[8]), conditional_rules=_decode(r[9]),
        n_dontaudit=r[10], n_auditallow=r[11],
    )


def _pair_index(rows: Iterable[_Row]) -> dict[str, tuple[int, ...]]:
    """"target class" -> rows with such an unconditional grant (proposable only)."""
    pairs: dict[str, list[int]] = {}
    for n, r in enumerate(rows):
        if r[5] & (_DEPRECATED | _MORE_ARGS) or r[4] > 1:
            continue  # never proposed, so never looked up
        for tgts, clss, _ in _decode(r[8]):
            for t in tgts:
                for c in clss:
                    ids = pairs.setdefault(f"{t} {c}", [])
                    if not ids or ids[-1] != n:
                        ids.append(n)
    return {k: tuple(v) for k, v in pairs.items()}


class _Cached:
    """A verified cache file's row section, read a block at a time (format 7).

    The header (names, pairs, row offsets, block digests) was checked against its digest
    when loaded; each block of rows is read with ``pread`` and checked against its own
    digest before marshal sees it, so a warm query reads and hashes a few KB of the 2.4 MB
    of rows, not the whole file.
    """

    __slots__ = ("base", "blocks", "digests", "offsets", "path")

    def __init__(self, path: Path, base: int, offsets: array[int], digests: bytes) -> None:
        self.path = path
        self.base = base  # the file offset of the row section
        self.offsets = offsets  # row n is rows[offsets[n]:offsets[n + 1]]
        self.digests = digests
        self.blocks: dict[int, bytes] = {}

    def row(self, n: int) -> _Row | None:
        """Row ``n``, or None when its block is unreadable or does not match its digest."""
        b = n // _BLOCK
        block = self.blocks.get(b)
        offs = self.offsets
        first = offs[b * _BLOCK]
        if block is None:
            end = offs[min(len(offs) - 1, (b + 1) * _BLOCK)]
            try:
                with open(self.path, "rb") as f:
                    block = os.pread(f.fileno(), end - first, self.base + first)
            except OSError:
                return None
            if cache_digest_bytes(block) != self.digests[32 * b:32 * b + 32]:
                return None
            self.blocks[b] = block
        try:
            r = marshal.loads(block[offs[n] - first:offs[n + 1] - first])
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(r, tuple) or len(r) != 12:
            return None
        return r


class InterfaceIndex:
    """All interfaces of an include tree, searchable by what they grant."""

    def __init__(
        self,
        rows: Iterable[_Row],
        attributes: Iterable[str],
        pairs: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        built = list(rows)
        self._rows: list[_Row | None] = list(built)  # None: in the cache file, not read yet
        self._infos: list[InterfaceInfo | None] = [None] * len(self._rows)
        self._names: list[str] | None = [r[0] for r in built]
        self._names_text = ""  # a cache file's names, split on the first get()
        self._by_name: dict[str, int] | None = None  # built on the first get()
        self._attributes: frozenset[str] | None = frozenset(attributes)
        self._attr_text = ""
        self._pairs = _pair_index(built) if pairs is None else pairs
        self._pair_text = ""  # a cache file's pairs, one "\ntarget class\tids" line each
        self._cached: _Cached | None = None
        # how to build it again when a cached row block is damaged
        self._rebuild: tuple[Path, list[tuple[str, os.stat_result]], Path, Path] | None = None

    # -- construction -----------------------------------------------------

    @classmethod
    def load(
        cls, include_dir: Path | None = None, *, cache_dir: Path | None = None
    ) -> InterfaceIndex | None:
        """Index of ``include_dir``; None when selinux-policy-dev is absent.

        Uses a disk cache (``cache_dir``, default ``$XDG_CACHE_HOME/selnet``)
        keyed by the input files' paths, mtimes and sizes; an unreadable or
        corrupt cache is rebuilt silently (a corrupt row block when it is read).
        """
        root = include_dir if include_dir is not None else DEFAULT_INCLUDE_DIR
        entries = _policy_entries(root)
        if not any(rel.endswith(".if") for rel, _ in entries):
            return None  # no tree, or no interfaces in it
        if cache_dir is None and not caches_allowed():
            return cls.build(root, _files(root, entries))  # --no-cache: nothing read or written
        # selnet's own directory only when it is the user's and nobody else can write it
        cdir = private_cache_dir("") if cache_dir is None else cache_dir
        if cdir is None:
            return cls.build(root, _files(root, entries))
        key = _cache_key(root, entries)
        path = cdir / f"interfaces-{key}.bin"
        index = cls._read_cache(path)
        if index is not None:
            index._rebuild = (root, entries, cdir, path)
            return index
        index = cls.build(root, _files(root, entries))
        index._write_cache(cdir, path)
        return index

    @classmethod
    def build(cls, include_dir: Path, files: list[Path] | None = None) -> InterfaceIndex:
        """Parse ``include_dir`` from scratch (no cache)."""
        from selnet.fix.ifparse import _info, _Parser, _read_macros

        files = _policy_files(include_dir) if files is None else files
        macros = _read_macros(files)
        parser = _Parser(macros)
        for macro in macros.values():  # learn every attribute before judging breadth
            parser.items(macro)
        infos = [_info(parser, m) for m in macros.values() if m.kind != "define"]
        index = cls((_to_row(i) for i in infos), parser.attributes)
        index._infos = list(infos)  # already materialised
        return index

    @property
    def attributes(self) -> frozenset[str]:
        """The attributes the tree declares."""
        if self._attributes is None:
            self._attributes = frozenset(self._attr_text.split("\n")) - {""}
        return self._attributes

    def _row(self, n: int) -> _Row:
        r = self._rows[n]
        if r is None:
            assert self._cached is not None
            r = self._cached.row(n)
            if r is None:  # a damaged block: the index is built again from the tree
                self._recover()
                r = self._rows[n]
                assert r is not None
            else:
                self._rows[n] = r
        return r

    def _recover(self) -> None:
        assert self._rebuild is not None
        root, entries, cdir, path = self._rebuild
        fresh = InterfaceIndex.build(root, _files(root, entries))
        fresh._write_cache(cdir, path)
        for name in ("_rows", "_infos", "_names", "_names_text", "_by_name", "_attributes",
                     "_attr_text", "_pairs", "_pair_text", "_cached"):
            setattr(self, name, getattr(fresh, name))

    def _name_list(self) -> list[str]:
        if self._names is None:
            self._names = self._names_text.split("\n") if self._names_text else []
        return self._names

    def _pair_ids(self, key: str) -> tuple[int, ...]:
        """Rows with an unconditional grant on ``key`` ("target class")."""
        got = self._pairs.get(key)
        if got is None:
            got = ()
            text = self._pair_text
            at = text.find(f"\n{key}\t")
            if at >= 0:
                start = at + len(key) + 2
                stop = text.find("\n", start)
                got = tuple(map(int, text[start:stop if stop >= 0 else len(text)].split()))
            self._pairs[key] = got
        return got

    # -- the cache file (format 7) ----------------------------------------
    # MAGIC, the header's digest (policy/digest.py), its length (8 bytes, little-endian), the header: a
    # marshalled (format, attributes, names, pairs, row offsets, block digests) of
    # strings and bytes only (marshal loads them as a few copies, not 9,000 objects),
    # then the rows, each marshalled on its own, in blocks of _BLOCK rows with one digest
    # each: a warm load reads and checks the header, a query the blocks it looks at.

    def _write_cache(self, cdir: Path, path: Path) -> None:
        try:
            blobs = [marshal.dumps(self._row(n), 4) for n in range(len(self._rows))]
            offsets = array("I", [0])
            for b in blobs:
                offsets.append(offsets[-1] + len(b))
            rows = b"".join(blobs)
            digests = b"".join(
                cache_digest_bytes(rows[offsets[k]:offsets[min(len(blobs), k + _BLOCK)]])
                for k in range(0, len(blobs), _BLOCK))
            pairs = "".join(f"\n{k}\t{' '.join(map(str, v))}" for k, v in self._pairs.items())
            header = marshal.dumps((_FORMAT, "\n".join(sorted(self.attributes)),
                                    "\n".join(self._name_list()), pairs, offsets.tobytes(),
                                    digests), 4)
            cdir.mkdir(parents=True, exist_ok=True)
            write_atomic(path, (_MAGIC, cache_digest_bytes(header),
                                len(header).to_bytes(8, "little"), header, rows))
            for old in cdir.glob("interfaces-*.bin"):
                if old != path:
                    old.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass  # a read-only home only costs a rebuild

    @classmethod
    def _read_cache(cls, path: Path) -> InterfaceIndex | None:
        """The index in a cache file whose header matches its checksum, or None."""
        fixed = len(_MAGIC) + 40
        try:
            with open(path, "rb") as f:
                head = f.read(fixed)
                if len(head) < fixed or not head.startswith(_MAGIC):
                    return None
                size = int.from_bytes(head[-8:], "little")
                header = f.read(size)
        except OSError:
            return None
        # The checksum catches truncation/corruption before marshal sees it.
        if len(header) != size or cache_digest_bytes(header) != head[len(_MAGIC):-8]:
            return None
        try:
            data = marshal.loads(header)
            fmt, attrs, names, pairs, offs, digests = data
            if (fmt != _FORMAT or not all(isinstance(x, str) for x in (attrs, names, pairs))
                    or not isinstance(offs, bytes) or not isinstance(digests, bytes)):
                return None
            offsets = array("I")
            offsets.frombytes(offs)
        except (EOFError, ValueError, TypeError):
            return None
        n = len(offsets) - 1
        listed = names.count("\n") + 1 if names else 0
        if n < 0 or listed != n or len(digests) != 32 * -(-n // _BLOCK):
            return None
        index = cls((), (), {})
        index._rows = [None] * n
        index._infos = [None] * n
        index._names, index._names_text = None, names
        index._attributes, index._attr_text = None, attrs
        index._pair_text = pairs
        index._cached = _Cached(path, fixed + size, offsets, digests)
        return index

    # -- queries ----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[InterfaceInfo]:
        return (self._info(n) for n in range(len(self._rows)))

    def get(self, name: str) -> InterfaceInfo | None:
        if self._by_name is None:
            self._by_name = {known: k for k, known in enumerate(self._name_list())}
        n = self._by_name.get(name)
        return None if n is None else self._info(n)

    def _info(self, n: int) -> InterfaceInfo:
        info = self._infos[n]
        if info is None:
            info = self._infos[n] = _from_row(self._row(n))
        return info

    def find(
        self,
        target: str,
        tclass: str,
        perms: Iterable[str],
        *,
        target_attrs: Iterable[str] = (),
    ) -> list[InterfaceMatch]:
        """One-argument interfaces granting ``target:tclass perms``, best first.

        ``target`` is ``"self"`` when the denial's source and target types
        are the same; ``target_attrs`` are the attributes the target type
        has, narrowest first, so ``corenet_tcp_connect_all_ports`` (on
        ``port_type``) can match, ranked after interfaces naming the target.
        """
        needed = [(target, tclass, p) for p in dict.fromkeys(perms)]
        if not needed:
            return []
        return self._find(needed, {target: tuple(target_attrs)})

    def find_for_rules(
        self,
        needed: Iterable[Triple],
        *,
        target_attrs: Mapping[str, Iterable[str]] | None = None,
    ) -> InterfacePlan:
        """Cover several triples: one interface for all if possible, else
        greedily one per (target, class) group, then one per triple."""
        want = list(dict.fromkeys(needed))
        attrs = {t: tuple(a) for t, a in (target_attrs or {}).items()}
        if not want:
            return InterfacePlan((), frozenset())
        best = self._find(want, attrs)
        if best:
            return InterfacePlan((best[0],), frozenset())
        chosen: list[InterfaceMatch] = []
        uncovered: set[Triple] = set()
        groups: dict[tuple[str, str], list[Triple]] = {}
        for t in want:
            groups.setdefault((t[0], t[1]), []).append(t)
        for group in groups.values():
            rest = [t for t in group if not _covered(t, chosen, attrs)]
            found = self._find(rest, attrs) if rest else []
            if found:
                chosen.append(found[0])
                continue
            for t in rest:  # no single interface for the group: per triple
                if _covered(t, chosen, attrs):
                    continue
                single = self._find([t], attrs)
                if single:
                    chosen.append(single[0])
                else:
                    uncovered.add(t)
        return InterfacePlan(tuple(chosen), frozenset(uncovered))

    def _find(
        self, needed: list[Triple], attrs: Mapping[str, tuple[str, ...]]
    ) -> list[InterfaceMatch]:
        # Candidates must grant something on every needed (target, class).
        cand: set[int] | None = None
        for tgt, tclass in dict.fromkeys((t, c) for t, c, _ in needed):
            ids: set[int] = set()
            for name in (tgt, *attrs.get(tgt, ())):
                ids.update(self._pair_ids(f"{name} {tclass}"))
            cand = ids if cand is None else cand & ids
            if not cand:
                return []
        found = (_match(self._info(n), needed, attrs) for n in sorted(cand or ()))
        matches = [m for m in found if m is not None]
        # typeattribute grants whatever the attribute has: last resort only
        plain = [m for m in matches if not m.joined_attributes]
        matches = plain or matches
        order: dict[str, int] = {}
        for names in attrs.values():
            for pos, a in enumerate(names):
                order.setdefault(a, pos)
        matches.sort(key=lambda m: _rank(m, order))
        return matches


def _covered(t: Triple, chosen: list[InterfaceMatch], attrs: Mapping[str, tuple[str, ...]]) -> bool:
    names = (t[0], *attrs.get(t[0], ()))
    return any((n, t[1], t[2]) in m.grants for m in chosen for n in names)


def _match(
    info: InterfaceInfo, needed: list[Triple], attrs: Mapping[str, tuple[str, ...]]
) -> InterfaceMatch | None:
    """``info`` as a match if it grants every needed triple unconditionally."""
    if info.deprecated or not info.one_arg:
        return None
    grants = info.grants
    used: set[Triple] = set()
    via: dict[str, None] = {}
    for tgt, tclass, perm in needed:
        if (tgt, tclass, perm) in grants:
            used.add((tgt, tclass, perm))
            continue
        attr = next((a for a in attrs.get(tgt, ()) if (a, tclass, perm) in grants), None)
        if attr is None:
            return None
        used.add((attr, tclass, perm))
        via[attr] = None
    return InterfaceMatch(
        info.name, info.module, grants, grants - used, not via, tuple(via), info.broad,
        info.joined_attributes, info.conditional_grants,
    )


# --------------------------------------------------------------------------
# Disk cache


def _cache_key(root: Path, entries: list[tuple[str, os.stat_result]]) -> str:
    text = f"{_FORMAT}\n{sys.version_info[:2]}\n{root.resolve()}\n" + "".join(
        f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\n" for rel, st in entries)
    return cache_digest(text.encode())[:24]
