"""keep_freed_memory(): freed activations are reused without new page faults (glibc, Linux)."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from shortrun.allocator import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "keep" else "skip")
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # like chain steps: the same 64 MB activation allocated, written and freed
    torch.ones(2 ** 24)
before = faults()
for _ in range(20):
    torch.ones(2 ** 24)
print(faults() - before)
"""


def _run(mode, env=None):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    state, kept = _run("keep")
    assert state == "True"
    _, default = _run("skip")
    # glibc's default maps and unmaps a block above 32 MB each time: 16,384 faults per 64 MB, 20 times.
    # Kept memory is reused; the host may still re-fault a block now and then (CI once saw one block's
    # worth, e.g. NUMA balancing's hinting faults), so the bound is relative, not zero.
    assert default > 20 * 15000, default
    assert kept * 5 < default, (default, kept)


def test_opt_out():
    state, _ = _run("keep", {"SHORTRUN_MALLOC": "default"})
    assert state == "False"
