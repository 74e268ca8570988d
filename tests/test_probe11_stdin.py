"""probe11: image bytes on stdin take bounded memory (issue 11, cases 5, 7 and 13's kind).

`predict -` and `explain -` held every byte of stdin in memory: a PNG signature followed by
an endless stream (or `explain - < /dev/zero`) grew until the kernel's OOM killer ended the
command. Now the stream is refused, one line, once it passes MAX_STDIN_IMAGE_BYTES, and
predict goes on with its other inputs (exit 1). The child runs under RLIMIT_AS, so that the
old code failed with "not enough memory" here instead of taking the machine's memory.
"""

import resource
import subprocess
import threading

import pytest

from logreg_cli.predicting import MAX_STDIN_IMAGE_BYTES
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ADDRESS_SPACE_LIMIT = 1500 << 20  # enough for logreg and a full 256 MB image buffer


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory):
    root = tmp_path_factory.mktemp("stdin")
    paths = write_class_folders(root / "data", ["blue", "red"], 3)
    return train_model(root / "data", root / "model.npz", epochs=3), paths[0]


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_with_endless_stdin(args, head):
    """Run logreg with stdin = head followed by zeros for as long as it reads."""
    process = subprocess.Popen(logreg_command(*args), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=subprocess_env(), preexec_fn=limit_memory)
    block = bytes(1 << 20)

    def feed():
        try:
            process.stdin.write(head)
            while True:
                process.stdin.write(block)
        except OSError:  # the command closed stdin or ended: it stopped reading
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    process.wait(timeout=120)
    feeder.join(timeout=30)
    process.stdin.close()
    return process.returncode, stdout.decode(), stderr.decode().splitlines()


LINE = (f"Error: -: more than {MAX_STDIN_IMAGE_BYTES >> 20} MB of image bytes on stdin "
        "(give the image as a file)")


def test_predict_refuses_endless_image_bytes_and_answers_the_other_inputs(model_and_image):
    model, image = model_and_image
    code, stdout, stderr = run_with_endless_stdin(
        ["predict", "-", str(image), "-m", str(model)], PNG_SIGNATURE)
    assert stderr == [LINE]
    assert code == 1
    assert [line.split("\t")[0] for line in stdout.splitlines()] == [str(image)]


@pytest.mark.parametrize("head", [PNG_SIGNATURE, b""], ids=["png-signature", "dev-zero"])
def test_explain_refuses_endless_stdin(model_and_image, head):
    model, _ = model_and_image
    code, stdout, stderr = run_with_endless_stdin(["explain", "-", "-m", str(model)], head)
    assert (code, stdout, stderr) == (2, "", [LINE])


def test_an_image_on_stdin_below_the_limit_is_still_read(model_and_image):
    model, image = model_and_image
    for command in (["predict", "-"], ["explain", "-", "--format", "json"]):
        done = subprocess.run(logreg_command(*command, "-m", model), stdin=open(image, "rb"),
                              capture_output=True, env=subprocess_env(), timeout=60)
        assert done.returncode == 0 and done.stderr == b"", done.stderr
        assert done.stdout.startswith(b"-\t") or b'"image": "-"' in done.stdout
