"""Build and cache what a guest boot needs: the kernel, sockop, the initramfs.

Shared by `selnet verify` and the conformance suite (conformance/), which adds its own
policy variants.  Python standard library only.

Cache layout (outside the repository), ${XDG_CACHE_HOME:-~/.cache}/selnet-conformance/:
  archive/SUITE/      InRelease and Packages.xz of a suite other than the host's (archive.py)
  kernel-KVER/        the linux-image .deb, the unpacked package, vmlinux (ELF for PVH boot);
                      the .deb is checked against its index's SHA256, the files used against
                      the package's md5sums, vmlinux against its sidecar, on every use
  base-HASH.cpio.gz   busybox + sockop + init + lib.sh + modules + netlabelctl/nft and libs
                      (it and boot/initrd-HASH.cpio.gz have sha256 sidecars, checked on use)
  policy-NAME-HASH.33 compiled policy variants (HASH covers every input)
  boot-HASH.json      parsed kernel results of one boot (HASH = base + policy + scenario script)
Nothing is installed into the host's /boot; the kernel package is only unpacked.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import archive

GUEST = Path(__file__).resolve().parent / "guest"  # init, lib.sh, sockop.c: package data
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selnet-conformance"

# modules loaded in the guest, in this order (dependencies first).  crc32c_generic
# must precede libcrc32c: there is no modprobe in the guest to load it on demand.
MODULES = [
    "crc32c_generic",
    "libcrc32c",
    "udp_tunnel",
    "ip6_udp_tunnel",
    "sctp",
    "dccp",
    "dccp_ipv4",
    "dccp_ipv6",
    "nfnetlink",
    "nf_tables",
    "nft_objref",
    # labeled IPsec (lib.sh ipsec_on): ip xfrm's netlink and AH; hmac(sha1) is built in
    "xfrm_user",
    "ah4",
    "ah6",
]
# modules that later kernels link into another module: loading that one is enough
# (nft_objref is part of nf_tables.ko since Linux 6.2, "make nft_objref builtin")
MERGED_INTO = {"nft_objref": "nf_tables"}
# dynamically linked host tools copied with their libraries
TOOLS = ["/usr/sbin/netlabelctl", "/usr/sbin/nft", "/usr/sbin/ip"]  # ip: iproute2, for ip xfrm


def sha(*parts: bytes | str, n: int = 16) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:n]


def file_sha(*paths: Path) -> str:
    return sha(*(p.read_bytes() for p in paths))


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


# ------------------------------------------------------------------ kernel
# The suites whose kernel the suite can boot.  The host's own suite comes from the host's apt
# (as before, and SELNET_CONF_KVER may name the package); any other suite is fetched straight
# from the Debian archive and verified (selnet.verify.archive), never through the host's apt.
SUITES = {"bookworm": "Debian 12", "trixie": "Debian 13"}


@dataclass
class Kernel:
    version: str  # 6.1.0-56-amd64
    package: str  # linux-image-6.1.0-56-amd64 6.1.192-2
    vmlinux: Path
    modules: Path  # lib/modules/KVER/kernel
    suite: str = ""  # the Debian suite the package came from (bookworm, trixie)
    # the package's own md5sums (path in the package -> md5), read from the verified .deb:
    # every unpacked file the guest uses is checked against them (check_file)
    md5sums: dict[str, str] = field(default_factory=dict, repr=False)
    root: Path | None = None  # the unpacked package

    @property
    def release(self) -> str:
        """The upstream version, 6.1.192 (from the package version 6.1.192-2)."""
        ver = self.package.split()[-1]
        return re.split(r"[-+~]", ver, maxsplit=1)[0]

    def check_file(self, path: Path) -> None:
        """PATH (in the unpacked package) is byte for byte the package's, else RuntimeError."""
        if self.root is None or not self.md5sums:
            return
        rel = str(path.relative_to(self.root))
        want = self.md5sums.get(rel)
        if want is None or hashlib.md5(path.read_bytes()).hexdigest() != want:
            raise RuntimeError(f"{path}: not the file {self.package} ships (damaged cache?)")


def host_suite() -> str:
    """The host's Debian codename (VERSION_CODENAME of /etc/os-release)."""
    try:
        m = re.search(r"^VERSION_CODENAME=\"?(\w+)", Path("/etc/os-release").read_text(), re.M)
    except OSError:
        m = None
    return m.group(1) if m else "bookworm"


def kernel_version(suite: str | None = None) -> str:
    """The linux-image-KVER package linux-image-amd64 depends on in SUITE (default: the host's)."""
    if suite is None or suite == host_suite():
        kver = os.environ.get("SELNET_CONF_KVER")
        if kver:
            return kver
        out = run(["apt-cache", "depends", "linux-image-amd64"]).stdout
    else:
        out = "Depends: " + archive.Suite(suite, CACHE).stanza("linux-image-amd64").depends
    m = re.search(r"Depends: linux-image-(\S+)", out)
    if not m:
        raise RuntimeError("cannot find the kernel linux-image-amd64 depends on")
    return m.group(1)


def _apt_sha256(pkg: str) -> dict[str, str]:
    """version -> SHA256 of PKG in the host's apt lists (which apt verified)."""
    out = run(["apt-cache", "show", pkg]).stdout
    return dict(re.findall(r"(?ms)^Version: (\S+)$.*?^SHA256: (\w+)$", out))


def _host_deb(kver: str, d: Path) -> tuple[Path, str]:
    """(linux-image-KVER's .deb from the host's archive (apt-get download), its SHA256),
    checked against the SHA256 the host's apt lists give for its version: a cached copy that
    does not match (or whose version the lists no longer hold) is downloaded again."""
    pkg = f"linux-image-{kver}"
    for attempt in (0, 1):
        sums = _apt_sha256(pkg)
        for deb in sorted(d.glob(f"{pkg}_*.deb"), reverse=True):
            digest = archive.file_sha256(deb)
            if sums.get(deb.name.split("_")[1]) == digest:
                return deb, digest
            deb.unlink()  # unverifiable or damaged: never used
        if attempt == 0:
            d.mkdir(parents=True, exist_ok=True)
            log(f"apt-get download {pkg}")
            run(["apt-get", "download", pkg], cwd=d)
    raise RuntimeError(f"{pkg}: the downloaded package does not match the host's apt lists")


def get_kernel(suite: str | None = None) -> Kernel:
    """The kernel of SUITE (default: the host's suite, through its apt, as before), unpacked
    and verified.  Nothing is installed: the package is only unpacked into the cache."""
    # no suite: the host's apt whatever the host is (selnet verify on any Debian-like host)
    host = suite is None or suite == host_suite()
    if not host and suite not in SUITES:
        raise RuntimeError(f"unknown kernel suite {suite!r} (known: {', '.join(SUITES)})")
    suite = suite or host_suite()
    kver = kernel_version(None if host else suite)
    d = CACHE / f"kernel-{kver}"
    # the .deb's SHA256 as just verified (hashing 100 MB again would only repeat it)
    if host:
        deb, deb_sha = _host_deb(kver, d)
    else:
        log(f"{suite}: linux-image-{kver} from {archive.MIRROR}")
        deb, stanza = archive.Suite(suite, CACHE).fetch(f"linux-image-{kver}", d)
        deb_sha = stanza.sha256
    root = d / "pkg"
    stamp = root / ".selnet-deb-sha256"  # which verified .deb this tree was unpacked from
    if not stamp.exists() or stamp.read_text() != deb_sha:
        log(f"unpacking {deb.name}")
        shutil.rmtree(root, ignore_errors=True)
        tmp = d / "pkg.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg-deb", "-x", str(deb), str(tmp)])
        (tmp / stamp.name).write_text(deb_sha)
        tmp.rename(root)
    md5 = run(["dpkg-deb", "-I", str(deb), "md5sums"]).stdout
    md5sums = {p: h for h, p in (ln.split(None, 1) for ln in md5.splitlines() if ln.strip())}
    pkgver = deb.name.split("_")[1]
    # Debian 13's packages ship the modules under /usr/lib (merged /usr)
    moddir = next(
        (root / m / kver / "kernel" for m in ("lib/modules", "usr/lib/modules")
         if (root / m / kver / "kernel").is_dir()),
        root / "lib/modules" / kver / "kernel",
    )
    kern = Kernel(kver, f"linux-image-{kver} {pkgver}", d / "vmlinux", moddir, suite, md5sums, root)
    bzimage = root / "boot" / f"vmlinuz-{kver}"
    kern.check_file(bzimage)
    # vmlinux is derived from the verified bzImage: its sidecar names both hashes
    side = d / "vmlinux.sha256"
    bz_sha = archive.file_sha256(bzimage)
    if not (
        kern.vmlinux.exists()
        and side.exists()
        and side.read_text() == f"{bz_sha} {archive.file_sha256(kern.vmlinux)}"
    ):
        extract_vmlinux(bzimage, kern.vmlinux)
        side.write_text(f"{bz_sha} {archive.file_sha256(kern.vmlinux)}")
    return kern


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """The bzImage's compressed payload as an ELF: QEMU boots it via PVH (~3 s faster on TCG)."""
    data = bzimage.read_bytes()
    for magic, cmd in (
        (b"\xfd7zXZ\x00", ["xz", "-dc", "--single-stream"]),
        (b"(\xb5/\xfd", ["zstd", "-dc"]),
        (b"\x1f\x8b\x08", ["gzip", "-dc"]),
    ):
        i = data.find(magic)
        if i < 0:
            continue
        r = subprocess.run(cmd, input=data[i:], capture_output=True)
        if r.stdout[:4] == b"\x7fELF":
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(r.stdout)
            tmp.rename(out)
            return
    raise RuntimeError(f"no ELF payload found in {bzimage}")


MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")  # Debian 13 ships .ko.xz


def module_name(path: Path) -> str:
    name = path.name
    for suf in MODULE_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)].replace("-", "_")
    return ""


def module_index(moddir: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(moddir.rglob("*.ko*")) if module_name(p)}


def module_bytes(path: Path) -> bytes:
    """The module as insmod needs it: busybox's insmod cannot read compressed modules."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return data


def module_deps(path: Path) -> list[str]:
    m = re.search(rb"depends=([^\0]*)\0", module_bytes(path))
    return [x.replace("-", "_") for x in m.group(1).decode().split(",") if x] if m else []


def builtin_modules(moddir: Path) -> set[str]:
    """Modules built into the kernel (modules.builtin beside kernel/): nothing to load."""
    f = moddir.parent / "modules.builtin"
    if not f.exists():
        return set()
    return {module_name(Path(ln.strip())) for ln in f.read_text().splitlines() if ln.strip()}


def module_order(moddir: Path, wanted: list[str]) -> list[tuple[str, Path]]:
    idx = module_index(moddir)
    builtin = builtin_modules(moddir)
    out: list[str] = []

    def visit(n: str) -> None:
        if n in out or n in builtin:
            return
        if n not in idx and MERGED_INTO.get(n) in idx:
            visit(MERGED_INTO[n])
            return
        if n not in idx:
            raise RuntimeError(f"module {n} is neither in {moddir} nor built in")
        for dep in module_deps(idx[n]):
            visit(dep)
        out.append(n)

    for n in wanted:
        visit(n)
    return [(n, idx[n]) for n in out]


# ------------------------------------------------------------------ sockop + base initramfs
def build_sockop() -> Path:
    src = GUEST / "sockop.c"
    out = CACHE / f"sockop-{file_sha(src)}"
    if not out.exists():
        log("gcc -static sockop.c")
        run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-o", str(out) + ".tmp", str(src)])
        os.rename(str(out) + ".tmp", out)
    return out


def ldd_libs(binary: str) -> list[str]:
    out = run(["ldd", binary]).stdout
    libs = re.findall(r"=>\s*(/\S+)", out)
    libs += re.findall(r"^\s*(/\S+ld-linux\S*)", out, re.M)
    return libs


def sealed(path: Path) -> bool:
    """PATH is in the cache and is what was written there: the sha256 sidecar ``seal``
    wrote beside it matches.  Anything else (absent, damaged, no sidecar) is built again."""
    try:
        return path.with_name(path.name + ".sha256").read_text() == archive.file_sha256(path)
    except OSError:
        return False


def seal(tmp: Path, out: Path) -> None:
    """TMP becomes OUT, with its sha256 in OUT's sidecar.  The sidecar is written first: an
    interruption leaves a sidecar that matches nothing, never an unverified OUT."""
    archive.write_atomic(out.with_name(out.name + ".sha256"), archive.file_sha256(tmp).encode())
    os.replace(tmp, out)


def cpio_dir(root: Path, out: Path) -> None:
    """newc cpio of ROOT, gzip -1, owned by root:root; needs no privileges (no device nodes)."""
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        cp = subprocess.Popen(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        gz = subprocess.Popen(["gzip", "-1"], stdin=cp.stdout, stdout=f)
        assert cp.stdin and cp.stdout
        cp.stdout.close()
        cp.stdin.write(("\n".join([".", *files]) + "\n").encode())
        cp.stdin.close()
        if cp.wait() or gz.wait():
            raise RuntimeError("cpio | gzip failed")
    tmp.rename(out)


def build_base_initramfs(kernel: Kernel) -> Path:
    sockop = build_sockop()
    busybox = Path(os.environ.get("BUSYBOX", "/bin/busybox"))
    mods = module_order(kernel.modules, MODULES)
    tools = [t for t in TOOLS if Path(t).exists()]
    libs = sorted({lib for t in tools for lib in ldd_libs(t)})
    inputs = [sockop, busybox, GUEST / "init", GUEST / "lib.sh"]
    key = sha(
        kernel.version,
        *(p.read_bytes() for p in inputs),
        *tools,
        *(sha(Path(x).read_bytes()) for x in tools + libs),
        *(n for n, _ in mods),
    )
    out = CACHE / f"base-{key}.cpio.gz"
    if sealed(out):
        return out
    log(f"initramfs: busybox, sockop, {len(mods)} modules, {len(tools)} tools + {len(libs)} libs")
    with tempfile.TemporaryDirectory(prefix="selnet-conf-") as t:
        r = Path(t)
        for sub in ("bin", "dev", "proc", "sys", "tmp", "run", "lib/modules", "etc"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(busybox, r / "bin/busybox")
        shutil.copy(sockop, r / "bin/sockop")
        shutil.copy(GUEST / "init", r / "init")
        shutil.copy(GUEST / "lib.sh", r / "lib.sh")
        (r / "init").chmod(0o755)
        for n, p in mods:
            kernel.check_file(p)
            (r / "lib/modules" / f"{n}.ko").write_bytes(module_bytes(p))
        (r / "lib/modules/load-order").write_text("".join(f"{n}\n" for n, _ in mods))
        for x in tools + libs:
            dest = r / x.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(x, dest)
        # nft resolves protocol/service names through these
        for etc in ("/etc/protocols", "/etc/services"):
            if Path(etc).exists():
                shutil.copy(etc, r / etc.lstrip("/"))
        staging = out.with_name(f".{out.name}.{os.getpid()}.staging")
        cpio_dir(r, staging)
        seal(staging, out)
    return out


def boot_initramfs(base: Path, policy: Path, script: str) -> Path:
    """base cpio + a second cpio (policy.33, scenarios.sh): the kernel unpacks both."""
    key = sha(base.name, policy.name, script)
    out = CACHE / "boot" / f"initrd-{key}.cpio.gz"
    if sealed(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # per process: boots run in parallel
    with tempfile.TemporaryDirectory(prefix="selnet-conf-") as t:
        r = Path(t)
        shutil.copy(policy, r / "policy.33")
        (r / "scenarios.sh").write_text(script)
        extra = r.parent / (r.name + ".cpio.gz")
        cpio_dir(r, extra)
        with open(tmp, "wb") as f:
            f.write(base.read_bytes())
            f.write(extra.read_bytes())
        extra.unlink()
    seal(tmp, out)
    return out
