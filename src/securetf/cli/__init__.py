"""The ``securetf`` command line: one thin module per command group."""
