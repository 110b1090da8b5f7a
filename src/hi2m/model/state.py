"""Strict state-dict loading: every weight present, of its shape, nothing left over (pure PyTorch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass
class WarmStart:
    """What :func:`warm_start` did: tensor names loaded, new (kept at their initialisation) and left out
    (in the source, not in the model)."""

    source: str
    loaded: list[str]
    new: list[str]
    left_out: list[str]

    def summary(self) -> str:
        return (f"{self.source}: {len(self.loaded)} tensors loaded, {len(self.new)} new{group_names(self.new)}, "
                f"{len(self.left_out)} left out{group_names(self.left_out)}")

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "loaded": self.loaded, "new": self.new, "left_out": self.left_out}


def group_names(names: list[str], depth: int = 1) -> str:
    """' (decoder.* 34, masker.* 6)': how many names share each leading component; '' for none."""
    if not names:
        return ""
    counts: dict[str, int] = {}
    for n in names:
        head = ".".join(n.split(".")[:depth])
        counts[head] = counts.get(head, 0) + 1
    return " (" + ", ".join(f"{h}.* {c}" if c > 1 or h != names[0] else h for h, c in counts.items()) + ")"


def warm_start(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], source: str,
               required: tuple[str, ...] = ()) -> WarmStart:
    """Start ``model`` from the weights in ``sd`` that it has: every shared name is copied, names only the
    model has stay as initialised (``new``), names only ``sd`` has are ignored (``left_out``). A shared name
    of another shape is an error naming it, as is a missing name under a ``required`` prefix, or no shared
    name at all. Nothing is copied unless everything fits."""
    own = model.state_dict()
    shapes = sorted(f"{k}: {tuple(sd[k].shape)} in {source}, {tuple(own[k].shape)} in the model"
                    for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if shapes:
        raise CheckpointMismatch(f"{source} does not fit the model, wrong shape ({len(shapes)}): " + "; ".join(shapes))
    loaded = sorted(set(sd) & set(own))
    new = sorted(set(own) - set(sd))
    missing = [k for k in new if required and k.startswith(required)]
    if missing:
        raise CheckpointMismatch(f"{source} lacks weights the model needs, missing ({len(missing)}): "
                                 + ", ".join(missing))
    if not loaded:
        sample = ", ".join(sorted(sd)[:5]) or "none"
        raise CheckpointMismatch(f"{source}: no weight name matches the model (its first names: {sample})")
    with torch.no_grad():
        for k in loaded:
            own[k].copy_(sd[k])
    return WarmStart(source, loaded, new, sorted(set(sd) - set(own)))
