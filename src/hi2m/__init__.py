"""hi2m: hard inter- and intra-sample masked autoencoders for dynamic facial expression recognition.

Heavy submodules (torch models, data decoding) are imported on first use so that
``import hi2m`` and ``hi2m --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(model_dir, **kwargs):
    """Load a model directory as a :class:`hi2m.infer.Predictor` (``predict_video``, ``extract_features``).

    Keyword arguments go to :func:`hi2m.infer.load` (``detector``, ``device``, ``hop``, ``detect_every``...).
    torch is imported here, on the first call, not when ``hi2m`` is imported.
    """
    from hi2m.infer import load as _load

    return _load(model_dir, **kwargs)
