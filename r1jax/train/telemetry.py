"""Optional run telemetry beside the JSONL/TensorBoard metrics: a profiler window and Weights & Biases.

- `profile_steps=(start, stop)`: a JAX profiler trace of steps [start, stop) in <workdir>/profile,
  readable in TensorBoard's profile plugin and (the `.trace.json.gz` file) in Perfetto
  (ui.perfetto.dev). Off when empty.
- `wandb=True`: every metrics row (and the logged sample completions, as a table) also goes to a
  Weights & Biases run, OFFLINE by default (files under <workdir>/wandb; `wandb sync` uploads them
  later), with a run id derived from the workdir so a resumed run continues the same W&B run.
  `wandb` is an optional extra (`pip install -e ".[wandb]"`); asking for it without it installed is
  a clear error. Only process 0 logs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class TelemetryConfig:
    profile_steps: tuple[int, ...] = ()  # (start, stop): trace steps start .. stop - 1
    wandb: bool = False
    wandb_project: str = "r1jax"
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_entity: str = ""

    def __post_init__(self):
        if self.profile_steps and (
            len(self.profile_steps) != 2 or not 0 <= self.profile_steps[0] < self.profile_steps[1]
        ):
            raise ValueError(
                f"profile_steps={self.profile_steps!r} must be () or (start, stop) with "
                "0 <= start < stop."
            )
        if self.wandb_mode not in ("offline", "online", "disabled"):
            raise ValueError(f"wandb.mode={self.wandb_mode!r}: use offline, online or disabled.")


class Telemetry:
    """Called by the training loop around each step; every method is cheap when nothing is on."""

    def __init__(self, cfg: TelemetryConfig, workdir: str, run_config: Mapping[str, Any] | None):
        self.cfg, self.workdir, self.run_config = cfg, workdir, dict(run_config or {})
        self._tracing = False
        self._wandb = None
        if cfg.wandb and jax.process_index() == 0:
            try:
                import wandb
            except ImportError:
                raise ValueError(
                    'config.wandb.enabled=True needs wandb: pip install -e ".[wandb]" (or '
                    "set config.wandb.enabled=False)."
                ) from None
            run_id = hashlib.sha1(os.path.abspath(workdir).encode()).hexdigest()[:12]
            os.makedirs(workdir, exist_ok=True)
            self._wandb = wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_entity or None,
                mode=cfg.wandb_mode,
                dir=workdir,
                id=run_id,
                resume="allow",
                config=self.run_config,
                name=os.path.basename(os.path.abspath(workdir)),
            )

    def before_step(self, step: int) -> None:
        if self.cfg.profile_steps and step == self.cfg.profile_steps[0] and not self._tracing:
            jax.profiler.start_trace(
                os.path.join(self.workdir, "profile"), create_perfetto_trace=True
            )
            self._tracing = True

    def after_step(
        self, step: int, row: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]
    ) -> None:
        if self._tracing and step + 1 >= self.cfg.profile_steps[1]:
            self._stop_trace()
        if self._wandb is not None:
            data = {k: v for k, v in row.items() if k != "step"}
            if samples:
                import wandb

                cols = sorted({k for r in samples for k in r})
                data["samples"] = wandb.Table(
                    columns=cols, data=[[str(r.get(c, "")) for c in cols] for r in samples]
                )
            self._wandb.log(data, step=step)

    def _stop_trace(self) -> None:
        jax.profiler.stop_trace()
        self._tracing = False

    def close(self) -> None:
        if self._tracing:
            self._stop_trace()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
