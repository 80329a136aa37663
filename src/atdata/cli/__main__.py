"""``python -m atdata.cli``: the same as the ``atdata`` script."""

from .app import main

main()
