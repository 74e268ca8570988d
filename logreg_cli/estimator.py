"""LogisticRegressionGD: `logreg train`'s gradient descent as a scikit-learn style estimator.

It works on feature arrays (m samples x n features) and follows scikit-learn's estimator
API by convention (get_params/set_params, fit/predict/predict_proba/decision_function/score,
fitted attributes ending in "_"), so that GridSearchCV, cross_val_score, Pipeline and
clone accept it. scikit-learn is never imported at run time: only __sklearn_tags__, which
scikit-learn alone calls, imports it. numpy only otherwise; nothing prints or exits.
"""

import numbers
import warnings
from collections.abc import Mapping

import numpy as np

from . import core, threads
from .features import scale_pixels, standardizer
from .errors import DataError, LogregError
from .options import OPTIONS, default

PARAMETER_NAMES = ("lr", "epochs", "decay", "decay_rate", "decay_steps", "batch_size", "l2",
                   "seed", "class_weight", "standardize")


class InvalidInputError(DataError, ValueError):
    """X or y cannot be used: wrong shape, not finite, too few samples or classes..."""


class InvalidTypeError(LogregError, TypeError):
    """X or y holds values that are not numbers (or labels that cannot be sorted)."""


class InvalidParameterError(LogregError, ValueError, TypeError):
    """A constructor parameter has the wrong type or is out of range (raised by fit)."""


class NotFittedError(LogregError, ValueError, AttributeError):
    """predict, predict_proba, decision_function or score was called before fit."""


class DataConversionWarning(UserWarning):
    """y was a column vector (m x 1) and was flattened, as scikit-learn warns too."""


class LogisticRegressionGD:
    """Logistic (2 classes) or softmax (k > 2 classes) regression by gradient descent.

    The same descent as `logreg train` (it calls ``core.train`` with the threads `logreg
    train` chooses, threads.train): zero initial weights,
    full batch or shuffled mini-batches, the same schedules, L2 and class weights, so the
    same float features and options give the same weights, bit for bit. X is taken as the
    features themselves, converted to float32 and NOT divided by 255: scaling pixels is
    the image pipeline's job (pass ``X_uint8 / np.float32(255)`` to get what `logreg train`
    trains on), or use ``standardize=True``.

    Parameters
    ----------
    lr : float, default=0.005
        Initial learning rate (``--lr``), > 0.
    epochs : int, default=2000
        Passes over the data (``--epochs``), >= 0.
    decay : {"none", "inverse", "exponential", "sqrt", "linear"}, default="none"
        Learning-rate schedule (``--decay``).
    decay_rate : float or None, default=None
        r of the schedule (``--decay-rate``), > 0; None: 1, or 0.95 for "exponential".
    decay_steps : int, default=1
        Epochs per step of the schedule (``--decay-steps``), >= 1.
    batch_size : int or None, default=None
        Mini-batch size (``--batch-size``), >= 1; None: full batch.
    l2 : float, default=0.0
        L2 penalty l2/(2m) |W|^2 on the weights, never on the bias (``--l2``), >= 0.
    seed : int, default=0
        Seed of the mini-batch shuffling (``--seed``), >= 0.
    class_weight : None, "balanced" or dict, default=None
        Per-class weights of the loss: "balanced" gives m / (k * count) as
        ``--class-weight balanced`` does; a dict maps labels to weights (1 if absent).
    standardize : bool, default=False
        Learn each feature's mean and std on X and train on (X - mean) / std in float32
        (``--standardize``; a feature that never varies gets std 1).

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
        The labels seen in fit, sorted (any sortable labels: ints, floats, strings).
    coef_ : ndarray of shape (1, n) for 2 classes, else (k, n), float32
        Weights (W transposed). With 2 classes, z > 0 predicts ``classes_[1]``.
        With standardize=True they apply to the standardized features.
    intercept_ : ndarray of shape (1,) or (k,), float32
        Bias b.
    n_features_in_ : int
        n, the number of features seen in fit.
    n_iter_ : int
        Epochs run (updates applied).
    loss_curve_ : list of float
        The cost of each epoch, before its update (``--history``'s cost column).
    feature_mean_, feature_scale_ : ndarray of shape (n,), float32, or None
        The standardization learnt when standardize=True, else None.

    References
    ----------
    .. [1] A. Ng, "Logistic regression as a neural network", deeplearning.ai Neural
       Networks and Deep Learning, week 2: z = w^T x + b, a = sigmoid(z),
       dw = X^T (a - y) / m, db = mean(a - y). See DESIGN.md section 1 for the schedules.
    .. [2] scikit-learn developers, "Developing scikit-learn estimators",
       https://scikit-learn.org/stable/developers/develop.html (the API followed here).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import GridSearchCV
    >>> X, y = load_digits(return_X_y=True)
    >>> search = GridSearchCV(LogisticRegressionGD(epochs=100), {"lr": [0.5, 2.0]})
    >>> search.fit(X / 16, y).best_params_
    {'lr': 2.0}
    """

    def __init__(self, lr=default("lr"), epochs=default("epochs"), decay=default("decay"),
                 decay_rate=default("decay_rate"), decay_steps=default("decay_steps"),
                 batch_size=default("batch_size"), l2=default("l2"), seed=default("seed"),
                 class_weight=None, standardize=default("standardize")):
        self.lr = lr
        self.epochs = epochs
        self.decay = decay
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.batch_size = batch_size
        self.l2 = l2
        self.seed = seed
        self.class_weight = class_weight
        self.standardize = standardize

    # ------------------------------------------------------------ parameters

    def get_params(self, deep=True):
        """The constructor parameters as a dict {name: value} (deep is accepted and unused:
        no parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in PARAMETER_NAMES}

    def set_params(self, **params):
        """Set constructor parameters by name; returns self. Values are checked by fit.

        Raises
        ------
        InvalidParameterError
            When a name is not a parameter of LogisticRegressionGD.
        """
        for name, value in params.items():
            if name not in PARAMETER_NAMES:
                raise InvalidParameterError(
                    f"invalid parameter {name!r} for LogisticRegressionGD; "
                    f"valid parameters are {', '.join(PARAMETER_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = LogisticRegressionGD()
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _same(value, getattr(defaults, name))]
        return f"LogisticRegressionGD({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no run-time dependency.
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    _estimator_type = "classifier"  # scikit-learn < 1.6 reads this instead of the tags

    # ------------------------------------------------------------ fitting

    def fit(self, X, y):
        """Learn W and b from features X and labels y by `logreg train`'s gradient descent.

        Parameters
        ----------
        X : array-like of shape (m, n)
            Numbers (any real dtype; converted to float32, not rescaled), finite.
        y : array-like of shape (m,)
            Class labels: at least 2 distinct, sortable values (ints, whole floats, strings).

        Returns
        -------
        self : LogisticRegressionGD

        Raises
        ------
        InvalidParameterError
            A constructor parameter has the wrong type or is out of range.
        InvalidInputError
            X is not 2-D, is empty, holds NaN or infinity; y is None, has another length,
            holds fewer than 2 classes or continuous values ("Unknown label type").
        InvalidTypeError
            X holds non-numbers, is sparse, or y mixes labels that cannot be sorted.
        logreg_cli.errors.TrainingDiverged
            The cost stopped being finite (lr too large for these features).
        """
        config = self._train_config()
        X = _as_features(X)
        classes, y_index = _as_labels(y, X.shape[0])
        sample_weight = self._sample_weight(classes, y_index)
        mean = scale = None
        if _as_bool(self.standardize, "standardize"):
            mean, scale = _standardizer(X)
            X = scale_pixels(X, mean, scale)
        fit = threads.train(X, y_index, len(classes), config, sample_weight=sample_weight)
        self.classes_ = classes
        self.coef_ = np.ascontiguousarray(fit.weights.T)
        self.intercept_ = fit.bias.copy()
        self.n_features_in_ = X.shape[1]
        self.n_iter_ = fit.epochs_run
        self.loss_curve_ = [stats.cost for stats in fit.history]
        self.feature_mean_, self.feature_scale_ = mean, scale
        return self

    def _train_config(self):
        """The parameters checked against their declarations in options.py (the ranges
        of `logreg train`'s options) and gathered into a core.TrainConfig."""
        return core.TrainConfig(**{name: self._declared(name) for name in
                                   ("lr", "epochs", "decay", "decay_rate", "decay_steps",
                                    "batch_size", "l2", "seed")})

    def _declared(self, name):
        """Parameter name, checked as options.py declares that option."""
        option, value = OPTIONS[name], getattr(self, name)
        if value is None and option.default is None:
            return None
        if option.kind == "choice":
            if not isinstance(value, str) or value not in option.choices:
                raise InvalidParameterError(f"{name} must be one of "
                                            f"{', '.join(option.choices)}, got {value!r}")
            return value
        if option.kind == "count":
            return _integer(value, name, option.low)
        return _real(value, name, minimum=option.low, inclusive=not option.low_open)

    def _sample_weight(self, classes, y_index):
        """Per-sample weights (m float64) from class_weight, or None."""
        class_weight = self.class_weight
        if class_weight is None:
            return None
        if isinstance(class_weight, str) and class_weight == "balanced":
            from .training import balanced_class_weights

            return balanced_class_weights(y_index, len(classes))[y_index]
        if not isinstance(class_weight, Mapping):
            raise InvalidParameterError("class_weight must be None, 'balanced' or a dict "
                                        f"{{label: weight}}, got {class_weight!r}")
        known = set(classes.tolist())
        unknown = [label for label in class_weight if label not in known]
        if unknown:
            raise InvalidParameterError(f"class_weight names {unknown[0]!r}, which is not a "
                                        f"class of y ({', '.join(map(repr, classes.tolist()))})")
        weights = np.array([_real(class_weight.get(label, 1.0), f"class_weight[{label!r}]",
                                  minimum=0.0) for label in classes.tolist()])
        return weights[y_index]

    # ------------------------------------------------------------ predicting

    def decision_function(self, X):
        """Scores z = X W + b.

        Parameters
        ----------
        X : array-like of shape (m, n)
            Features as in fit (n = n_features_in_).

        Returns
        -------
        scores : ndarray of shape (m,) for 2 classes, else (m, k), float64
            With 2 classes, z > 0 means ``classes_[1]``; else column j scores ``classes_[j]``.

        Raises
        ------
        NotFittedError
            Before fit.
        InvalidInputError, InvalidTypeError
            X is unusable as in fit, or has another number of features than in fit.
        """
        Z = self._scores(X)
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_proba(self, X):
        """Class probabilities: sigmoid for 2 classes, softmax otherwise.

        Parameters
        ----------
        X : array-like of shape (m, n)

        Returns
        -------
        proba : ndarray of shape (m, k), float64
            Column j is the probability of ``classes_[j]``; rows sum to 1.

        Raises
        ------
        NotFittedError, InvalidInputError, InvalidTypeError
            As decision_function.
        """
        return core.probabilities(self._scores(X))

    def predict(self, X):
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (m, n)

        Returns
        -------
        labels : ndarray of shape (m,), of classes_'s dtype

        Raises
        ------
        NotFittedError, InvalidInputError, InvalidTypeError
            As decision_function.
        """
        Z = self._scores(X)  # first: it raises NotFittedError before classes_ exists
        return self.classes_[core.predicted_classes(Z)]

    def score(self, X, y, sample_weight=None):
        """Accuracy: the (weighted) fraction of rows whose predicted class is y.

        Parameters
        ----------
        X : array-like of shape (m, n)
        y : array-like of shape (m,)
            True labels.
        sample_weight : array-like of shape (m,), optional
            Non-negative weights of the rows.

        Returns
        -------
        accuracy : float in [0, 1]

        Raises
        ------
        NotFittedError, InvalidInputError, InvalidTypeError
            As decision_function; InvalidInputError too when y has another length than X
            or sample_weight is not m finite weights >= 0 with a positive sum.
        """
        predicted = self.predict(X)
        y = _as_label_vector(y)
        if len(y) != len(predicted):
            raise InvalidInputError(f"X has {len(predicted)} samples but y has {len(y)} labels")
        return float(np.average(predicted == y, weights=_row_weights(sample_weight, len(y))))

    def _scores(self, X):
        """Z = X W + b (m x c float64) through the same core functions as Model.predict."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("this LogisticRegressionGD is not fitted yet; call fit(X, y) "
                                 "before using it")
        X = _as_features(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidInputError(f"X has {X.shape[1]} features, but LogisticRegressionGD is "
                                    f"expecting {self.n_features_in_} features as input")
        if self.feature_mean_ is not None:
            X = scale_pixels(X, self.feature_mean_, self.feature_scale_)
        W = np.ascontiguousarray(self.coef_.T, dtype=np.float32)
        return core.scores(X, W, np.asarray(self.intercept_, dtype=np.float32))


# ---------------------------------------------------------------- checking inputs


def _as_features(X):
    """X -> a 2-D C-ordered float32 array of finite numbers (no copy when it already is)."""
    if X is None:
        raise InvalidInputError("X is None; expected a 2-D array of numbers (m samples x n "
                                "features)")
    if type(X).__module__.startswith("scipy.sparse"):
        raise InvalidTypeError("X is a scipy sparse matrix: sparse input is not supported; "
                               "pass a dense array (X.toarray())")
    array = X if isinstance(X, np.ndarray) else np.asarray(X)
    if np.iscomplexobj(array):
        raise InvalidInputError("Complex data not supported: X must hold real numbers")
    if array.ndim != 2:
        raise InvalidInputError(
            f"X must be a 2-D array (m samples x n features), got shape {array.shape}. Reshape "
            "your data: reshape(-1, 1) for one feature, reshape(1, -1) for one sample")
    m, n = array.shape
    if m == 0:
        raise InvalidInputError(f"X has 0 sample(s) (shape=({m}, {n})) while a minimum of 1 "
                                "is required")
    if n == 0:
        raise InvalidInputError(f"X has 0 feature(s) (shape=({m}, {n})) while a minimum of 1 "
                                "is required.")
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range: reported below
            features = np.ascontiguousarray(array, dtype=np.float32)
    except TypeError as error:
        raise InvalidTypeError(f"X holds values that are not numbers ({error})") from None
    except ValueError:
        raise InvalidInputError(f"X holds values that are not numbers (an array of {array.dtype} "
                                "that cannot be read as float32)") from None
    finite = np.isfinite(features)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        kind = ("NaN" if np.isnan(features[row, column])
                else "infinity or a value too large for float32")
        raise InvalidInputError(f"X contains {kind} (first at row {row}, column {column})")
    return features


def _as_label_vector(y):
    """y -> a 1-D array (a column vector is flattened with a DataConversionWarning)."""
    if y is None:
        raise InvalidInputError("LogisticRegressionGD requires y to be passed, but the target "
                                "y is None")
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        warnings.warn(DataConversionWarning(
            "A column-vector y was passed when a 1d array was expected; it was flattened "
            "(use y.ravel())"), stacklevel=3)
        labels = labels.ravel()
    if labels.ndim != 1:
        raise InvalidInputError(f"y should be a 1d array of labels, got shape {labels.shape}")
    return labels


def _as_labels(y, m):
    """y (m labels) -> (classes: sorted distinct labels, indices into classes: m int64)."""
    labels = _as_label_vector(y)
    if len(labels) != m:
        raise InvalidInputError(f"X has {m} samples but y has {len(labels)} labels")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise InvalidInputError("y contains NaN or infinity; labels must be classes")
        if (labels != np.round(labels)).any():
            raise InvalidInputError("Unknown label type: continuous (y holds numbers that are "
                                    "not whole; a classifier needs class labels)")
    elif labels.dtype.kind == "c":
        raise InvalidInputError("Unknown label type: complex numbers cannot be class labels")
    try:
        classes, indices = np.unique(labels, return_inverse=True)
    except TypeError:
        raise InvalidTypeError("y mixes labels that cannot be sorted together (for example "
                               "strings and numbers)") from None
    if len(classes) < 2:
        raise InvalidInputError(f"y holds 1 class ({classes.tolist()[0]!r}): at least 2 "
                                "classes are needed to train a classifier")
    return classes, indices.reshape(-1).astype(np.int64)


def _row_weights(sample_weight, m):
    """None, or m finite weights >= 0 that do not all vanish (float64)."""
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError("sample_weight must hold numbers") from None
    if weights.shape != (m,):
        raise InvalidInputError(f"sample_weight has shape {weights.shape} but X has {m} samples")
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise InvalidInputError("sample_weight must be finite, >= 0 and not all 0")
    return weights


def _standardizer(X):
    """Mean and scale (float32, n) of float32 X as `logreg train --standardize` learns them."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, scale = standardizer(X)
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise InvalidInputError("X's values are too large to standardize in float32 "
                                "(their squares overflow); rescale X first")
    return mean, scale


def _real(value, name, minimum, inclusive=True):
    """A finite real number >= minimum (> minimum when not inclusive), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    if value < minimum or (value == minimum and not inclusive):
        relation = ">=" if inclusive else ">"
        raise InvalidParameterError(f"{name} must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _integer(value, name, minimum):
    """An integer >= minimum, as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _as_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _same(value, default):
    """value is the default (for __repr__; values may be arrays, so no bare ==)."""
    return type(value) is type(default) and (value is default or repr(value) == repr(default))
