"""Scenario files: an org and its traffic in one TOML file, so a run can be shared.

```toml
name = "Small B2B desk"
[org]
path = "../org.toml"        # relative to this file; or inline org tables under [org]
[traffic]
emails = 2000
seed = 7
[traffic.noise]
auto_reply = 0.03
```

`merge_traffic` lays values given elsewhere (the command line's traffic flags)
over a scenario's traffic, or over the defaults when there is no scenario.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.org import Org, load_org, org_from_tables, read_toml
from simulator.simulation.traffic import TrafficParams

TRAFFIC_KEYS = {f.name for f in dataclasses.fields(TrafficParams)}


@dataclass(frozen=True)
class Scenario:
    name: str
    org: Org
    traffic: TrafficParams
    source: str


def load_scenario(path: str | Path) -> Scenario:
    file = Path(path)
    data = read_toml(file, "scenario file", ConfigError)
    org = _org(data.get("org", {}), file)
    traffic = traffic_params(data.get("traffic", {}), str(file))
    return Scenario(str(data.get("name", file.stem)), org, traffic, str(file))


def merge_traffic(
    scenario: str | Path | None, org: str | Path | None, overrides: Mapping[str, Any]
) -> tuple[Org, TrafficParams]:
    """The org and traffic: the scenario's (if any), then `overrides`, whose None
    values mean "not given". An `org` file replaces the scenario's org."""
    if scenario is not None:
        loaded = load_scenario(scenario)
        organisation = load_org(org) if org else loaded.org
        base = loaded.traffic
    else:
        organisation, base = load_org(org), TrafficParams()
    given = {key: value for key, value in overrides.items() if value is not None}
    return organisation, traffic_params(given, "options", base)


def parse_noise(text: str) -> dict[str, float]:
    """'auto_reply=0.05,bounce=0.02' -> {'auto_reply': 0.05, 'bounce': 0.02}."""
    shares = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        try:
            shares[kind.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"noise shares are kind=share pairs, not {part!r}") from None
    return shares


def _org(table: Any, file: Path) -> Org:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [org] must be a table")
    if "path" in table:
        # A path is read relative to the scenario, so a scenario folder can travel.
        return load_org(file.parent / str(table["path"]))
    if not table:
        return load_org(None)
    return org_from_tables(table, f"{file} [org]")


def traffic_params(table: Any, source: str, base: TrafficParams | None = None) -> TrafficParams:
    """TrafficParams from a `[traffic]` table; unknown keys and wrong types are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [traffic] must be a table")
    unknown = set(table) - TRAFFIC_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown [traffic] key(s): {', '.join(sorted(unknown))}")
    base = base or TrafficParams()
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(base, key)
        if key == "start":
            value = _start(value, source)
        elif key == "noise":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: traffic.noise must be a table of shares")
            value = {k: float(v) for k, v in value.items()}
        elif isinstance(default, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: traffic.{key} must be a number, not {value!r}")
        elif isinstance(default, int) and not isinstance(value, bool):
            if not isinstance(value, int):
                raise ConfigError(f"{source}: traffic.{key} must be a whole number")
        else:
            value = float(value)
        values[key] = value
    return dataclasses.replace(base, **values).validate()


def _start(value: Any, source: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ConfigError(f"{source}: traffic.start must be an ISO-8601 time, not {value!r}")
