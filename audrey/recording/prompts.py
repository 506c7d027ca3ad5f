"""What a session asks for: the digits to record (`--digits`) and a balanced, shuffled prompt order."""

from __future__ import annotations

import random
import re

from audrey.errors import AudreyError


def parse_digits(spec: str) -> list[int]:
    """'0-9', '1,3,5', '2-4,7' -> sorted digits; anything else is an AudreyError naming it."""
    digits: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d)(?:-(\d))?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise AudreyError(f"--digits {spec!r}: expected digits and ranges such as 0-9 or 1,3,5-7")
        digits.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return sorted(digits)


def plan_prompts(digits: list[int], takes_per_digit: int, seed: int | None = None) -> list[int]:
    """Balanced and shuffled: every round says each digit once, in a new order, and no digit
    comes twice in a row across rounds (people anticipate a repeated digit)."""
    rng = random.Random(seed)
    plan: list[int] = []
    for _ in range(takes_per_digit):
        order = list(digits)
        rng.shuffle(order)
        if plan and len(order) > 1 and order[0] == plan[-1]:
            order[0], order[-1] = order[-1], order[0]
        plan.extend(order)
    return plan
