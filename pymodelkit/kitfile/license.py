"""A small SPDX license detector for ``init``: which common license a LICENSE file holds, keyed on distinctive phrases.

kit runs google/licensecheck over the top-level license file and uses the SPDX id when exactly one license matches
(spec ``kitops-modelkit.md`` §6). licensecheck compares against hundreds of full templates; this detector is honest
about being smaller: it knows the licenses below by phrases that appear in their official text (or in their standard
notice), after folding case, punctuation and line breaks. Anything else, or a text that matches more than one license
(a dual-license file, say), is "unknown", as in kit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KNOWN_LICENSES", "detect_license", "license_matches"]


@dataclass(frozen=True, slots=True)
class _Rule:
    spdx_id: str
    all_of: tuple[str, ...] = ()  # every phrase must occur
    any_of: tuple[str, ...] = ()  # at least one must occur (when given)
    none_of: tuple[str, ...] = ()  # none may occur


_BSD_GRANT = (
    "redistribution and use in source and binary forms with or without modification are permitted provided that "
    "the following conditions are met"
)
_BSD_ADVERTISING = "all advertising materials mentioning features or use of this software"
_BSD_NO_ENDORSE = "neither the name of"
_MIT_GRANT = "permission is hereby granted free of charge to any person obtaining a copy"
_MIT_NOTICE = "the above copyright notice and this permission notice shall be included"

# Phrases are written naturally and normalized like the text. GNU titles carry their dates, which keeps each GNU
# license from matching the others it mentions ("use the GNU Lesser General Public License instead").
_RULES = (
    _Rule("Apache-2.0", any_of=("apache license version 2.0 january 2004",
                                "licensed under the apache license version 2.0")),
    _Rule("MIT", all_of=(_MIT_GRANT, _MIT_NOTICE)),
    _Rule("BSD-2-Clause", all_of=(_BSD_GRANT,), none_of=(_BSD_NO_ENDORSE, _BSD_ADVERTISING)),
    _Rule("BSD-3-Clause", all_of=(_BSD_GRANT, _BSD_NO_ENDORSE), none_of=(_BSD_ADVERTISING,)),
    _Rule("BSD-4-Clause", all_of=(_BSD_GRANT, _BSD_ADVERTISING)),
    _Rule("ISC", all_of=("permission to use copy modify and/or distribute this software for any purpose with or "
                         "without fee is hereby granted",)),
    _Rule("GPL-2.0", all_of=("gnu general public license version 2, june 1991",)),
    _Rule("GPL-3.0", all_of=("gnu general public license version 3, 29 june 2007",)),
    _Rule("LGPL-2.0", all_of=("gnu library general public license version 2, june 1991",)),
    _Rule("LGPL-2.1", all_of=("gnu lesser general public license version 2.1, february 1999",)),
    _Rule("LGPL-3.0", all_of=("gnu lesser general public license version 3, 29 june 2007",)),
    _Rule("AGPL-3.0", all_of=("gnu affero general public license version 3, 19 november 2007",)),
    _Rule("MPL-2.0", any_of=("mozilla public license version 2.0", "mozilla public license, v. 2.0")),
    _Rule("Unlicense", all_of=("this is free and unencumbered software released into the public domain",)),
    _Rule("BSL-1.0", all_of=("boost software license - version 1.0 - august 17th, 2003",)),
    _Rule("CC0-1.0", all_of=("cc0 1.0 universal",)),
    _Rule("CC-BY-4.0", all_of=("creative commons attribution 4.0 international public license",)),
    _Rule("CC-BY-SA-4.0", all_of=("creative commons attribution-sharealike 4.0 international public license",)),
)  # fmt: skip

KNOWN_LICENSES: tuple[str, ...] = tuple(rule.spdx_id for rule in _RULES)
"""The SPDX ids :func:`detect_license` can return."""

_WORD_RE = re.compile(r"[a-z0-9]+")


def _normalize(text: str) -> str:
    # Words only, single-spaced, with a space at both ends so that phrases match on word boundaries.
    return " " + " ".join(_WORD_RE.findall(text.lower())) + " "


_NORMALIZED = tuple(
    (
        rule.spdx_id,
        tuple(_normalize(p) for p in rule.all_of),
        tuple(_normalize(p) for p in rule.any_of),
        tuple(_normalize(p) for p in rule.none_of),
    )
    for rule in _RULES
)


def license_matches(text: str | bytes) -> list[str]:
    """Every known license whose phrases occur in ``text``, in :data:`KNOWN_LICENSES` order."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    words = _normalize(text)
    found = []
    for spdx_id, all_of, any_of, none_of in _NORMALIZED:
        if not all(p in words for p in all_of):
            continue
        if any_of and not any(p in words for p in any_of):
            continue
        if any(p in words for p in none_of):
            continue
        found.append(spdx_id)
    return found


def detect_license(text: str | bytes) -> str:
    """The SPDX id of the one license ``text`` holds; ``""`` when none is recognized or several are."""
    found = license_matches(text)
    return found[0] if len(found) == 1 else ""
