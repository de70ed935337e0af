"""LIME's surrogates for every row at once.

LIME explains a row ``x`` by a linear model over binary coalitions
``z in {0, 1}^g`` of the feature groups, where a coalition stands for the
model input ``where(z[groups], x, baseline)``. The coalitions are drawn as
one tensor, their values come from
:func:`skattr.core.coalitions.coalition_values` (with the similarity
observed in the same pass, :func:`lime_samples`), and the surrogates of all
rows are fitted together by :func:`weighted_lasso`: per-row similarity
weights and a weighted Lasso with scikit-learn's objective, solved by FISTA
on per-row Gram matrices. (Kernel SHAP, the other regression over
coalitions, lives in :mod:`skattr.core.kernel_shap`.)

With several background rows, a coalition's value is the mean of the model
output over the background rows (the interventional definition of SHAP's
KernelExplainer). Every routine returns values at each target column a row
keeps (``t`` of them).
"""

from __future__ import annotations

import torch

from skattr.core.coalitions import (
    CoalitionValues,
    MaskTable,
    Observer,
    TargetPicker,
    coalition_values,
)
from skattr.core.forward import ModelFunction

#: ``similarity(X, Z_interp, Z_inputs) -> Tensor[m]``: LIME weight of each
#: perturbed input ``Z_inputs[i]`` (coalition ``Z_interp[i]``) of row ``X[i]``,
#: observed by :func:`~skattr.core.coalitions.coalition_values`.
Similarity = Observer


def bernoulli_coalitions(
    n_rows: int, n_groups: int, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """LIME's default: each group kept with probability 1/2, ``[n, s, g]`` bool.

    Drawn on the generator's device as random 56-bit words, seven random bytes
    each, unpacked into bits: one random number per 56 coalition entries.
    """
    words = -(-n_groups // 56)
    device = generator.device
    draw = torch.randint(
        0, 2**56, (n_rows, n_samples, words), generator=generator, device=device
    )
    shifts = torch.arange(0, 56, 8, device=device)
    octets = ((draw[..., None] >> shifts) & 255).to(torch.uint8)  # [n, s, W, 7]
    bits = torch.arange(8, dtype=torch.uint8, device=device)
    Z = ((octets[..., None] >> bits) & 1).bool()  # [n, s, W, 7, 8]
    return Z.reshape(n_rows, n_samples, words * 56)[..., :n_groups]


# ---------------------------------------------------------------- LIME


def exp_kernel_similarity(distance: str = "cosine", kernel_width: float = 1.0):
    """Captum's ``get_exp_kernel_similarity_function``, batched.

    Returns ``similarity(X, Z_interp, Z_inputs) -> Tensor[m]``:
    ``exp(-d**2 / (2 * kernel_width**2))`` with ``d`` the cosine distance
    ``1 - cos(x, input)`` or the Euclidean distance ``|x - input|`` between
    each row and its perturbed model input.
    """
    if distance not in ("cosine", "euclidean"):
        raise ValueError(f"distance must be 'cosine' or 'euclidean'; got {distance!r}.")

    def similarity(X, Z_interp, Z_inputs):
        X, Z_inputs = X.float(), Z_inputs.float()  # Captum computes in float32
        if distance == "cosine":
            d = 1 - torch.nn.functional.cosine_similarity(X, Z_inputs, dim=1)
        else:
            d = torch.linalg.vector_norm(X - Z_inputs, dim=1)
        return torch.exp(-(d**2) / (2 * kernel_width**2))

    return similarity


def lime_samples(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    Z: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    similarity: Similarity,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, CoalitionValues]:
    """Model values and similarity weights of LIME's perturbed inputs.

    Parameters
    ----------
    Z : Tensor of shape ``[n, s, g]`` or ``[s, g]``
        Binary coalitions per row (or shared by all rows).
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns explained per row, or a picker from ``f(x)``.
    similarity : callable
        ``similarity(X, Z_interp, Z_inputs) -> Tensor[m]``, called per chunk
        with the explained rows, the coalitions (float) and the model inputs.

    Returns
    -------
    y : Tensor of shape ``[n, s, t]``, float64
        The target outputs of each perturbed input.
    w : Tensor of shape ``[n, s]``, float64
        Its weight. Both are averaged over the background rows.
    coalitions : CoalitionValues
        With ``f(x)``, ``f(baseline)`` and the targets.

    Notes
    -----
    Cost: ``n * (s + 2) * B`` model rows, plus ``n`` when ``targets`` is a
    picker.
    """
    cv = coalition_values(
        f,
        X,
        baseline,
        MaskTable(Z.to(X.device), groups=groups.to(X.device)),
        targets=targets,
        batch_size=batch_size,
        observe=similarity,
    )
    return cv.values, cv.observed, cv


def weighted_lasso(
    Z: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    alpha: float,
    *,
    tol: float = 1e-12,
    max_iter: int = 20000,
    chunk_rows: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted Lasso with intercept for every row at once.

    Row ``r`` minimises scikit-learn's objective::

        1 / (2 * sum(w_r)) * sum_i w_ri (y_ri - Z_ri . b - c)**2 + alpha * |b|_1

    (``Lasso(alpha).fit(Z_r, y_r, sample_weight=w_r)``: scikit-learn rescales
    the weights to sum to the number of samples). ``Z`` and ``y`` are centred
    by their weighted means, the per-row Gram matrices built once, and FISTA
    with adaptive restart runs on all rows together until every row's
    duality gap is at most ``tol`` times its weighted variance of ``y``; then
    the solution is polished by solving the KKT system on each row's active
    set, kept where it satisfies the optimality conditions.

    Parameters
    ----------
    Z : Tensor of shape ``[n, s, g]`` or ``[s, g]``
        Interpretable inputs per row (or shared).
    y, w : Tensor of shape ``[n, s]``
        Targets and non-negative sample weights.
    alpha : float
        L1 penalty; ``0`` gives weighted least squares.

    Returns
    -------
    coef : Tensor of shape ``[n, g]``, float64
    intercept : Tensor of shape ``[n]``, float64
    """
    y, w = y.double(), w.double()
    n, s = y.shape
    g = Z.shape[-1]
    if Z.dim() == 2:
        Z = Z.expand(n, s, g)
    dev = y.device
    sw = w.sum(1).clamp_min(torch.finfo(torch.float64).tiny)
    wn = w / sw[:, None]  # weights summing to 1
    G = torch.empty(n, g, g, dtype=torch.float64, device=dev)
    c = torch.empty(n, g, dtype=torch.float64, device=dev)
    zmean = torch.empty(n, g, dtype=torch.float64, device=dev)
    for start in range(0, n, chunk_rows):  # bounded memory for [n, s, g]
        sl = slice(start, start + chunk_rows)
        Zr = Z[sl].to(dev, torch.float64)
        Zw = Zr * wn[sl, :, None]
        zm = Zw.sum(1)
        # weighted covariances: E_w[z z'] - E_w[z] E_w[z]', E_w[z y] - E_w[z] E_w[y]
        G[sl] = Zw.transpose(1, 2) @ Zr - zm[:, :, None] * zm[:, None, :]
        ym = (wn[sl] * y[sl]).sum(1)
        c[sl] = (Zw.transpose(1, 2) @ y[sl, :, None]).squeeze(2) - zm * ym[:, None]
        zmean[sl] = zm
    ymean = (wn * y).sum(1)
    yy = (wn * (y - ymean[:, None]) ** 2).sum(1)
    coef = _lasso_gram(G, c, yy, float(alpha), tol=tol, max_iter=max_iter)
    intercept = ymean - (zmean * coef).sum(1)
    return coef, intercept


def _gv(G: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector product ``G[r] @ v[r]``.

    Written as a broadcast product and a sum: for the small ``g x g``
    matrices of a surrogate this is about twice as fast on a CPU as ``bmm``.
    """
    return (G * v[:, None, :]).sum(2)


def _lasso_gram(G, c, yy, alpha, *, tol, max_iter, check_every=10):
    """``min 0.5 b'Gb - c'b + alpha |b|_1`` per row: FISTA with exact polish.

    FISTA (with adaptive restart) starts from the ridge solution;
    every ``check_every`` iterations each row's active set is solved exactly
    and rows whose exact solution satisfies the optimality conditions are
    final. The loop ends when every row is final or its duality gap is at
    most ``tol`` times ``yy``.
    """
    n, g = c.shape
    if alpha == 0:
        return (torch.linalg.pinv(G) @ c[:, :, None]).squeeze(2)
    L = _largest_eigenvalue(G)
    # warm start: ridge with the same penalty scale (bounded when G is singular)
    eye = torch.eye(g, dtype=G.dtype, device=G.device)
    b, info = torch.linalg.solve_ex(G + alpha * eye, c)
    b = torch.where((info == 0)[:, None] & torch.isfinite(b), b, torch.zeros_like(b))
    v = b.clone()
    t = torch.ones(n, 1, dtype=G.dtype, device=G.device)
    scale = yy.clamp_min(1e-300)
    last = _objective(G, c, yy, b, alpha)
    for it in range(1, max_iter + 1):
        step = 1.0 / L
        u = v - step * (_gv(G, v) - c)
        b_new = torch.sign(u) * (u.abs() - step * alpha).clamp_min(0)
        # adaptive restart (O'Donoghue and Candes): drop momentum going uphill
        restart = ((v - b_new) * (b_new - b)).sum(1, keepdim=True) > 0
        t = torch.where(restart, torch.ones_like(t), t)
        t_new = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        v = b_new + ((t - 1) / t_new) * (b_new - b)
        b, t = b_new, t_new
        if it % check_every:
            continue
        exact, done = _polish(G, c, b, alpha)
        if bool(done.all()):
            return exact
        b = torch.where(done[:, None], exact, b)
        v = torch.where(done[:, None], exact, v)
        gap = _duality_gap(G, c, yy, b, alpha)
        if bool((done | (gap <= tol * scale)).all()):
            break
        # safeguard: L from power iteration is a lower bound; back off on ascent
        obj = _objective(G, c, yy, b, alpha)
        up = (obj > last * (1 + 1e-12) + 1e-300)[:, None]
        L = torch.where(up, 2 * L, L)
        v = torch.where(up, b, v)
        t = torch.where(up, torch.ones_like(t), t)
        last = torch.minimum(obj, last)
    exact, done = _polish(G, c, b, alpha)
    return torch.where(done[:, None], exact, b)


def _largest_eigenvalue(G, n_iter=10):
    """Step-size constant of each PSD ``G[r]``, ``[n, 1]``.

    Power iteration's Rayleigh quotient scaled up by 20 percent, capped by
    the Gershgorin bound (a true upper bound); :func:`_lasso_gram` doubles
    it where the objective goes up.
    """
    v = torch.ones(G.shape[:2], dtype=G.dtype, device=G.device)
    v = v + 0.01 * torch.arange(G.shape[1], dtype=G.dtype, device=G.device)
    for _ in range(n_iter):
        v = _gv(G, v)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    lam = (v * _gv(G, v)).sum(1, keepdim=True)
    bound = G.abs().sum(2).amax(1, keepdim=True)
    return torch.minimum(1.2 * lam, bound).clamp_min(1e-300)


def _objective(G, c, yy, b, alpha):
    return 0.5 * (
        yy - 2 * (c * b).sum(1) + (b * _gv(G, b)).sum(1)
    ) + alpha * b.abs().sum(1)


def _duality_gap(G, c, yy, b, alpha):
    """scikit-learn's duality gap of the Gram-form Lasso, per row."""
    Gb = _gv(G, b)
    cb = (c * b).sum(1)
    r2 = (yy - 2 * cb + (b * Gb).sum(1)).clamp_min(0)
    dual_norm = (c - Gb).abs().amax(1)
    const = torch.where(
        dual_norm > alpha,
        alpha / dual_norm.clamp_min(1e-300),
        torch.ones_like(dual_norm),
    )
    return 0.5 * r2 * (1 + const**2) + alpha * b.abs().sum(1) - const * (yy - cb)


def _polish(G, c, b, alpha):
    """Exact solution on each row's active set (the signs of ``b``).

    Returns ``(solution, ok)``: ``ok`` where the solution satisfies the
    Lasso's optimality conditions (same signs on the active set, gradient
    at most ``alpha`` off it), i.e. is the minimiser.
    """
    n, g = c.shape
    active = b != 0
    sign = torch.sign(b)
    eye = torch.eye(g, dtype=G.dtype, device=G.device).expand(n, g, g)
    both = active[:, :, None] & active[:, None, :]
    M = torch.where(both, G, eye * 1.0)
    rhs = torch.where(active, c - alpha * sign, torch.zeros_like(c))
    sol, info = torch.linalg.solve_ex(M, rhs)
    sol = torch.where(active, sol, torch.zeros_like(sol))
    grad = c - (G @ sol[:, :, None]).squeeze(2)
    slack = 1e-9 * (1 + alpha)
    ok = (info == 0) & torch.isfinite(sol).all(1)
    ok &= torch.where(active, sol * sign > 0, grad.abs() <= alpha + slack).all(1)
    return sol, ok
