"""diffedu.symbolic: SymPy derivations agree with the processes' analytic coefficients."""

import numpy as np
import pytest
import sympy as sp
import torch

import diffedu as de
from diffedu import symbolic as S


def test_ou_kernel():
    mean, var = S.ou_kernel()
    beta, x0 = sp.Symbol("beta", positive=True), sp.Symbol("x_0", real=True)
    assert sp.simplify(mean - x0 * sp.exp(-beta * S.t / 2)) == 0
    assert sp.simplify(var - (1 - sp.exp(-beta * S.t))) == 0


def test_vp_kernel_matches_vp_process():
    mean, var = S.vp_kernel(sp.Rational(1, 10), 20, x0=1)
    ts = np.linspace(0.0, 1.0, 11)
    p = de.VP()
    np.testing.assert_allclose(S.lambdify_t(mean)(ts), p.alpha(torch.tensor(ts)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(S.lambdify_t(var)(ts), p.sigma(torch.tensor(ts)).numpy() ** 2,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,process", [("VP", de.VP()), ("VPCosine", de.VPCosine()), ("VE", de.VE()),
                                          ("EDM", de.EDM()), ("Linear", de.Linear())])
def test_g2_and_f_from_schedule(name, process):
    alpha, sigma = S.schedule(name)
    f, g2 = S.drift_and_diffusion(alpha, sigma)
    ts = np.linspace(0.05, 0.95, 7) * process.t_max
    tt = torch.tensor(ts)
    np.testing.assert_allclose(S.lambdify_t(alpha)(ts), process.alpha(tt).numpy(), rtol=1e-12)
    np.testing.assert_allclose(S.lambdify_t(g2)(ts), process.g2(tt).numpy(), rtol=1e-10)
    np.testing.assert_allclose(S.lambdify_t(f)(ts), process.f(tt).numpy(), rtol=1e-10, atol=1e-14)


def test_schedule_params_and_bad_name():
    a, _ = S.schedule("VP", beta_min=1, beta_max=1)
    assert sp.simplify(a - sp.exp(-S.t / 2)) == 0
    with pytest.raises(ValueError, match="name"):
        S.schedule("DDPM")


def test_arguments_are_checked():
    """Issue 21 (property tests): an object or a tensor failed inside SymPy's arithmetic (a message naming
    nothing, or a SympifyError); an unknown schedule parameter was ignored silently."""
    from diffedu.symbolic import drift_and_diffusion, lambdify_t, moment_odes, schedule
    with pytest.raises(TypeError, match="f must be a SymPy expression or a number; got object"):
        moment_odes(object(), 1)
    with pytest.raises(TypeError, match="sigma must be a SymPy expression or a number; got Tensor"):
        drift_and_diffusion(1, torch.ones(2))
    with pytest.raises(TypeError, match="expr must be a SymPy expression"):
        lambdify_t(object())
    with pytest.raises(TypeError, match="schedule 'VP' takes the parameters .*; got 'beta_mn'"):
        schedule("VP", beta_mn=0.2)
    with pytest.raises(TypeError, match="beta_min must be a real number; got str"):
        schedule("VP", beta_min="abc")
