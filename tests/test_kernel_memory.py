"""issue 13 part 2: the in-memory/streamed choice respects the memory the process may really
use: MemAvailable, its cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) and
RLIMIT_AS. Each source is faked here."""

import resource

import pytest

from logreg_cli import features
from logreg_cli.features import available_memory, choose_streaming

GB = 1 << 30


def fake_sources(tmp_path, mem_available=64 * GB, cgroup=None, v1=None, own=None,
                 vm_size=100 << 20):
    """Paths for available_memory: meminfo, a cgroup root, /proc/self/cgroup and status.
    cgroup/v1: (limit text, usage) of a v2 / v1 memory cgroup; own: the process's cgroup
    path (files then go under it)."""
    (tmp_path / "meminfo").write_text(f"MemTotal: 1 kB\nMemAvailable: {mem_available // 1024} kB\n")
    (tmp_path / "status").write_text(f"Name: python\nVmSize: {vm_size // 1024} kB\n")
    root = tmp_path / "cgroup"
    root.mkdir()
    where = (own or "").lstrip("/")
    if cgroup is not None:
        (root / where).mkdir(parents=True, exist_ok=True)
        (root / where / "memory.max").write_text(f"{cgroup[0]}\n")
        (root / where / "memory.current").write_text(f"{cgroup[1]}\n")
        (tmp_path / "self").write_text(f"0::/{where}\n")
    elif v1 is not None:
        (root / "memory" / where).mkdir(parents=True, exist_ok=True)
        (root / "memory" / where / "memory.limit_in_bytes").write_text(f"{v1[0]}\n")
        (root / "memory" / where / "memory.usage_in_bytes").write_text(f"{v1[1]}\n")
        (tmp_path / "self").write_text(f"4:memory:/{where}\n1:cpu:/\n")
    else:
        (tmp_path / "self").write_text("0::/\n")
    return dict(meminfo=tmp_path / "meminfo", cgroup_root=root, self_cgroup=tmp_path / "self",
                self_status=tmp_path / "status")


@pytest.fixture
def no_rlimit(monkeypatch):
    monkeypatch.setattr(features.resource, "getrlimit",
                        lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.mark.parametrize("kind, sources, expected", [
    ("free memory only", {}, 64 * GB),
    ("cgroup v2 limit", {"cgroup": (2 * GB, GB // 2)}, GB + GB // 2),
    ("cgroup v2 limit of the process's own cgroup", {"cgroup": (2 * GB, GB), "own": "/a/b"}, GB),
    ("cgroup v2 without a limit", {"cgroup": ("max", GB)}, 64 * GB),
    ("cgroup v1 limit", {"v1": (3 * GB, GB), "own": "/docker/x"}, 2 * GB),
    ("cgroup v1 without a limit", {"v1": (9223372036854771712, GB)}, 64 * GB),
    ("free memory below the cgroup's room", {"cgroup": (100 * GB, 0)}, 64 * GB),
])
def test_available_memory_is_the_least_room(tmp_path, no_rlimit, kind, sources, expected):
    assert available_memory(**fake_sources(tmp_path, **sources)) == expected, kind


def test_available_memory_respects_rlimit_as(tmp_path, monkeypatch):
    monkeypatch.setattr(features.resource, "getrlimit", lambda which: (
        (3 * GB, resource.RLIM_INFINITY) if which == resource.RLIMIT_AS else (-1, -1)))
    sources = fake_sources(tmp_path, cgroup=(8 * GB, 0), vm_size=GB)
    assert available_memory(**sources) == 2 * GB


@pytest.mark.parametrize("limit", ["cgroup", "rlimit"])
def test_a_limit_below_the_free_memory_makes_training_stream(tmp_path, monkeypatch, limit):
    # 400 MB of uint8 X: in memory needs 1.1 x 400 + 150 = 590 MB; 64 GB are free
    sources = fake_sources(tmp_path, cgroup=(GB, GB - (500 << 20)) if limit == "cgroup" else None,
                           vm_size=GB)
    rlimit = (GB + (500 << 20)) if limit == "rlimit" else resource.RLIM_INFINITY
    monkeypatch.setattr(features.resource, "getrlimit", lambda which: (rlimit, rlimit))
    monkeypatch.setattr(features, "available_memory",
                        lambda real=available_memory: real(**sources))
    streamed, reason = choose_streaming(32_552, 12288)
    assert streamed, reason
    assert reason == "X is 381.5 MB as uint8; exceeds the 500.0 MB available"
    assert choose_streaming(20_000, 12288)[0] is False  # 234 MB: 408 MB needed
