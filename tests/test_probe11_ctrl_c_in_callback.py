"""probe11: a Ctrl-C that lands in a weakref callback or a __del__ (issue 11, case 16's kind).

Python cannot raise there: it reports the KeyboardInterrupt as "Exception ignored in ..."
and goes on. The entry point's sys.unraisablehook delivers it again; it used to do so with
signal.raise_signal inside the hook itself, where the new KeyboardInterrupt was swallowed
once more, so the command printed a traceback and ended with exit 0 (seen with `explain`
interrupted 50 ms after its start). The callbacks are made to raise on purpose here, in the
main thread while the command runs and in another thread while predict waits on stdin.
"""

import signal
import subprocess
import sys
import textwrap

import pytest

from tiny_models import subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# Runs the real entry point, main(), after arranging for a weakref callback to raise
# KeyboardInterrupt: in the main thread as the model is loaded, or in a timer thread.
RUNNER = textwrap.dedent("""
    import sys, threading, weakref
    from logreg_cli import __main__ as entry, model

    class Thing:
        pass

    def interrupted(_):
        raise KeyboardInterrupt

    things = [Thing()]
    refs = [weakref.ref(things[0], interrupted)]
    where, *argv = sys.argv[1:]
    if where == "main-thread":
        load_model = model.load_model
        def load_model_and_drop_the_thing(*args, **kwargs):
            things.clear()  # the callback runs here, in the main thread
            return load_model(*args, **kwargs)
        model.load_model = load_model_and_drop_the_thing
    else:
        threading.Timer(0.3, things.clear).start()
    sys.argv = ["logreg", *argv]
    try:
        entry.main()
    finally:
        sys.stdout.flush()
""")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("callback")
    write_class_folders(root / "data", ["blue", "red"], 2)
    return train_model(root / "data", root / "m.npz", epochs=1)


@pytest.mark.parametrize("where, command", [
    ("main-thread", ["inspect"]),
    ("main-thread", ["predict", "-", "-m"]),
    ("other-thread", ["predict", "-", "-m"]),
])
def test_a_ctrl_c_swallowed_in_a_callback_still_ends_with_130_and_one_line(model, where,
                                                                          command):
    process = subprocess.Popen([sys.executable, "-c", RUNNER, where, *command, model],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=subprocess_env(),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        try:
            process.wait(timeout=20)  # stdin stays open: predict waits for paths
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the Ctrl-C was lost: still running 20 s later\n"
                        + process.stderr.read().decode())
        stderr = process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    assert stderr.split() == ["Interrupted."]
    assert process.returncode == 130
