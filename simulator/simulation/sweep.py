"""How volume changes the bill: seats and cost per model across monthly volumes.

Each volume is one month of the same seeded traffic (the scenario's shape, with
`emails` set to the volume), counted by the traffic plan's model of intake
rather than by building and storing every message; a test holds that model to
the real pipeline.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from simulator.errors import ConfigError
from simulator.licensing import advice
from simulator.org import Org
from simulator.simulation.traffic import TrafficParams, seat_counts

Row = dict[str, Any]
MAX_VOLUME = 10_000_000


def parse_volumes(text: str) -> list[int]:
    """'100,1000,1e4' -> [100, 1000, 10000]; positive whole numbers, sorted, no repeats."""
    volumes = set()
    for part in text.split(","):
        try:
            value = float(part.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"volumes are numbers such as 100,1000,1e4, not {part!r}") from None
        if value != int(value) or not 1 <= value <= MAX_VOLUME:
            raise ConfigError(f"each volume must be a whole number from 1 to {MAX_VOLUME:,}")
        volumes.add(int(value))
    return sorted(volumes)


def sweep(params: TrafficParams, org: Org, volumes: list[int]) -> list[Row]:
    rows = []
    for volume in volumes:
        seats = seat_counts(dataclasses.replace(params, emails=volume), org)
        customers = sum(1 for u in seats.counted_senders if not org.is_internal(u))
        evidence = advice.Evidence(customers_submitting=customers)
        comparison = advice.compare(seats.support, len(seats.team), org.pricing, evidence)
        rows.append(
            {
                "volume": volume,
                "support": {"seats": comparison.support.seats, "cost": comparison.support.cost},
                "team": {
                    "seats": comparison.team.seats,
                    "cost": comparison.team.cost,
                    "counted_senders": len(seats.counted_senders),
                },
                "cheaper_model": comparison.cheaper_model,
                "margin": round(abs(comparison.support.cost - comparison.team.cost), 2),
                "breakeven_team_seats": comparison.breakeven_team_seats,
            }
        )
    return rows


def crossover(rows: list[Row]) -> float | None:
    """The volume where Team's cost meets Support's, interpolated on a log scale;
    None when one model is cheaper across the whole sweep."""
    for before, after in itertools.pairwise(rows):
        gap_before = before["team"]["cost"] - before["support"]["cost"]
        gap_after = after["team"]["cost"] - after["support"]["cost"]
        if gap_before == 0:
            return float(before["volume"])
        if (gap_before < 0) != (gap_after < 0) or gap_after == 0:
            share = gap_before / (gap_before - gap_after)
            low, high = math.log10(before["volume"]), math.log10(after["volume"])
            return round(10 ** (low + share * (high - low)), 1)
    return None


def flat_rows(rows: list[Row]) -> list[Row]:
    """One level of keys, for CSV and tables."""
    return [
        {
            "volume": r["volume"],
            "support_seats": r["support"]["seats"],
            "support_cost": r["support"]["cost"],
            "team_seats": r["team"]["seats"],
            "team_cost": r["team"]["cost"],
            "cheaper_model": r["cheaper_model"],
            "margin": r["margin"],
        }
        for r in rows
    ]
