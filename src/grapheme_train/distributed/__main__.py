"""``python -m grapheme_train.distributed`` (see :mod:`grapheme_train.distributed.commands`)."""

from grapheme_train.distributed.commands import main

main(prog_name="python -m grapheme_train.distributed")
