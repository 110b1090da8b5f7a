"""``torch.compile`` for the parts of a model that are the same graph at every step.

The whole HI2M forward is not a good unit: HRD's sampling, the top-k split of visible / masked
tokens and HSM's per-sample weighting change shapes or draw random numbers. The transformer blocks
of the encoder and decoder and the HRD policy net are fixed graphs, and they hold nearly all of the
FLOPs, so those are compiled in place (``nn.Module.compile``: parameter names and
checkpoints stay as they are). Identical blocks share one compiled graph.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def compile_blocks(model: nn.Module, **options: Any) -> list[str]:
    """Compile, in place, every transformer block (encoder and decoder) and the HRD policy net of
    ``model`` (an HI2M or a VideoClassifier); returns the names of the compiled modules.
    ``options`` go to ``torch.compile`` (``mode``, ``dynamic``...)."""
    from hi2m.model.hrd import TokenImportanceNet
    from hi2m.model.vit import Block

    names = []
    for name, module in model.named_modules():
        inside = any(name.startswith(done + ".") for done in names)  # e.g. the policy's own block
        if isinstance(module, (Block, TokenImportanceNet)) and not inside:
            module.compile(**options)
            names.append(name)
    return names
