"""Ctrl-C and SIGTERM while `logreg train` runs: the first stops training at the end of
the epoch (the model is saved and records it), a second aborts without saving; the
renames that put a run's outputs in place are not interrupted. Command-line machinery:
it writes a notice to stderr, so the library (api.py, training.py) does not use it.
"""

import os
import signal
import threading
from contextlib import contextmanager

EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_NOTICE = "stopping at the end of this epoch (press Ctrl-C again to abort without saving)"


class StopFlag:
    """Set by the first SIGINT/SIGTERM; training checks it after every epoch."""

    def __init__(self):
        self.signal_name = None

    def __bool__(self):
        return self.signal_name is not None


@contextmanager
def stop_on_signals(notice=STOP_NOTICE):
    """While active, a first SIGINT or SIGTERM sets the yielded StopFlag (training stops at
    the end of the epoch) and writes "NAME: notice" to stderr; a second one raises
    KeyboardInterrupt at once. A signal ignored since the start stays ignored. Handlers are
    restored on exit. Outside the main thread it does nothing."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(number, frame):
        if flag:
            raise KeyboardInterrupt
        flag.signal_name = signal.Signals(number).name
        if notice:
            # os.write, not print: a handler may run in the middle of another write to stderr
            os.write(2, f"\n{flag.signal_name}: {notice}\n".encode())

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS
                if not _ignored(number)}
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _ignored(number):
    """True for a signal this process was started ignoring (nohup, `cmd &` in a script):
    by convention it keeps ignoring it."""
    return signal.getsignal(number) is signal.SIG_IGN


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM during the block (the renames that put a run's outputs in
    place), then deliver them to the handlers of before: a Ctrl-C there acts just after
    the block, so a run's outputs are all old or all new. Outside the main thread it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {number: signal.signal(number, lambda number, frame: held.append(number))
                for number in STOP_SIGNALS if not _ignored(number)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in held:
            signal.raise_signal(number)
