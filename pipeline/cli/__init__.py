"""The ``threadstance`` command line: one module per command, assembled in :mod:`pipeline.cli.main`."""
