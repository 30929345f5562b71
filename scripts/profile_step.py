"""Where a training step's time goes on a GPU: Lightning path vs bare loop, autocast cache on / off,
timed and under torch.profiler (unlearnbench.bench.profile).

    python scripts/profile_step.py --out prof.md data=bbc data.max_length=256 train.batch_size=64 \
        trainer.precision=bf16-mixed trainer.accelerator=gpu
"""

from unlearnbench.cli.bench import profile_main

if __name__ == "__main__":
    profile_main()
