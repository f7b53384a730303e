"""diffedu: the mathematical theory of diffusion models, as a tested library and lessons.

This package is the maths core: flat, one module per concept, no plotting. The lessons'
plots, widgets and answer checkers live in :mod:`diffedu.teach`, the notebook tooling in
:mod:`diffedu.course` (neither is imported here). One notation throughout
(``docs/notation.md``): data at t = 0 and ``x_t = alpha_t x_0 + sigma_t eps``.
"""

from .datasets import load_digits
from .dimension import intrinsic_dimension
from .discrete import CosineMask, LinearMask, PowerMask, SequenceDistribution
from .gauge import gauge_rotation
from .gaussian import Gaussian, fit_gaussian
from .gaussian_approx import explained_variance, teleport
from .hodge import Grid2D, decompose
from .interpolants import GaussianMixtureInterpolant, LinearInterpolant, TrigInterpolant
from .likelihood import log_likelihood
from .memorisation import memorised_fraction, nn_ratio
from .mixtures import Empirical, GaussianMixture, LowRankMixture, fit_gaussian_mixture
from .processes import EDM, VE, VP, Linear, Process, VPCosine, time_grid
from .samplers import (ddim, ddpm_ancestral, dpmpp_2m, dpmpp_3m, euler, euler_maruyama, heun,
                       multistep3, predictor_corrector, trajectory)
from .subspace import SubspaceClustering

__version__ = "0.2.0"

__all__ = [
    "Process", "VP", "VPCosine", "VE", "EDM", "Linear", "time_grid",
    "Gaussian", "GaussianMixture", "LowRankMixture", "Empirical", "fit_gaussian", "fit_gaussian_mixture",
    "load_digits", "explained_variance", "teleport", "nn_ratio", "memorised_fraction",
    "SubspaceClustering",
    "euler", "heun", "ddim", "dpmpp_2m", "dpmpp_3m", "multistep3", "euler_maruyama",
    "ddpm_ancestral", "predictor_corrector", "trajectory", "log_likelihood",
    "SequenceDistribution", "LinearMask", "CosineMask", "PowerMask",
    "LinearInterpolant", "TrigInterpolant", "GaussianMixtureInterpolant",
    "Grid2D", "decompose", "gauge_rotation", "intrinsic_dimension",
]
