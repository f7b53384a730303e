"""diffedu.subspace: planted subspaces, principal angles vs scipy, the low-rank denoiser vs the
closed form and Monte Carlo, K-subspaces recovery above / failure below the threshold, the phase
transition, reproducibility, bad input."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffedu import EDM, VP, LowRankMixture
from diffedu.subspace import (SubspaceClustering, LowRankDenoiser, fit_subspace, match_subspaces,
                              phase_transition, principal_angles, random_bases, sample_subspaces,
                              subspace_error, train_low_rank_denoiser)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- planted subspaces ------------------------------------------------------------------------
def test_random_bases_orthonormal_and_orthogonal():
    U = random_bases(3, 12, 4, orthogonal=True, generator=gen())
    assert U.shape == (3, 12, 4)
    flat = U.transpose(0, 1).reshape(12, 12)  # all 12 columns together
    torch.testing.assert_close(flat.T @ flat, torch.eye(12, dtype=torch.float64), atol=1e-12, rtol=0)
    V = random_bases(2, 12, 4, generator=gen())
    torch.testing.assert_close(V.transpose(1, 2) @ V, torch.eye(4, dtype=torch.float64).expand(2, 4, 4),
                               atol=1e-12, rtol=0)
    assert torch.equal(random_bases(2, 12, 4, generator=gen(5)), random_bases(2, 12, 4, generator=gen(5)))


def test_sample_subspaces_exact_counts_on_the_subspaces():
    U = random_bases(3, 10, 2, generator=gen())
    X, y = sample_subspaces(LowRankMixture(U), 7, generator=gen(1))
    assert X.shape == (21, 10) and torch.equal(torch.bincount(y), torch.tensor([7, 7, 7]))
    for k in range(3):
        Xk = X[y == k]
        torch.testing.assert_close(Xk @ U[k] @ U[k].T, Xk, atol=1e-12, rtol=0)
    Xn, _ = sample_subspaces(LowRankMixture(U, noise=0.1), 500, generator=gen(2))
    off = Xn[:500] - Xn[:500] @ U[0] @ U[0].T
    assert abs(float(off.pow(2).sum(1).mean()) - 0.1 * 8) < 0.1  # noise variance 0.1 in 8 directions


# --- comparing subspaces ----------------------------------------------------------------------
def test_principal_angles_match_scipy_and_error_formula():
    A = torch.randn(15, 3, generator=gen(), dtype=torch.float64)
    B = torch.randn(15, 3, generator=gen(1), dtype=torch.float64)
    ours = principal_angles(A, B).numpy()
    ref = np.sort(scipy.linalg.subspace_angles(A.numpy(), B.numpy()))
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    # ||P - P*||_F / sqrt(2d) = sqrt(mean sin^2 theta)
    QA, QB = torch.linalg.qr(A)[0], torch.linalg.qr(B)[0]
    direct = torch.linalg.norm(QA @ QA.T - QB @ QB.T) / np.sqrt(2 * 3)
    torch.testing.assert_close(subspace_error(A, B), direct, atol=1e-12, rtol=0)
    assert abs(float(direct) - np.sqrt(np.mean(np.sin(ref) ** 2))) < 1e-10


def test_subspace_error_extremes_and_matching():
    U = random_bases(3, 9, 3, orthogonal=True, generator=gen())
    assert float(subspace_error(U[0], U[0] @ torch.linalg.qr(torch.randn(3, 3, generator=gen(),
                                                                        dtype=torch.float64))[0])) < 1e-12
    assert abs(float(subspace_error(U[0], U[1])) - 1.0) < 1e-12
    perm, err = match_subspaces(U[[2, 0, 1]], U)
    assert perm.tolist() == [1, 2, 0] and float(err.max()) < 1e-12


def test_fit_subspace_exact_from_d_samples_whatever_the_dimension():
    for D in (10, 200):
        U = random_bases(1, D, 4, generator=gen(D))
        X, _ = sample_subspaces(LowRankMixture(U), 4, generator=gen(1))
        assert float(subspace_error(fit_subspace(X, 4), U[0])) < 1e-8
        assert float(subspace_error(fit_subspace(X[:3], 4), U[0])) > 0.2  # d - 1 samples: impossible


# --- the denoiser: closed form vs Monte Carlo, parameterisation vs closed form ----------------
@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
def test_low_rank_denoiser_is_the_closed_form(process):
    U = random_bases(3, 6, 2, generator=gen())
    mix = LowRankMixture(U)
    model = LowRankDenoiser(6, 3, 2, process, init=U, dtype=torch.float64)
    for frac in (0.05, 0.3, 0.9):
        t = frac * process.t_max
        x = mix.sample_marginal(16, t, process, generator=gen(1), dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(model(x, t), mix.denoiser(x, t, process), atol=1e-10, rtol=1e-10)


def test_closed_form_denoiser_matches_monte_carlo_posterior_mean():
    # E[x0 | x_t = x] = sum_i x0_i N(x; alpha x0_i, sigma^2 I) / sum_i N(...) over prior draws x0_i
    process = VP()
    U = random_bases(2, 3, 1, generator=gen(3))
    mix = LowRankMixture(U, weights=[0.3, 0.7])
    x0 = mix.sample(400_000, generator=gen(4), dtype=torch.float64)
    t = 0.3
    a, s = float(process.alpha(t)), float(process.sigma(t))
    x = mix.sample_marginal(5, t, process, generator=gen(5), dtype=torch.float64)
    logw = -((x[:, None, :] - a * x0[None]) ** 2).sum(-1) / (2 * s**2)
    mc = torch.softmax(logw, 1) @ x0
    torch.testing.assert_close(mix.denoiser(x, t, process), mc, atol=0.02, rtol=0)


def test_dsm_training_recovers_planted_subspaces():
    U = random_bases(2, 8, 2, orthogonal=True, generator=gen())
    X, _ = sample_subspaces(LowRankMixture(U), 60, generator=gen(1))
    model = train_low_rank_denoiser(X, 2, 2, VP(), steps=120, n_init=2, seed=0)
    assert float(match_subspaces(model.bases().detach().double(), U)[1].max()) < 0.1


# --- K-subspaces ------------------------------------------------------------------------------
def test_ksubspaces_recovers_planted_orthogonal_subspaces():
    U = random_bases(3, 20, 3, orthogonal=True, generator=gen())
    X, y = sample_subspaces(LowRankMixture(U, noise=1e-4), 30, generator=gen(1))
    est = SubspaceClustering(3, 3, seed=0).fit(X)
    perm, err = match_subspaces(est.bases_, U)
    assert float(err.max()) < 0.05
    inv = torch.argsort(perm)
    assert torch.equal(inv[est.labels_], y)                  # labels recovered up to permutation
    assert torch.equal(est.predict(X), est.labels_)
    assert est.residuals(X).shape == (90, 3)


def test_ksubspaces_fails_below_threshold():
    U = random_bases(3, 20, 3, orthogonal=True, generator=gen())
    X, _ = sample_subspaces(LowRankMixture(U), 2, generator=gen(1))  # 2 < d = 3 points each
    est = SubspaceClustering(3, 3, seed=0).fit(X)
    assert float(match_subspaces(est.bases_, U)[1].max()) > 0.2


def test_ksubspaces_reproducible_and_sklearn_style():
    U = random_bases(2, 10, 2, generator=gen())
    X, _ = sample_subspaces(LowRankMixture(U, noise=0.01), 15, generator=gen(1))
    a = SubspaceClustering(2, 2, n_init=3, seed=7)
    assert a.fit(X) is a
    b = SubspaceClustering(2, 2, n_init=3, seed=7).fit(X.numpy())  # arrays too
    assert torch.equal(a.bases_, b.bases_) and torch.equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ >= 1
    assert "n_clusters=2" in repr(a)


def test_phase_transition_labelled_noiseless_is_sharp():
    for dim in (8, 40):
        pt = phase_transition([1, 2, 3, 6], dim=dim, n_subspaces=2, rank=3, n_trials=3, seed=0)
        assert pt.success.tolist() == [0.0, 0.0, 1.0, 1.0]
        assert float(pt.errors[2:].max()) < 1e-8


def test_phase_transition_noise_and_reproducibility():
    kw = dict(dim=20, n_subspaces=2, rank=2, noise=0.01, n_trials=4, seed=3)
    pt = phase_transition([2, 40], **kw)
    assert pt.success[0] < pt.success[1] == 1.0
    assert torch.equal(pt.errors, phase_transition([2, 40], **kw).errors)
    un = phase_transition([1, 40], dim=12, n_subspaces=2, rank=2, labels=False, n_trials=2, n_init=3, seed=0)
    assert un.success.tolist() == [0.0, 1.0]


# --- bad input --------------------------------------------------------------------------------
def test_bad_input_names_the_argument():
    X = torch.randn(10, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_clusters"):
        SubspaceClustering(0, 1).fit(X)
    with pytest.raises(ValueError, match="rank"):
        SubspaceClustering(2, 5).fit(X)
    with pytest.raises(ValueError, match="X is empty"):
        SubspaceClustering(2, 1).fit(torch.empty(0, 4))
    with pytest.raises(ValueError, match="X must have shape"):
        SubspaceClustering(2, 1).fit(torch.randn(4))
    with pytest.raises(TypeError, match="X must be"):
        SubspaceClustering(2, 1).fit([["a", "b"]])
    with pytest.raises(RuntimeError, match="not fitted"):
        SubspaceClustering(2, 1).predict(X)
    with pytest.raises(ValueError, match="rank must be <= dim"):
        random_bases(2, 3, 4)
    with pytest.raises(ValueError, match="n_subspaces"):
        random_bases(0, 3, 1)
    with pytest.raises(ValueError, match="orthogonal"):
        random_bases(3, 5, 2, orthogonal=True)
    with pytest.raises(ValueError, match="rank"):
        LowRankDenoiser(3, 2, 4, VP())
    with pytest.raises(ValueError, match="rank"):
        fit_subspace(X, 5)
    with pytest.raises(TypeError, match="mixture"):
        sample_subspaces(X, 3)
    with pytest.raises(ValueError, match="noise"):
        phase_transition([2], dim=4, n_subspaces=1, rank=1, noise=-1.0)


def test_line_bases_are_unit_vectors_at_the_given_angles():
    from diffedu.subspace import line_bases

    U = line_bases([0.0, 90.0, 135.0])
    assert U.shape == (3, 2, 1)
    torch.testing.assert_close(U[:, :, 0].norm(dim=1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(U[1, :, 0], torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-15, rtol=0)
    with pytest.raises(ValueError, match="angles_deg"):
        line_bases([])


def test_arguments_are_checked():
    """Issue 21 (property tests): complex data was cast to real (with only a torch warning), NaN bases gave
    torch's LinAlgError, a (K, D, r) U silently used its first basis in principal_angles, a 2-D angle array was
    flattened, SubspaceClustering took n_clusters=True until fit, NaN init weights and x passed
    LowRankDenoiser, t_range ('0.1', '0.2') was read by float() and threshold '0.2' failed in a comparison."""
    from diffedu.subspace import line_bases, phase_transition, principal_angles, train_low_rank_denoiser
    with pytest.raises(TypeError, match="X must be a tensor or array of numbers, real and not bool"):
        fit_subspace(torch.ones(3, 2, dtype=torch.complex64), 1)
    with pytest.raises(ValueError, match="U must be finite"):
        principal_angles(torch.tensor([[1.0], [math.nan]]), torch.eye(2)[:, :1])
    with pytest.raises(ValueError, match=r"U must be a \(D, r\) matrix"):
        principal_angles(torch.ones(2, 2, 1), torch.eye(2)[:, :1])
    with pytest.raises(ValueError, match="angles_deg must be a number or a 1-D sequence"):
        line_bases([[0.0, 90.0]])
    with pytest.raises(TypeError, match="n_clusters must be an integer; got bool"):
        SubspaceClustering(n_clusters=True)
    with pytest.raises(ValueError, match="init must be finite"):
        LowRankDenoiser(2, 1, 1, VP(), init=torch.full((1, 2, 1), math.nan))
    with pytest.raises(ValueError, match="x must be finite"):
        LowRankDenoiser(2, 1, 1, VP())(torch.tensor([[math.nan, 0.0]]), 0.5)
    with pytest.raises(TypeError, match="t_range .* must be a real number; got str"):
        train_low_rank_denoiser(torch.randn(4, 2), 1, 1, VP(), steps=1, t_range=("0.1", "0.2"))
    with pytest.raises(TypeError, match="threshold must be a real number; got str"):
        phase_transition([1], dim=2, n_subspaces=1, rank=1, threshold="0.2")


# --- K-subspaces' steps, its objective, and the subspace error of samples (issue 16) -------------
def _projectors(B):
    return B @ B.transpose(1, 2)


def test_assignment_and_refit_steps_match_their_definitions():
    """assign_subspaces is the argmin of |x - P_k x|^2 computed with explicit projectors; refit_subspaces
    gives each group's fit_subspace; one k_subspaces_step never raises the objective, and the true
    subspaces of noiseless data are a fixed point of it."""
    from diffedu.subspace import assign_subspaces, k_subspaces_step, refit_subspaces, subspace_objective

    g = torch.Generator().manual_seed(0)
    U = random_bases(3, 7, 2, generator=g)
    X, y = sample_subspaces(LowRankMixture(U, noise=0.05), 20, generator=g)
    B = random_bases(3, 7, 2, generator=g)
    P = _projectors(B)
    brute = torch.stack([((X - X @ P[k]) ** 2).sum(1) for k in range(3)], 1).argmin(1)
    assert torch.equal(assign_subspaces(X, B), brute)
    fitted = refit_subspaces(X, y, 3, 2)
    for k in range(3):
        torch.testing.assert_close(_projectors(fitted)[k], _projectors(fit_subspace(X[y == k], 2)[None])[0])
    obj = [subspace_objective(X, assign_subspaces(X, B), 3, 2)]
    for _ in range(5):
        labels, B = k_subspaces_step(X, B)
        obj.append(subspace_objective(X, assign_subspaces(X, B), 3, 2))
    assert all(b <= a + 1e-9 for a, b in zip(obj, obj[1:])), obj
    X0, y0 = sample_subspaces(LowRankMixture(U), 10, generator=g)
    labels, same = k_subspaces_step(X0, U)
    assert torch.equal(labels, y0)
    torch.testing.assert_close(_projectors(same), _projectors(U))


def test_subspace_objective_cannot_tell_groupings_apart_at_n_equal_d():
    """The identifiability claim of lesson 08: with n = d noiseless points per subspace every grouping
    into groups of d has objective 0 (any d points span a d-dimensional subspace), while with
    n = d + 1 only the true grouping does (generic data). Brute force over all groupings, K = 2."""
    import itertools

    from diffedu.subspace import subspace_objective

    g = torch.Generator().manual_seed(1)
    U = random_bases(2, 6, 2, generator=g)
    for n, zero_groupings in ((2, "all"), (3, "one")):
        X, y = sample_subspaces(LowRankMixture(U), n, generator=g)
        scores = {}
        for first in itertools.combinations(range(2 * n), n):
            labels = torch.ones(2 * n, dtype=torch.long)
            labels[list(first)] = 0
            scores[first] = subspace_objective(X, labels, 2, 2)
        zeros = [c for c, v in scores.items() if v < 1e-10]
        truth = tuple(range(n))
        if zero_groupings == "all":
            assert len(zeros) == len(scores)
        else:  # the true grouping and its mirror image (labels swapped)
            assert sorted(zeros) == sorted([truth, tuple(range(n, 2 * n))]), zeros
            assert min(v for c, v in scores.items() if c not in zeros) > 1e-3
    # the objective is the sum of the discarded eigenvalues: compare with the residuals of PCA fits
    X, y = sample_subspaces(LowRankMixture(U, noise=0.1), 15, generator=g)
    direct = sum(float(((X[y == k] - X[y == k] @ _projectors(fit_subspace(X[y == k], 2)[None])[0]) ** 2).sum())
                 for k in range(2))
    assert subspace_objective(X, y, 2, 2) == pytest.approx(direct, rel=1e-10)


def test_distance_to_subspaces_and_sample_subspace_error():
    """A point on a subspace is at distance 0, a point at angle theta from a line at sin(theta);
    samples of the mixture itself fill their subspaces (error near 0), copies of n < d training
    points per subspace span only n directions (error at least sqrt((d - n) / 2d)), and a subspace
    with no sample has error 1."""
    from diffedu.subspace import distance_to_subspaces, line_bases, sample_subspace_error

    lines = line_bases([0.0, 90.0])
    pts = torch.tensor([[2.0, 0.0], [0.0, -1.0], [math.cos(0.3), math.sin(0.3)]], dtype=torch.float64)
    torch.testing.assert_close(distance_to_subspaces(pts, lines), torch.tensor([0.0, 0.0, math.sin(0.3)],
                                                                              dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    U = random_bases(2, 10, 4, generator=g)
    many, _ = sample_subspaces(LowRankMixture(U), 300, generator=g)
    assert float(sample_subspace_error(many, U).max()) < 1e-10
    train, _ = sample_subspaces(LowRankMixture(U), 2, generator=g)            # n = 2 < d = 4
    copies = train.repeat(50, 1)
    err = sample_subspace_error(copies, U)
    assert (err >= math.sqrt(2 / 8) - 1e-9).all(), err
    only_first = many[:300]
    torch.testing.assert_close(sample_subspace_error(only_first, U)[1], torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="no zero row"):
        distance_to_subspaces(torch.zeros(1, 2), lines)
    with pytest.raises(ValueError, match="bases must have D = 3 rows"):
        distance_to_subspaces(torch.ones(1, 3), lines)


def test_step_functions_check_their_arguments():
    from diffedu.subspace import refit_subspaces, subspace_objective

    X = torch.randn(6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"labels leave clusters \[1\] empty"):
        refit_subspaces(X, torch.zeros(6, dtype=torch.long), 2, 1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        subspace_objective(X, torch.full((6,), 2), 2, 1)
    with pytest.raises(TypeError, match="labels must hold integers"):
        subspace_objective(X, torch.zeros(6), 2, 1)
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        refit_subspaces(X, torch.zeros(5, dtype=torch.long), 1, 1)
    with pytest.raises(ValueError, match="rank must be <= the data dimension"):
        refit_subspaces(X, torch.zeros(6, dtype=torch.long), 1, 4)


def test_labels_of_strings_are_a_type_error():
    """Issue 21 (property tests): labels ['0', '1'] gave torch's "can't convert np.ndarray of type numpy.str_"."""
    from diffedu.subspace import subspace_objective
    with pytest.raises(TypeError, match="labels must hold integers"):
        subspace_objective(torch.randn(2, 3), ["0", "1"], 2, 1)


def test_phase_transition_tells_algorithmic_failures_from_unidentifiable_ones():
    """Noiseless, no labels, d = 2: at n = d some trials end at objective 0 (a global optimum, as
    every grouping into pairs is) with the wrong subspaces: not identifiable, not the algorithm's
    fault; at n = d + 1 and above the true grouping is the only one with objective 0 and every
    failed trial stopped at a higher objective (a local minimum). Measured (seed 0): 3 of 12 trials
    at n = d fail at objective ~1e-16."""
    pt = phase_transition([2, 3, 6], dim=8, n_subspaces=3, rank=2, labels=False, n_trials=12, n_init=2, seed=0)
    assert pt.objective.shape == pt.true_objective.shape == (3, 12)
    assert float(pt.true_objective.max()) < 1e-10
    failed = pt.errors >= pt.threshold
    assert bool((failed[0] & (pt.objective[0] < 1e-10)).any())  # n = d: optimal and wrong
    for i in (1, 2):
        assert bool((pt.objective[i][failed[i]] > 1e-6).all())    # n > d: failures are local minima
        assert bool((pt.objective[i][~failed[i]] < 1e-10).all())
    lab = phase_transition([3], dim=8, n_subspaces=3, rank=2, noise=0.01, n_trials=2, seed=0)
    torch.testing.assert_close(lab.objective, lab.true_objective)
