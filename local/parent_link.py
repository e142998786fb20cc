"""What ties a process of the local stack to the one that started it: the bound socket it is handed, and dying
with its parent. Used by the runner's children (local/processes.py) and by the function hosts forked from one
prestarted interpreter (local/host_forks.py), which must not import each other both ways."""

from __future__ import annotations

import os
import signal
import sys

# How a server of the stack gets its port: the runner binds it and hands the bound socket over with this option
# (local/processes.py, `reserve_port` and `listen_on`).
LISTEN_FD_OPTION = "--listen-fd"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """Have Linux send this process SIGTERM when its parent dies (elsewhere nothing is arranged). False when the
    parent, `parent_pid`, died already, before the request took effect: the caller should end at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent_pid
