"""Classifier heads trained on cached backbone features, with the scikit-learn estimator shape.

`LinearHead` is the Stage 3 classifier of every strategy: multinomial logistic regression on
L2-normalised, standardised features, C chosen by stratified cross-validation on the training data,
and temperature scaling fitted on the out-of-fold logits of that same cross-validation, so its
probabilities are calibrated without ever touching a validation set.

The whole head is plain arrays (`to_arrays` / `from_arrays`), stored as safetensors without pickle, and
it is an exact affine map after a row L2-normalisation, so the export can fold it into the ONNX graph.

Importing this module never imports torch.
"""

from __future__ import annotations

import json
import time

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from .errors import TrainingError

# Half-decade grid over the range where transfer-feature probes land; warm-started from strong to weak
# regularisation, so the weak end (slow to converge from zero) starts next to its answer.
C_GRID = tuple(float(c) for c in np.logspace(-2, 3, 11))
# Pseudo-rows of average variance mixed into each dimension's variance before standardising.
SHRINK_PSEUDO_ROWS = 50
# Used only when a class has a single example and cross-validation is impossible.
FALLBACK_C = 1.0
CV_GTOL = 1e-4
# Temperatures outside this range mean the out-of-fold logits carry no signal; clamp instead of trusting.
_LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
_EPS = 1e-12


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Scale each row to unit Euclidean norm (rows of zeros stay zero).

    Args:
        X: features [N, D].
    Returns:
        float64 array [N, D].
    """
    X = np.asarray(X, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    return X / np.maximum(norms, _EPS)[:, None]


def _fit_transform_params(X: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    centred = X - mean
    if standardize:
        variance = centred.var(axis=0)
        # Per-dimension variances from a few dozen images are noise: a dimension that happened to be
        # nearly constant would get a huge weight and swing every new image. Shrink each variance
        # towards the average one, as if SHRINK_PSEUDO_ROWS more rows had the average variance.
        n = len(X)
        variance = (n * variance + SHRINK_PSEUDO_ROWS * float(variance.mean())) / (n + SHRINK_PSEUDO_ROWS)
        std = np.sqrt(variance)
        # Dead (always-zero) ReLU channels have no variance; dividing by ~0 would blow up noise.
        floor = max(float(np.median(std)) * 1e-2, 1e-8)
        scale = np.maximum(std, floor)
    else:
        # One global scale keeps the geometry of the features but makes C mean the same across backbones.
        rms = float(np.sqrt(np.mean(centred**2))) or 1.0
        scale = np.full(X.shape[1], rms)
    # Unit expected squared norm after scaling makes C mean the same for 512-d and 2048-d backbones.
    return mean, scale * np.sqrt(X.shape[1])


def _softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits, axis=1))


class _Problem:
    """Weighted multinomial logistic regression in sklearn's convention (C * sum of losses + ||W||^2/2)."""

    def __init__(self, Z: np.ndarray, y: np.ndarray, n_classes: int, sample_weight: np.ndarray):
        self.Z = Z
        self.n, self.d = Z.shape
        self.k = n_classes
        self.Y = np.zeros((self.n, n_classes))
        self.Y[np.arange(self.n), y] = 1.0
        # Dividing the whole objective by C*N keeps gradient tolerances meaningful at every C.
        self.sw = sample_weight / self.n

    def solve(self, C: float, x0: np.ndarray | None, gtol: float = 1e-6, max_iter: int = 500) -> np.ndarray:
        lam = 1.0 / (C * self.n)
        k, d = self.k, self.d
        Z, Y, sw = self.Z, self.Y, self.sw

        def fun(theta):
            W = theta[: k * d].reshape(k, d)
            b = theta[k * d :]
            logits = Z @ W.T + b
            # Hand-rolled log-sum-exp: scipy's wrapper costs more than the arithmetic at this size.
            top = logits.max(axis=1, keepdims=True)
            e = np.exp(logits - top)
            tot = e.sum(axis=1, keepdims=True)
            lse = (np.log(tot) + top)[:, 0]
            loss = float(sw @ (lse - (logits * Y).sum(axis=1))) + 0.5 * lam * float(np.vdot(W, W))
            R = sw[:, None] * (e / tot - Y)
            gW = R.T @ Z + lam * W
            gb = R.sum(axis=0)
            return loss, np.concatenate([gW.ravel(), gb])

        if x0 is None:
            x0 = np.zeros(k * d + k)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": gtol})
        return res.x

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = theta[: self.k * self.d].reshape(self.k, self.d)
        b = theta[self.k * self.d :]
        return W, b - b.mean()  # softmax ignores a shared shift; centring makes the answer unique


def _reduce(Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate onto the row space of the training data when there are fewer samples than dimensions.

    With an L2 penalty the optimal W lies in the span of the training rows (its gradient always does),
    so fitting on the N coordinates X @ V instead of the D features gives the same model, N/D the cost.
    """
    n, d = Xs.shape
    if n >= d:
        return Xs, None
    # Eigenvectors of the N x N Gram matrix are the left singular vectors; several times cheaper than an
    # SVD of the N x D matrix.
    evals, U = np.linalg.eigh(Xs @ Xs.T)
    keep = evals > max(float(evals[-1]), 0.0) * 1e-10
    U, s = U[:, keep], np.sqrt(evals[keep])
    vt = (U.T @ Xs) / s[:, None]
    return U * s, vt


def _lse(z: np.ndarray) -> np.ndarray:
    # scipy's logsumexp costs more in argument handling than the arithmetic on these small arrays.
    top = z.max(axis=1)
    return np.log(np.exp(z - top[:, None]).sum(axis=1)) + top


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the held-out negative log-likelihood, with a weak prior towards T = 1.

    Without the prior, a small held-out set that happens to be classified perfectly drives T to its
    lower bound (every sharpening lowers the loss), and the model then calls its first mistake certain;
    on 37 inner-validation images that turned validation log-loss 0.1 into 1.0. The prior (log T ~ N(0, 1))
    is worth about one sample, so it only matters when the data say almost nothing.
    """
    true = logits[np.arange(len(y)), y]

    def objective(log_t):
        t = np.exp(log_t)
        return float(np.sum(_lse(logits / t) - true / t)) + 0.5 * log_t**2

    res = minimize_scalar(objective, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def _weighted_log_loss(logits: np.ndarray, y: np.ndarray, sw: np.ndarray) -> float:
    lp = log_softmax(logits, axis=1)[np.arange(len(y)), y]
    return float(-(sw @ lp) / sw.sum())


def _log_loss_standard_error(logits: np.ndarray, y: np.ndarray, sw: np.ndarray) -> float:
    """Standard error of the weighted mean log-loss over samples."""
    losses = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    w = sw / sw.sum()
    mean = float(w @ losses)
    variance = float(w @ (losses - mean) ** 2)
    return float(np.sqrt(variance / max(len(y) - 1, 1)))


def _balanced_weights(y: np.ndarray, n_classes: int, class_weight) -> np.ndarray:
    if class_weight is None:
        return np.ones(len(y))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if class_weight == "balanced":
        per_class = len(y) / (n_classes * np.maximum(counts, 1.0))
    elif isinstance(class_weight, dict):
        per_class = np.ones(n_classes)
        for i in range(n_classes):
            per_class[i] = float(class_weight.get(i, 1.0))
    else:
        raise ValueError(f"class_weight must be 'balanced', a dict or None, not {class_weight!r}")
    return per_class[y]


def stratified_folds(
    y: np.ndarray, n_folds: int, seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Split indices into `n_folds` validation folds, each class spread evenly over the folds.

    Args:
        y: integer class indices [N].
        n_folds: number of folds (at most the smallest class count for every fold to hold each class).
        seed: shuffling seed.
        groups: optional group id per row [N]; rows of one group (an image and its flipped copy) always
            share a fold, and a group counts once, with the class of its first row.
    Returns:
        list of index arrays, one validation fold each, together a partition of range(N).
    """
    y = np.asarray(y)
    if groups is None:
        units, unit_of_row = np.arange(len(y)), np.arange(len(y))
    else:
        units, first, unit_of_row = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    unit_class = y if groups is None else y[first]
    rng = np.random.default_rng(seed)
    fold_of_unit = np.empty(len(units), dtype=np.int64)
    offset = 0
    for cls in np.unique(unit_class):
        members = np.flatnonzero(unit_class == cls)
        rng.shuffle(members)
        # Rotating the starting fold per class keeps fold sizes balanced when classes are small.
        fold_of_unit[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    fold_of_row = fold_of_unit[unit_of_row]
    return [np.flatnonzero(fold_of_row == f) for f in range(n_folds)]


class LinearHead(ClassifierMixin, BaseEstimator):
    """Calibrated multinomial logistic regression on transfer features.

    Prediction is exactly::

        z = x / ||x||                     (only when l2_normalize=True, the default)
        z = (z - mean_) / scale_
        p = softmax((z @ coef_.T + intercept_) / temperature_)

    `as_affine()` folds standardisation and temperature into one (W_eff, b_eff), so
    `p = softmax(l2norm(x) @ W_eff.T + b_eff)`; with l2_normalize=False the l2norm step is absent.

    Args:
        C: inverse regularisation strength (sklearn convention); None picks it by stratified CV.
        class_weight: None (every image weighs the same: the default, so that a probability is how often
            an answer that sure is right among pictures like the project's own), "balanced" (each class
            weighs the same, which moves every answer towards the rarer labels: on ELPV's 31 % defective
            cells it cost 3.4 points of accuracy and 0.5 of balanced accuracy), or a {index: weight} dict.
        calibrate: fit a temperature on out-of-fold logits (else temperature_ = 1).
        random_state: seed of the CV fold assignment; the solver itself is deterministic.
        l2_normalize: scale each feature row to unit length first; helps pooled CNN features, whose
            norm mostly measures image contrast/size rather than class.
        standardize: per-dimension standardisation (else centring plus one global scale).
        c_grid: candidate C values for the search.
        n_folds: at most this many CV folds (fewer when the smallest class is smaller).
        c_score: how the search judges each C, when not by log loss: c_score(oof probabilities [N, K],
            y indices [N]) -> higher is better, and the best C is taken as it is (no one-standard-error
            rule). Multi-label heads rank by average precision (classifier/multilabel.py).
    """

    def __init__(
        self,
        C: float | None = None,
        *,
        class_weight=None,
        calibrate=True,
        random_state=0,
        l2_normalize=True,
        standardize=True,
        c_grid=C_GRID,
        n_folds=5,
        c_score=None,
    ):
        self.C = C
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.random_state = random_state
        self.l2_normalize = l2_normalize
        self.standardize = standardize
        self.c_grid = c_grid
        self.n_folds = n_folds
        self.c_score = c_score

    # -- fitting --------------------------------------------------------------------------------------

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"features must be a 2-D array [N, D], got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("features contain NaN or infinity")
        return l2_normalize(X) if self.l2_normalize else X

    def _fit_core(self, Xn, y, k, C, x0=None):
        mean, scale = _fit_transform_params(Xn, self.standardize)
        Xs = (Xn - mean) / scale
        Z, vt = _reduce(Xs)
        prob = _Problem(Z, y, k, _balanced_weights(y, k, self.class_weight))
        theta = prob.solve(C, x0)
        W, b = prob.unpack(theta)
        if vt is not None:
            W = W @ vt
        return W, b, mean, scale

    def _cv_path(self, Xn: np.ndarray, y: np.ndarray, k: int, grid, n_folds: int, groups=None):
        """Out-of-fold logits [len(grid), N, K], each fold warm-started along the grid."""
        oof = np.zeros((len(grid), len(y), k))
        for val_idx in stratified_folds(y, n_folds, self.random_state, groups):
            train_mask = np.ones(len(y), dtype=bool)
            train_mask[val_idx] = False
            Xtr, ytr = Xn[train_mask], y[train_mask]
            mean, scale = _fit_transform_params(Xtr, self.standardize)
            Z, vt = _reduce((Xtr - mean) / scale)
            Xval = (Xn[val_idx] - mean) / scale
            Zval = Xval @ vt.T if vt is not None else Xval
            prob = _Problem(Z, ytr, k, _balanced_weights(ytr, k, self.class_weight))
            theta = None
            for g, C in enumerate(grid):
                # Out-of-fold logits only rank the C values; a looser tolerance halves the search time
                # without changing the choice (measured on hymenoptera features: same C, same CV loss).
                theta = prob.solve(C, theta, gtol=CV_GTOL)
                W, b = prob.unpack(theta)
                oof[g, val_idx] = Zval @ W.T + b
        return oof

    def fit(self, X, y, sample_weight=None, *, groups=None):
        """Fit on features X [N, D] and labels y (class indices or strings).

        Args:
            X: features [N, D].
            y: labels [N]; classes_ is their sorted set.
            sample_weight: unsupported, present for the estimator signature.
            groups: optional group id per row; rows of a group (augmented copies of one image) stay in one
                CV fold, so the C search and the calibration never validate on a copy of a training row.
        Returns:
            self, with classes_, coef_ [K, D], intercept_ [K], temperature_, C_, mean_, scale_,
            cv_log_loss_, cv_accuracy_, fit_seconds_ and oof_decision_ (calibrated out-of-fold logits
            [N, K] at the chosen C, None without cross-validation) set.
        """
        if sample_weight is not None:
            raise TypeError("LinearHead weights samples by class (class_weight), not per sample")
        # Hundreds of tiny matrix products: BLAS threads cost more in hand-offs than they save (3x slower
        # measured on 2 cores), and the worker may be sharing its cores anyway.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, groups)

    def _fit(self, X, y, groups):
        started = time.perf_counter()
        Xn = self._prepare(X)
        y = np.asarray(y)
        if len(y) != len(Xn):
            raise ValueError(f"{len(Xn)} feature rows but {len(y)} labels")
        self.classes_, yi = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise TrainingError("training needs at least 2 labels with images; found " + str(k))
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(yi):
                raise ValueError(f"{len(yi)} labels but {len(groups)} group ids")
            # Folds are made of groups, so the smallest class is counted in groups.
            _, first = np.unique(groups, return_index=True)
            min_count = int(np.bincount(yi[first], minlength=k).min())
        else:
            min_count = int(np.bincount(yi).min())
        n_folds = min(int(self.n_folds), min_count)
        can_cv = n_folds >= 2

        grid = [float(self.C)] if self.C is not None else [float(c) for c in sorted(self.c_grid)]
        self.cv_log_loss_ = None
        self.cv_accuracy_ = None
        self.oof_decision_ = None
        temperature = 1.0
        if can_cv and (self.C is None or self.calibrate):
            oof = self._cv_path(Xn, yi, k, grid, n_folds, groups)
            sw = _balanced_weights(yi, k, self.class_weight)
            scores, temps = [], []
            for g in range(len(grid)):
                t = _fit_temperature(oof[g], yi) if self.calibrate else 1.0
                temps.append(t)
                # Judging each C after its own temperature picks the best-ranking model, not the one
                # whose raw confidence happens to be right.
                scores.append(_weighted_log_loss(oof[g] / t, yi, sw))
            best = int(np.argmin(scores))
            if self.c_score is not None:
                judged = [self.c_score(_softmax(oof[g] / temps[g]), yi) for g in range(len(grid))]
                best = int(np.argmax(judged))
            else:
                # One-standard-error rule: the most regularised C whose score is within one standard
                # error of the best. On small or separable sets every weak regularisation scores ~0 and
                # the plain argmin lands on the weakest, which then bets everything on a few noisy
                # dimensions.
                tolerance = _log_loss_standard_error(oof[best] / temps[best], yi, sw)
                best = next(g for g in range(len(grid)) if scores[g] <= scores[best] + tolerance)
            C = grid[best]
            temperature = temps[best]
            self.cv_log_loss_ = float(scores[best])
            self.cv_accuracy_ = float(np.mean(oof[best].argmax(axis=1) == yi))
            self.cv_scores_ = {c: float(s) for c, s in zip(grid, scores, strict=True)}
            # Calibrated answers for every training row from a head that never saw it: what the data
            # audit needs, at no extra cost.
            self.oof_decision_ = oof[best] / temperature
        else:
            C = float(self.C) if self.C is not None else FALLBACK_C

        W, b, mean, scale = self._fit_core(Xn, yi, k, C)
        self.C_ = float(C)
        self.coef_ = W
        self.intercept_ = b
        self.mean_ = mean
        self.scale_ = scale
        self.temperature_ = float(temperature)
        self.n_features_in_ = Xn.shape[1]
        self.n_folds_ = n_folds if can_cv else 0
        self.fit_seconds_ = time.perf_counter() - started
        return self

    # -- prediction -----------------------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise AttributeError("this LinearHead is not fitted yet; call fit() first")

    def decision_function(self, X) -> np.ndarray:
        """Calibrated logits [N, K] (temperature applied), so softmax of them is predict_proba.

        Args:
            X: features [N, D].
        Returns:
            float64 array [N, K], columns in classes_ order (also for two classes).
        """
        self._check_fitted()
        Xn = self._prepare(X)
        if Xn.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"head expects {self.coef_.shape[1]} features per row, got {Xn.shape[1]}")
        Xs = (Xn - self.mean_) / self.scale_
        return (Xs @ self.coef_.T + self.intercept_) / self.temperature_

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities [N, K] in classes_ order; rows sum to 1.

        Args:
            X: features [N, D].
        Returns:
            float64 array [N, K].
        """
        return _softmax(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class per row, as values of classes_.

        Args:
            X: features [N, D].
        Returns:
            array [N] of class labels.
        """
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    # -- export ---------------------------------------------------------------------------------------

    def as_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Standardisation and temperature folded into one affine map.

        Returns:
            (W_eff [K, D], b_eff [K]) with predict_proba(x) == softmax(u @ W_eff.T + b_eff), where u is
            l2norm(x) when l2_normalize is set, else x.
        """
        self._check_fitted()
        W_eff = self.coef_ / self.scale_[None, :] / self.temperature_
        b_eff = (self.intercept_ - self.coef_ @ (self.mean_ / self.scale_)) / self.temperature_
        return W_eff, b_eff

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted head as plain arrays (safetensors-ready, no pickle).

        Returns:
            dict of numpy arrays; class names travel as UTF-8 JSON bytes in "classes_json".
        """
        self._check_fitted()
        classes = [c.item() if isinstance(c, np.generic) else c for c in self.classes_]
        return {
            "coef": np.ascontiguousarray(self.coef_, dtype=np.float64),
            "intercept": np.ascontiguousarray(self.intercept_, dtype=np.float64),
            "mean": np.ascontiguousarray(self.mean_, dtype=np.float64),
            "scale": np.ascontiguousarray(self.scale_, dtype=np.float64),
            "temperature": np.array([self.temperature_], dtype=np.float64),
            "C": np.array([self.C_], dtype=np.float64),
            "l2_normalize": np.array([int(bool(self.l2_normalize))], dtype=np.int8),
            "classes_json": np.frombuffer(json.dumps(classes).encode("utf-8"), dtype=np.uint8).copy(),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> LinearHead:
        """Rebuild a fitted head from `to_arrays` output.

        Args:
            d: the arrays (extra keys are ignored, so a prefix-stripped artifact dict works).
        Returns:
            a fitted LinearHead giving identical predictions.
        """
        try:
            head = cls(C=float(d["C"][0]), l2_normalize=bool(int(d["l2_normalize"][0])))
            head.coef_ = np.asarray(d["coef"], dtype=np.float64)
            head.intercept_ = np.asarray(d["intercept"], dtype=np.float64)
            head.mean_ = np.asarray(d["mean"], dtype=np.float64)
            head.scale_ = np.asarray(d["scale"], dtype=np.float64)
            head.temperature_ = float(d["temperature"][0])
            classes = json.loads(bytes(np.asarray(d["classes_json"], dtype=np.uint8)).decode("utf-8"))
        except KeyError as exc:
            raise ValueError(
                f"head arrays lack {exc.args[0]!r}; not written by LinearHead.to_arrays"
            ) from exc
        head.classes_ = np.asarray(classes)
        head.C_ = head.C
        head.n_features_in_ = head.coef_.shape[1]
        k, dim = head.coef_.shape
        if head.intercept_.shape != (k,) or head.mean_.shape != (dim,) or head.scale_.shape != (dim,):
            raise ValueError("head arrays have inconsistent shapes")
        if len(head.classes_) != k:
            raise ValueError(f"head has {k} rows of weights but {len(head.classes_)} class names")
        return head
