"""Boolean descriptions from the policy's own documentation (refpolicy's policy.xml).

Debian's selinux-policy-dev and Fedora's selinux-policy-devel install it as
/usr/share/selinux/devel/policy.xml; booleans and tunables both appear there (a
monolithic build turns tunables into booleans).  Missing or unreadable: no descriptions.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

DEFAULT_POLICY_XML = Path("/usr/share/selinux/devel/policy.xml")


@cache
def boolean_descriptions(path: Path = DEFAULT_POLICY_XML) -> dict[str, str]:
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
