"""diffedu: the mathematical theory of diffusion models, as a tested library and lessons.

One notation throughout (``shared/NOTATION.md``): data at t = 0 and
``x_t = alpha_t x_0 + sigma_t eps``.
"""

from .digits import load_digits
from .discrete import CosineMask, LinearMask, PowerMask, SequenceDistribution
from .fields import Grid2D, decompose, gauge_rotation, intrinsic_dimension
from .gaussian import Gaussian
from .gaussian_approx import explained_variance
from .interpolants import GaussianMixtureInterpolant, LinearInterpolant, TrigInterpolant
from .memorisation import memorised_fraction, nn_ratio
from .mixtures import Empirical, GaussianMixture, LowRankMixture
from .processes import EDM, VE, VP, Linear, Process, VPCosine, time_grid
from .samplers import (ddim, ddpm_ancestral, dpmpp_2m, dpmpp_3m, euler, euler_maruyama, heun,
                       log_likelihood, multistep3, predictor_corrector, teleport, trajectory)
from .subspace import SubspaceClustering

__version__ = "0.1.0"

__all__ = [
    "Process", "VP", "VPCosine", "VE", "EDM", "Linear", "time_grid",
    "Gaussian", "GaussianMixture", "LowRankMixture", "Empirical",
    "load_digits", "explained_variance", "nn_ratio", "memorised_fraction",
    "SubspaceClustering",
    "euler", "heun", "ddim", "dpmpp_2m", "dpmpp_3m", "multistep3", "euler_maruyama",
    "ddpm_ancestral", "predictor_corrector", "trajectory", "teleport", "log_likelihood",
    "SequenceDistribution", "LinearMask", "CosineMask", "PowerMask",
    "LinearInterpolant", "TrigInterpolant", "GaussianMixtureInterpolant",
    "Grid2D", "decompose", "gauge_rotation", "intrinsic_dimension",
]
