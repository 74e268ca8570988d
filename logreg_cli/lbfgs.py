"""L-BFGS for a smooth objective of a flat float64 vector (or any vector with +, -, scalar
* and @ as the inner product, as core's Gram-space vectors): the two-loop recursion and a
line search that satisfies the strong Wolfe conditions (Nocedal & Wright, Numerical
Optimization, algorithms 7.4, 3.5 and 3.6). numpy only; core.py runs it on the
logistic-regression cost.
"""

import math

import numpy as np

MEMORY = 10  # (s, y) pairs kept, as scipy's and scikit-learn's default
SUFFICIENT_DECREASE, CURVATURE = 1e-4, 0.9  # Wolfe's c1 and c2 for quasi-Newton steps
LINE_SEARCH_EVALUATIONS = 30


def inner(u, v):
    """u . v as a float: float64 ndarrays without BLAS, other vectors by their own @.

    A dot product of a few thousand floats is over before a second BLAS thread has
    started; on a busy machine OpenBLAS's threads made each one take milliseconds, more
    than the L-BFGS iteration's whole pass over X.
    """
    if isinstance(u, np.ndarray):
        return float(np.einsum("i,i->", u, v))
    return float(u @ v)


class TwoLoop:
    """The L-BFGS inverse-Hessian estimate H from the last MEMORY pairs s = x' - x,
    y = g' - g (float64 vectors); direction(g) = -H g (the two-loop recursion), with
    H0 = (s.y / y.y) I from the latest pair (the identity before any pair)."""

    def __init__(self, memory=MEMORY):
        self.memory = memory
        self.pairs = []  # (s, y, 1 / y.s), oldest first

    def remember(self, s, y):
        """Add a pair; one without positive curvature (y.s <= 0, rounding) is skipped."""
        curvature = inner(y, s)
        if curvature > 0 and math.isfinite(curvature):
            self.pairs.append((s, y, 1.0 / curvature))
            del self.pairs[: -self.memory]

    def direction(self, g):
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * inner(s, q)
            q -= alpha * y
            alphas.append(alpha)
        if self.pairs:
            s, y, _ = self.pairs[-1]
            q *= inner(s, y) / inner(y, y)
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas)):
            beta = rho * inner(y, q)
            q += (alpha - beta) * s
        return -q


def wolfe_step(evaluate, f0, slope0, step):
    """A step a > 0 along a descent direction with f(a) <= f0 + c1 a slope0 and
    |f'(a)| <= c2 |slope0| (strong Wolfe), starting from `step` and doubling.

    evaluate(a) -> (f, g, slope) at x + a p (slope = g.p). Returns (a, f, g), or None when
    no such step is found within LINE_SEARCH_EVALUATIONS evaluations (rounding has the
    last word: no step decreases f any more).
    """
    budget = [LINE_SEARCH_EVALUATIONS]

    def probe(a):
        budget[0] -= 1
        return (a, *evaluate(a))

    def sufficient(point):
        a, f = point[0], point[1]
        return math.isfinite(f) and f <= f0 + SUFFICIENT_DECREASE * a * slope0

    def flat(point):
        return abs(point[3]) <= -CURVATURE * slope0

    previous = (0.0, f0, None, slope0)
    a = step
    while budget[0] > 0:
        point = probe(a)
        if not sufficient(point) or (previous[0] > 0 and point[1] >= previous[1]):
            return _zoom(probe, budget, previous, point, sufficient, flat)
        if flat(point):
            return point[:3]
        if point[3] >= 0:
            return _zoom(probe, budget, point, previous, sufficient, flat)
        previous, a = point, 2.0 * a
    return None


def _zoom(probe, budget, low, high, sufficient, flat):
    """Algorithm 3.6: low satisfies sufficient decrease with the lowest f so far; the
    interval between low and high holds a strong-Wolfe step. Points are (a, f, g, slope)."""
    while budget[0] > 0:
        a = _cubic_minimum(low, high)
        if not abs(high[0] - low[0]) > 1e-16 * max(1.0, abs(low[0])):
            return None
        point = probe(a)
        if not sufficient(point) or point[1] >= low[1]:
            high = point
            continue
        if flat(point):
            return point[:3]
        if point[3] * (high[0] - low[0]) >= 0:
            high = low
        low = point
    return None


def _cubic_minimum(low, high):
    """The minimiser of the cubic through both points' values and slopes, kept in the
    middle 80 % of the interval (its midpoint when the cubic has none)."""
    (a_lo, f_lo, _, d_lo), (a_hi, f_hi, _, d_hi) = low, high
    width = a_hi - a_lo
    midpoint = a_lo + 0.5 * width
    if not math.isfinite(f_hi) or d_hi is None or not math.isfinite(d_hi):
        return midpoint
    d1 = d_lo + d_hi - 3.0 * (f_lo - f_hi) / (a_lo - a_hi)
    radicand = d1 * d1 - d_lo * d_hi
    if radicand < 0:
        return midpoint
    d2 = math.copysign(math.sqrt(radicand), width)
    denominator = d_hi - d_lo + 2.0 * d2
    if denominator == 0:
        return midpoint
    a = a_hi - width * (d_hi + d2 - d1) / denominator
    lowest, highest = sorted((a_lo + 0.1 * width, a_hi - 0.1 * width))
    return min(max(a, lowest), highest) if math.isfinite(a) else midpoint
