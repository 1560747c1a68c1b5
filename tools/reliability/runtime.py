"""The offline runtime (tools/offline) on a free 127.0.0.1 port, for a reliability run."""

import re
from collections import Counter
from pathlib import Path

from tools.local_runtime import ROOT, LocalRuntime, offline_command

__all__ = ["ROOT", "OfflineRuntime", "count_injected_faults"]

INJECTED_FAULT = re.compile(r"injected fault ([a-z0-9-]+):")


def count_injected_faults(log_text: str) -> Counter:
    """Count the faults the runtime logged as injected, by fault name."""
    return Counter(INJECTED_FAULT.findall(log_text))


class OfflineRuntime(LocalRuntime):
    """The offline runtime with its state and ``runtime.log`` in ``persist_dir``.

    ``options`` go to tools/offline/cli.mjs after --port and --persist-to,
    for example ``["--var", "WORK_DURATION_MS=20", "--fault-kv-read", "0.1"]``.
    """

    def __init__(self, persist_dir: Path, options: list[str]):
        command = offline_command(0, persist_dir / "state", options=options)
        super().__init__(command, persist_dir / "runtime.log", name="offline runtime")

    def injected_faults(self) -> Counter:
        return count_injected_faults(self.log_path.read_text(errors="replace"))
