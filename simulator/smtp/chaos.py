"""Fault injection: answer a chosen SMTP stage with a chosen error, now and then.

`serve --chaos data:451:0.2` makes one DATA in five fail with 451, so that a
client's retry logic can be exercised against a listener that is otherwise
healthy. Rules are `STAGE:CODE:PROBABILITY`; a seed makes the dice repeatable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from simulator.errors import ConfigError
from simulator.smtp import replies


class Stage(StrEnum):
    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


@dataclass(frozen=True)
class ChaosRule:
    stage: Stage
    code: int
    probability: float

    @property
    def text(self) -> str:
        """The rule as `serve --chaos` takes it."""
        return f"{self.stage.value}:{self.code}:{self.probability}"

    @property
    def reply(self) -> str:
        # The enhanced code's class follows the reply's class (RFC 3463): 4.3.0 or 5.3.0.
        return replies.CHAOS.format(
            code=self.code, enhanced=f"{self.code // 100}.3.0", stage=self.stage.value
        )


def parse_rule(text: str) -> ChaosRule:
    """`data:451:0.2` -> ChaosRule; anything malformed is a ConfigError naming the rule."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise ConfigError(f"a chaos rule is STAGE:CODE:PROBABILITY, not {text!r}")
    stage_text, code_text, probability_text = parts
    stages = ", ".join(s.value for s in Stage)
    try:
        stage = Stage(stage_text.lower())
    except ValueError:
        raise ConfigError(f"chaos stage {stage_text!r} is not one of {stages}") from None
    if not code_text.isdigit() or not 400 <= int(code_text) <= 599:
        raise ConfigError(f"chaos code {code_text!r} is not a 4xx or 5xx reply code")
    try:
        probability = float(probability_text)
    except ValueError:
        probability = -1.0
    if not 0.0 <= probability <= 1.0:
        raise ConfigError(f"chaos probability {probability_text!r} is not between 0 and 1")
    return ChaosRule(stage, int(code_text), probability)


class Chaos:
    """The dice: `fault(stage)` returns the reply to inject, or None to carry on."""

    def __init__(self, rules: list[ChaosRule], seed: int | None = None) -> None:
        self.rules = rules
        self._random = random.Random(seed)
        self.injected: dict[Stage, int] = {}

    def fault(self, stage: Stage) -> str | None:
        for rule in self.rules:
            if rule.stage is stage and self._random.random() < rule.probability:
                self.injected[stage] = self.injected.get(stage, 0) + 1
                return rule.reply
        return None


NO_CHAOS = Chaos([])
