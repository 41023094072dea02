"""One XLA worker per run, free to run on any core: the pool is sized while the process sees
one core, then every thread gets every core back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

PROBE = """
import json, os
from pebble.threads import start_jax
before = sorted(os.sched_getaffinity(0))
start_jax(1)
import jax.numpy as jnp
(jnp.ones((200, 200)) @ jnp.ones((200, 200))).block_until_ready()
threads = {t: (open(f"/proc/self/task/{t}/comm").read().strip(), sorted(os.sched_getaffinity(int(t))))
           for t in os.listdir("/proc/self/task")}
print(json.dumps({"before": before, "threads": threads}))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not os.path.isdir("/proc/self/task"), reason="needs 2 cores")
def test_jax_with_one_thread_has_one_xla_worker_and_every_thread_may_use_every_core() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    workers = [name for name, _ in probe["threads"].values() if name.startswith("tf_XLAEigen")]
    assert len(workers) == 1  # the pool was sized for one thread
    # ...and no thread, the XLA worker included, stayed pinned to the core it was made on
    assert all(cores == probe["before"] for _, cores in probe["threads"].values())
