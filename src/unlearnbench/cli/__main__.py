"""``python -m unlearnbench.cli``: the ``unlearnbench`` command."""

from unlearnbench.cli.run import main

main()
