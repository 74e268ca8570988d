"""The README's "Python API" example runs as written and prints what its comments say."""

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
REPO = README.parent


def python_api_example():
    """The first python block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_python_api_example_prints_what_it_promises(tmp_path, capsys, monkeypatch):
    code = python_api_example()
    promised = [re.split(r"\)\s+# ", line, maxsplit=1)[1] for line in code.splitlines()
                if line.startswith("print(")]
    assert len(promised) == 5
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == promised
    assert sorted(os.listdir(tmp_path)) == ["sample_data", "shapes.npz"]  # no temporary left
