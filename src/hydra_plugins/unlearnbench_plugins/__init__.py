"""unlearnbench's Hydra plugins (found by Hydra in the ``hydra_plugins`` namespace package):

- ``hydra/sweeper=resuming`` (the default, ``conf/hydra/sweeper/resuming.yaml``): Hydra's basic
  sweeper that leaves out the jobs whose results.json is complete before any launcher sees them.
- ``hydra/launcher=submitit_slurm`` (``conf/hydra/launcher/submitit_slurm.yaml``): submitit's Slurm
  launcher that checks the request against the partition (``sinfo``) before it submits anything.

They sit outside the ``unlearnbench`` package, which the layer contracts govern, and import only
its bottom layers (errors, results, config).
"""
