"""The ``atdata`` command line (typer + rich); the app and ``main()`` are in :mod:`.app`."""

__all__: list[str] = []
