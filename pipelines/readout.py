"""How the comparison pipelines read held-out loss, stated once for their reports.

Since 2026-12-02 they score held-out windows in fp32, outside the training autocast, and record
each run's training precision, so runs trained in bf16 and fp32 are read out alike.
"""

from __future__ import annotations

from collections.abc import Iterable

NOT_RECORDED = "not recorded (made before 2026-12-02: fp32 on a CPU, bf16 autocast on CUDA)"


def precision_sentence(recorded: Iterable[str | None]) -> str:
    """The report's sentence on the training precisions `recorded` (None: not recorded) and the readout's."""
    kinds = sorted({k or NOT_RECORDED for k in recorded}) or [NOT_RECORDED]
    readout = ("The held-out windows were scored in the training precision (runs made before 2026-12-02)."
               if NOT_RECORDED in kinds else "The held-out windows are scored in fp32, outside the training "
               "autocast, as `dnahnet score` scores by default.")
    return f"Training precision: {'; '.join(kinds)}. {readout}"
