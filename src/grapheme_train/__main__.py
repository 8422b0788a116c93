"""``python -m grapheme_train`` is ``grapheme-train``."""

from grapheme_train.cli import main

main()
