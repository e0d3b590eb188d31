"""The kernel check table as Markdown (docs/kernel-model.md embeds it; a test keeps it equal)."""

from __future__ import annotations

from selnet.kernel.checks import CAP_CLASS, CHECKS, KERNEL_VERSION, NO_ERRNO, SOCKET_CLASS

BEGIN = "<!-- generated from src/selnet/kernel/checks.py: begin -->"
END = "<!-- generated from src/selnet/kernel/checks.py: end -->"

_CLASS_WORDS = {SOCKET_CLASS: "the socket's class", CAP_CLASS: "`capability` / `cap_userns`"}


def checks_markdown() -> str:
    lines = [
        BEGIN,
        f"Read from Debian's linux-source-6.1 ({KERNEL_VERSION}). Subject and target are roles: "
        "`task` (the calling domain), `socket` (the socket's label), `port`/`node`/`netif` (the "
        "looked-up labels), `peer` (the packet's peer label), `packet` (its SECMARK label), `sa` "
        "(an IPsec SA/SPD label), `owner` (a descriptor's owner: the domain that opened it). A "
        "`closes` check's denial does not fail its call: the descriptor is replaced and the "
        "program's next call on it fails with the errno shown. `MSG_CTRUNC`: recvmsg succeeds "
        "without the descriptor.",
        "",
        "| id | step | check (subject → target, class, perm) | kernel function (file:line) | "
        "when | denied |",
        "|---|---|---|---|---|---|",
    ]
    for c in CHECKS:
        cls = _CLASS_WORDS.get(c.tclass, f"`{c.tclass}`")
        lines.append(
            f"| `{c.id}` | {c.step} | {c.subject} → {c.target}, {cls}, `{c.perm}` | "
            f"`{c.hook}` ({c.file}:{c.line}) | {c.condition} | "
            f"{'nothing fails' if c.errno == NO_ERRNO else c.errno}"
            f"{' (closes: the next call)' if c.closes else ''} |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


def replace_section(doc: str) -> str:
    """The document with its generated section brought up to date."""
    start = doc.index(BEGIN)
    end = doc.index(END) + len(END) + 1
    return doc[:start] + checks_markdown() + doc[end:]
