"""The SynthFace study and ``hi2m demo``: does HI2M pretraining pay with few labels?

Both run through the training engine (:mod:`hi2m.train.runner`) like any ``hi2m pretrain`` /
``hi2m finetune`` job; :mod:`hi2m.study.protocol` holds the recipe as run configurations and the
measurements made on the saved models (probes, HRD region share, HSM against difficulty).
"""
