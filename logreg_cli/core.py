"""The vectorized core: logistic (sigmoid) and softmax regression by gradient descent.

The maths only: activations, the stable cost, gradients, schedules, the primal and dual
(Gram) descent loops. numpy only; no files, no pixels, no printing: X is float32 features,
in memory, or rows converted a block at a time from uint8 pixels (RowBlocks: any object
with shape, in_memory, blocks(reuse) and take(rows), as features.RowBlocks), in memory or
streamed from disk; features.py turns pixels into features. fused_gradient is the one
kernel of a full-batch epoch over either.
Shapes: X is m x n (one image per row, float32),
y holds m class indices, W is n x c and b has c entries, where c = 1 for two classes
(one sigmoid, as in the classic exercise) and c = k for k > 2 classes (softmax).

Binary:      z = X w + b,  a = sigmoid(z),  J = mean(-(y log a + (1-y) log(1-a)))
Multiclass:  Z = X W + b,  A = softmax(Z),  J = mean(-log A[i, y_i])
Both:        dZ = A - Y,   dW = X^T dZ / m (+ l2/m W),   db = mean(dZ)
"""

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import LogregError, ModelFileError, TrainingDiverged
from .options import DESCENT_OPTIONS, SCHEDULES, check, default
DEFAULT_DECAY_RATE = {"none": 1.0, "inverse": 1.0, "exponential": 0.95, "sqrt": 1.0, "linear": 1.0}


# ---------------------------------------------------------------- activations and cost


def sigmoid(z):
    """1 / (1 + exp(-z)) without overflow: exp is only ever taken of -|z|."""
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(Z):
    """Row-wise softmax of an m x k array; subtracting the row max keeps exp <= 1."""
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(Z):
    """Row-wise log(softmax(Z)) computed as Z - logsumexp(Z), never log of a probability."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def probabilities(Z):
    """m x c scores -> m x k class probabilities (k = 2 when c = 1).

    The negative class of one sigmoid gets sigmoid(-z), not 1 - sigmoid(z): past z = 37,
    1 - sigmoid(z) rounds to 0 in float64 while sigmoid(-z) keeps its value (4e-18 at 40).
    """
    if Z.shape[1] == 1:
        return np.column_stack([sigmoid(-Z[:, 0]), sigmoid(Z[:, 0])])
    return softmax(Z)


def targets(y, c):
    """Labels as the loss wants them: 0./1. floats for one sigmoid (c = 1), else indices."""
    if c == 1 and y.dtype != np.float64:
        return (y == 1).astype(np.float64)
    return y


def label_signs(y):
    """+1. for label 0 and -1. for label 1 (m float64): the sign that turns a binary
    cross-entropy into softplus(sign * z)."""
    return 1.0 - 2.0 * targets(y, 1)


def binary_losses(z, signs):
    """Cross-entropy of one sigmoid's scores z (float64, any shape whose last axis is the
    m images) for labels given as label_signs: softplus(-z) for label 1, softplus(z) for 0.

    Each term is >= 0 and exact for any z. The textbook softplus(z) - y z subtracts two
    numbers of size |z|, which leaves only rounding noise (even a negative cost) once |z|
    is past 2^53 / m.
    """
    return np.logaddexp(0.0, signs * z)


def example_losses(Z, y):
    """Per-image cross-entropy (m float64) of scores Z (m x c float64) for labels y (m ints).

    The one formula of the cost (training), the log-loss (evaluate) and the validation
    cost: one sigmoid: binary_losses; softmax: logsumexp(Z) - Z[y]. Both are computed
    from Z, never as the log of a probability, so a confident mistake costs about |z|.
    """
    if Z.shape[1] == 1:
        return binary_losses(Z[:, 0], label_signs(y))
    return softmax_losses(log_softmax(Z), y)


def softmax_losses(log_p, y):
    """-log p of each image's label (m) from row-wise log-probabilities log_p (m x k)."""
    return -log_p[np.arange(log_p.shape[0]), y]


def log_loss(Z, y):
    """Mean cross-entropy of scores Z (m x c) for labels y (m ints): example_losses' mean."""
    return float(np.mean(example_losses(Z, y))) if len(y) else 0.0


def cost_and_delta(Z, y, sample_weight=None):
    """Mean cross-entropy of scores Z (m x c, float64) for labels y, and dJ/dZ * m.

    Per image the loss is that of example_losses. Returns (cost, dZ) where dZ = A - Y
    (m x c), weighted per image if sample_weight.
    """
    m = Z.shape[0]
    if Z.shape[1] == 1:
        signs = label_signs(y)
        signed_z = signs * Z[:, 0]
        losses = binary_losses(Z[:, 0], signs)
        # a - y = signs * sigmoid(signed_z) = signs * exp(signed_z - softplus(signed_z)):
        # the exponent is <= 0, so it never overflows, and it is exact for either label
        dZ = (signs * np.exp(signed_z - losses))[:, None]
    else:
        log_p = log_softmax(Z)
        losses = softmax_losses(log_p, y)
        dZ = np.exp(log_p)
        dZ[np.arange(m), y] -= 1.0
    if sample_weight is not None:
        losses = losses * sample_weight
        dZ *= sample_weight[:, None]
    return float(losses.sum()) / m, dZ


def predicted_classes(Z):
    """Class index per row of scores Z (m x c): z > 0 for one sigmoid, argmax for softmax."""
    return (Z[:, 0] > 0).astype(np.int64) if Z.shape[1] == 1 else Z.argmax(axis=1)


# ---------------------------------------------------------------- scores a float32 model can hold

# A model is usable when no image can get a score beyond this: half of float32's range, which
# leaves room for the rounding of a float32 sum of n terms. Past it, a float64 iterate is
# "not finite" for us even when float64 still holds it, because the model is saved in float32.
SCORE_LIMIT = float(np.finfo(np.float32).max) / 2


def data_extremes(X, block_rows=1024):
    """Largest |x_ij| over the rows of X (m x n float32 or RowBlocks), per feature (n float64)."""
    largest = np.zeros(X.shape[1], dtype=np.float32)
    for _, block in _row_chunks(X, block_rows):
        np.maximum(largest, np.abs(block).max(axis=0, initial=0.0), out=largest)
    return largest.astype(np.float64)


def largest_score(W, b, extremes):
    """The largest |z| any image can get from weights W (n x c) and bias b (c) when each
    feature's magnitude is at most extremes (n): max over classes of sum_j |W_jc| x_j + |b_c|.
    inf or nan when W, b or extremes are not finite."""
    if not np.isfinite(extremes).all():
        return math.inf
    with np.errstate(over="ignore", invalid="ignore"):
        reach = extremes @ np.abs(np.asarray(W, dtype=np.float64)) + np.abs(b)
    return float(reach.max())


def fits_float32(bound):
    """True when a largest_score bound keeps every score within SCORE_LIMIT (False for nan)."""
    return bound <= SCORE_LIMIT


def check_model_scores(weights, bias, extremes):
    """Raise ModelFileError unless every input's scores are finite in float32 for weights
    (n x c) and bias (c), when feature j of any input is at most extremes[j] in size (n;
    features.feature_extremes gives them for a model's scaling)."""
    bound = largest_score(weights, bias, extremes)
    if not fits_float32(bound):
        raise ModelFileError(
            f"weights too large: an image could get a score of {bound:.3g}, past the "
            f"{SCORE_LIMIT:.3g} that float32 scores can hold; its probabilities would be NaN")


# ---------------------------------------------------------------- learning-rate schedules


def learning_rate(schedule, lr0, epoch, epochs, decay_rate=None, decay_steps=1):
    """The learning rate of epoch t (counted from 0) under one of SCHEDULES.

    u = floor(t / decay_steps) makes a staircase when decay_steps > 1.
    none: lr0;  inverse: lr0 / (1 + r u);  exponential: lr0 r^u;
    sqrt: lr0 r / sqrt(u + 1);  linear: lr0 (1 - t / epochs) (ignores r and steps).
    """
    r = DEFAULT_DECAY_RATE[schedule] if decay_rate is None else decay_rate
    u = epoch // decay_steps
    if schedule == "none":
        return lr0
    if schedule == "inverse":
        return lr0 / (1.0 + r * u)
    if schedule == "exponential":
        return lr0 * r**u
    if schedule == "sqrt":
        return lr0 * r / np.sqrt(u + 1.0)
    if schedule == "linear":
        return lr0 * (1.0 - epoch / epochs)
    raise LogregError(f"unknown decay schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


# ---------------------------------------------------------------- training


@dataclass
class TrainConfig:
    """Options of gradient descent, with options.py's defaults. batch_size None means full
    batch."""

    optimizer: str = default("optimizer")
    lr: float = default("lr")
    epochs: int = default("epochs")
    decay: str = default("decay")
    decay_rate: float | None = default("decay_rate")
    decay_steps: int = default("decay_steps")
    batch_size: int | None = default("batch_size")
    l2: float = default("l2")
    seed: int = default("seed")
    method: str = "auto"  # "auto", "plain" or "gram" (full batch only)
    early_stop: int | None = default("early_stop")  # epochs without a better val cost
    threads: int = 1  # of the fused kernel, in memory (threads.choose_threads)
    tol: float = default("tol")  # lbfgs: stop when the largest |dJ/dtheta| is this or less

    def full_batch(self, m):
        """True when each epoch is one step over all m images (no --batch-size, or >= m)."""
        return self.batch_size is None or self.batch_size >= m

    def validate(self):
        """Raise OptionError (a LogregError) naming the first option out of its declared
        range (options.check)."""
        for name in DESCENT_OPTIONS:
            check(name, getattr(self, name))
        if self.method not in ("auto", "plain", "gram"):
            raise LogregError(f"unknown training method {self.method!r}")
        if self.method == "gram" and self.optimizer not in ("gd", "lbfgs"):
            raise LogregError(f"the Gram method is gradient descent's and L-BFGS's; "
                              f"--optimizer {self.optimizer} runs on the features (method plain)")

    def learning_rates(self, chunk=4096):
        """The learning rate of every epoch, as floats, computed for `chunk` epochs at a time
        (so --epochs 100000000 costs no memory before the first epoch)."""
        for start in range(0, self.epochs, chunk):
            epochs = np.arange(start, min(start + chunk, self.epochs))
            rates = learning_rate(self.decay, self.lr, epochs, self.epochs, self.decay_rate,
                                  self.decay_steps)
            yield from np.broadcast_to(np.asarray(rates, dtype=np.float64), epochs.shape).tolist()


@dataclass
class EpochStats:
    """Reported after each epoch: the cost over the training set *before* its update."""

    epoch: int
    lr: float
    cost: float
    val_cost: float | None = None  # over the validation set, with the same weights
    val_accuracy: float | None = None


@dataclass
class Fit:
    """What training produced: W (n x c float32), b (c float32) and the per-epoch history."""

    weights: np.ndarray
    bias: np.ndarray
    method: str
    history: list = field(default_factory=list)
    stopped_at: int | None = None  # epoch at which the callback or early stopping stopped
    early_stopped: bool = False
    best_epoch: int | None = None  # with validation: the epoch whose weights were kept
    weights64: np.ndarray | None = None  # W and b as the loop held them (float64)
    bias64: np.ndarray | None = None
    train_scores: np.ndarray | None = None  # X W + b of the returned weights (m x c)

    @property
    def final_cost(self):
        return self.history[-1].cost if self.history else None

    @property
    def epochs_run(self):
        """Updates applied: a stop at epoch t comes before that epoch's update."""
        return self.stopped_at if self.stopped_at is not None else len(self.history)

    @property
    def best(self):
        """The EpochStats of the kept epoch (with validation), else None."""
        return None if self.best_epoch is None else self.history[self.best_epoch]


def n_outputs(n_classes):
    """Columns of W: one sigmoid for two classes, one softmax column per class otherwise."""
    return 1 if n_classes == 2 else n_classes


@dataclass
class Validation:
    """Held-out rows scored after every epoch: X (m_v x n float32 or RowBlocks), y (m_v ints)."""

    X: object
    y: np.ndarray
    sample_weight: np.ndarray | None = None


def train(X, y, n_classes, config=None, init=None, sample_weight=None, on_epoch=None,
          validation=None, extremes=None):
    """Fit W and b to X (m x n float32, or RowBlocks) and labels y (m ints in [0, n_classes)).

    init: optional (W0 n x c, b0 c) to start from; zeros otherwise, as in the exercise.
    on_epoch(EpochStats) is called once per epoch; if it returns True training stops there.
    validation: a Validation scored each epoch with the same weights as the training cost;
    the weights of the epoch with the lowest validation cost are the ones returned, and
    config.early_stop = N stops after N epochs without a lower one.
    Full batch runs in the m x m Gram space when that is cheaper (see choose_method);
    a RowBlocks X is streamed one block of rows at a time.
    extremes: the largest |x_j| any input can have per feature (n; features.feature_extremes
    of the model's scaling; it must bound the rows of X and validation.X), by default their
    data_extremes. Raises TrainingDiverged at the first epoch whose cost is not finite or
    whose weights could give an input a score past SCORE_LIMIT (largest_score): the same
    epoch on every method. config must be valid (TrainConfig.validate): the library checks
    the options once, where they come in (api.train_settings, the estimator's fit).
    """
    config = config or TrainConfig()
    if config.early_stop is not None and validation is None:
        raise LogregError("--early-stop needs validation data (--val-split or --val)")
    m, n = X.shape
    streamed = is_streamed(X)
    if not is_rows(X) and X.dtype != np.float32:
        raise LogregError(f"features must be float32, got {X.dtype}")
    y = np.asarray(y, dtype=np.int64)
    c = n_outputs(n_classes)
    # np.array copies: the loops update W0 and b0 in place, the caller's init must not change.
    W0 = np.zeros((n, c)) if init is None else np.array(init[0], dtype=np.float64).reshape(n, c)
    b0 = np.zeros(c) if init is None else np.array(init[1], dtype=np.float64).reshape(c)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if validation is not None:
        validation = Validation(validation.X, np.asarray(validation.y, dtype=np.int64),
                                validation.sample_weight)

    if extremes is None:
        extremes = data_extremes(X)
        if validation is not None:
            extremes = np.maximum(extremes, data_extremes(validation.X))
    extremes = np.asarray(extremes, dtype=np.float64)
    diverged = _divergence_at(config, m, (W0.copy(), b0.copy()), extremes, sample_weight)
    method = choose_method(m, n, c, config, streamed)
    if is_distributed(X):
        method = "dask"
    if method == "gram":  # the m x m Gram space reads X whole, as float32 (m < n there)
        X = _whole(X)
        if validation is not None:
            validation = Validation(_whole(validation.X), validation.y, validation.sample_weight)
    full_batch = config.full_batch(m)
    if config.optimizer == "lbfgs":
        if not full_batch:
            raise LogregError("--optimizer lbfgs is full batch: it takes no --batch-size")
        loop = _gram_lbfgs_descent if method == "gram" else _lbfgs_descent
    elif method == "gram":
        plain_binary = c == 1 and not config.l2 and sample_weight is None and validation is None
        loop = _binary_gram_descent if plain_binary else _gram_descent
    elif full_batch:
        loop = _full_batch_descent
    else:
        loop = _minibatch_descent
    fit = Fit(weights=None, bias=None, method=method)
    tracker = _Tracker(fit, on_epoch, validation, config.early_stop, diverged)
    # Overflow only happens when training diverges, which the tracker reports in one line;
    # numpy's own warnings would add noise lines before it.
    with np.errstate(over="ignore", invalid="ignore"):
        W, b = loop(X, y, W0, b0, config, sample_weight, tracker, validation, extremes)
        if tracker.best_weights is not None:
            W, b = tracker.best_weights()
        fit.weights = W.astype(np.float32)  # past float32's range: inf, refused just below
        fit.bias = b.astype(np.float32)
    fit.weights64, fit.bias64 = W, b
    # The weights after the last update were never checked (each epoch checks its start).
    if not fits_float32(largest_score(fit.weights, fit.bias, extremes)):
        raise diverged(fit.epochs_run)
    fit.train_scores = scores(X, fit.weights, fit.bias)
    return fit


def _divergence_at(config, m, start, extremes, sample_weight):
    """epoch -> the TrainingDiverged to raise there (see divergence), for a run that starts
    from start = (W0, b0)."""
    # Without L2, an update moves every possible score by at most lr_t times step_reach
    # (|a - y| <= 1 per image and class, times its weight; |x_j| <= extremes_j; |db| <= 1).
    largest_weight = 1.0 if sample_weight is None else max(1.0, float(sample_weight.max()))
    step_reach = (float(extremes @ extremes) + 1.0) * largest_weight

    def diverged(epoch):
        lr_sum = math.fsum(itertools.islice(config.learning_rates(), epoch))
        data_reach = largest_score(*start, extremes) + step_reach * lr_sum
        return divergence(config, m, epoch, data_alone=fits_float32(data_reach))

    return diverged


def l2_overshoots(config, m):
    """True when the L2 part of a step alone makes W grow: it multiplies W by
    1 - lr l2 / m, which is below -1 when lr l2 / m > 2 (lr: --lr, the schedule's start)."""
    return config.lr * config.l2 / m > 2


def l2_advice(config, m):
    return (f"with --lr {config.lr:g} and {m} images each step multiplies the weights by "
            f"1 - lr*l2/m = {1 - config.lr * config.l2 / m:.3g}; use an --l2 below "
            f"{2 * m / config.lr:.3g}")


def rising_cost(costs, full_batch):
    """How a run's recorded costs (one per epoch) went the wrong way, in words, or None.

    Any method: the last cost is above the first. Full batch only (mini-batch costs are
    noisy): the mean cost over the last w epochs is above that of the w epochs before, with
    w = 2 * max(1, epochs // 20) (even, so a cost that alternates is compared phase for
    phase): gradient descent with a stable rate never raises the full-batch cost.
    A relative margin of 1e-9 ignores rounding.
    """
    def above(new, old):
        return new > old + 1e-9 * abs(old)

    if len(costs) >= 2 and above(costs[-1], costs[0]):
        return (f"the cost rose from {costs[0]:.6g} at epoch 0 to {costs[-1]:.6g} at epoch "
                f"{len(costs) - 1}")
    w = 2 * max(1, len(costs) // 20)
    if full_batch and len(costs) >= 2 * w:
        last, before = np.mean(costs[-w:]), np.mean(costs[-2 * w : -w])
        if above(last, before):
            return (f"the cost is rising at the end: {last:.6g} on average over the last {w} "
                    f"epochs, {before:.6g} over the {w} before")
    return None


def cost_warning(costs, config, m):
    """The warning for a run whose costs rose (rising_cost), naming the option most likely
    to blame (--l2 when its step overshoots, see l2_overshoots, else --lr), or None.
    Momentum and Adam may raise the full-batch cost for a while on their way down: only
    gradient descent's and L-BFGS's ends of run are held to a falling cost."""
    full_batch = config.full_batch(m) and config.optimizer in ("gd", "lbfgs")
    what = rising_cost(costs, full_batch)
    if what is None:
        return None
    if l2_overshoots(config, m):
        return f"{what}; --l2 {config.l2:g} is likely too large: {l2_advice(config, m)}"
    return f"{what}; --lr {config.lr:g} is likely too large: try a smaller --lr"


def divergence(config, m, epoch, data_alone=True):
    """The TrainingDiverged of epoch. It blames --l2 when its step overshoots
    (l2_overshoots) and the data's own steps could not have gone that far by that epoch
    (data_alone, e.g. false after one step of --lr 1e38); else --lr."""
    if l2_overshoots(config, m) and data_alone:
        return TrainingDiverged(epoch, config.lr, f"--l2 {config.l2:g}", l2_advice(config, m))
    return TrainingDiverged(epoch, config.lr)


def choose_method(m, n, c, config, streamed=False):
    """'gram' when full batch and the m x m Gram space costs clearly fewer flops, else 'plain'
    ('stream' when X is a RowBlocks: rows are read block by block, never all at once).

    Plain: 2 passes over X per epoch, ~4 m n c flops (float32).
    Gram: building K once, ~m^2 n flops in float64 (counted twice), then ~4 m^2 c per epoch.
    """
    full_batch = config.full_batch(m)
    if streamed:
        if config.method == "gram":
            raise LogregError("the Gram method needs the features in memory (not streamed)")
        return "stream"
    if config.method != "auto":
        if config.method == "gram" and not full_batch:
            raise LogregError("the Gram method needs full-batch training (no --batch-size)")
        return config.method
    if not full_batch or m >= n or config.optimizer not in ("gd", "lbfgs"):
        return "plain"  # momentum and Adam keep their state in the primal space
    gram_flops = 2.0 * m * m * n + config.epochs * 8.0 * m * m * c
    plain_flops = config.epochs * 4.0 * m * n * c
    return "gram" if gram_flops < plain_flops else "plain"


class _Tracker:
    """Per-epoch bookkeeping shared by the loops: history, divergence, validation, the best
    weights so far, early stopping and the stop request of on_epoch.

    A loop calls tracker(epoch, lr, cost, reach, val_scores, snapshot) before the epoch's
    update, where reach is largest_score of the current weights (or a function giving it),
    val_scores() gives the validation scores of the current weights and snapshot() returns
    a function that rebuilds the current (W, b) later (called for a new best only).
    """

    def __init__(self, fit, on_epoch, validation, early_stop, diverged):
        self.fit = fit
        self.diverged = diverged  # epoch -> the TrainingDiverged to raise
        self.on_epoch = on_epoch
        self.validation = validation
        self.early_stop = early_stop
        self.best_cost = np.inf
        self.best_weights = None

    def __call__(self, epoch, lr, cost, reach, val_scores=None, snapshot=None):
        if not (math.isfinite(cost) and fits_float32(reach() if callable(reach) else reach)):
            raise self.diverged(epoch)
        stats = EpochStats(epoch, float(lr), float(cost))
        stop = False
        if self.validation is not None:
            Z = val_scores()
            stats.val_cost, _ = cost_and_delta(Z, self.validation.y, self.validation.sample_weight)
            stats.val_accuracy = float(np.mean(predicted_classes(Z) == self.validation.y))
            if stats.val_cost < self.best_cost:
                self.best_cost = stats.val_cost
                self.fit.best_epoch = epoch
                self.best_weights = snapshot()
            elif self.early_stop is not None and epoch - self.fit.best_epoch >= self.early_stop:
                self.fit.early_stopped = stop = True
        self.fit.history.append(stats)
        if self.on_epoch is not None and self.on_epoch(stats):
            stop = True
        if stop:
            self.fit.stopped_at = epoch
        return stop


# ---------------------------------------------------------------- descent steps
# Each step updates the float64 iterates W (n x c) and b (c) in place from dW, the gradient
# of J in W (n x c, with its L2 part), db_sum, the bias gradient summed over the `count`
# images of the batch (c), and the epoch's learning rate lr. Momentum and Adam are the
# formulas of the Deep Learning Specialization (course 2), with the schedule's lr on top.

MOMENTUM_BETA = 0.9
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8


def descent_step(optimizer):
    """A new step function (with its own state) for optimizer "gd", "momentum" or "adam"."""
    return {"gd": _gd_step, "momentum": _MomentumStep, "adam": _AdamStep}[optimizer]()


def _gd_step():
    def step(W, b, dW, db_sum, count, lr):
        W -= lr * dW
        b -= lr / count * db_sum  # this order of the arithmetic is the exercise's, bit for bit

    return step


class _MomentumStep:
    """v = beta v + (1 - beta) dW;  W -= lr v  (and the same for b), v starting at 0."""

    def __init__(self):
        self.v_W = self.v_b = 0.0

    def __call__(self, W, b, dW, db_sum, count, lr):
        beta = MOMENTUM_BETA
        self.v_W = beta * self.v_W + (1.0 - beta) * dW
        self.v_b = beta * self.v_b + (1.0 - beta) * (db_sum / count)
        W -= lr * self.v_W
        b -= lr * self.v_b


class _AdamStep:
    """Adam, t counting steps from 1: v = b1 v + (1 - b1) g, s = b2 s + (1 - b2) g^2,
    W -= lr (v / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps), for W and b alike."""

    def __init__(self):
        self.t = 0
        self.v_W = self.s_W = self.v_b = self.s_b = 0.0

    def __call__(self, W, b, dW, db_sum, count, lr):
        self.t += 1
        db = db_sum / count
        self.v_W, self.s_W, move_W = self._moments(self.v_W, self.s_W, dW)
        self.v_b, self.s_b, move_b = self._moments(self.v_b, self.s_b, db)
        W -= lr * move_W
        b -= lr * move_b

    def _moments(self, v, s, g):
        v = ADAM_BETA1 * v + (1.0 - ADAM_BETA1) * g
        s = ADAM_BETA2 * s + (1.0 - ADAM_BETA2) * (g * g)
        v_corrected = v / (1.0 - ADAM_BETA1**self.t)
        s_corrected = s / (1.0 - ADAM_BETA2**self.t)
        return v, s, v_corrected / (np.sqrt(s_corrected) + ADAM_EPSILON)


def _frozen(W, b):
    """A snapshot of float64 iterates W, b (copied now, returned later)."""
    W, b = W.copy(), b.copy()
    return lambda: (W, b)


def _l2_cost(l2, m, squared_norm):
    return 0.5 * l2 / m * squared_norm


def fused_gradient(X, W32, b, y, sample_weight=None, threads=1):
    """One pass of the fused kernel over the rows of X, a few MB of rows at a time.

    X: m x n float32, or a RowBlocks of uint8 rows (in memory or streamed), whose blocks
    are converted into a reused float32 buffer; W32: n x c float32; b: c float64; y: m
    ints; sample_weight: m floats or None. Each block gives z = X_b W + b, dZ (the stable
    cost_and_delta) and X_b^T dZ while its rows are still in cache, so X is read once per
    epoch and never converted whole. threads > 1 (X in memory only) computes blocks in
    that many threads, each with its own buffer; the block results are added in block
    order either way, so the sums are the same, bit for bit, for any number of threads.
    Returns (sum of the per-image losses, X^T dZ as n x c float64, column sums of dZ as c
    float64); the per-block sums are accumulated in float64.
    """
    if is_distributed(X):  # each worker runs this kernel on its shard; partials summed
        return X.fused_gradient(W32, b, y, sample_weight)
    def block_gradient(block, rows):
        weights = None if sample_weight is None else sample_weight[rows]
        cost, dZ = cost_and_delta((block @ W32).astype(np.float64) + b, y[rows], weights)
        return cost * len(block), block.T @ dZ.astype(np.float32), dZ.sum(axis=0)

    if threads > 1 and not is_streamed(X):
        parts = _parallel_blocks(X, block_gradient, threads)
    else:
        parts = (block_gradient(block, slice(start, start + len(block)))
                 for start, block in kernel_blocks(X))
    return add_partials(parts, W32.shape, len(b))


def add_partials(parts, shape, c):
    """(cost sum, X^T dZ, sum dZ) partials, added in the order given, in float64: the sums
    of fused_gradient over its blocks, and of the distributed engine over its shards."""
    total_cost, grad_W, grad_b = 0.0, np.zeros(shape), np.zeros(c)
    for cost, part_W, part_b in parts:
        total_cost += cost
        grad_W += part_W
        grad_b += part_b
    return total_cost, grad_W, grad_b


def _parallel_blocks(X, function, threads):
    """function(float32 block, rows slice) of every kernel block of in-memory X, computed in
    `threads` threads (numpy and BLAS release the GIL), yielded in block order; at most
    2 x threads results wait at a time."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    m = X.shape[0]
    step = X.block_rows if is_rows(X) else _kernel_rows(X.shape[1])
    local = threading.local()

    def run(start):
        rows = slice(start, min(start + step, m))
        if not is_rows(X):
            return function(X[rows], rows)
        if getattr(local, "buffer", None) is None:
            local.buffer = np.empty((step, X.shape[1]), dtype=np.float32)
        return function(X.convert(rows.start, rows.stop, local.buffer), rows)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="logreg-kernel") as pool:
        pending = []
        for start in range(0, m, step):
            pending.append(pool.submit(run, start))
            if len(pending) >= 2 * threads:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _full_batch_descent(X, y, W, b, config, sample_weight, record, validation, extremes):
    """Full-batch descent: per epoch one pass of the fused kernel (fused_gradient).

    X is float32 in memory or a RowBlocks (uint8 rows in memory or streamed): either way
    each block of rows gives its rows' cost and its share of X^T dZ. W and b are kept in float64 (they are small), so rounding
    does not accumulate in them.
    """
    m = X.shape[0]
    X_val = None if validation is None else validation.X
    step = descent_step(config.optimizer)
    for epoch, lr in enumerate(config.learning_rates()):
        W32 = W.astype(np.float32)
        total_cost, grad_W, grad_b = fused_gradient(X, W32, b, y, sample_weight, config.threads)
        cost = total_cost / m + _l2_cost(config.l2, m, np.sum(W * W))
        if record(epoch, lr, cost, largest_score(W, b, extremes), lambda: scores(X_val, W32, b),
                  lambda: _frozen(W, b)):
            break
        step(W, b, grad_W / m + config.l2 / m * W, grad_b, m, lr)
    return W, b


def _minibatch_descent(X, y, W, b, config, sample_weight, record, validation, extremes):
    """Mini-batch descent, batches reshuffled each epoch from config.seed.

    The cost recorded for an epoch is over the whole training set before its first batch.
    X may be in memory or a RowBlocks: the batches and their arithmetic are the same, so
    streaming gives the same weights as training in memory.
    """
    m = X.shape[0]
    X_val = None if validation is None else validation.X
    rng = np.random.default_rng(config.seed)
    step = descent_step(config.optimizer)
    for epoch, lr in enumerate(config.learning_rates()):
        W32 = W.astype(np.float32)
        cost, _ = cost_and_delta(_scores(X, W32, b), y, sample_weight)  # the tracker checks it
        cost += _l2_cost(config.l2, m, np.sum(W * W))
        if record(epoch, lr, cost, largest_score(W, b, extremes), lambda: scores(X_val, W32, b),
                  lambda: _frozen(W, b)):
            break
        order = rng.permutation(m)
        for start in range(0, m, config.batch_size):
            rows = np.sort(order[start : start + config.batch_size])
            grad_W, db_sum = _batch_gradient(X, rows, W, b, y, sample_weight)
            step(W, b, grad_W + config.l2 / m * W, db_sum, len(rows), lr)
    return W, b


def _batch_gradient(X, rows, W, b, y, sample_weight):
    """X_B^T dZ / |B| (n x c float64) and the sum of dZ (c) of the mini-batch B = rows."""
    if is_distributed(X):  # the workers' fused kernel over their rows of the batch
        _, grad_W, db_sum = X.fused_gradient(W.astype(np.float32), b, y, sample_weight, rows)
        return grad_W / len(rows), db_sum
    X_batch = take_rows(X, rows)
    weights = None if sample_weight is None else sample_weight[rows]
    Z = (X_batch @ W.astype(np.float32)).astype(np.float64) + b
    _, dZ = cost_and_delta(Z, y[rows], weights)
    grad_W = (X_batch.T @ dZ.astype(np.float32)).astype(np.float64) / len(rows)
    return grad_W, dZ.sum(axis=0)


def _lbfgs_descent(X, y, W0, b0, config, sample_weight, record, validation, extremes):
    """Full-batch L-BFGS on the features (theta = (W, b) as they are): _lbfgs over a
    _FeatureSpace."""
    space = _FeatureSpace(X, y, W0, b0, config, sample_weight, validation, extremes)
    return _lbfgs(space, config, record)


def _gram_lbfgs_descent(X, y, W0, b0, config, sample_weight, record, validation, extremes):
    """Full-batch L-BFGS in the Gram space (W = s W0 + X^T A): the same iterates as
    _lbfgs_descent up to rounding, at O(m^2 c) per cost instead of O(m n c)."""
    space = _GramSpace(X, y, W0, b0, config, sample_weight, validation, extremes)
    return _lbfgs(space, config, record)


def _lbfgs(space, config, record):
    """L-BFGS (lbfgs.py) on the vectors of `space` (_FeatureSpace or _GramSpace), one
    recorded epoch per iteration (its cost before the iteration's step; lr is the step
    length that led to it). Returns the float64 (W, b) of the last iterate.

    Stops (stopped_at: the epoch's weights are the last ones) when the largest |dJ/dtheta|
    is at most config.tol, when J fell by at most config.tol * J over the last SETTLE_WINDOW
    iterations (settled), when no step lowers the cost any more (the line search fails:
    rounding), or after config.epochs iterations.
    """
    from .lbfgs import TwoLoop, inner, wolfe_step

    theta = space.start
    cost, gradient = space.objective(theta)
    history = TwoLoop()
    step = 0.0
    costs = []
    for epoch in range(config.epochs):
        if record(epoch, step, cost, space.reach(theta), space.val_scores(theta),
                  space.snapshot(theta)):
            break
        costs.append(cost)
        if settled(costs, config.tol) or space.converged(gradient, config.tol):
            record.fit.stopped_at = epoch
            break
        direction = history.direction(gradient)
        found = None
        for attempt in range(2):
            slope = inner(gradient, direction)
            if not slope < 0 or attempt:  # rounding spoilt the estimate: steepest descent
                history = TwoLoop()
                direction, slope = -gradient, -inner(gradient, gradient)
            # the first step is 1 / |g| long, as scipy's L-BFGS-B; later ones the estimate's
            first = min(1.0, 1.0 / math.sqrt(-slope)) if not history.pairs else 1.0
            found = wolfe_step(_along(space, theta, direction), cost, slope, first)
            if found is not None or not history.pairs:
                break
        if found is None:
            record.fit.stopped_at = epoch  # no step lowers the cost: as far as floats go
            break
        step, cost, new_gradient = found
        move = step * direction
        history.remember(move, new_gradient - gradient)
        theta = theta + move
        gradient = new_gradient
    return space.weights(theta)


# Iterations over which L-BFGS's relative decrease is measured (settled). One iteration's
# decrease says little: L-BFGS has slow iterations between fast ones. Over 10, a decrease
# of 1e-6 J left cat/non-cat 7e-9 and digits10 2.4e-5 above the optimum (bench_peers.py).
SETTLE_WINDOW = 10


def settled(costs, tol):
    """True when the last of the per-iteration costs is at most tol * |J| below the one
    SETTLE_WINDOW iterations before (scipy's ftol rule, over a window)."""
    if len(costs) <= SETTLE_WINDOW:
        return False
    return not costs[-1 - SETTLE_WINDOW] - costs[-1] > tol * abs(costs[-1])


def _along(space, theta, direction):
    """a -> (J, gradient, slope) at theta + a direction, for the line search."""
    from .lbfgs import inner

    def evaluate(a):
        cost, gradient = space.objective(theta + a * direction)
        return cost, gradient, inner(gradient, direction)

    return evaluate


class _FeatureSpace:
    """L-BFGS's vectors as they are: theta = (W.ravel(), b), float64 (n c + c).

    Each cost and gradient is one pass of the fused kernel (fused_gradient): float32
    products of a few MB of rows, their sums added in float64 (float32 sums over all of X
    stalled L-BFGS about 2e-4 above the optimum, issue 13). The line search then works
    down to 1e-9 to 1e-7 relative objective on small problems, 1e-4 on digits10 (J* 0.04),
    where the rounding of the float32 products hides J's decrease.
    """

    def __init__(self, X, y, W0, b0, config, sample_weight, validation, extremes):
        self.X, self.y, self.config, self.sample_weight = X, y, config, sample_weight
        self.X_val = None if validation is None else validation.X
        self.extremes = extremes
        self.shape = W0.shape
        self.start = np.concatenate([W0.ravel(), b0])

    def weights(self, theta):
        """(W n x c, b c): views of theta."""
        size = self.shape[0] * self.shape[1]
        return theta[:size].reshape(self.shape), theta[size:]

    def objective(self, theta):
        """(J, dJ/dtheta) at theta."""
        m, l2 = self.X.shape[0], self.config.l2
        W, b = self.weights(theta)
        total_cost, grad_W, grad_b = fused_gradient(self.X, W.astype(np.float32), b, self.y,
                                                    self.sample_weight, self.config.threads)
        cost = total_cost / m + _l2_cost(l2, m, np.sum(W * W))
        return cost, np.concatenate([(grad_W / m + l2 / m * W).ravel(), grad_b / m])

    def reach(self, theta):
        return largest_score(*self.weights(theta), self.extremes)

    def val_scores(self, theta):
        W, b = self.weights(theta)
        return lambda: scores(self.X_val, W.astype(np.float32), b)

    def snapshot(self, theta):
        return lambda: _frozen(*self.weights(theta))

    def converged(self, gradient, tol):
        """True when no partial derivative exceeds tol."""
        return not np.abs(gradient).max() > tol


class _GramSpace:
    """L-BFGS's vectors in the Gram space, for m < n.

    theta, the gradients, the directions and the (s, y) pairs all lie in the span of W0
    and the rows of X (plus the bias), so each is held as W = s W0 + X^T A and b
    (_GramVector). Scores are Z = s X W0 + K A + b with K = X X^T (gram_matrix), and inner
    products <W, W'> = s s' |W0|^2 + s <X W0, A'> + s' <X W0, A> + <A, K A'>: each vector
    carries K A, so a cost and its gradient take one m x m x c product.
    """

    def __init__(self, X, y, W0, b0, config, sample_weight, validation, extremes):
        self.X, self.y, self.config, self.sample_weight = X, y, config, sample_weight
        self.W0 = W0
        self.K = gram_matrix(X)
        W0_32 = W0.astype(np.float32)
        self.Z0 = (X @ W0_32).astype(np.float64)
        self.W0_norm = float(np.sum(W0 * W0))
        if validation is not None:
            self.K_val = cross_gram(validation.X, X)
            self.Z0_val = (validation.X @ W0_32).astype(np.float64)
        self.reach_of = _GramReach(X, W0, extremes)
        self.features = W0.size + W0.shape[1]  # n c + c: the length of a primal vector
        zeros = np.zeros((X.shape[0], W0.shape[1]))
        self.start = _GramVector(self, 1.0, zeros, zeros, b0.copy())

    def inner(self, u, v):
        """<W_u, W_v> + <b_u, b_v> of two _GramVectors."""
        product = float(np.sum(u.A * v.KA)) + float(u.b @ v.b)
        if self.W0_norm:
            product += (u.s * v.s * self.W0_norm + u.s * float(np.sum(self.Z0 * v.A))
                        + v.s * float(np.sum(self.Z0 * u.A)))
        return product

    def weights(self, theta):
        """(W n x c, b c) float64 of a _GramVector."""
        return _primal_weights(self.X, self.W0, theta.s, theta.A), theta.b

    def objective(self, theta):
        """(J, dJ/dtheta as a _GramVector) at theta: dJ/dW = X^T dZ / m + l2/m W."""
        m, l2 = self.X.shape[0], self.config.l2
        Z = theta.KA + theta.b
        if self.W0_norm:
            Z += theta.s * self.Z0
        cost, dZ = cost_and_delta(Z, self.y, self.sample_weight)
        dZ /= m
        shrink = l2 / m
        cost += _l2_cost(l2, m, self.inner(theta, theta) - float(theta.b @ theta.b))
        gradient = _GramVector(self, shrink * theta.s, dZ + shrink * theta.A,
                               self.K @ dZ + shrink * theta.KA, dZ.sum(axis=0))
        return cost, gradient

    def reach(self, theta):
        return lambda: self.reach_of(theta.s, theta.A, theta.b)

    def val_scores(self, theta):
        return lambda: theta.s * self.Z0_val + self.K_val @ theta.A + theta.b

    def snapshot(self, theta):
        return lambda: (lambda: self.weights(theta))

    def converged(self, gradient, tol):
        """True when no partial derivative exceeds tol. |g|_2 / sqrt(n c + c) <= max |g_i|
        <= |g|_2 decide it from inner products, except in between, where the gradient is
        formed in the features (one X^T A product)."""
        norm = math.sqrt(max(self.inner(gradient, gradient), 0.0))
        if not norm > tol:
            return True
        if norm > tol * math.sqrt(self.features):
            return False
        grad_W, grad_b = self.weights(gradient)
        return not max(np.abs(grad_W).max(), np.abs(grad_b).max()) > tol


class _GramVector:
    """A vector of the features' space held in the Gram space (_GramSpace): W = s W0 +
    X^T A with A m x c, K A (m x c) kept beside A, and b (c); all float64. Sums, scalar
    multiples and @ (the inner product of the features' space) are what L-BFGS uses."""

    __slots__ = ("space", "s", "A", "KA", "b")

    def __init__(self, space, s, A, KA, b):
        self.space, self.s, self.A, self.KA, self.b = space, s, A, KA, b

    def _plus(self, other, a):
        return _GramVector(self.space, self.s + a * other.s, self.A + a * other.A,
                           self.KA + a * other.KA, self.b + a * other.b)

    def __add__(self, other):
        return self._plus(other, 1.0)

    def __sub__(self, other):
        return self._plus(other, -1.0)

    def __mul__(self, a):
        return _GramVector(self.space, a * self.s, a * self.A, a * self.KA, a * self.b)

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __matmul__(self, other):
        return self.space.inner(self, other)

    def copy(self):
        return self * 1.0


def gram_matrix(X, width=256):
    """K = X X^T (m x m, float64) of float32 X (m x n).

    Each float32 product covers only `width` columns and the blocks are summed in float64,
    which keeps K close to the float64 product at float32 speed, with no float64 X. On the
    exercise, 256 columns keep its cost trace within 1e-7 of the float64 one; 1024 columns
    save 2.5 ms there but drift to 5e-7.
    """
    return cross_gram(X, X, width)


def cross_gram(A, X, width=256):
    """A X^T (m_a x m, float64) of float32 rows A (m_a x n) and X (m x n), by column blocks
    as in gram_matrix."""
    K = np.zeros((A.shape[0], X.shape[0]))
    for start in range(0, X.shape[1], width):
        block = X[:, start : start + width]
        other = block if A is X else A[:, start : start + width]
        K += other @ block.T
    return K


def _gram_descent(X, y, W0, b, config, sample_weight, record, validation, extremes):
    """Full-batch descent in the Gram space: the same iterates as _full_batch_descent.

    Every update adds X^T (something) to W, so W_t = s_t W0 + X^T alpha_t, with s_t the
    product of the L2 shrink factors. Then Z = s X W0 + K alpha + b and
    |W|^2 = s^2 |W0|^2 + 2 s <X W0, alpha> + <alpha, K alpha>: O(m^2 c) per epoch.
    Validation rows V are scored the same way from V X^T (m_v x m) and V W0.
    """
    m = X.shape[0]
    K = gram_matrix(X)
    W0_32 = W0.astype(np.float32)
    Z0 = (X @ W0_32).astype(np.float64)
    W0_norm = np.sum(W0 * W0)
    if validation is not None:
        K_val = cross_gram(validation.X, X)
        Z0_val = (validation.X @ W0_32).astype(np.float64)
    alpha = np.zeros((m, W0.shape[1]))
    s = 1.0
    target = targets(y, W0.shape[1])
    # Without L2, b moves by exactly the sum of alpha's moves (both start from zero moves),
    # so the bias rides in K: Z = (K + 1) alpha + b0, three fewer passes per epoch.
    fold_bias = not config.l2
    b0 = b.copy()
    K_run = K + 1.0 if fold_bias else K
    add_bias = not fold_bias or bool(b0.any())

    def bias():
        return b0 + alpha.sum(axis=0) if fold_bias else b

    def val_scores():
        return s * Z0_val + K_val @ alpha + bias()

    def snapshot():
        kept_s, kept_alpha, kept_b = s, alpha.copy(), bias().copy()
        return lambda: (_primal_weights(X, W0, kept_s, kept_alpha), kept_b)

    reach = _GramReach(X, W0, extremes)

    for epoch, lr in enumerate(config.learning_rates()):
        K_alpha = K_run @ alpha
        Z = K_alpha + b if add_bias else K_alpha
        if W0_norm:
            Z += s * Z0
        cost, dZ = cost_and_delta(Z, target, sample_weight)
        if config.l2:
            norm = s * s * W0_norm + 2 * s * np.sum(Z0 * alpha) + np.sum(alpha * K_alpha)
            cost += _l2_cost(config.l2, m, norm)
        if record(epoch, lr, cost, lambda: reach(s, alpha, bias()), val_scores, snapshot):
            break
        if config.l2:
            shrink = 1.0 - lr * config.l2 / m
            s *= shrink
            alpha *= shrink
        dZ *= lr / m
        alpha -= dZ
        if not fold_bias:
            b -= dZ.sum(axis=0)
    return _primal_weights(X, W0, s, alpha), bias()


class _GramReach:
    """largest_score of W = s W0 + X^T alpha without forming W at every epoch.

    sum_j |W_jc| e_j <= s sum_j |W0_jc| e_j + sum_i |alpha_ic| r_i, with r_i = sum_j |x_ij| e_j
    <= sum_j e_j^2 (e bounds |x|): O(m c) per epoch. Only when that bound passes SCORE_LIMIT
    are the r_i computed (once), and then W itself (O(m n c)) for the exact value, so the
    Gram loops name the same epoch as the primal ones at no cost to a normal run.
    """

    def __init__(self, X, W0, extremes):
        self.X, self.W0, self.extremes = X, W0, extremes
        self.W0_reach = extremes @ np.abs(W0)  # c
        self.row_cap = float(extremes @ extremes)  # >= every r_i
        self._row_reach = None

    @property
    def row_reach(self):
        """r (m float64), a few rows at a time: no float64 copy of X."""
        if self._row_reach is None:
            self._row_reach = np.concatenate(
                [np.abs(block).astype(np.float64) @ self.extremes
                 for _, block in _row_chunks(self.X, 64)])
        return self._row_reach

    def upper(self, s, alpha, b):
        """The O(m c) upper bound for one epoch's s, alpha (m x c) and b (c)."""
        rest = np.abs(b) + abs(s) * self.W0_reach  # s < 0 when the L2 step overshoots
        bound = float((self.row_cap * np.abs(alpha).sum(axis=0) + rest).max())
        if fits_float32(bound):
            return bound
        return float((self.row_reach @ np.abs(alpha) + rest).max())

    def uppers(self, alphas, biases):
        """upper of several epochs of one sigmoid (s = 1): alphas e x m, biases e -> e."""
        rest = self.W0_reach[0] + np.abs(biases)
        bounds = self.row_cap * np.abs(alphas).sum(axis=1) + rest
        if fits_float32(bounds.max()):
            return bounds
        return np.abs(alphas) @ self.row_reach + rest

    def exact(self, s, alpha, b):
        return largest_score(_primal_weights(self.X, self.W0, s, alpha), b, self.extremes)

    def __call__(self, s, alpha, b):
        bound = self.upper(s, alpha, b)
        return bound if fits_float32(bound) else self.exact(s, alpha, b)


def _primal_weights(X, W0, s, alpha):
    """W = s W0 + X^T alpha (n x c, float64) from the Gram space's s and alpha (m x c)."""
    return s * W0 + (X.T @ alpha.astype(np.float32)).astype(np.float64)


def _binary_gram_descent(X, y, W0, b0, config, sample_weight, record, validation, extremes):
    """_gram_descent for one sigmoid without L2, image weights or validation (the exercise).

    With m in the hundreds, the dozen numpy calls of a general epoch cost more than its
    m x m product, so an epoch here only updates alpha, with a - y = tanh(z/2)/2 + 1/2 - y
    (a sigmoid that cannot overflow), and keeps z. The costs of a block of epochs are then
    computed together from the kept z, and recorded in order: a stop or a non-finite cost
    at epoch t returns the weights from before t's update, as the other loops do.
    sample_weight and validation are None here (train() picks this loop only then).
    """
    m = X.shape[0]
    # z/2 = K_half alpha + offset, with the bias folded into K as in _gram_descent
    K_half = 0.5 * (gram_matrix(X) + 1.0)
    offset = 0.5 * ((X @ W0.astype(np.float32)).astype(np.float64)[:, 0] + b0[0])
    has_offset = bool(offset.any())
    target = targets(y, 1)
    signs = label_signs(target)
    half_minus_target = 0.5 - target
    block = max(1, min(256, (2 << 20) // (8 * m)))  # epochs per block: a few MB of z kept
    half_z, alphas = np.empty((block, m)), np.empty((block, m))
    alpha, delta = np.zeros(m), np.empty(m)

    def fitted(alpha):
        return _primal_weights(X, W0, 1.0, alpha[:, None]), b0 + alpha.sum()

    reach = _GramReach(X, W0, extremes)

    rates = iter(config.learning_rates())
    epoch = 0
    while lrs := list(itertools.islice(rates, block)):
        for i, lr in enumerate(lrs):
            alphas[i] = alpha
            half = half_z[i]
            np.matmul(K_half, alpha, out=half)
            if has_offset:
                half += offset
            np.tanh(half, out=delta)
            delta *= 0.5
            delta += half_minus_target  # a - y
            delta *= lr / m
            alpha -= delta
        Z = 2.0 * half_z[: len(lrs)]
        costs = binary_losses(Z, signs).sum(axis=1) / m
        kept = alphas[: len(lrs)]
        bounds = reach.uppers(kept, b0[0] + kept.sum(axis=1))
        for i, (lr, cost, bound) in enumerate(zip(lrs, costs.tolist(), bounds.tolist())):
            if not fits_float32(bound):
                bound = reach.exact(1.0, alphas[i][:, None], b0 + alphas[i].sum())
            if record(epoch + i, lr, cost, bound):
                return fitted(alphas[i])
        epoch += len(lrs)
    return fitted(alpha)


# ---------------------------------------------------------------- row access


# Rows the fused kernel converts and uses at a time: a float32 block of this size stays in
# a core's cache between X_b W and X_b^T dZ (features.RowBlocks uses the same size, so
# float32 X, uint8 X in memory and streamed X give the same sums, bit for bit).
KERNEL_BYTES = 4 << 20


def is_rows(X):
    """True when X is not a float32 array but rows converted block by block from pixels
    (features.RowBlocks: shape, in_memory, blocks(reuse) and take(rows))."""
    return not isinstance(X, np.ndarray)


def is_distributed(X):
    """True when X is rows held by the workers of a Dask cluster (distributed.DistributedRows:
    its fused_gradient and scores replace the local passes)."""
    return getattr(X, "distributed", False)


def is_streamed(X):
    """True when X is rows read from disk one block at a time (a RowBlocks not in memory)."""
    return is_rows(X) and not X.in_memory


def _whole(X):
    """X as one m x n float32 array (a RowBlocks is converted whole)."""
    return X.to_array() if is_rows(X) else X


def kernel_blocks(X):
    """(start, float32 block of about KERNEL_BYTES) over the rows of X (float32 array: views;
    RowBlocks: its blocks, converted into one reused buffer, valid until the next)."""
    if is_rows(X):
        return X.blocks(reuse=True)
    return _row_chunks(X, _kernel_rows(X.shape[1]))


def _kernel_rows(n):
    """Rows of n features in a float32 block of about KERNEL_BYTES."""
    return max(1, KERNEL_BYTES // (4 * max(n, 1)))


def _row_chunks(X, block_rows):
    """(start, float32 block) over the rows of X, at most block_rows rows at a time for an
    in-memory X (so that a temporary made of a block stays small)."""
    if is_rows(X):
        return X.blocks(reuse=True)
    return ((start, X[start : start + block_rows]) for start in range(0, X.shape[0], block_rows))


def row_blocks(X):
    """(start, float32 block) over the rows of X: the whole array at once when it is a
    float32 array, the RowBlocks' blocks (one reused buffer) otherwise."""
    return X.blocks(reuse=True) if is_rows(X) else [(0, X)]


def take_rows(X, rows):
    """Rows of X (in-memory float32 or RowBlocks) as an in-memory float32 array."""
    return X.take(rows) if is_rows(X) else X[rows]


# ---------------------------------------------------------------- prediction


def scores(X, W, b):
    """Z = X W + b: m x c float64 scores of float32 features X (m x n, or a RowBlocks).

    Raises LogregError, never returns NaN or infinity (nor warns), when the float32 product
    overflows: weights too large for these features (model loading refuses such weights
    for any image, see check_model_scores).
    """
    Z = _scores(X, W, b)
    if not np.isfinite(Z).all():
        raise LogregError(f"the scores are not finite: weights too large for these features "
                          f"(|z| past float32's range, {SCORE_LIMIT * 2:.3g})")
    return Z


def _scores(X, W, b):
    """scores without the check: inf or NaN where the float32 product overflows."""
    if is_distributed(X):
        return X.scores(W, b)
    with np.errstate(over="ignore", invalid="ignore"):
        parts = [(block @ W).astype(np.float64) + b for _, block in row_blocks(X)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, W.shape[1]))


def predict_proba(X, W, b):
    """m x k class probabilities of float32 features X (m x n)."""
    return probabilities(scores(X, W, b))
