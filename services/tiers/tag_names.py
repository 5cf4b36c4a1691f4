"""What a tag is called, shared by the tags feature (which writes them) and segments (which
filter on them): lower-case letters, digits, ``_``, ``:`` and ``-``, at most 64 characters;
a tag ``group:value`` belongs to the tag group ``group``; the rule groups exist for every
tenant. Stages of the AIPL lifecycle are named here too, as segments filter on them."""

from __future__ import annotations

import re
from typing import Literal

from proto.common import PATTERN_END

TAG_PATTERN = "^[a-z0-9_:-]{1,64}" + PATTERN_END
_TAG = re.compile(TAG_PATTERN)

# Tag groups every tenant has, whose tags only the daily rules set (the tags feature), and which
# segments may therefore always name.
RULE_GROUPS = ("source", "first_order_days")

Stage = Literal["aware", "interested", "purchased", "loyal"]
STAGES: tuple[Stage, ...] = ("aware", "interested", "purchased", "loyal")


def is_tag(name: str) -> bool:
    return _TAG.fullmatch(name) is not None


def tag_group(tag: str) -> str | None:
    """The group of ``group:value``; None for a tag without one."""
    group, colon, _ = tag.partition(":")
    return group if colon else None
