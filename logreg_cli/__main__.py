"""The `logreg` program: `python -m logreg_cli` and the console script both start here.

Nothing heavy is imported before the try below (numpy, Pillow and click take about 80 ms
to import), so a Ctrl-C at any moment of the program ends as it does later: exit 130 and
one line on stderr, never a traceback. Once the command is over, Ctrl-C is ignored: the
interpreter's exit that is left takes milliseconds and has nothing to stop.
"""

import os  # already imported by the interpreter's start-up; signal is not (it costs ~2 ms)
import sys

EXIT_INTERRUPTED = 130
_swallowed_ctrl_c = []  # not empty once a Ctrl-C was caught by _ctrl_c_in_a_callback


def main():
    try:
        sys.unraisablehook = _ctrl_c_in_a_callback
        from .cli import main as run_command

        run_command(prog_name="logreg")
    except SystemExit as ending:
        _ignore_ctrl_c()
        if _swallowed_ctrl_c and ending.code != EXIT_INTERRUPTED:
            _interrupted()  # the command ended before the redelivered Ctrl-C arrived
        raise
    except BaseException as error:
        if not _caused_by_ctrl_c(error):
            raise
        _interrupted()
    finally:
        _ignore_ctrl_c()


def _interrupted():
    _ignore_ctrl_c()
    _write_stderr(b"\nInterrupted.\n")
    raise SystemExit(EXIT_INTERRUPTED) from None


def _caused_by_ctrl_c(error):
    """True for a KeyboardInterrupt, or an error raised because of one: Python 3.11 turns a
    KeyboardInterrupt in a class's __set_name__ (as while importing `platform`) into a
    RuntimeError caused by it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _ctrl_c_in_a_callback(unraisable):
    """sys.unraisablehook. Python swallows an exception raised in a weakref callback or a
    __del__ method (it prints "Exception ignored in ..."), so a Ctrl-C that lands there
    would be lost: interrupting imports, importlib's module-lock callbacks were seen to eat
    it, and `predict -` then went on waiting for stdin. Deliver it again instead, to be
    raised in the code that runs next."""
    if _caused_by_ctrl_c(unraisable.exc_value):
        _swallowed_ctrl_c.append(True)
        _deliver_ctrl_c_after_the_hook()
        return
    sys.__unraisablehook__(unraisable)


def _deliver_ctrl_c_after_the_hook():
    """Send SIGINT to the main thread from a helper thread, once the main thread has left
    this hook. Not from the hook itself: signal.raise_signal runs the handler at once, and
    its KeyboardInterrupt, raised inside the hook, was swallowed once more ("Exception
    ignored in sys.unraisablehook") and the command went on to exit 0."""
    import signal
    import threading
    import time

    hook_code = _ctrl_c_in_a_callback.__code__
    main_id = threading.main_thread().ident

    def send():
        for _ in range(5000):  # at most ~5 s; the hook returns within microseconds
            frame = sys._current_frames().get(main_id)
            while frame is not None and frame.f_code is not hook_code:
                frame = frame.f_back
            if frame is None:
                break
            time.sleep(0.001)
        signal.pthread_kill(main_id, signal.SIGINT)  # also wakes a blocking read

    try:
        threading.Thread(target=send, name="deliver Ctrl-C", daemon=True).start()
    except RuntimeError:  # the interpreter is shutting down: nothing is left to stop
        pass


def _ignore_ctrl_c():
    """Best effort: when memory has run out even this import may fail, and then the exit
    goes on without it."""
    try:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (MemoryError, SystemError, ImportError):
        pass


def _write_stderr(data):
    try:
        os.write(2, data)  # not sys.stderr: the interrupt may have come in the middle of a write
    except OSError:
        pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # pressed as main() was entered, before its own try
        _interrupted()
