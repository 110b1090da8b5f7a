"""hi2m: hard inter- and intra-sample masked autoencoders for dynamic facial expression recognition.

Heavy submodules (torch models, data decoding) are imported on first use so that
``import hi2m`` and ``hi2m --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
