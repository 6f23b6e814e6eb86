"""Networks, losses, the training loop and the safe model-file format."""
