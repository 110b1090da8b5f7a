"""model.compile: the blocks and the HRD policy are compiled in place, and nothing else changes."""

from __future__ import annotations

import torch

from hi2m.model import HI2M, HI2MConfig
from hi2m.model.classifier import VideoClassifier
from hi2m.model.compiled import compile_blocks
from hi2m.train.config import load_config

CFG = dict(num_frames=4, image_size=32, patch_size=8, tubelet_size=2, embed_dim=32, depth=2, num_heads=2,
           decoder_dim=16, decoder_depth=1, decoder_heads=2)


def test_compiled_blocks_keep_names_and_outputs():
    torch.manual_seed(0)
    eager = HI2M(HI2MConfig.from_name("micro", **CFG))
    compiled = HI2M(HI2MConfig.from_name("micro", **CFG))
    compiled.load_state_dict(eager.state_dict())
    # the "eager" backend traces with dynamo but runs the graph without code generation: fast, and
    # enough to check that hi2m's wiring (which modules, in place, same results) is right
    names = compile_blocks(compiled, backend="eager")
    assert names == ["encoder.blocks.0", "encoder.blocks.1", "masker.policy", "decoder.blocks.0"]
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints stay loadable
    video = torch.randn(2, 3, 4, 32, 32)
    a = eager(video, generator=torch.Generator().manual_seed(1))
    b = compiled(video, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(b.loss, a.loss)
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    clf = VideoClassifier(HI2MConfig.from_name("micro", **CFG), num_classes=3)
    assert compile_blocks(clf, backend="eager") == ["encoder.blocks.0", "encoder.blocks.1"]


def test_compile_is_a_run_option_not_a_model_field():
    cfg = load_config(None, ["model.size=micro", "model.compile=true"])
    assert cfg.model.compile is True
    assert not hasattr(cfg.model_config(), "compile")
