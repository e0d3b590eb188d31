"""Mutators: bytes (policies, cache files), audit lines, command-line arguments."""

from __future__ import annotations

import random
import re
import struct

# ---------------------------------------------------------------------------
# bytes

_INTS = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000)


def bitflip(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    b = bytearray(data)
    n = rng.choice((1, 1, 2, 4, 16))
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return f"bitflip x{n}", bytes(b)


def truncate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    n = rng.randrange(len(data))
    return f"truncate {n}", data[:n]


def duplicate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    i = rng.randrange(len(data))
    n = rng.randint(1, min(512, len(data) - i))
    return f"duplicate {i}+{n}", data[:i + n] + data[i:i + n] + data[i + n:]


def remove(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    i = rng.randrange(len(data))
    n = rng.randint(1, min(512, len(data) - i))
    return f"remove {i}+{n}", data[:i] + data[i + n:]


def zero(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    i = rng.randrange(len(data))
    n = rng.randint(1, min(256, len(data) - i))
    return f"zero {i}+{n}", data[:i] + bytes(n) + data[i + n:]


def interesting_int(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """A 32-bit little-endian field set to a boundary value (lengths, counts, bitmaps)."""
    i = rng.randrange(max(1, len(data) - 4)) & ~3
    v = rng.choice(_INTS)
    return f"u32@{i}={v:#x}", data[:i] + struct.pack("<I", v) + data[i + 4:]


BYTE_MUTATORS = (bitflip, bitflip, truncate, duplicate, remove, zero, interesting_int)


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    return rng.choice(BYTE_MUTATORS)(rng, data)


# ---------------------------------------------------------------------------
# audit lines

_TOKEN = re.compile(r"\S+")


def _fields(line: str) -> list[re.Match[str]]:
    r"""The key=value tokens: exactly what ``re.finditer(r"\S+=\S+", line)`` finds (a token
    with an "=" that is neither its first nor its last character), in linear time; that
    regex backtracks quadratically on a 20,000-character token (about 15 s per batch)."""
    return [m for m in _TOKEN.finditer(line) if "=" in m.group()[1:-1]]
_DIGITS = re.compile(r"\d+")
_WEIRD_DIGITS = ("١٢٣", "٠", "७", "１２３", "²", "߀", "𝟗")


def _field_delete(rng: random.Random, line: str) -> str:
    fields = _fields(line)
    if not fields:
        return line
    m = rng.choice(fields)
    return line[:m.start()] + line[m.end():]


def _field_duplicate(rng: random.Random, line: str) -> str:
    fields = _fields(line)
    if not fields:
        return line + line
    m = rng.choice(fields)
    return line[:m.end()] + " " + m.group() + line[m.end():]


def _on_number(rng: random.Random, line: str, repl: str) -> str:
    nums = list(_DIGITS.finditer(line))
    if not nums:
        return line + " " + repl
    m = rng.choice(nums)
    return line[:m.start()] + repl + line[m.end():]


def _huge(rng: random.Random, line: str) -> str:
    return _on_number(rng, line, "9" * rng.choice((20, 400, 5000)))


def _non_ascii_digits(rng: random.Random, line: str) -> str:
    return _on_number(rng, line, rng.choice(_WEIRD_DIGITS))


def _negative(rng: random.Random, line: str) -> str:
    return _on_number(rng, line, rng.choice(("-1", "-0", "+5", "0x50", "1e9", "00000080")))


def _nul(rng: random.Random, line: str) -> str:
    i = rng.randrange(len(line) + 1)
    return line[:i] + "\x00" * rng.randint(1, 3) + line[i:]


def _long_value(rng: random.Random, line: str) -> str:
    fields = _fields(line)
    filler = rng.choice(("A", "x", "s0:c", "{", "'", "\"", ":", "=")) * rng.choice((300, 5000, 20000))
    if not fields:
        return line + filler
    m = rng.choice(fields)
    k = m.group().split("=", 1)[0]
    return line[:m.start()] + f"{k}={filler}" + line[m.end():]


def _random_bytes(rng: random.Random, line: str) -> str:
    i = rng.randrange(len(line) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 24)))
    return line[:i] + junk.decode("latin-1") + line[i:]


def _truncate(rng: random.Random, line: str) -> str:
    return line[:rng.randrange(len(line) + 1)]


def _swap_braces(rng: random.Random, line: str) -> str:
    return line.replace(rng.choice("{}()"), rng.choice("{}() "), rng.randint(1, 3))


LINE_MUTATORS = (_field_delete, _field_duplicate, _huge, _non_ascii_digits, _negative, _nul,
                 _long_value, _random_bytes, _truncate, _swap_braces)


def mutate_line(rng: random.Random, line: str) -> str | bytes:
    for _ in range(rng.choice((1, 1, 2, 3))):
        line = rng.choice(LINE_MUTATORS)(rng, line)
    if rng.random() < 0.15:  # as a binary log gives it: bytes, maybe not UTF-8
        raw = line.encode("utf-8", errors="surrogateescape")
        if rng.random() < 0.5:
            raw += bytes([rng.randrange(0x80, 0x100)])
        return raw
    return line


# ---------------------------------------------------------------------------
# command-line values

WEIRD = (
    "", " ", "-", "--", "0", "-1", "65536", "99999", "9" * 5000, "1" + "0" * 4000, "0x50",
    "١٢٣", "８０", "1e3", "80.0", "nosuch_t", "web_t", "db_t", "a" * 3000, "\udcff\udcfe",
    "é", "☃", "s0", "s15:c0-s0", "s0:c5-s0:c1", "s0-s15:c0.c1023", "s0:c1023.c0",
    "system_u:system_r:web_t:s15-s0", "system_u:system_r:web_t", "u:r:t:s0:c0,c0",
    ":::", "[::1", "::1]", "[::1]:", "[::1]:80", "[fe80::1%eth0]:80", "::ffff:127.0.0.1",
    "127.0.0.1", "127.0.0.1:", "127.0.0.1:" + "9" * 5000, "127.0.0.1:80/", "127.0.0.1:80/nosuch",
    "127.0.0.1:80/TCP", "127.0.0.1:80/udp", "256.0.0.1:80", "1.2.3:80", "0177.0.0.1:80",
    "127.0.0.1:-1", "127.0.0.1:١٢٣", "127.0.0.1:0/icmp", "127.0.0.1:80/raw", "1.2.3.4:5432",
    "80/tcp", "80/udp", "0/tcp", "65535/sctp", "80-70/tcp", "1-65535/tcp", "/tcp", "80/",
    "eth0", "lo", "a" * 40, "eth*", "x/y", ".", "..",
    "web_can_connect_db=on", "nosuch=on", "=on", "web_can_connect_db=maybe",
    "net.ipv4.ip_local_port_range=9 1", "net.ipv4.ip_local_port_range=1 " + "9" * 5000,
    "net.ipv4.ip_unprivileged_port_start=" + "9" * 5000, "net.nosuch=1",
    "net.ipv4.ip_unprivileged_port_start=-5", "dns", "http", "nosuchservice",
)
