"""hi2m: hard inter- and intra-sample masked autoencoders for dynamic facial expression recognition.

From Python (see :mod:`hi2m.api`)::

    import hi2m
    pre = hi2m.pretrain("configs/cpu_pretrain_synthface.yaml", run={"name": "pre"})
    ft = hi2m.finetune("configs/cpu_finetune_synthface.yaml", finetune={"pretrained": pre.model_dir})
    hi2m.load(ft.model_dir).predict("clip.mp4")

Heavy submodules (torch models, data decoding) are imported on first use so that
``import hi2m`` and ``hi2m --help`` stay fast.
"""

from hi2m.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["ConfigError", "Interrupted", "Run", "__version__", "evaluate", "finetune", "load", "pretrain"]

__getattr__, __dir__ = lazy_exports(__name__, {**{name: "hi2m.api" for name in
                                                  ("Interrupted", "Run", "evaluate", "finetune", "pretrain")},
                                               "ConfigError": "hi2m.train.config"}, globals())


def load(model_dir, **kwargs):
    """Load a model directory as a :class:`hi2m.infer.Predictor` (``predict``, ``extract_features``).

    Keyword arguments go to :func:`hi2m.infer.load` (``detector``, ``device``, ``hop``, ``detect_every``...).
    torch is imported here, on the first call, not when ``hi2m`` is imported.
    """
    from hi2m.infer import load as _load

    return _load(model_dir, **kwargs)
