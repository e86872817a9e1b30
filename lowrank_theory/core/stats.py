r"""Small statistics shared by the claim checks and the figure scripts.

* :func:`ci95`: the mean and two-sided 95 % Student-$t$ confidence interval of a sample (the
  empirical Deep LoRA claims and the bands of the ``deep-lora`` figure);
* :func:`finite_mean_std`: row means and standard deviations over the finite entries (runs that
  never reached a tolerance are recorded as ``inf`` and left out);
* :func:`principal_scores`: the scores of rows on their top principal components (trajectories
  drawn in the plane of their first two components, Figs. 4-5 of seed 004);
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

__all__ = ["ci95", "finite_mean_std", "principal_scores"]


def ci95(x: ArrayLike) -> tuple[float, float, float]:
    r"""Mean and two-sided 95 % Student-$t$ interval of the mean of ``x``.

    $\bar x \pm t_{0.975,\,n-1}\,s/\sqrt n$ with $s$ the sample standard deviation
    (``ddof=1``); for fewer than two values the interval is $(-\infty, \infty)$.

    Returns:
        ``(mean, low, high)``.

    Examples:
        >>> from lowrank_theory.core.stats import ci95
        >>> [round(v, 4) for v in ci95([1.0, 2.0, 3.0])]
        [2.0, -0.4841, 4.4841]
        >>> ci95([5.0])
        (5.0, -inf, inf)
    """
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if x.size < 2:
        return m, -np.inf, np.inf
    from scipy import stats  # lazy: scipy.stats takes seconds to import

    hw = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return m, m - hw, m + hw


def finite_mean_std(rows: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``rows``, the mean and (population) standard deviation of its finite entries.

    A row with no finite entry gives mean ``nan`` and standard deviation 0.

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.stats import finite_mean_std
        >>> finite_mean_std([[1.0, 3.0, np.inf], [np.inf, np.inf, np.inf]])
        (array([ 2., nan]), array([1., 0.]))
    """
    a = np.array(rows, dtype=float)
    m, s = [], []
    for row in a:
        f = row[np.isfinite(row)]
        m.append(f.mean() if f.size else np.nan)
        s.append(f.std() if f.size else 0.0)
    return np.array(m), np.array(s)


def principal_scores(x: ArrayLike, k: int = 2) -> np.ndarray:
    r"""The rows of ``x`` centred by their mean and projected on the top ``k`` principal axes.

    $(X - \mathbf 1\bar x^\top)\,V_k$ with $V_k$ the top ``k`` right singular vectors of the
    centred $X$ (NumPy's SVD; each axis's sign is the SVD's).

    Examples:
        >>> import numpy as np
        >>> from lowrank_theory.core.stats import principal_scores
        >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
        >>> np.abs(principal_scores(x, 1)).ravel().tolist()
        [2.0, 0.0, 2.0]
    """
    x = np.asarray(x)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return (x - mean) @ vt[:k].T
