"""Policy modules layered on a base: ``--policy BASE --policy MODULE...``.

A module is CIL (``.cil``), a refpolicy-style ``.te`` (with its ``.if`` and
``.fc`` beside it, when present), built with Debian's devel Makefile, or a
policy package (``.pp``, possibly bzip2-compressed as Debian ships them),
converted by ``/usr/libexec/selinux/hll/pp``.  Every module becomes CIL, cached
under ``cache_dir()/modules/<sha256 of the input>.cil``.

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
from dataclasses import dataclass
from pathlib import Path

from selnet.errors import InputError, PolicyError, SelnetError, ToolMissingError
from selnet.policy.cilmodule import Unapplied, read_cil
from selnet.policy.index import Policy
from selnet.policy.overlay import Change, Overlay
from selnet.policy.source import cache_dir, first_error_line

DEVEL_MAKEFILE = Path("/usr/share/selinux/devel/Makefile")
PP_TOOL = Path("/usr/libexec/selinux/hll/pp")
_PP_MAGIC = bytes.fromhex("8fff7cf9")  # POLICY_PACKAGE magic (0xf97cff8f), little endian
_BZ2_MAGIC = b"BZh"
_FORMAT = "v1"


@dataclass(frozen=True, slots=True)
class Module:
    """One ``--policy`` module: the file named, its kind, and its CIL."""

    path: Path
    kind: str  # cil, te, pp
    sha256: str  # of the input (for a .te: of the .te, .if and .fc together)
    cil: Path  # the file itself for CIL, the cached conversion otherwise

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


def prepare(path: Path) -> Module:
    """The module at ``path``, converted to CIL (cached by its sha256)."""
    if not path.exists():
        raise PolicyError(f"{path}: no such module file")
    if path.is_dir():
        raise PolicyError(f"{path}: is a directory, not a policy module")
    if path.suffix == ".te":
        return _from_te(path)
    data = _read(path)
    if data[:3] == _BZ2_MAGIC:
        try:
            data = bz2.decompress(data)
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{path}: not a valid bzip2 file ({exc})") from None
    if data[:4] == _PP_MAGIC:
        return _from_pp(path, data)
    text = data[:4096].decode("utf-8", errors="replace").lstrip()
    if path.suffix == ".cil" or text.startswith(("(", ";")):
        return Module(path, "cil", hashlib.sha256(data).hexdigest(), path)
    raise PolicyError(f"{path}: not a policy module (expected .cil, .te or .pp)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from None


def _cached(key: str) -> Path:
    d = cache_dir() / "modules"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.cil"


def _store(out: Path, cil: bytes) -> None:
    """Write the converted CIL atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".cil")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cil)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _from_pp(path: Path, data: bytes) -> Module:
    digest = hashlib.sha256(data).hexdigest()
    out = _cached(hashlib.sha256(f"pp-{_FORMAT}\0{digest}".encode()).hexdigest())
    if not out.exists():
        _store(out, _pp_to_cil(path, data))
    return Module(path, "pp", digest, out)


def _from_te(te: Path) -> Module:
    name = te.stem
    parts = [te, *(p for p in (te.with_suffix(".if"), te.with_suffix(".fc")) if p.exists())]
    h = hashlib.sha256()
    for p in parts:
        h.update(p.suffix.encode() + b"\0" + _read(p) + b"\0")
    digest = h.hexdigest()
    out = _cached(hashlib.sha256(f"te-{_FORMAT}\0{digest}".encode()).hexdigest())
    if out.exists():
        return Module(te, "te", digest, out)
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
        cil = _pp_to_cil(te, pp.read_bytes())
    _store(out, cil)
    return Module(te, "te", digest, out)


_GEN_REQUIRE = re.compile(r"\(\s*typeattribute\s+cil_gen_require\s*\)")


def gen_require_shim(base: tuple[Path, ...], modules: list[Module]) -> list[Path]:
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
    out = _cached(f"cil_gen_require-{_FORMAT}")
    if not out.exists():
        _store(out, b"(typeattribute cil_gen_require)\n(roleattribute cil_gen_require)\n")
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
            raise PolicyError(f"{mod.cil}: cannot read ({exc.strerror})") from None
        try:
            overlay, skipped = read_cil(text, current)
            current = overlay.apply(current)
        except SelnetError as exc:
            where = str(mod.path) if mod.kind == "cil" else f"{mod.path} (as CIL: {mod.cil})"
            err = InputError if isinstance(exc, InputError) else PolicyError
            raise err(f"{where}: {exc}") from None
        unapplied.extend(ModuleUnapplied(mod.path, u) for u in skipped)
    n = len(current.overlay) if current.overlay is not None else 0
    return LayeredPolicy.wrap(
        current, tuple(modules), tuple(unapplied), exact=False, module_changes=n
    )
