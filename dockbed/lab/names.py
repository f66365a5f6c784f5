"""Container names: the rules they follow and how a batch is named.

A container's name is also its hostname, so it must satisfy both Docker
(``[a-zA-Z0-9][a-zA-Z0-9_.-]+``) and RFC 1123 host labels: letters, digits
and hyphens, at most 63 characters, not ending in a hyphen.
"""

from __future__ import annotations

import re

from dockbed.errors import InvalidName

MAX_NAME_LENGTH = 63
_NAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?")
_RULE = (
    "letters, digits and '-', at least 2 and at most 63 characters, starting "
    "and ending with a letter or digit (the name is also the hostname)"
)


def check_name(name: str, *, field: str = "name") -> None:
    """Raise InvalidName unless ``name`` is a valid container name."""
    if len(name) < 2 or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise InvalidName(
            f"{name!r} is not a valid container name",
            hint=f"use {_RULE}",
            field=field,
            name=name,
        )


def batch_names(prefix: str, count: int) -> list[str]:
    """``PREFIX-1`` … ``PREFIX-count``, each checked; raises InvalidName."""
    names = [f"{prefix}-{index}" for index in range(1, count + 1)]
    try:
        check_name(prefix, field="prefix")
        check_name(names[-1], field="prefix")
    except InvalidName as error:
        raise InvalidName(
            f"{prefix!r} cannot prefix a batch of {count}: {error.message}",
            hint=error.hint,
            field="prefix",
            prefix=prefix,
        ) from error
    return names
