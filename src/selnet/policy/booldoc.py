"""Boolean descriptions from the policy's own documentation (refpolicy's policy.xml).

Debian's selinux-policy-dev and Fedora's selinux-policy-devel install it as
/usr/share/selinux/devel/policy.xml; booleans and tunables both appear there (a
monolithic build turns tunables into booleans).  Missing or unreadable: no descriptions.
"""

from __future__ import annotations

import marshal
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

DEFAULT_POLICY_XML = Path("/usr/share/selinux/devel/policy.xml")


_FORMAT = 1  # of the cached descriptions


@cache
def boolean_descriptions(path: Path = DEFAULT_POLICY_XML) -> dict[str, str]:
    """Parsing policy.xml (several MB) costs more than a whole warm answer: the result is
    kept in selnet's cache, keyed by the file's path, size and mtime."""
    from selnet.policy.cache import read_blob, write_blob

    try:
        st = path.stat()
    except OSError:
        return {}
    key = f"{_FORMAT}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    blob = read_blob("booldoc.bin", key)
    if blob is not None:
        try:
            got = marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            got = None
        if isinstance(got, dict) and all(isinstance(k, str) and isinstance(v, str)
                                         for k, v in got.items()):
            return got
    out = _parse(path)
    if out:
        write_blob("booldoc.bin", key, marshal.dumps(out))
    return out


def _parse(path: Path) -> dict[str, str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    out: dict[str, str] = {}
    for tag in ("bool", "tunable"):
        for el in root.iter(tag):
            name = el.get("name")
            desc = el.find("desc")
            if name and desc is not None:
                text = " ".join("".join(desc.itertext()).split())
                out[name] = re.sub(r"\s+([.,;:])", r"\1", text)
    return out
