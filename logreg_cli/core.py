"""The vectorized core: logistic (sigmoid) and softmax regression by gradient descent.

numpy only; no files, no printing. Shapes: X is m x n (one image per row, float32),
y holds m class indices, W is n x c and b has c entries, where c = 1 for two classes
(one sigmoid, as in the classic exercise) and c = k for k > 2 classes (softmax).

Binary:      z = X w + b,  a = sigmoid(z),  J = mean(-(y log a + (1-y) log(1-a)))
Multiclass:  Z = X W + b,  A = softmax(Z),  J = mean(-log A[i, y_i])
Both:        dZ = A - Y,   dW = X^T dZ / m (+ l2/m W),   db = mean(dZ)
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import LogregError, TrainingDiverged

SCHEDULES = ("none", "inverse", "exponential", "sqrt", "linear")
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
    """m x c scores -> m x k class probabilities (k = 2 when c = 1)."""
    if Z.shape[1] == 1:
        a = sigmoid(Z[:, 0])
        return np.column_stack([1.0 - a, a])
    return softmax(Z)


def targets(y, c):
    """Labels as the loss wants them: 0./1. floats for one sigmoid (c = 1), else indices."""
    if c == 1 and y.dtype != np.float64:
        return (y == 1).astype(np.float64)
    return y


def cost_and_delta(Z, y, sample_weight=None):
    """Mean cross-entropy of scores Z (m x c, float64) for labels y, and dJ/dZ * m.

    Computed from Z itself: binary loss = logaddexp(0, z) - y z, softmax loss =
    logsumexp(Z) - Z[y], so a confident mistake costs |z| instead of log(0).
    Returns (cost, dZ) where dZ = A - Y (m x c), weighted per image if sample_weight.
    """
    m = Z.shape[0]
    if Z.shape[1] == 1:
        z = Z[:, 0]
        target = targets(y, 1)
        e = np.exp(-np.abs(z))
        # logaddexp(0, z) = max(z, 0) + log1p(exp(-|z|)); sigmoid from the same exp(-|z|).
        losses = np.maximum(z, 0.0) + np.log1p(e) - target * z
        dZ = (np.where(z >= 0, 1.0, e) / (1.0 + e) - target)[:, None]
    else:
        log_p = log_softmax(Z)
        rows = np.arange(m)
        losses = -log_p[rows, y]
        dZ = np.exp(log_p)
        dZ[rows, y] -= 1.0
    if sample_weight is not None:
        losses = losses * sample_weight
        dZ *= sample_weight[:, None]
    return float(losses.sum()) / m, dZ


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
    """Options of gradient descent. batch_size None means full batch."""

    lr: float = 0.005
    epochs: int = 2000
    decay: str = "none"
    decay_rate: float | None = None
    decay_steps: int = 1
    batch_size: int | None = None
    l2: float = 0.0
    seed: int = 0
    method: str = "auto"  # "auto", "plain" or "gram" (full batch only)

    def validate(self):
        """Raise LogregError naming the first option that is out of range."""
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise LogregError(f"--lr must be a positive number, got {self.lr:g}")
        if self.epochs < 0:
            raise LogregError(f"--epochs must be 0 or more, got {self.epochs}")
        if self.decay not in SCHEDULES:
            raise LogregError(f"--decay must be one of {', '.join(SCHEDULES)}, got {self.decay!r}")
        if self.decay_rate is not None and not (np.isfinite(self.decay_rate) and self.decay_rate > 0):
            raise LogregError(f"--decay-rate must be a positive number, got {self.decay_rate:g}")
        if self.decay_steps < 1:
            raise LogregError(f"--decay-steps must be 1 or more, got {self.decay_steps}")
        if self.batch_size is not None and self.batch_size < 1:
            raise LogregError(f"--batch-size must be 1 or more, got {self.batch_size}")
        if not (np.isfinite(self.l2) and self.l2 >= 0):
            raise LogregError(f"--l2 must be 0 or more, got {self.l2:g}")
        if self.method not in ("auto", "plain", "gram"):
            raise LogregError(f"unknown training method {self.method!r}")

    def lr_at(self, epoch):
        return learning_rate(self.decay, self.lr, epoch, self.epochs, self.decay_rate, self.decay_steps)

    def learning_rates(self):
        """The learning rate of every epoch, as a list of floats."""
        epochs = np.arange(self.epochs)
        rates = learning_rate(self.decay, self.lr, epochs, self.epochs, self.decay_rate, self.decay_steps)
        return np.broadcast_to(np.asarray(rates, dtype=np.float64), epochs.shape).tolist()


@dataclass
class EpochStats:
    """Reported after each epoch: the cost over the training set *before* its update."""

    epoch: int
    lr: float
    cost: float


@dataclass
class Fit:
    """What training produced: W (n x c float32), b (c float32) and the per-epoch history."""

    weights: np.ndarray
    bias: np.ndarray
    method: str
    history: list = field(default_factory=list)
    stopped_at: int | None = None  # epoch at which the callback asked to stop

    @property
    def final_cost(self):
        return self.history[-1].cost if self.history else None


def n_outputs(n_classes):
    """Columns of W: one sigmoid for two classes, one softmax column per class otherwise."""
    return 1 if n_classes == 2 else n_classes


def train(X, y, n_classes, config=None, init=None, sample_weight=None, on_epoch=None):
    """Fit W and b to X (m x n float32) and labels y (m ints in [0, n_classes)).

    init: optional (W0 n x c, b0 c) to start from; zeros otherwise, as in the exercise.
    on_epoch(EpochStats) is called once per epoch; if it returns True training stops there.
    Full batch runs in the m x m Gram space when that is cheaper (see choose_method).
    """
    config = config or TrainConfig()
    config.validate()
    m, n = X.shape
    if X.dtype != np.float32:
        raise LogregError(f"features must be float32, got {X.dtype}")
    y = np.asarray(y, dtype=np.int64)
    c = n_outputs(n_classes)
    # np.array copies: the loops update W0 and b0 in place, the caller's init must not change.
    W0 = np.zeros((n, c)) if init is None else np.array(init[0], dtype=np.float64).reshape(n, c)
    b0 = np.zeros(c) if init is None else np.array(init[1], dtype=np.float64).reshape(c)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)

    method = choose_method(m, n, c, config)
    if method == "gram":
        loop = _gram_descent
    elif config.batch_size is None or config.batch_size >= m:
        loop = _full_batch_descent
    else:
        loop = _minibatch_descent
    fit = Fit(weights=None, bias=None, method=method)
    # Overflow only happens when training diverges, which the finite-cost check reports in
    # one line; numpy's own warnings would add noise lines before it.
    with np.errstate(over="ignore", invalid="ignore"):
        W, b = loop(X, y, W0, b0, config, sample_weight, _recorder(fit, config, on_epoch))
    fit.weights = W.astype(np.float32)
    fit.bias = b.astype(np.float32)
    if not _finite_scores(X, fit.weights, fit.bias):
        raise TrainingDiverged(len(fit.history), config.lr_at(max(len(fit.history) - 1, 0)))
    return fit


def _finite_scores(X, W, b):
    """True when W, b and the float32 scores X W + b are finite.

    The float64 iterates (Gram space) can stay finite while the float32 model overflows.
    """
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(X @ W + b).all())


def choose_method(m, n, c, config):
    """'gram' when full batch and the m x m Gram space costs clearly fewer flops, else 'plain'.

    Plain: 2 passes over X per epoch, ~4 m n c flops (float32).
    Gram: building K once, ~m^2 n flops in float64 (counted twice), then ~4 m^2 c per epoch.
    """
    full_batch = config.batch_size is None or config.batch_size >= m
    if config.method != "auto":
        if config.method == "gram" and not full_batch:
            raise LogregError("the Gram method needs full-batch training (no --batch-size)")
        return config.method
    if not full_batch or m >= n:
        return "plain"
    gram_flops = 2.0 * m * m * n + config.epochs * 8.0 * m * m * c
    plain_flops = config.epochs * 4.0 * m * n * c
    return "gram" if gram_flops < plain_flops else "plain"


def _recorder(fit, config, on_epoch):
    """Per-epoch bookkeeping shared by the loops: history, divergence, the stop request."""

    def record(epoch, lr, cost):
        if not np.isfinite(cost):
            raise TrainingDiverged(epoch, lr)
        stats = EpochStats(epoch, lr, cost)
        fit.history.append(stats)
        if on_epoch is not None and on_epoch(stats):
            fit.stopped_at = epoch
            return True
        return False

    return record


def _l2_cost(l2, m, squared_norm):
    return 0.5 * l2 / m * squared_norm


def _full_batch_descent(X, y, W, b, config, sample_weight, record):
    """Plain full-batch descent: per epoch one pass X W and one pass X^T dZ (float32).

    W and b are kept in float64 (they are small), so rounding does not accumulate in them.
    """
    m = X.shape[0]
    for epoch, lr in enumerate(config.learning_rates()):
        Z = (X @ W.astype(np.float32)).astype(np.float64) + b
        cost, dZ = cost_and_delta(Z, y, sample_weight)
        cost += _l2_cost(config.l2, m, np.sum(W * W))
        if record(epoch, lr, cost):
            break
        grad_W = (X.T @ dZ.astype(np.float32)).astype(np.float64) / m + config.l2 / m * W
        W -= lr * grad_W
        b -= lr / len(dZ) * dZ.sum(axis=0)
    return W, b


def _minibatch_descent(X, y, W, b, config, sample_weight, record):
    """Mini-batch descent, batches reshuffled each epoch from config.seed.

    The cost recorded for an epoch is over the whole training set before its first batch.
    """
    m = X.shape[0]
    rng = np.random.default_rng(config.seed)
    for epoch, lr in enumerate(config.learning_rates()):
        Z = (X @ W.astype(np.float32)).astype(np.float64) + b
        cost, _ = cost_and_delta(Z, y, sample_weight)
        cost += _l2_cost(config.l2, m, np.sum(W * W))
        if record(epoch, lr, cost):
            break
        order = rng.permutation(m)
        for start in range(0, m, config.batch_size):
            rows = np.sort(order[start : start + config.batch_size])
            X_batch = X[rows]
            weights = None if sample_weight is None else sample_weight[rows]
            Z = (X_batch @ W.astype(np.float32)).astype(np.float64) + b
            _, dZ = cost_and_delta(Z, y[rows], weights)
            grad_W = (X_batch.T @ dZ.astype(np.float32)).astype(np.float64) / len(rows)
            W -= lr * (grad_W + config.l2 / m * W)
            b -= lr / len(dZ) * dZ.sum(axis=0)
    return W, b


def gram_matrix(X, width=256):
    """K = X X^T (m x m, float64) of float32 X (m x n).

    Each float32 product covers only `width` columns and the blocks are summed in float64,
    which keeps K within ~1e-7 of the float64 result at float32 speed, with no float64 X.
    """
    m, n = X.shape
    K = np.zeros((m, m))
    for start in range(0, n, width):
        block = X[:, start : start + width]
        K += block @ block.T
    return K


def _gram_descent(X, y, W0, b, config, sample_weight, record):
    """Full-batch descent in the Gram space: the same iterates as _full_batch_descent.

    Every update adds X^T (something) to W, so W_t = s_t W0 + X^T alpha_t, with s_t the
    product of the L2 shrink factors. Then Z = s X W0 + K alpha + b and
    |W|^2 = s^2 |W0|^2 + 2 s <X W0, alpha> + <alpha, K alpha>: O(m^2 c) per epoch.
    """
    m = X.shape[0]
    K = gram_matrix(X)
    Z0 = (X @ W0.astype(np.float32)).astype(np.float64)
    W0_norm = np.sum(W0 * W0)
    alpha = np.zeros((m, W0.shape[1]))
    s = 1.0
    target = targets(y, W0.shape[1])
    for epoch, lr in enumerate(config.learning_rates()):
        K_alpha = K @ alpha
        Z = K_alpha + b
        if W0_norm:
            Z += s * Z0
        cost, dZ = cost_and_delta(Z, target, sample_weight)
        if config.l2:
            norm = s * s * W0_norm + 2 * s * np.sum(Z0 * alpha) + np.sum(alpha * K_alpha)
            cost += _l2_cost(config.l2, m, norm)
        if record(epoch, lr, cost):
            break
        if config.l2:
            shrink = 1.0 - lr * config.l2 / m
            s *= shrink
            alpha *= shrink
        dZ *= lr / m
        alpha -= dZ
        b -= dZ.sum(axis=0)
    W = s * W0 + (X.T @ alpha.astype(np.float32)).astype(np.float64)
    return W, b


# ---------------------------------------------------------------- features and prediction


def scale_pixels(X_uint8, mean=None, scale=None, out=None):
    """uint8 pixels (m x n) -> float32 features, /255 or (x - mean) / scale per feature.

    Converts without a float64 or second full-size copy: numpy casts in small buffers.
    """
    if out is None:
        out = np.empty(X_uint8.shape, dtype=np.float32)
    if mean is None:
        np.divide(X_uint8, np.float32(255.0), out=out, dtype=np.float32)
    else:
        np.subtract(X_uint8, mean.astype(np.float32), out=out, dtype=np.float32)
        out /= scale.astype(np.float32)
    return out


def standardizer(X_uint8, block_rows=4096):
    """Per-feature mean and scale (std, 1 where a feature never varies) of m x n uint8 rows."""
    m, n = X_uint8.shape
    total = np.zeros(n)
    total_sq = np.zeros(n)
    for start in range(0, m, block_rows):
        block = X_uint8[start : start + block_rows].astype(np.float32)
        total += block.sum(axis=0, dtype=np.float64)
        total_sq += np.square(block).sum(axis=0, dtype=np.float64)
    mean = total / m
    var = np.maximum(total_sq / m - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def scores(X, W, b):
    """Z = X W + b: m x c float64 scores of float32 features X (m x n)."""
    return (X @ W).astype(np.float64) + b


def predict_proba(X, W, b):
    """m x k class probabilities of float32 features X (m x n)."""
    return probabilities(scores(X, W, b))
