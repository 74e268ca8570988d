"""Threads that fit the problem: BLAS threads and the fused kernel's threads (issue 13.3).

On a busy 2-core machine OpenBLAS's default threads spin-wait on tiny matrix products:
the exercise's 2000 epochs took 0.17-0.70 s with them and 0.05-0.09 s with one thread.
So products under LARGE_PRODUCT multiply-adds run on one BLAS thread; larger ones, and
the fused kernel over a large X in memory, use the cores this process may run on, at most
--jobs. threadpoolctl (imported only when training) sets the BLAS limit.
"""

import os
from contextlib import contextmanager
from dataclasses import replace

from . import core

# Multiply-adds of one BLAS call from which a second thread pays for its start and sync
# (tests/bench/bench_threads.py).
LARGE_PRODUCT = 1 << 23
# Pixels of X in memory from which the fused kernel runs its blocks in several threads
# (an epoch of at least ~10 ms on one core).
LARGE_KERNEL = 1 << 25


def usable_cores():
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_threads(m, n, c, config, streamed=False, jobs=None, cores=None):
    """(BLAS threads, kernel threads) for training on m x n X with c outputs.

    The largest product of an epoch: one kernel block (rows of about core.KERNEL_BYTES)
    times W for full batch, one mini-batch times W, or K alpha (m x m x c) in the Gram
    space. Below LARGE_PRODUCT it runs on one BLAS thread. The fused kernel runs its blocks
    in threads (each product then on one BLAS thread) when X is in memory, full batch, on
    the plain method, and has at least LARGE_KERNEL pixels (its threads wait without
    spinning, so they run even on a busy machine). jobs (--jobs) caps both. cores: the
    usable cores (default: this process's). The BLAS thread count can change the float32
    sums of a product, so it depends only on the problem, jobs and the cores, never on the
    machine's load: the same command on the same machine gives the same weights.
    """
    cores = cores or usable_cores()
    limit = min(cores, jobs or cores)
    method = core.choose_method(m, n, c, config, streamed)
    full_batch = config.full_batch(m)
    if method == "gram":
        product = m * m * c
    elif full_batch:
        product = min(m, core.KERNEL_BYTES // (4 * max(n, 1))) * n * c
    else:
        product = config.batch_size * n * c
    kernel = limit if method == "plain" and full_batch and m * n >= LARGE_KERNEL else 1
    blas = 1 if product < LARGE_PRODUCT or kernel > 1 else limit
    return blas, kernel


@contextmanager
def blas_limited(threads):
    """Run the block with at most `threads` BLAS threads (threadpoolctl), then restore."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def train(X, y, n_classes, config, jobs=None, **options):
    """core.train (same arguments; options: its keywords) with the BLAS and kernel
    threads choose_threads picks for this problem, at most jobs: what `logreg train`
    does, for every caller of the library (the estimator too). Returns the core.Fit."""
    m, n = X.shape
    blas, kernel = choose_threads(m, n, core.n_outputs(n_classes), config, core.is_streamed(X),
                                  jobs)
    with blas_limited(blas):
        return core.train(X, y, n_classes, replace(config, threads=kernel), **options)
