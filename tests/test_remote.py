"""Pieces of the distributed build that need no cluster (the cluster itself: tests/e2e/test_distributed.py)."""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import torch

from export.build import resolve_device
from export.remote import _laid_out, check_executor
from targets.errors import EdgebenchError


def test_executor_is_local_or_a_dask_scheduler():
    assert check_executor("local") == "local"
    assert check_executor("dask://10.0.0.5:8786") == "dask://10.0.0.5:8786"
    assert check_executor("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    for bad in ("ray", "dask://", "8786", "http://x:1"):
        with pytest.raises(argparse.ArgumentTypeError):
            check_executor(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_device_without_a_gpu():
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(EdgebenchError, match="--train-device cuda: torch sees no CUDA GPU"):
        resolve_device("cuda")


def test_an_unpickled_array_gets_the_drivers_layout_back():
    """The bundled digits' layout: NHWC memory seen as NCHW, a size-1 channel axis with a 4-byte stride."""
    x = np.transpose(np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32), (0, 3, 1, 2))
    assert x.strides == (256, 4, 32, 4)
    copy = pickle.loads(pickle.dumps(x))
    assert copy.strides != x.strides  # what a worker gets
    back = _laid_out(copy, x.strides)
    assert back.strides == x.strides and np.array_equal(back, x)
    plain = np.zeros((3, 2))
    assert _laid_out(plain, plain.strides) is plain
