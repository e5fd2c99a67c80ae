"""The shared device parser and the thread-count contexts (ndar.utils.device)."""

from __future__ import annotations

import pytest
import torch

from ndar.utils.device import cpu_threads, resolve_device, torch_threads


def test_resolve_device_spellings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "CPU"])
def test_resolve_device_names_the_field_on_a_bad_name(name):
    with pytest.raises(ValueError, match=r"tim\.device must be 'auto', 'cpu' or 'cuda\[:N\]'"):
        resolve_device(name, "tim.device")


def test_thread_contexts_restore_the_global_count():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with cpu_threads(torch.device("cpu"), target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with cpu_threads(torch.device("cuda", 0), target), torch_threads(0):
        assert torch.get_num_threads() == before  # not on CPU / 0: left alone
    with pytest.raises(RuntimeError), torch_threads(target):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
