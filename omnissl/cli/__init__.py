"""The ``omnissl`` command line: one module per verb, wired by :mod:`omnissl.cli.main` (``main(argv)``).

Nothing is imported here, so ``omnissl.cli.main`` is always the module and ``--help`` loads only what it needs.
"""
