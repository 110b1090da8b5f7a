"""Training utilities: optimiser parameter groups and lr schedule, evaluation metrics, mixup/cutmix."""
