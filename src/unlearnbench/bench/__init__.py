"""The performance benchmark behind docs/performance.md (``unlearnbench-bench``), one module per
section, each measuring in this process and returning a typed record:

(a) :mod:`.throughput` framework overhead, (b) :mod:`.retrain` unlearning vs retraining,
(c) :mod:`.scaling` DeepCUT's scaling, (d) :mod:`.evaluation` evaluation throughput,
(s) :mod:`.stop_check` the stop-rule check, (e) :mod:`.counting` trainings per sweep,
(f) :mod:`.memory` peak memory, (g) :mod:`.gpu` precision and compile on a GPU, and
:mod:`.profile` where a training step's time goes. :mod:`.common` holds the shared machinery,
:mod:`.plans` what each mode measures, :mod:`.run` a run of the selected sections and
:mod:`.document` the markdown they are rendered as.

Every figure is a median over repeats; where the machine is shared, the figure is a ratio of two
arms measured in the same process, interleaved (arm A, arm B, arm A, ...), so that other load
cancels out.
"""
