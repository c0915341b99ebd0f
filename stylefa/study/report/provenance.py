"""What a study ran on and where: ``summary["context"]`` (shown as the report's banner,
caveats and provenance table)."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

SIMULATED_SUBJECT_PREFIX = "sub-sim"  # stylefa.data.cohort names its subjects sub-simNNN


def is_simulated(data: list[str]) -> bool:
    """True when the inputs come from ``stylefa cohort``: a ``cohort.json`` that says so next to
    the files (or in the folder given), or a prepared dataset whose subjects are ``sub-sim*``."""
    for entry in data:
        path = Path(entry)
        folder = path if path.is_dir() else path.parent
        cohort = folder / "cohort.json"
        if cohort.is_file():
            try:
                if json.loads(cohort.read_text()).get("simulated"):
                    return True
            except (OSError, ValueError):
                pass
        if path.name.startswith(SIMULATED_SUBJECT_PREFIX):
            return True
        dataset = folder / "dataset.json"
        if dataset.is_file():
            try:
                subjects = json.loads(dataset.read_text()).get("subjects") or []
            except (OSError, ValueError):
                subjects = []
            names = [s if isinstance(s, str) else str(s.get("subject", s.get("id", ""))) for s in subjects]
            if names and all(n.startswith(SIMULATED_SUBJECT_PREFIX) for n in names):
                return True
    return False


def data_methods(data: list[str]) -> str | None:
    """How a prepared dataset's subjects were registered and fitted, counted from its dataset.json
    (e.g. "registration: hybrid x12, stylefa x1; tensor fit: mrtrix x13"); None for other inputs."""
    from collections import Counter

    dataset = Path(data[0]) / "dataset.json" if len(data) == 1 else None
    if dataset is None or not dataset.is_file():
        return None
    try:
        subjects = [s for s in json.loads(dataset.read_text()).get("subjects") or [] if isinstance(s, dict)]
    except (OSError, ValueError):
        return None
    count = lambda values: ", ".join(f"{k} x{n}" for k, n in Counter(values).most_common())  # noqa: E731
    registration = count(str((s.get("registration") or {}).get("method", "none")) for s in subjects)
    fit = count(str(s.get("fit_method") or "unknown") for s in subjects)
    return f"registration: {registration}; tensor fit: {fit}" if subjects else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hardware(device: str) -> str:
    import os

    import torch

    text = f"{cpu_name()}, {os.cpu_count()} logical CPU(s)"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def study_context(*, data: list[str], network: str, network_sha256: str, demo_model: bool, resolution: int,
                  steps: int, device: str, runtime_s: float) -> dict:
    import torch

    from stylefa._version import __version__

    return {
        "simulated": is_simulated(data),
        "demo_model": demo_model,
        "resolution": int(resolution),
        "steps": int(steps),
        "stylefa_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "runtime": round(float(runtime_s), 1),
        "hardware": hardware(device),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "network": str(network),
        "network_sha256": network_sha256,
        "data_methods": data_methods(data),
    }
