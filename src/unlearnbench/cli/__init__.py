"""The commands: ``unlearnbench`` (:mod:`.run`), ``unlearnbench-data`` (:mod:`.data`),
``unlearnbench-report`` (:mod:`.report`) and ``unlearnbench-bench`` (:mod:`.bench`)."""
