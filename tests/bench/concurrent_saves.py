"""Concurrent writers of one path: how many saves fail (issue 11, case 2).

    python tests/bench/concurrent_saves.py [PROCESSES [SAVES_EACH]]     # default 4 x 2000

Each process saves the same file SAVES_EACH times with logreg_cli.atomic.write_atomically;
prints the saves that raised, out of PROCESSES x SAVES_EACH, and checks the survivor.
"""

import multiprocessing
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_files_concurrency import PAYLOAD_BYTES, save_many  # noqa: E402


def run(folder, processes, saves):
    """(failed saves, their distinct messages, the survivor is one writer's whole file)."""
    target = Path(folder) / "model.npz"
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        results = pool.starmap(save_many, [(target, i, saves) for i in range(processes)])
    failures = [message for result in results for message in result]
    survivor = target.read_bytes()
    whole = len(survivor) == PAYLOAD_BYTES and len(set(survivor)) == 1
    return len(failures), sorted(set(failures)), whole


if __name__ == "__main__":
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    saves = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory(dir=".") as folder:
        lost, messages, whole = run(folder, processes, saves)
        left = [p.name for p in Path(folder).iterdir() if p.name != "model.npz"]
    print(f"{lost} of {processes * saves} saves failed; survivor whole: {whole}; "
          f"files left: {len(left)}")
    for message in messages[:3]:
        print("  ", message)
