"""Skip-and-report for clips that fail to decode during a run.

It works across DataLoader worker processes because nothing is shared: a worker's
``__getitem__`` returns a plain marker dict for a bad clip, :func:`collate_skip_bad`
(running in the worker too) drops markers from the batch and lists them under
``batch["skipped"]``, and the main process feeds every batch to a
:class:`SkipTracker`, which names the skipped files at the end of each epoch and
raises :class:`TooManyBadFilesError` when they exceed ``max_share`` of the epoch.

Typical loop::

    loader = DataLoader(dataset, batch_size=8, num_workers=4, collate_fn=collate_skip_bad)
    tracker = SkipTracker(max_share=0.01, epoch_size=len(dataset))
    for epoch in range(epochs):
        for batch in loader:
            tracker.update(batch)
            if batch["size"] == 0:
                continue  # every clip of this batch was bad
            ...
        print(tracker.end_epoch())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from hi2m.data.errors import TooManyBadFilesError


def is_bad_item(item: Any) -> bool:
    """True for the marker a dataset returns instead of a clip that failed to decode."""
    return isinstance(item, dict) and "error" in item


def collate_skip_bad(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate good items with torch's default collate; report the bad ones.

    Returns the usual keys (``video`` (B, ...), ``label`` (B,), ``index`` (B,),
    ``path`` list) plus ``size`` (B, the number of good items) and ``skipped``: a list
    of ``{"path", "error", "index"}`` for the dropped items. When every item is bad,
    only ``size`` (0) and ``skipped`` are present.
    """
    from torch.utils.data import default_collate

    items = refuse_odd_sizes(items)
    good = [item for item in items if not is_bad_item(item)]
    skipped = [
        {"path": str(item.get("path")), "error": str(item["error"]), "kind": str(item.get("kind", "decode")),
         "index": int(item.get("index", -1))}
        for item in items
        if is_bad_item(item)
    ]
    batch: dict[str, Any] = default_collate(good) if good else {}
    batch["size"] = len(good)
    batch["skipped"] = skipped
    return batch


def refuse_odd_sizes(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items whose ``video`` shape differs from the batch's most common one, turned into bad-item markers.

    Items of one dataset normally share a shape (the transforms resize), but uint8 frames left for the
    training device to augment keep their file's frame size: a file of another size is skipped and named,
    instead of failing the whole batch in ``torch.stack``."""
    shapes = [tuple(item["video"].shape) for item in items if not is_bad_item(item)]
    if len(set(shapes)) <= 1:
        return list(items)
    common = max(set(shapes), key=lambda shape: (shapes.count(shape), -shapes.index(shape)))
    out = []
    for item in items:
        shape = None if is_bad_item(item) else tuple(item["video"].shape)
        if shape is not None and shape != common:
            item = {"error": f"frames of {shape[-2]}x{shape[-1]} (HxW) in a batch of {common[-2]}x{common[-1]}: "
                             "augmenting on the device stacks one frame size (set data.crop_box, or "
                             "data.augment=worker)", "kind": "size", "path": item.get("path"),
                    "index": item.get("index", -1)}
        out.append(item)
    return out


@dataclass
class SkipTracker:
    """Accumulate skipped clips over an epoch (main process).

    Args:
        max_share: the largest tolerated share of skipped clips per epoch (0.01 = 1%).
        epoch_size: samples per epoch, if known (e.g. ``len(dataset)``): lets
            :meth:`update` fail as soon as the limit is certain to be exceeded instead
            of waiting for the end of the epoch.
    """

    max_share: float = 0.01
    epoch_size: int | None = None
    epoch: int = 0
    seen: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    history: list[list[dict[str, Any]]] = field(default_factory=list)

    def update(self, batch: dict[str, Any]) -> None:
        """Count a collated batch (from :func:`collate_skip_bad`)."""
        bad = list(batch.get("skipped", []))
        self.skipped.extend(bad)
        self.seen += int(batch.get("size", 0)) + len(bad)
        if self.epoch_size and len(self.skipped) > self.max_share * self.epoch_size:
            raise TooManyBadFilesError(self._too_many(self.epoch_size))

    def end_epoch(self, num_seen: int | None = None) -> str:
        """Close the epoch: return a summary naming every skipped file, or raise.

        ``num_seen`` is the number of samples the epoch drew (good + skipped); by
        default the count accumulated by :meth:`update`.
        """
        total = self.seen if num_seen is None else num_seen
        bad = self.skipped
        if total and len(bad) > self.max_share * total:
            raise TooManyBadFilesError(self._too_many(total))
        if bad:
            lines = [f"epoch {self.epoch}: skipped {len(bad)} of {total} clips that failed to decode:"]
            lines += [f"  {b['path']}: {b['error']}" for b in bad]
            summary = "\n".join(lines)
        else:
            summary = f"epoch {self.epoch}: all {total} clips decoded"
        self.history.append(bad)
        self.skipped = []
        self.seen = 0
        self.epoch += 1
        return summary

    def _too_many(self, total: int) -> str:
        names = "\n".join(f"  {b['path']}: {b['error']}" for b in self.skipped[:50])
        more = f"\n  ... and {len(self.skipped) - 50} more" if len(self.skipped) > 50 else ""
        return (
            f"epoch {self.epoch}: {len(self.skipped)} of {total} clips failed to decode, more than "
            f"the allowed {self.max_share:.1%} (raise max_share to tolerate more):\n{names}{more}"
        )
