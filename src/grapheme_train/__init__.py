"""grapheme_train: router, domain brains, SharedAGIModel, datasets, trainer and CLI."""
