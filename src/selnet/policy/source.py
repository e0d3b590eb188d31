"""Find the policy to read: a binary, CIL sources, a policy.conf, the live kernel, or the example.

Sources are compiled with the distribution's own compilers (secilc,
checkpolicy) into the user's cache directory, keyed by the sources' hash, so a
second run reuses the binary.  A compiled binary is trusted only while its
sidecar record (the sources' key and the binary's sha256) matches it.  Without
the cache (``use_cache=False``, or a cache directory that cannot be used
safely) sources compile into a scratch directory that the caller deletes
(:attr:`PolicySource.scratch`).  Nothing here writes outside those.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from selnet.errors import PolicyError, ToolMissingError
from selnet.policy.digest import cache_digest


class CompileFn(Protocol):
    def __call__(self, out: Path) -> None: ...


LIVE_POLICY = Path("/sys/fs/selinux/policy")
_SELINUXFS_ENFORCE = Path("/sys/fs/selinux/enforce")
_BINARY_MAGIC = bytes.fromhex("8cff7cf9")  # SELINUX_MAGIC, little endian on disk


def cache_dir() -> Path:
    """selnet's cache: $XDG_CACHE_HOME/selnet, or ~/.cache/selnet.  The XDG base-directory
    spec says a relative XDG_CACHE_HOME is invalid and must be ignored."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "selnet"


_noted_unsafe = False

# Whether this process may use selnet's caches beyond the policy's own: False after
# load_policy(use_cache=False) (the CLI's --no-cache loads the policy first), so the
# caches a command fills later (the refpolicy interface index) write nothing either.
_caches_allowed = True


def allow_caches(on: bool) -> None:
    global _caches_allowed
    _caches_allowed = on


def caches_allowed() -> bool:
    return _caches_allowed


def _note_unsafe(path: Path, why: str) -> None:
    global _noted_unsafe
    if not _noted_unsafe:
        _noted_unsafe = True
        print(f"selnet: note: not using the cache: {path} {why}", file=sys.stderr)


def _dir_problem(path: Path, st: os.stat_result, own: bool) -> str | None:
    """Why a directory may not hold selnet's cache (None: it may).

    ``own``: selnet's own directories must belong to the user and be writable
    by nobody else; their ancestors may also belong to root and may be
    writable by others when sticky (as /tmp), like ssh's StrictModes.
    """
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    euid = os.geteuid()
    if st.st_uid != euid and (own or st.st_uid != 0):
        return "is not owned by you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and (own or not st.st_mode & stat.S_ISVTX):
        return "is writable by others"
    return None


def private_cache_dir(sub: str) -> Path | None:
    """``cache_dir()/sub``, created (mode 0700) if missing, or None when it cannot be
    used: not creatable (read-only, ``XDG_CACHE_HOME`` a file) silently, unsafe
    (writable by others, not the user's) with one note on stderr per process."""
    base = cache_dir()
    target = base / sub
    created = False
    for path in (*reversed(target.parents), target):
        own = created or path == base or base in path.parents
        try:
            st = os.stat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path, 0o700)
                st = os.stat(path)
            except OSError:
                return None
            created = own = True
        except OSError:
            return None
        why = _dir_problem(path, st, own=own)
        if why == "is not a directory":
            return None
        if why is not None:
            _note_unsafe(path, why)
            return None
    return target


class PolicySource(NamedTuple):
    """A compiled policy file and where it came from.

    A NamedTuple, as are the records a warm `label` reads: on that path no
    ``dataclasses`` (its import and the class builds ~10 ms, a fifth of the run)."""

    # The compiled policy; after :meth:`settled` on a scratch compile (removed once
    # read), the first input instead, so nothing ever names a deleted file.
    binary: Path
    origin: str  # binary, cil, conf, live, example
    inputs: tuple[Path, ...]  # the files the user named (the binary itself for binaries)
    sha256: str
    # A scratch directory holding ``binary`` (compiled without the cache): the
    # caller removes it with :meth:`cleanup` once the policy is read.
    scratch: Path | None = None

    @property
    def from_source(self) -> bool:
        return self.origin in ("cil", "conf", "example")

    def cleanup(self) -> None:
        if self.scratch is not None:
            import shutil

            shutil.rmtree(self.scratch, ignore_errors=True)

    def settled(self) -> PolicySource:
        """This source as a loaded policy keeps it: a scratch binary is about to be
        deleted, so the policy is named by the user's inputs (the CIL files or the
        policy.conf), which outlive it."""
        if self.scratch is None:
            return self
        return self._replace(binary=self.inputs[0] if self.inputs else self.binary,
                             scratch=None)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256_of(f)


# A file changed twice within the filesystem's timestamp granularity keeps its stat: a
# digest is remembered only for a file whose mtime and ctime are this much in the past.
_SETTLED_NS = 2_000_000_000


def sha256_known(path: Path) -> str:
    """:func:`sha256_file`, remembered in the verified blob store (policy/cache.read_blob)
    under the file's device, inode, size, mtime and ctime, so an unchanged policy is not
    read again on every run (ctime cannot be set back by a user, so any write changes
    the key).  The stat is of the descriptor that is hashed on a miss."""
    from selnet.policy.cache import read_blob, write_blob

    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return _sha256_of(f)
        real = os.path.realpath(path)
        name = "sha256-" + cache_digest(real.encode(errors="surrogateescape"))[:32]
        key = (f"{real}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0"
               f"{st.st_ctime_ns}")
        memo = read_blob(name, key)
        if memo is not None and len(memo) == 64:
            return memo.decode("ascii", errors="replace")
        digest = _sha256_of(f)
        if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - _SETTLED_NS:
            write_blob(name, key, digest.encode("ascii"))
        return digest


def _sha256_of(f: BinaryIO) -> str:
    import hashlib  # only on a memo miss (policy/digest.py: why not at the top)

    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def example_policy_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("selnet") / "data" / "example.cil"))


def selinux_enabled() -> bool:
    return _SELINUXFS_ENFORCE.exists() and LIVE_POLICY.exists()


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def refuse_special(path: Path) -> None:
    """PolicyError for a FIFO, device or socket: reading one could block forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: reported by whoever opens it
    for test, kind in _FILE_KINDS:
        if test(mode):
            raise PolicyError(f"{path}: is {kind}, not a policy file")


def _check_policy_file(f: Path) -> None:
    try:
        mode = os.stat(f).st_mode
    except FileNotFoundError:
        raise PolicyError(f"{f}: no such policy file") from None
    except OSError as exc:
        raise PolicyError(f"{f}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise PolicyError(f"{f}: is a directory, not a policy file")
    refuse_special(f)
    if not stat.S_ISREG(mode):
        raise PolicyError(f"{f}: not a regular file")
    try:
        fd = os.open(f, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise PolicyError(f"{f}: cannot read ({exc.strerror})") from None
    os.close(fd)


def resolve(paths: list[str] | None, *, use_cache: bool = True) -> PolicySource:
    """Turn ``--policy`` arguments (or their absence) into a compiled policy.

    A source compiled without the cache lives in ``scratch``: call
    :meth:`PolicySource.cleanup` once it is read.
    """
    if not paths:
        if selinux_enabled():
            return _binary(LIVE_POLICY, origin="live")
        return compile_cil([example_policy_path()], origin="example", use_cache=use_cache)
    files = [Path(p) for p in paths]
    for f in files:
        _check_policy_file(f)
    try:
        return _resolve_files(files, use_cache)
    except OSError as exc:  # a file changed under us, or a read error
        name = exc.filename or files[0]
        raise PolicyError(f"{name}: cannot read ({exc.strerror})") from None


def _resolve_files(files: list[Path], use_cache: bool) -> PolicySource:
    if len(files) == 1 and _is_binary(files[0]):
        return _binary(files[0], origin="binary")
    if all(f.suffix == ".cil" for f in files):
        return compile_cil(files, origin="cil", use_cache=use_cache)
    if len(files) == 1 and _looks_like_conf(files[0]):
        return _compile_conf(files[0], use_cache=use_cache)
    if len(files) == 1 and _looks_like_cil(files[0]):
        return compile_cil(files, origin="cil", use_cache=use_cache)
    if len(files) == 1:
        raise PolicyError(
            f"{files[0]}: not a policy (expected a compiled policy, CIL or policy.conf)"
        )
    raise PolicyError("several --policy files: give the base first, then its modules "
                      "(see selnet.policy.loader.load_policy)")


def split_layers(paths: list[str]) -> tuple[list[str], list[str]]:
    """``--policy`` arguments as (base, modules).

    Every file CIL: they are all the base, compiled together (as before).
    Otherwise the first is the base and the rest are modules.  A FIFO, device
    or socket among them is refused here, before anything opens it.
    """
    for p in paths:
        refuse_special(Path(p))
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
        digest = sha256_known(path) if origin == "binary" else sha256_file(path)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from exc
    return PolicySource(path, origin, (path,), digest)


def _digest_inputs(files: list[Path], tag: str) -> str:
    import hashlib

    h = hashlib.sha256(tag.encode())
    for f in files:
        h.update(f.name.encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def _tool(name: str, package: str | None = None) -> str:
    import shutil

    exe = shutil.which(name)
    if exe is None:
        raise ToolMissingError(f"{name} is not installed (Debian package {package or name})")
    return exe


_COMPILED_RECORD = "selnet-compiled 1"


def _compiled_cached(d: Path, key: str) -> tuple[Path, str] | None:
    """A compiled binary for ``key`` and its sha256, if the cache holds a verified one.

    ``compiled/<key>.policy`` is trusted only while ``compiled/<key>.sha256``
    names the same key and the binary's current sha256; anything else
    (truncated, replaced, from an older selnet) is compiled again.
    """
    out = d / f"{key}.policy"
    try:
        record = (d / f"{key}.sha256").read_text(encoding="ascii").split()
        digest = sha256_known(out)
    except (OSError, UnicodeDecodeError):
        return None
    if record != [*_COMPILED_RECORD.split(), key, digest]:
        return None
    return out, digest


def _compile(key: str, use_cache: bool, run: CompileFn) -> tuple[Path, str, Path | None]:
    """(binary, its sha256, scratch dir to delete or None): from the cache, or compiled."""
    import shutil
    import tempfile

    d = private_cache_dir("compiled") if use_cache else None
    tmp: Path | None = None
    if d is not None:
        hit = _compiled_cached(d, key)
        if hit is not None:
            return hit[0], hit[1], None
        try:
            tmp = Path(tempfile.mkdtemp(dir=d, prefix=".tmp-"))
        except OSError:  # a read-only cache only costs speed
            tmp = None
    if d is None or tmp is None:
        scratch = Path(tempfile.mkdtemp(prefix="selnet-compile-"))
        try:
            out = scratch / "policy"
            run(out)
            return out, sha256_file(out), scratch
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    keep_tmp = False
    try:
        tmp_out = tmp / "policy"
        run(tmp_out)
        digest = sha256_file(tmp_out)
        out = d / f"{key}.policy"
        try:
            record = tmp / "record"
            record.write_text(f"{_COMPILED_RECORD} {key} {digest}\n", encoding="ascii")
            os.replace(tmp_out, out)
            os.replace(record, d / f"{key}.sha256")
        except OSError:
            if tmp_out.exists():  # not kept: use it from the scratch directory
                keep_tmp = True
                return tmp_out, digest, tmp
        return out, digest, None
    finally:
        if not keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def first_error_line(output: str, returncode: int) -> str:
    """A compiler's most useful line: the first error, not the final "failed" line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "rror" in ln] or lines
    return errs[0] if errs else f"exit status {returncode}"


def _run_compiler(cmd: list[str], what: str) -> None:
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = first_error_line(proc.stderr + proc.stdout, proc.returncode)
        raise PolicyError(f"{what} does not compile: {msg}")


def compile_cil(
    files: list[Path], origin: str, inputs: tuple[Path, ...] | None = None,
    *, use_cache: bool = True,
) -> PolicySource:
    """Compile CIL files together with secilc (cached by their content).

    ``inputs`` are the files to report as the sources (default: ``files``); a
    layered compile names the user's modules, not their converted CIL.
    """
    key = _digest_inputs(files, "cil-v1")
    names = " ".join(str(f) for f in (files if inputs is None else inputs))

    def run(out: Path) -> None:
        secilc = _tool("secilc")
        _run_compiler([secilc, "-o", str(out), "-f", os.devnull, *map(str, files)], names)

    out, digest, scratch = _compile(key, use_cache, run)
    return PolicySource(out, origin, tuple(files) if inputs is None else inputs, digest,
                        scratch)


def _compile_conf(conf: Path, *, use_cache: bool = True) -> PolicySource:
    key = _digest_inputs([conf], "conf-v1")

    def run(out: Path) -> None:
        checkpolicy = _tool("checkpolicy")
        mls = ["-M"] if _conf_is_mls(conf) else []
        _run_compiler([checkpolicy, *mls, "-o", str(out), str(conf)], str(conf))

    out, digest, scratch = _compile(key, use_cache, run)
    return PolicySource(out, "conf", (conf,), digest, scratch)


def _conf_is_mls(conf: Path) -> bool:
    # checkpolicy needs -M for a policy.conf that declares sensitivities.
    with open(conf, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.lstrip()
            if s.startswith("sensitivity ") or s.startswith("mlsconstrain "):
                return True
    return False
