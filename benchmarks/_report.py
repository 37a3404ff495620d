"""Write one benchmark's section of docs/benchmarks.md, leaving the others intact.

Each benchmark owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
and records the command that produced it and the machine it ran on.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the benchmark named in it (`make bench-*`); rerun the\n"
    "command to refresh it.  Medians and ratios are from one run; absolute times\n"
    "are only comparable on the same machine.\n"
)


def machine_description() -> str:
    """One line: CPU, cores, Python, torch (if importable) and CUDA device."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [cpu, f"{os.cpu_count()} cores", f"Python {platform.python_version()}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    return ", ".join(parts)


def write_section(name: str, title: str, body: str, command: str) -> None:
    """Replace (or append) section ``name`` of docs/benchmarks.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- {name}:start -->\n## {title}\n\n"
        f"Command: `{command}`  \nMachine: {machine_description()}  \nRun: {stamp}\n\n"
        f"{body.strip()}\n<!-- {name}:end -->"
    )
    text = REPORT.read_text() if REPORT.exists() else HEADER
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
