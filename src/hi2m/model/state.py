"""Strict state-dict loading: every weight present, of its shape, nothing left over (pure PyTorch)."""

from __future__ import annotations

from collections.abc import Mapping

import torch


class CheckpointMismatch(ValueError):
    """Raised when a checkpoint's keys do not match the model's."""


def load_state_dict_strict(
    model: torch.nn.Module,
    sd: Mapping[str, torch.Tensor],
    only_prefixes: tuple[str, ...] | None = None,
    source: str = "checkpoint",
) -> None:
    """Copy ``sd`` into ``model``; every model key (under ``only_prefixes``, if given) must be present with
    the right shape and no key may be left over. Raises CheckpointMismatch listing all offenders."""
    own = model.state_dict()
    wanted = {k for k in own if only_prefixes is None or k.startswith(only_prefixes)}
    missing = sorted(wanted - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in set(sd) & set(own)
                    if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        lines = [f"{source} does not match the model:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        if shapes:
            lines.append(f"  wrong shape ({len(shapes)}): " + "; ".join(shapes))
        raise CheckpointMismatch("\n".join(lines))
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
