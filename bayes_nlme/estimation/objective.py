"""OFV contributions ``L_i`` of each method and their exact gradients.

With ``g_j = d f_ij / d eta`` (row ``j`` of ``G_i``), at the EBE ``eta_hat``:

- FOCE / FOCE-I (Wang 2007; NONMEM)::

      L_i = O_i(eta_hat) + log|Omega| + log|A_i|,
      A_i = Omega^-1 + sum_j c_j g_j g_j',   c_j = 1/r_j + (dr_j/df)^2 / (2 r_j^2)

  (``dr/df = 0`` without interaction). At the exact mode this equals the linearised
  ``log|C_i| + e_i' C_i^-1 e_i`` with ``C_i = G Omega G' + R`` and
  ``e_i = y_i - f_i + G eta_hat`` (FOCE); with interaction the extra term is the
  expected information of the variance, as in NONMEM's FOCE-I.
- Laplace: ``L_i = O_i(eta_hat) + log|Omega| + log|H_i / 2|``, ``H_i`` the exact
  Hessian of ``O_i`` at the mode.
- FO: ``L_i = log|C_i| + e_i' C_i^-1 e_i`` at ``eta = 0``.

``OFV = sum_i L_i`` is ``-2 log L`` without ``n_obs log(2 pi)``.

Gradients with respect to ``psi`` are exact up to the second and third derivatives of
the predictions (central differences of the model core's exact Jacobian, see
:mod:`.kernel`):
implicit differentiation through the mode,
``dL_i/dpsi = dL_i/dpsi|eta - v_i' d g_i / dpsi`` with ``g_i = dO_i/deta`` and
``v_i = H_i^-1 dL_i/deta``. Per-subject gradients feed the sandwich covariance.
"""

from __future__ import annotations

import numpy as np

from .problem import INTERACTION, Problem

__all__ = ["contributions"]


def _chain(jac: np.ndarray, bseg: np.ndarray) -> np.ndarray:
    """``sum_{s,m} jac[j, s, m] bseg[j, s, m, p]`` (the chain rule to the population
    parameters) as one batched matrix product: ``einsum`` took twice as long here."""
    n, p = bseg.shape[0], bseg.shape[-1]
    return np.matmul(jac.reshape(n, 1, -1), bseg.reshape(n, -1, p))[:, 0, :]


def _pieces(problem: Problem, psi: np.ndarray, eta: np.ndarray, method: str, order: int) -> dict:
    """Predictions, their derivatives and the residual model at ``(psi, eta)``.

    ``G_eta`` and ``G_psi`` are central differences of the exact Jacobian along the
    etas (common shifts of a subject's segments); ``G_psi = d f_psi / d eta``, since
    ``d log P / d psi`` does not depend on eta. Order 3 adds second differences.
    """
    u, dbase = problem.log_parameters(psi, eta)
    kernel = problem.kernel
    f, jac = kernel.jacobian(u)
    d, n = problem.d, problem.n_obs
    steps, combos = problem.re_basis()
    bseg = dbase[problem.jac_index]
    g_eta = np.zeros((n, d, d))
    g_psi = np.zeros((n, d, problem.size))
    first = []
    for step in steps:
        djac = kernel.first_difference(u, step)
        first.append((problem.re_sum(djac), _chain(djac, bseg)))
    for a in range(d):
        g_eta[:, :, a] = sum(first[i][0] for i in combos[a])
        g_psi[:, a, :] = sum(first[i][1] for i in combos[a])
    pc = {
        "f": f,
        "G": problem.re_sum(jac),
        "f_psi": _chain(jac, bseg),
        "G_eta": 0.5 * (g_eta + np.swapaxes(g_eta, 1, 2)),
        "G_psi": g_psi,
    }
    if order >= 3:
        g_etaeta = np.zeros((n, d, d, d))
        g_etapsi = np.zeros((n, d, d, problem.size))
        second: dict = {}
        for i in range(len(steps)):
            for j in range(i + 1):
                t = kernel.second_difference(u, steps[i], steps[j])
                second[i, j] = second[j, i] = (problem.re_sum(t), _chain(t, bseg))
        for a in range(d):
            for b in range(a + 1):
                pairs = [second[i, j] for i in combos[a] for j in combos[b]]
                tc = sum(q[0] for q in pairs)
                tp = sum(q[1] for q in pairs)
                for x, y in ((a, b), (b, a)):
                    g_etaeta[:, :, x, y] = tc
                    g_etapsi[:, x, y, :] = tp
        perms = [(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)]
        pc["G_etaeta"] = sum(np.transpose(g_etaeta, (0, *q)) for q in perms) / 6.0
        pc["G_etapsi"] = g_etapsi
    interaction = INTERACTION[method]
    if interaction:
        res = problem.residual(psi, f, True)
    else:
        f0, f0_psi = problem.population(psi)
        res = problem.residual(psi, f, False, f0, f0_psi)
    pc["res"] = res
    pc["e"] = problem.y_t - f
    return pc


def contributions(problem: Problem, method: str, psi: np.ndarray, eta: np.ndarray):
    """Per-subject OFV contributions and their total gradients.

    Parameters
    ----------
    problem : Problem
    method : {"fo", "foce", "focei", "laplace"}
    psi : numpy.ndarray
        Population parameters (unconstrained scale).
    eta : numpy.ndarray (n_subjects, d)
        The EBEs (ignored by FO, which works at eta = 0).

    Returns
    -------
    L : numpy.ndarray (n_subjects,)
    grad : numpy.ndarray (n_subjects, size)
        ``d L_i / d psi`` including the implicit dependence of the EBEs on psi.
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if problem.d == 0 or method == "fo":
            return _fo(problem, psi)
        return _conditional(problem, method, psi, eta)


def _fo(problem: Problem, psi: np.ndarray):
    d = problem.d
    eta = np.zeros((problem.n_subjects, d))
    pc = _pieces(problem, psi, eta, "fo", 2)
    res, e, g, seg = pc["res"], pc["e"], pc["G"], problem.segsum
    r = res.r
    inv, dinv, logdet, dlogdet = problem.pmap.omega_parts(psi)
    base = seg(np.log(r) + e**2 / r)
    dbase = seg(res.r_psi / r[:, None] - 2.0 * (e / r)[:, None] * pc["f_psi"] - (e**2 / r**2)[:, None] * res.r_psi)
    if d == 0:
        return base, dbase
    a = inv + seg(g[:, :, None] * g[:, None, :] / r[:, None, None])
    bvec = seg(g * (e / r)[:, None])
    w_mat = np.linalg.inv(a)
    w = np.einsum("sab,sb->sa", w_mat, bvec)
    logdet_a = np.linalg.slogdet(a)[1]
    value = base + logdet + logdet_a - np.einsum("sa,sa->s", bvec, w)
    m = w_mat + w[:, :, None] * w[:, None, :]
    sub = problem.subject
    mg = np.einsum("jab,jb->ja", m[sub], g)
    gmg = np.einsum("ja,ja->j", mg, g)
    wg = np.einsum("ja,ja->j", w[sub], g)
    wgpsi = np.einsum("ja,jap->jp", w[sub], pc["G_psi"])
    grad = (
        dbase
        + dlogdet
        + np.einsum("sab,qba->sq", m, dinv)
        + seg(2.0 * np.einsum("ja,jap->jp", mg, pc["G_psi"]) / r[:, None] - (gmg / r**2)[:, None] * res.r_psi)
        - 2.0 * seg(wgpsi * (e / r)[:, None] - (wg / r)[:, None] * pc["f_psi"] - (wg * e / r**2)[:, None] * res.r_psi)
    )
    return value, grad


def _conditional(problem: Problem, method: str, psi: np.ndarray, eta: np.ndarray):
    laplace = method == "laplace"
    pc = _pieces(problem, psi, eta, method, 3 if laplace else 2)
    res, g, seg, sub = pc["res"], pc["G"], problem.segsum, problem.subject
    r = res.r
    censored = problem.nongaussian
    lp = problem.loss_partials(pc["f"], res, third=laplace or censored is not None)
    inv, dinv, logdet, dlogdet = problem.pmap.omega_parts(psi)
    l_f, l_ff = lp["l_f"], lp["l_ff"]
    g_eta, g_psi, f_psi = pc["G_eta"], pc["G_psi"], pc["f_psi"]
    gg = g[:, :, None] * g[:, None, :]
    # inner objective, gradient and exact Hessian
    obj = seg(lp["l"]) + np.einsum("si,ij,sj->s", eta, inv, eta)
    grad_eta = seg(l_f[:, None] * g) + 2.0 * eta @ inv
    h_inner = seg(l_ff[:, None, None] * gg + l_f[:, None, None] * g_eta) + 2.0 * inv
    d_obj = seg(l_f[:, None] * f_psi + lp["l_psi"]) + np.einsum("si,qij,sj->sq", eta, dinv, eta)
    if laplace:
        v_mat = np.linalg.inv(h_inner)
        value = obj + logdet + np.linalg.slogdet(0.5 * h_inner)[1]
        zv = np.einsum("jab,jb->ja", v_mat[sub], g)
        qv = np.einsum("ja,ja->j", zv, g)
        tr_geta = np.einsum("jab,jba->j", v_mat[sub], g_eta)
        l_fff = lp["l_fff"]
        dl_eta = grad_eta + seg(
            (l_fff * qv)[:, None] * g
            + 2.0 * l_ff[:, None] * np.einsum("ja,jak->jk", zv, g_eta)
            + (l_ff * tr_geta)[:, None] * g
            + l_f[:, None] * np.einsum("jab,jbak->jk", v_mat[sub], pc["G_etaeta"])
        )
        coef_gg = l_fff[:, None] * f_psi + lp["l_ffpsi"]
        coef_geta = l_ff[:, None] * f_psi + lp["l_fpsi"]
        dl_psi = (
            d_obj
            + dlogdet
            + 2.0 * np.einsum("sab,qba->sq", v_mat, dinv)
            + seg(
                coef_gg * qv[:, None]
                + 2.0 * l_ff[:, None] * np.einsum("ja,jap->jp", zv, g_psi)
                + coef_geta * tr_geta[:, None]
                + l_f[:, None] * np.einsum("jab,jbap->jp", v_mat[sub], pc["G_etapsi"])
            )
        )
    else:
        c_r = -1.0 / r**2 - res.r_f**2 / r**3
        c_rf = res.r_f / r**2
        c = 1.0 / r + 0.5 * res.r_f**2 / r**2
        c_f = c_r * res.r_f + c_rf * res.r_ff
        c_psi = c_f[:, None] * f_psi + c_r[:, None] * res.r_psi + c_rf[:, None] * res.r_fpsi
        if censored is not None:  # censored and M4 rows: half the observed information (Laplace-like)
            c = np.where(censored, 0.5 * l_ff, c)
            c_f = np.where(censored, 0.5 * lp["l_fff"], c_f)
            c_psi = np.where(censored[:, None], 0.5 * (lp["l_fff"][:, None] * f_psi + lp["l_ffpsi"]), c_psi)
        a = inv + seg(c[:, None, None] * gg)
        w_mat = np.linalg.inv(a)
        value = obj + logdet + np.linalg.slogdet(a)[1]
        z = np.einsum("jab,jb->ja", w_mat[sub], g)
        q = np.einsum("ja,ja->j", z, g)
        dl_eta = grad_eta + seg((c_f * q)[:, None] * g + 2.0 * c[:, None] * np.einsum("ja,jak->jk", z, g_eta))
        dl_psi = (
            d_obj
            + dlogdet
            + np.einsum("sab,qba->sq", w_mat, dinv)
            + seg(c_psi * q[:, None] + 2.0 * c[:, None] * np.einsum("ja,jap->jp", z, g_psi))
        )
    # implicit differentiation through the mode
    v = np.linalg.solve(h_inner, dl_eta[:, :, None])[:, :, 0]
    vg = np.einsum("ja,ja->j", v[sub], g)
    vgpsi = np.einsum("ja,jap->jp", v[sub], g_psi)
    v_dg = seg((l_ff[:, None] * f_psi + lp["l_fpsi"]) * vg[:, None] + l_f[:, None] * vgpsi) + 2.0 * np.einsum(
        "si,qij,sj->sq", v, dinv, eta
    )
    return value, dl_psi - v_dg
