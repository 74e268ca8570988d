"""Connecting to a Dask cluster (`--scheduler`, `--scheduler-file`): the one place that
starts or joins one. dask.distributed is imported here only, when a command asks for it.

    with connect("local", None, jobs=2) as client:      # a LocalCluster of 2 processes
        ...
    with connect("tcp://10.0.0.5:8786", None) as client:  # an existing scheduler
    with connect(None, "scheduler.json") as client:       # what dask-jobqueue/dask-mpi wrote

Errors (a LogregError, one line naming the option): a scheduler that does not answer
within CONNECT_TIMEOUT seconds, a scheduler file that is missing or unreadable, an address
that is not one, both options at once.
"""

import logging
from contextlib import contextmanager
from pathlib import Path

from . import extras
from .errors import OptionError, first_line

# Seconds to wait for a scheduler's answer before giving up (an unreachable address is
# one line and exit 2 after this long, not a hang).
CONNECT_TIMEOUT = 5
# distributed's own log lines (worker restarts, closing comms) stay off the user's stderr:
# what matters reaches the user as one line of ours.
QUIET_LOG_LEVEL = logging.CRITICAL


def wanted(scheduler, scheduler_file):
    """True when --scheduler or --scheduler-file asks for a cluster."""
    return scheduler is not None or scheduler_file is not None


def check_options(scheduler, scheduler_file):
    """Raise OptionError when both --scheduler and --scheduler-file are given."""
    if scheduler is not None and scheduler_file is not None:
        raise OptionError("--scheduler and --scheduler-file cannot be used together; "
                          "choose one")


def option_name(scheduler, scheduler_file):
    """The option a message about the cluster names: '--scheduler ADDRESS' or
    '--scheduler-file FILE'."""
    if scheduler_file is not None:
        return f"--scheduler-file {scheduler_file}"
    return f"--scheduler {scheduler}"


@contextmanager
def connect(scheduler, scheduler_file=None, jobs=None):
    """Yield a distributed.Client for --scheduler / --scheduler-file, closed on exit.

    scheduler: "local" (a LocalCluster of `jobs` one-thread worker processes on this machine,
    default: the cores this process may use; it and its workers end with the block, and the
    workers exit by themselves if this process is killed), or an address such as
    "tcp://host:8786" of a running scheduler. scheduler_file: the JSON file a scheduler
    wrote (`dask scheduler --scheduler-file FILE`, dask-jobqueue, dask-mpi).
    Raises OptionError (one line) for both or neither given, a missing scheduler file, or a
    scheduler that cannot be reached within CONNECT_TIMEOUT seconds; LogregError when the
    dask extra is not installed (extras.require).
    """
    check_options(scheduler, scheduler_file)
    if not wanted(scheduler, scheduler_file):
        raise OptionError("a cluster needs --scheduler ADDRESS or --scheduler-file FILE")
    needed_for = "--scheduler-file" if scheduler_file is not None else "--scheduler"
    distributed = extras.require("distributed", needed_for)
    with _quiet_logs():
        if scheduler == "local":
            with _local_cluster(distributed, jobs) as cluster:
                with _client(distributed, cluster, "--scheduler local") as client:
                    yield client
        else:
            name = option_name(scheduler, scheduler_file)
            address = scheduler if scheduler_file is None else _address_in(scheduler_file)
            _probe(address, name)
            with _client(distributed, address, name) as client:
                yield client


@contextmanager
def _local_cluster(distributed, jobs):
    from .threads import usable_cores

    cluster = distributed.LocalCluster(
        n_workers=jobs or usable_cores(), threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None, silence_logs=QUIET_LOG_LEVEL,
        # without a dashboard the scheduler still serves HTTP (health, metrics): on a free
        # port, not on 8787 with a warning when another cluster has it
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        preload=[__name__])  # dask_setup below, in each worker process
    try:
        yield cluster
    finally:
        cluster.close()


def dask_setup(worker):
    """Run by Dask in each worker process of a LocalCluster as it starts (preload).

    The workers share logreg's terminal process group, so a Ctrl-C at the terminal reaches
    them too; logreg itself decides what Ctrl-C does (finish the epoch, save, exit 130) and
    closes them after. So they ignore SIGINT, rather than die with a traceback each."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _client(distributed, address, name):
    """A Client of address (a scheduler's address or a LocalCluster): actor calls go
    straight to the workers (direct_to_workers), not through the scheduler."""
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                    direct_to_workers=True)
    except (OSError, TimeoutError, ValueError) as error:
        raise OptionError(f"{name}: cannot reach the scheduler within {CONNECT_TIMEOUT} s "
                          f"({first_line(error)})") from None
    try:
        yield client
    finally:
        client.close()


def _probe(address, name):
    """Raise OptionError for an address that is not one, at once when nothing listens at a
    tcp:// (or tls://) address (a refused connection) rather than after Dask's
    CONNECT_TIMEOUT seconds of retries, and after CONNECT_TIMEOUT seconds when a tcp://
    listener says nothing (a Dask scheduler speaks first; distributed's Client would wait
    for its handshake for ever)."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    if "://" not in address and ":" not in address:
        raise OptionError(f"{name}: not a scheduler address; give tcp://HOST:PORT or local")
    try:
        protocol, location = parse_address(address)
        host, port = parse_host_port(location)
    except ValueError:
        raise OptionError(f"{name}: not a scheduler address; give tcp://HOST:PORT or "
                          "local") from None
    if protocol not in ("tcp", "tls"):
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as probe:
            if protocol == "tcp" and not probe.recv(1):
                raise ConnectionResetError(0, "closed without a word")
    except OSError as error:
        why = (f"no answer within {CONNECT_TIMEOUT} s" if isinstance(error, TimeoutError)
               else error.strerror or str(error))
        raise OptionError(f"{name}: cannot reach the scheduler ({why})") from None


def _address_in(path):
    """The scheduler's address in a scheduler file; OptionError naming the file when it is
    missing or not one."""
    import json

    from .npzfile import open_regular_file

    path = Path(path)
    try:  # a FIFO or device would block or never end: refused unread, by what it is
        with open_regular_file(path, lambda kind: OptionError(f"--scheduler-file {path}: "
                                                              f"{kind}"),
                               "a scheduler file (the JSON a scheduler writes)") as file:
            address = json.loads(file.read().decode("utf-8")).get("address")
    except OptionError:
        raise
    except FileNotFoundError:
        raise OptionError(f"--scheduler-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as error:
        raise OptionError(f"--scheduler-file {path}: not a scheduler file "
                          f"({first_line(error)})") from None
    if not isinstance(address, str):
        raise OptionError(f"--scheduler-file {path}: not a scheduler file (no address)")
    return address


@contextmanager
def _quiet_logs():
    """The loggers of distributed and of what it runs on (tornado, asyncio) at
    QUIET_LOG_LEVEL for the block, then as they were. distributed gives some of its own
    loggers a level of their own (distributed.client: warning), which the parent's level
    does not override, so each is set."""
    families = ("distributed", "tornado", "asyncio")
    loggers = [logging.getLogger(name) for name in families] + [
        logger for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
        and name.startswith(tuple(f"{family}." for family in families))]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(QUIET_LOG_LEVEL)
    try:
        yield
    finally:
        for logger, level in levels:
            logger.setLevel(level)
