"""The `logreg` program: `python -m logreg_cli` and the console script both start here.

Nothing heavy is imported before the try below (numpy, Pillow and click take about 80 ms
to import), so a Ctrl-C at any moment of the program ends as it does later: exit 130 and
one line on stderr, never a traceback. Once the command is over, Ctrl-C is ignored: the
interpreter's exit that is left takes milliseconds and has nothing to stop.
"""

import os  # already imported by the interpreter's start-up; signal is not (it costs ~2 ms)

EXIT_INTERRUPTED = 130


def main():
    try:
        from .cli import main as run_command

        run_command(prog_name="logreg")
    except KeyboardInterrupt:
        _ignore_ctrl_c()
        _write_stderr(b"\nInterrupted.\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        _ignore_ctrl_c()


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
    main()
