"""monai_core.runtime: the thread count that detect and the warm engine use."""

import os

import pytest
import torch

from monai_core.runtime import available_cores, use_available_cores


def test_torch_gets_one_thread_per_available_core():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert use_available_cores() == available_cores() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")
def test_available_cores_follow_the_affinity_not_the_machine():
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})  # as under taskset or a container's CPU limit
        assert available_cores() == 1
    finally:
        os.sched_setaffinity(0, allowed)
