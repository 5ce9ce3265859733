"""Train a self-play config with ``marl-learn`` using one torch thread (for shared, busy CPUs).

``python benchmarks/selfplay_train.py configs/selfplay/connect_four.yaml --run-id c4 --results-dir /work/tune/...``
takes ``marl-learn``'s arguments. Torch's inter-op pool is set to one thread before training because
the trainer sizes its update threads from it; on an oversubscribed machine two threads per tiny
MLP update made each backward pass ~4x slower.
"""
from __future__ import annotations

import sys

import torch

if __name__ == "__main__":
    torch.set_num_interop_threads(1)
    torch.set_num_threads(1)
    from marl.cli.learn import main

    sys.exit(main(sys.argv[1:]))
