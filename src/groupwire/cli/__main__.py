"""``python -m groupwire.cli``: the same command line as the ``groupwire`` script."""

from groupwire.cli import main

main()
