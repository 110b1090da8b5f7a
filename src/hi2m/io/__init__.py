"""Models in and out of hi2m: weights (``save_pretrained`` / ``load_pretrained`` and every other way weights
are read), VideoMAE and transformers import, ONNX and transformers export, model cards, atomic files.

Nothing is imported here, so ``import hi2m.io.files`` stays light.
"""
