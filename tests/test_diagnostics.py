"""diffedu.diagnostics.diagnose: the exact model scores at rounding level and within every floor;
each deliberately wrong model leaves the floor of the metric that names its defect."""

import pytest
import torch

from diffedu import VP, Empirical, Gaussian
from diffedu.datasets import ring
from diffedu.diagnostics import Report, diagnose
from diffedu.flows import denoiser_from_score
from diffedu.gauge import gauge_rotation, plain_rotation

SMALL = dict(n=400, n_jacobian=12, n_residual=32, n_samples=500, repeats=4, steps=60)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def setting():
    p = VP()
    return p, ring(), [float(p.t_of_lam(-torch.log(torch.tensor(s)))) for s in (0.05, 0.3, 1.5)]


def test_the_exact_model_is_at_rounding_level_and_within_every_floor(setting):
    p, ref, ts = setting
    rep = diagnose(ref.bind(p).denoiser, p, ref, times=ts, generator=gen(), **SMALL)
    assert isinstance(rep, Report) and rep.dim == 2 and len(rep.times) == 3
    assert float(rep.score_error.max()) < 1e-12
    assert float(rep.fp_residual.max()) < 1e-12
    assert float(rep.asymmetry.max()) < 1e-12
    assert (rep.gaussian_ev[1:] > rep.gaussian_ev[:-1]).all()  # the Gaussian part grows with noise
    assert set(rep.samples) == {"mmd2", "w2", "mean_error", "cov_error", "mode_tv", "log_density"}
    assert not [m for m in rep.samples if rep.beyond_floor(m)], rep.summary()
    text = rep.summary()
    assert "score error" in text and "mmd2" in text and "beyond its floor" not in text


def test_a_scaled_score_shows_in_the_error_residual_and_samples_not_asymmetry(setting):
    p, ref, ts = setting
    sc = ref.bind(p).score
    rep = diagnose(denoiser_from_score(lambda x, t: 1.3 * sc(x, t), p), p, ref, times=ts, generator=gen(), **SMALL)
    torch.testing.assert_close(rep.score_error, torch.full((3,), 0.3, dtype=torch.float64))
    assert float(rep.fp_residual.min()) > 1e-2           # 1.3 s is the score of no diffusion family
    assert float(rep.asymmetry.max()) < 1e-12            # ... but still a gradient
    assert rep.beyond_floor("cov_error") or rep.beyond_floor("log_density"), rep.summary()


def test_a_rotation_is_asymmetric_and_only_a_non_gauge_one_changes_the_samples():
    p = VP()
    g = Gaussian([0.3, -0.2], [[1.0, 0.45], [0.45, 0.3]])
    ts = [0.2, 0.5]
    sc = g.bind(p).score
    out = {}
    for name, r in (("gauge", gauge_rotation(g, p, 2.0)), ("plain", plain_rotation(g, p, 2.0))):
        out[name] = diagnose(denoiser_from_score(lambda x, t, r=r: sc(x, t) + r(x, t), p), p, g, times=ts,
                             generator=gen(1), **SMALL)
    for rep in out.values():
        assert float(rep.score_error.min()) > 0.1 and float(rep.asymmetry.min()) > 0.1
    assert not [m for m in out["gauge"].samples if out["gauge"].beyond_floor(m)], out["gauge"].summary()
    assert out["plain"].beyond_floor("cov_error"), out["plain"].summary()


def test_a_memorising_model_copies_its_training_set(setting):
    p, ref, ts = setting
    train = ref.sample(24, generator=gen(3), dtype=torch.float64)
    rep = diagnose(Empirical(train).bind(p).denoiser, p, ref, train=train, times=ts, generator=gen(), **SMALL)
    v, floor, sd = rep.samples["memorised"]
    assert v > 0.9 and rep.beyond_floor("memorised") and 0 < floor < 0.6
    assert float(rep.score_error[0]) > 0.5                 # wrong where the noise is small


def test_a_network_is_evaluated_in_its_own_dtype_and_64d_has_no_w2(setting):
    from diffedu.nets import ScoreMLP

    p, ref, ts = setting
    net = ScoreMLP(p, 2, hidden=8, depth=1, generator=gen())
    rep = diagnose(net.denoiser, p, ref, times=ts[:1], generator=gen(), **dict(SMALL, n_samples=0))
    assert rep.samples == {} and torch.isfinite(rep.score_error).all()
    g = Gaussian(torch.zeros(70), torch.ones(70))
    rep = diagnose(g.bind(p).denoiser, p, g, times=[0.5], generator=gen(), **dict(SMALL, n_samples=200))
    assert "w2" not in rep.samples and torch.isnan(rep.fp_residual).all()
    assert float(rep.asymmetry.max()) < 1e-12                      # above 64-D: the JVP estimate, 0 for a gradient


def test_bad_input_is_named(setting):
    p, ref, _ = setting
    D = ref.bind(p).denoiser
    with pytest.raises(TypeError, match="D must be a denoiser"):
        diagnose("net", p, ref)
    with pytest.raises(TypeError, match="reference must be a diffedu distribution"):
        diagnose(D, p, ref.sample(10))
    with pytest.raises(ValueError, match="times must be"):
        diagnose(D, p, ref, times=[0.0])
    with pytest.raises(ValueError, match="repeats must be an integer >= 2"):
        diagnose(D, p, ref, repeats=1)
    with pytest.raises(TypeError, match="process"):
        diagnose(D, "VP", ref)


def test_arguments_are_checked_before_the_work():
    """Issue 21 (property tests): a (B, D + 1) model output failed deep inside with torch's size
    mismatch; a string times gave torch's "invalid data type"; a bad train set was found only after
    the whole report; an unknown metric was a KeyError."""
    ref, p = ring(2), VP()
    kw = dict(n=4, n_jacobian=2, n_residual=2, n_samples=0, steps=2, repeats=2, times=[0.5])
    with pytest.raises(ValueError, match=r"D must return a tensor of x's shape"):
        diagnose(lambda x, t: torch.cat([x, x[:, :1]], 1), p, ref, **kw)
    with pytest.raises(TypeError, match="times must be a 1-D tensor or sequence of times"):
        diagnose(ref.bind(p).denoiser, p, ref, **{**kw, "times": "abc"})
    with pytest.raises(ValueError, match=r"train must have shape \(B, 2\)"):
        diagnose(ref.bind(p).denoiser, p, ref, train=torch.zeros(5, 3, dtype=torch.float64), **kw)
    report = diagnose(ref.bind(p).denoiser, p, ref, **{**kw, "n_samples": 4})
    with pytest.raises(ValueError, match="name must be one of the report's sample metrics"):
        report.beyond_floor("nonsense")
    with pytest.raises(TypeError, match="k must be a real number"):
        report.beyond_floor("mmd2", k="3")


def test_asymmetry_above_64_dimensions_by_jacobian_vector_products():
    """D = 80: the asymmetry column is the Hutchinson/JVP estimate, 0 for the exact score and near
    the exact ratio for a model with a rotation added."""
    from diffedu.conservativity import asymmetry

    p = VP()
    g80 = Gaussian(torch.zeros(80), torch.linspace(0.5, 1.5, 80))
    A = torch.zeros(80, 80, dtype=torch.float64)
    A[0, 1], A[1, 0] = -3.0, 3.0
    rotated = lambda x, t: g80.score(x, t, p) + x @ A.T  # noqa: E731
    t = float(p.t_of_lam(0.0))
    kw = dict(times=[t], n=50, n_jacobian=8, n_samples=0, n_probes=16)
    exact = diagnose(g80.bind(p).denoiser, p, g80, generator=gen(), **kw)
    assert float(exact.asymmetry[0]) < 1e-12 and torch.isnan(exact.fp_residual).all()
    rep = diagnose(denoiser_from_score(rotated, p), p, g80, generator=gen(), **kw)
    x = g80.sample_marginal(8, t, p, generator=gen(1), dtype=torch.float64)
    truth = float(asymmetry(rotated, x, t).median())
    assert abs(float(rep.asymmetry[0]) - truth) < 0.35 * truth
