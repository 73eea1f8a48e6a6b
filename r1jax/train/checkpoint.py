"""Orbax checkpoints that hold everything needed to resume bit for bit.

A checkpoint at step s means "s steps are done". It holds named pytrees (the train state: params,
optimizer state, step; for RL also the reference params) and a JSON `meta` item (data position, the
config that produced it, the model config). No PRNG key is saved: every key is derived from the
seed and the step. Orbax writes each step into a temporary
directory and renames it on commit, so a half-written checkpoint (killed process) is never listed as
complete. Restoring takes abstract arrays that carry the *current* shardings, so a checkpoint saved on
one mesh restores onto another.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (corrupt, truncated, or of another model shape)."""


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs with the shardings of a live (or abstract) pytree: a restore target."""

    def one(x):
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(one, tree)


class Checkpointer:
    """Saves every `every_steps` steps (and on demand), keeps the last `keep` (+ every `keep_period`)."""

    def __init__(
        self,
        directory: str,
        item_names: tuple[str, ...],
        every_steps: int = 100,
        keep: int = 2,
        keep_period: int = 0,
        async_save: bool = True,
    ):
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        self.item_names = tuple(item_names) + ("meta",)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            keep_period=keep_period or None,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=self.item_names
        )

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def should_save(self, step: int) -> bool:
        return self.every_steps > 0 and step % self.every_steps == 0

    def save(self, step: int, items: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Starts saving (asynchronously when enabled); every process must call it."""
        if step in self.manager.all_steps():
            return
        # each item is wrapped in a dict: Orbax's standard handler refuses bare scalars
        args = {k: ocp.args.StandardSave({"tree": v}) for k, v in items.items()}
        args["meta"] = ocp.args.JsonSave(dict(meta))
        self.manager.save(step, args=ocp.args.Composite(**args), force=True)

    def restore(
        self, step: int, targets: Mapping[str, Any], fallback: bool = False
    ) -> tuple[int, dict, dict]:
        """(step, items, meta) restored onto the targets' shardings.

        A checkpoint that fails to read raises CheckpointError naming the step and path; with
        `fallback`, the next older complete checkpoint is tried instead (and the failure logged).
        """
        candidates = [s for s in self.steps() if s <= step][::-1]
        errors = []
        for s in candidates:
            try:
                return s, *self._restore_one(s, targets)
            except Exception as e:  # noqa: BLE001 - orbax raises many kinds on corrupt data
                path = os.path.join(self.directory, str(s))
                msg = f"checkpoint step {s} at {path} is unreadable ({type(e).__name__}: {str(e)[:200]})"
                errors.append(msg)
                if not fallback:
                    raise CheckpointError(
                        msg + "; delete it or set config.checkpoint.fallback_to_previous=True "
                        "to resume from the previous checkpoint."
                    ) from None
                log.warning("%s; falling back to the previous checkpoint", msg)
        raise CheckpointError("no readable checkpoint: " + "; ".join(errors))

    def _restore_one(self, step: int, targets: Mapping[str, Any]) -> tuple[dict, dict]:
        args = {k: ocp.args.StandardRestore({"tree": v}) for k, v in targets.items()}
        args["meta"] = ocp.args.JsonRestore()
        got = self.manager.restore(step, args=ocp.args.Composite(**args))
        return {k: got[k]["tree"] for k in targets}, dict(got["meta"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def read_meta(directory: str, step: int | None = None) -> tuple[int, dict]:
    """(step, meta) of the newest (or given) checkpoint in `directory`, without loading arrays."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"checkpoint directory {directory!r} does not exist")
    mngr = ocp.CheckpointManager(os.path.abspath(directory), item_names=("meta",))
    steps = sorted(mngr.all_steps())
    if not steps:
        raise FileNotFoundError(f"no complete checkpoint in {directory!r}")
    step = steps[-1] if step is None else step
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    mngr.close()
    return step, dict(meta)


def load_item(directory: str, item: str, target: Any, step: int | None = None) -> Any:
    """One item (e.g. the params of a finished stage) of the newest checkpoint, onto the target."""
    step_, _ = read_meta(directory, step)
    mngr = ocp.CheckpointManager(os.path.abspath(directory), item_names=(item, "meta"))
    try:
        args = {item: ocp.args.StandardRestore({"tree": target})}
        got = mngr.restore(step_, args=ocp.args.Composite(**args))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f"cannot read {item!r} of checkpoint step {step_} in {directory}: "
            f"{type(e).__name__}: {str(e)[:300]}"
        ) from None
    finally:
        mngr.close()
    return got[item]["tree"]
