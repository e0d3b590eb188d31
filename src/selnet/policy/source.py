"""Find the policy to read: a binary, CIL sources, a policy.conf, the live kernel, or the example.

Sources are compiled with the distribution's own compilers (secilc,
checkpolicy) into the user's cache directory, keyed by the sources' hash, so a
second run reuses the binary.  Nothing here writes outside that cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selnet.errors import PolicyError, ToolMissingError

LIVE_POLICY = Path("/sys/fs/selinux/policy")
_SELINUXFS_ENFORCE = Path("/sys/fs/selinux/enforce")
_BINARY_MAGIC = bytes.fromhex("8cff7cf9")  # SELINUX_MAGIC, little endian on disk


def cache_dir() -> Path:
    """selnet's cache: $XDG_CACHE_HOME/selnet, or ~/.cache/selnet.  The XDG base-directory
    spec says a relative XDG_CACHE_HOME is invalid and must be ignored."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "selnet"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A compiled policy file and where it came from."""

    binary: Path
    origin: str  # binary, cil, conf, live, example
    inputs: tuple[Path, ...]  # the files the user named (the binary itself for binaries)
    sha256: str

    @property
    def from_source(self) -> bool:
        return self.origin in ("cil", "conf", "example")

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def example_policy_path() -> Path:
    return Path(str(resources.files("selnet") / "data" / "example.cil"))


def selinux_enabled() -> bool:
    return _SELINUXFS_ENFORCE.exists() and LIVE_POLICY.exists()


def resolve(paths: list[str] | None) -> PolicySource:
    """Turn ``--policy`` arguments (or their absence) into a compiled policy."""
    if not paths:
        if selinux_enabled():
            return _binary(LIVE_POLICY, origin="live")
        return compile_cil([example_policy_path()], origin="example")
    files = [Path(p) for p in paths]
    for f in files:
        if not f.exists():
            raise PolicyError(f"{f}: no such policy file")
        if f.is_dir():
            raise PolicyError(f"{f}: is a directory, not a policy file")
    if len(files) == 1 and _is_binary(files[0]):
        return _binary(files[0], origin="binary")
    if all(f.suffix == ".cil" for f in files):
        return compile_cil(files, origin="cil")
    if len(files) == 1 and _looks_like_conf(files[0]):
        return _compile_conf(files[0])
    if len(files) == 1 and _looks_like_cil(files[0]):
        return compile_cil(files, origin="cil")
    if len(files) == 1:
        raise PolicyError(
            f"{files[0]}: not a policy (expected a compiled policy, CIL or policy.conf)"
        )
    raise PolicyError("several --policy files: give the base first, then its modules "
                      "(see selnet.policy.loader.load_policy)")


def split_layers(paths: list[str]) -> tuple[list[str], list[str]]:
    """``--policy`` arguments as (base, modules).

    Every file CIL: they are all the base, compiled together (as before).
    Otherwise the first is the base and the rest are modules.
    """
    if len(paths) <= 1 or all(Path(p).suffix == ".cil" for p in paths):
        return list(paths), []
    return [paths[0]], list(paths[1:])


def is_cil_base(source: PolicySource) -> bool:
    """Whether the base was compiled from CIL (so modules compile with it, exactly)."""
    return source.origin in ("cil", "example")


def _is_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == _BINARY_MAGIC


def _head(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(65536).decode("utf-8", errors="replace")


def _looks_like_cil(path: Path) -> bool:
    text = _head(path).lstrip()
    return text.startswith("(") or text.startswith(";")


def _looks_like_conf(path: Path) -> bool:
    if path.suffix == ".conf":
        return True
    head = _head(path)
    return "class " in head and ("sid " in head or "common " in head) and "(" not in head[:1]


def _binary(path: Path, origin: str) -> PolicySource:
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from exc
    return PolicySource(path, origin, (path,), digest)


def _digest_inputs(files: list[Path], tag: str) -> str:
    h = hashlib.sha256(tag.encode())
    for f in files:
        h.update(f.name.encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def _tool(name: str, package: str | None = None) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ToolMissingError(f"{name} is not installed (Debian package {package or name})")
    return exe


def _compiled_path(key: str) -> Path:
    d = cache_dir() / "compiled"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.policy"


def first_error_line(output: str, returncode: int) -> str:
    """A compiler's most useful line: the first error, not the final "failed" line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "rror" in ln] or lines
    return errs[0] if errs else f"exit status {returncode}"


def _run_compiler(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = first_error_line(proc.stderr + proc.stdout, proc.returncode)
        raise PolicyError(f"{what} does not compile: {msg}")


def compile_cil(
    files: list[Path], origin: str, inputs: tuple[Path, ...] | None = None
) -> PolicySource:
    """Compile CIL files together with secilc (cached by their content).

    ``inputs`` are the files to report as the sources (default: ``files``); a
    layered compile names the user's modules, not their converted CIL.
    """
    key = _digest_inputs(files, "cil-v1")
    out = _compiled_path(key)
    if not out.exists():
        secilc = _tool("secilc")
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / "policy"
            names = " ".join(str(f) for f in (files if inputs is None else inputs))
            _run_compiler(
                [secilc, "-o", str(tmp_out), "-f", os.devnull, *map(str, files)], names
            )
            os.replace(tmp_out, out)
    return PolicySource(out, origin, tuple(files) if inputs is None else inputs,
                        sha256_file(out))


def _compile_conf(conf: Path) -> PolicySource:
    key = _digest_inputs([conf], "conf-v1")
    out = _compiled_path(key)
    if not out.exists():
        checkpolicy = _tool("checkpolicy")
        mls = ["-M"] if _conf_is_mls(conf) else []
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_out = Path(tmp) / "policy"
            _run_compiler([checkpolicy, *mls, "-o", str(tmp_out), str(conf)], str(conf))
            os.replace(tmp_out, out)
    return PolicySource(out, "conf", (conf,), sha256_file(out))


def _conf_is_mls(conf: Path) -> bool:
    # checkpolicy needs -M for a policy.conf that declares sensitivities.
    with open(conf, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.lstrip()
            if s.startswith("sensitivity ") or s.startswith("mlsconstrain "):
                return True
    return False
