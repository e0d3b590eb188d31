"""Policy modules layered on a base: ``--policy BASE --policy MODULE...``.

A module is CIL (``.cil``), a refpolicy-style ``.te`` (with its ``.if`` and
``.fc`` beside it, when present), built with Debian's devel Makefile, or a
policy package (``.pp``, possibly bzip2-compressed as Debian ships them),
converted by ``/usr/libexec/selinux/hll/pp``.  Every module becomes CIL, cached
under ``cache_dir()/modules/<key>.cil`` (the key: a hash of the input) behind a
header line naming the key and the sha256 of the CIL after it, so a damaged or
foreign entry is converted again, never trusted.  Without the cache
(``--no-cache``, or a cache directory that cannot be used safely) conversions
go to a scratch directory (:class:`ModuleStore`) that the loader removes once
the policy is read: nothing is written anywhere else.

On a CIL base, base and modules are compiled together with secilc (exact).  On
a binary (or a policy.conf, compiled to one) each module's CIL is read with
:func:`~selnet.policy.cilmodule.read_cil` and applied as an overlay: the result
is a :class:`LayeredPolicy`, whose ``unapplied`` lists every statement that was
not applied, per module.  Nothing of the combination is cached: the base's
index is, and the overlay costs milliseconds.
"""

from __future__ import annotations

import bz2
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from selnet.errors import InputError, PolicyError, SelnetError, ToolMissingError
from selnet.policy.atomic import write_atomic
from selnet.policy.cilmodule import Unapplied, read_cil
from selnet.policy.index import Policy
from selnet.policy.overlay import Change, Overlay
from selnet.policy.source import first_error_line, private_cache_dir

DEVEL_MAKEFILE = Path("/usr/share/selinux/devel/Makefile")
PP_TOOL = Path("/usr/libexec/selinux/hll/pp")
_PP_MAGIC = bytes.fromhex("8fff7cf9")  # POLICY_PACKAGE magic (0xf97cff8f), little endian
_BZ2_MAGIC = b"BZh"
_FORMAT = "v1"
_HEADER = b"; selnet-module"


@dataclass(frozen=True, slots=True)
class Module:
    """One ``--policy`` module: the file named, its kind, and its CIL."""

    path: Path
    kind: str  # cil, te, pp
    sha256: str  # of the input (for a .te: of the .te, .if and .fc together)
    # The file itself for CIL, the conversion otherwise: in the cache, or in a
    # scratch directory that exists only while the policy is being loaded.
    cil: Path
    scratch: bool = False  # cil is scratch: an answer must never name it

    def name(self) -> str:
        return str(self.path)


@dataclass(frozen=True, slots=True)
class ModuleUnapplied:
    """A statement of a module the overlay did not apply."""

    module: Path
    statement: Unapplied

    @property
    def matters(self) -> bool:
        """Whether it could change a network answer."""
        return self.statement.matters

    def describe(self) -> str:
        return f"{self.module}: {self.statement.describe()}"


class ModuleStore:
    """Where converted modules go: ``cache_dir()/modules`` when the cache is used and
    safe to use, else (or when a write there fails) a scratch directory, made on first
    use and removed by :meth:`close`."""

    def __init__(self, use_cache: bool = True) -> None:
        self.cache = private_cache_dir("modules") if use_cache else None
        self._scratch: Path | None = None

    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="selnet-modules-"))
        return self._scratch

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> ModuleStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def get(self, key: str, make: Callable[[], bytes]) -> tuple[Path, bool]:
        """(the CIL file for ``key``, whether it is scratch): a verified cache entry, or
        ``make()`` written to the cache, or to scratch when there is no usable cache."""
        if self.cache is not None:
            out = self.cache / f"{key}.cil"
            if _verified(out, key):
                return out, False
            cil = make()
            try:
                write_atomic(out, _header(key, cil) + cil)
                return out, False
            except OSError:
                pass  # a read-only cache only costs speed
        else:
            cil = make()
        out = self.scratch() / f"{key}.cil"
        out.write_bytes(_header(key, cil) + cil)
        return out, True


def _header(key: str, cil: bytes) -> bytes:
    # A CIL comment: secilc and read_cil take the file as it is.
    digest = hashlib.sha256(cil).hexdigest()
    return b"%s %s %s %s\n" % (_HEADER, _FORMAT.encode(), key.encode(), digest.encode())


def _verified(out: Path, key: str) -> bool:
    """Whether ``out`` holds the conversion for ``key``: its header names the key and
    the sha256 of the rest (truncated, flipped or another input's entry: no)."""
    try:
        data = out.read_bytes()
    except OSError:
        return False
    head, sep, body = data.partition(b"\n")
    return bool(sep) and head + b"\n" == _header(key, body)


def prepare(path: Path, store: ModuleStore) -> Module:
    """The module at ``path``, converted to CIL in ``store``; the caller closes the store
    once the policy is read (a scratch conversion is then removed)."""
    if not path.exists():
        raise PolicyError(f"{path}: no such module file")
    if path.is_dir():
        raise PolicyError(f"{path}: is a directory, not a policy module")
    if path.suffix == ".te":
        return _from_te(path, store)
    data = _read(path)
    if data[:3] == _BZ2_MAGIC:
        try:
            data = bz2.decompress(data)
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{path}: not a valid bzip2 file ({exc})") from None
    if data[:4] == _PP_MAGIC:
        return _from_pp(path, data, store)
    text = data[:4096].decode("utf-8", errors="replace").lstrip()
    if path.suffix == ".cil" or text.startswith(("(", ";")):
        return Module(path, "cil", hashlib.sha256(data).hexdigest(), path)
    raise PolicyError(f"{path}: not a policy module (expected .cil, .te or .pp)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from None


def _need(exe: str | Path, package: str) -> str:
    found = shutil.which(str(exe)) if not isinstance(exe, Path) else (
        str(exe) if os.access(exe, os.X_OK) else None
    )
    if found is None:
        raise ToolMissingError(f"{exe} is not installed (Debian package {package})")
    return found


def _pp_to_cil(what: Path, data: bytes) -> bytes:
    pp = _need(PP_TOOL, "policycoreutils")
    proc = subprocess.run([pp], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        msg = first_error_line(proc.stderr.decode("utf-8", "replace"), proc.returncode)
        raise PolicyError(f"{what}: cannot convert to CIL: {msg}")
    return proc.stdout


def _from_pp(path: Path, data: bytes, store: ModuleStore) -> Module:
    digest = hashlib.sha256(data).hexdigest()
    key = hashlib.sha256(f"pp-{_FORMAT}\0{digest}".encode()).hexdigest()
    out, scratch = store.get(key, lambda: _pp_to_cil(path, data))
    return Module(path, "pp", digest, out, scratch)


def _from_te(te: Path, store: ModuleStore) -> Module:
    parts = [te, *(p for p in (te.with_suffix(".if"), te.with_suffix(".fc")) if p.exists())]
    h = hashlib.sha256()
    for p in parts:
        h.update(p.suffix.encode() + b"\0" + _read(p) + b"\0")
    digest = h.hexdigest()
    key = hashlib.sha256(f"te-{_FORMAT}\0{digest}".encode()).hexdigest()
    out, scratch = store.get(key, lambda: _build_te(te, parts))
    return Module(te, "te", digest, out, scratch)


def _build_te(te: Path, parts: list[Path]) -> bytes:
    """The .te (and its .if/.fc) built by the devel Makefile in a temporary directory
    that is removed, then converted to CIL."""
    name = te.stem
    if not DEVEL_MAKEFILE.exists():
        raise ToolMissingError(
            f"{DEVEL_MAKEFILE} is missing: building {te.name} needs Debian package selinux-policy-dev"
        )
    make = _need("make", "make")
    _need("m4", "m4")
    _need("checkmodule", "checkpolicy")
    _need("semodule_package", "semodule-utils")
    with tempfile.TemporaryDirectory(prefix="selnet-te-") as tmp:
        for p in parts:
            shutil.copyfile(p, Path(tmp) / f"{name}{p.suffix}")
        proc = subprocess.run(
            [make, "-f", str(DEVEL_MAKEFILE), f"{name}.pp"],
            cwd=tmp, capture_output=True, text=True, check=False,
        )
        pp = Path(tmp) / f"{name}.pp"
        if proc.returncode != 0 or not pp.exists():
            msg = first_error_line(proc.stderr + proc.stdout, proc.returncode)
            raise PolicyError(f"{te} does not compile: {msg}")
        return _pp_to_cil(te, pp.read_bytes())


_GEN_REQUIRE = re.compile(r"\(\s*typeattribute\s+cil_gen_require\s*\)")


def gen_require_shim(base: tuple[Path, ...], modules: list[Module],
                     store: ModuleStore) -> list[Path]:
    """A declaration of ``cil_gen_require`` when converted modules need one.

    Modules converted from a .pp mark what they require with
    ``(typeattributeset cil_gen_require NAME)``; a policy built from modules
    declares that attribute, a hand-written CIL base usually does not.
    """
    if all(m.kind == "cil" for m in modules):
        return []
    for f in base:
        try:
            if _GEN_REQUIRE.search(f.read_text(encoding="utf-8", errors="replace")):
                return []
        except OSError:
            return []
    out, _ = store.get(f"cil_gen_require-{_FORMAT}",
                       lambda: b"(typeattribute cil_gen_require)\n(roleattribute cil_gen_require)\n")
    return [out]


class LayeredPolicy(Policy):
    """A loaded base policy with modules on it.

    ``modules`` are the modules, in order; ``unapplied`` every module statement
    that was not applied (each with ``matters``: whether it can change a
    network answer).  ``exact`` is True when base and modules were compiled
    together by secilc (then nothing is unapplied), False for an overlay.
    ``module_changes`` is how many of the overlay's changes come from the
    modules; changes applied later (:meth:`with_changes`) follow them.
    """

    modules: tuple[Module, ...]
    unapplied: tuple[ModuleUnapplied, ...]
    exact: bool
    module_changes: int

    @classmethod
    def wrap(
        cls,
        policy: Policy,
        modules: tuple[Module, ...],
        unapplied: tuple[ModuleUnapplied, ...],
        *,
        exact: bool,
        module_changes: int,
    ) -> LayeredPolicy:
        pol = cls.__new__(cls)
        vars(pol).update(vars(policy))
        if policy.base is policy:
            pol.base = pol
        pol.modules = modules
        pol.unapplied = unapplied
        pol.exact = exact
        pol.module_changes = module_changes
        return pol

    def with_changes(self, *changes: Change) -> Policy:
        changed = Overlay(tuple(changes)).apply(self)
        return LayeredPolicy.wrap(
            changed, self.modules, self.unapplied, exact=self.exact,
            module_changes=self.module_changes,
        )

    def _later(self) -> list[str]:
        later = self.overlay.describe()[self.module_changes:] if self.overlay is not None else []
        return [d.rstrip(";") for d in later]

    def describe(self) -> str:
        mods = ", ".join(f"{m.name()} (sha256 {m.sha256[:12]})" for m in self.modules)
        how = "compiled together by secilc" if self.exact else (
            f"{self.module_changes} change{'s' if self.module_changes != 1 else ''} applied"
        )
        text = f"{self.name()} (sha256 {self.base.snap.sha256[:12]}) with modules {mods}: {how}"
        if self.unapplied:
            n = len(self.unapplied)
            m = sum(u.matters for u in self.unapplied)
            text += f", {n} statement{'s' if n != 1 else ''} not applied ({m} can matter for networking)"
        later = self._later()
        if later:
            n = len(later)
            text += f"; and {n} change{'s' if n != 1 else ''}: " + "; ".join(later)
        return text

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        out["modules"] = [
            {"path": m.name(), "kind": m.kind, "sha256": m.sha256} for m in self.modules
        ]
        out["exact"] = self.exact
        out["unapplied"] = [
            {"module": str(u.module), "line": u.statement.line, "statement": u.statement.statement,
             "reason": u.statement.reason, "matters": u.matters}
            for u in self.unapplied
        ]
        return out


def apply_modules(base: Policy, modules: list[Module]) -> LayeredPolicy:
    """``base`` with each module read as CIL and applied, in order, as one overlay."""
    current = base
    unapplied: list[ModuleUnapplied] = []
    for mod in modules:
        try:
            text = mod.cil.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise PolicyError(f"{mod.path if mod.scratch else mod.cil}: cannot read "
                              f"({exc.strerror})") from None
        try:
            overlay, skipped = read_cil(text, current)
            current = overlay.apply(current)
        except SelnetError as exc:
            # a scratch conversion is gone once this error is read: name only the input
            where = str(mod.path) if mod.kind == "cil" else (
                f"{mod.path} (as CIL)" if mod.scratch else f"{mod.path} (as CIL: {mod.cil})")
            err = InputError if isinstance(exc, InputError) else PolicyError
            raise err(f"{where}: {exc}") from None
        unapplied.extend(ModuleUnapplied(mod.path, u) for u in skipped)
    n = len(current.overlay) if current.overlay is not None else 0
    return LayeredPolicy.wrap(
        current, tuple(modules), tuple(unapplied), exact=False, module_changes=n
    )
