"""Pre-trained model files shipped with czii (``builtin:NAME``, see :mod:`czii_cli.training.pretrained`)."""
