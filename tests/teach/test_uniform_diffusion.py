"""diffedu.teach.uniform_diffusion (lesson 18): the slider draws the core's numbers and the checkers
accept the library's methods and reject near misses."""

import torch

from diffedu import discrete as dd
from diffedu.teach import uniform_diffusion as lesson

F64 = torch.float64


def _chain():
    trans = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]], dtype=F64)
    return dd.SequenceDistribution.markov_chain(torch.tensor([0.5, 0.3, 0.2]), trans, 4)


def test_posterior_widget_draws_the_core_numbers():
    chain = _chain()
    w = lesson.posterior_widget(chain, [0, 0, 2, 0], position=2, t=0.3)
    fig = w.result
    bars = [round(p.get_height(), 12) for p in fig.axes[0].patches]
    x = torch.tensor([[0, 0, 2, 0]])
    D = dd.uniform_denoiser(chain, dd.LinearMask())(x, 0.3)[0, 2]
    Lo = dd.uniform_loo(chain, dd.LinearMask())(x, 0.3)[0, 2]
    assert bars[:3] == [round(v, 12) for v in D.tolist()] and bars[3:6] == [round(v, 12) for v in Lo.tolist()]
    noise = [round(p.get_height(), 12) for p in fig.axes[1].patches]
    assert noise == [round(v, 12) for v in dd.noise_posterior(chain, x, 0.3, dd.LinearMask())[0].tolist()]


def test_uniform_step_checker():
    def right(probs, x, t, s, schedule):
        return dd.uniform_step_probs(probs, x, t, s, schedule).to(probs.dtype)

    def plug_in(probs, x, t, s, schedule):       # the denoiser fed to the bridge: the mismatch of the lesson
        return dd.uniform_step_probs(probs, x, t, s, schedule, param="loo").to(probs.dtype)

    def no_bridge(probs, x, t, s, schedule):      # jump straight to the predicted clean token law
        return probs

    assert lesson.check_uniform_step(right)
    assert not lesson.check_uniform_step(plug_in)
    assert not lesson.check_uniform_step(no_bridge)


def test_noise_probability_checker():
    a, c = 0.5, 0.5 / 3
    assert lesson.check_noise_probability(c / (a * 0.2 + c), [0.5, 0.3, 0.2], 2, 0.5)
    assert not lesson.check_noise_probability(0.5, [0.5, 0.3, 0.2], 2, 0.5)      # the noise rate itself
