"""Generate a whole landing folder: simulate the world, then deliver it as batches."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from billing_world.deliver import DeliveryConfig, deliver_world
from billing_world.simulate import WorldConfig, simulate_world
from orchestration.lib.contract import TRUTH_FOLDER


@dataclass(frozen=True)
class GenerationSummary:
    landing_dir: str
    rows_per_source: dict[str, int]
    seconds_simulate: float
    seconds_deliver: float


def generate_world(landing_dir: Path, world: WorldConfig, delivery: DeliveryConfig) -> GenerationSummary:
    started = time.perf_counter()
    simulated = simulate_world(world)
    simulated_at = time.perf_counter()
    landing_dir.mkdir(parents=True, exist_ok=True)
    deliver_world(simulated.tables, landing_dir, delivery, replace=True)
    truth_dir = landing_dir / TRUTH_FOLDER
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in simulated.truth.items():
        frame.write_csv(truth_dir / f"{name}.csv")
    summary = GenerationSummary(
        landing_dir=str(landing_dir),
        rows_per_source={name: frame.height for name, frame in simulated.tables.items()},
        seconds_simulate=round(simulated_at - started, 2),
        seconds_deliver=round(time.perf_counter() - simulated_at, 2),
    )
    config = {"world": {**asdict(world), "start": world.start.isoformat()}, "delivery": asdict(delivery)}
    report = {**asdict(summary), "config": config}
    (truth_dir / "generation.json").write_text(json.dumps(report, indent=2, default=str))
    return summary
