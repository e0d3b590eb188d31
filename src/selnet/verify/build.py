"""Build and cache what a guest boot needs: the kernel, sockop, the initramfs.

Shared by `selnet verify` and the conformance suite (conformance/), which adds its own
policy variants.  Python standard library only.

Cache layout (outside the repository), ${XDG_CACHE_HOME:-~/.cache}/selnet-conformance/:
  kernel-KVER/        the linux-image .deb, the unpacked package, vmlinux (ELF for PVH boot)
  base-HASH.cpio.gz   busybox + sockop + init + lib.sh + modules + netlabelctl/nft and libs
  policy-NAME-HASH.33 compiled policy variants (HASH covers every input)
  boot-HASH.json      parsed kernel results of one boot (HASH = base + policy + scenario script)
Nothing is installed into the host's /boot; the kernel package is only unpacked.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
]
# dynamically linked host tools copied with their libraries
TOOLS = ["/usr/sbin/netlabelctl", "/usr/sbin/nft"]


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
@dataclass
class Kernel:
    version: str  # 6.1.0-56-amd64
    package: str  # linux-image-6.1.0-56-amd64 6.1.192-2
    vmlinux: Path
    modules: Path  # lib/modules/KVER/kernel


def kernel_version() -> str:
    kver = os.environ.get("SELNET_CONF_KVER")
    if kver:
        return kver
    out = run(["apt-cache", "depends", "linux-image-amd64"]).stdout
    m = re.search(r"Depends: linux-image-(\S+)", out)
    if not m:
        raise RuntimeError("cannot find the kernel linux-image-amd64 depends on")
    return m.group(1)


def get_kernel() -> Kernel:
    kver = kernel_version()
    d = CACHE / f"kernel-{kver}"
    vmlinux = d / "vmlinux"
    debs = sorted(d.glob(f"linux-image-{kver}_*.deb")) if d.is_dir() else []
    if not debs:
        d.mkdir(parents=True, exist_ok=True)
        log(f"apt-get download linux-image-{kver}")
        run(["apt-get", "download", f"linux-image-{kver}"], cwd=d)
        debs = sorted(d.glob(f"linux-image-{kver}_*.deb"))
    deb = debs[-1]
    root = d / "pkg"
    if not (root / "boot" / f"vmlinuz-{kver}").exists():
        log(f"unpacking {deb.name}")
        shutil.rmtree(root, ignore_errors=True)
        run(["dpkg-deb", "-x", str(deb), str(root)])
    if not vmlinux.exists():
        extract_vmlinux(root / "boot" / f"vmlinuz-{kver}", vmlinux)
    pkgver = deb.name.split("_")[1]
    return Kernel(
        kver, f"linux-image-{kver} {pkgver}", vmlinux, root / "lib" / "modules" / kver / "kernel"
    )


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


def module_index(moddir: Path) -> dict[str, Path]:
    return {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}


def module_deps(path: Path) -> list[str]:
    m = re.search(rb"depends=([^\0]*)\0", path.read_bytes())
    return [x.replace("-", "_") for x in m.group(1).decode().split(",") if x] if m else []


def module_order(moddir: Path, wanted: list[str]) -> list[tuple[str, Path]]:
    idx = module_index(moddir)
    out: list[str] = []

    def visit(n: str) -> None:
        if n in out:
            return
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
    if out.exists():
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
            shutil.copy(p, r / "lib/modules" / f"{n}.ko")
        (r / "lib/modules/load-order").write_text("".join(f"{n}\n" for n, _ in mods))
        for x in tools + libs:
            dest = r / x.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(x, dest)
        # nft resolves protocol/service names through these
        for etc in ("/etc/protocols", "/etc/services"):
            if Path(etc).exists():
                shutil.copy(etc, r / etc.lstrip("/"))
        cpio_dir(r, out)
    return out


def boot_initramfs(base: Path, policy: Path, script: str) -> Path:
    """base cpio + a second cpio (policy.33, scenarios.sh): the kernel unpacks both."""
    key = sha(base.name, policy.name, script)
    out = CACHE / "boot" / f"initrd-{key}.cpio.gz"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="selnet-conf-") as t:
        r = Path(t)
        shutil.copy(policy, r / "policy.33")
        (r / "scenarios.sh").write_text(script)
        extra = r.parent / (r.name + ".cpio.gz")
        cpio_dir(r, extra)
        with open(out.with_suffix(".tmp"), "wb") as f:
            f.write(base.read_bytes())
            f.write(extra.read_bytes())
        extra.unlink()
    out.with_suffix(".tmp").rename(out)
    return out
