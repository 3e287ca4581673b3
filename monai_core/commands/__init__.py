"""Sub-commands of the ``tumorseg`` command line, one module each."""
