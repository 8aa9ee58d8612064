"""DPM++ 2M SDE: the stochastic multistep DPM-Solver++ (diffusers DPMSolverMultistepScheduler,
``algorithm_type="sde-dpmsolver++"``, ``solver_order=2``, midpoint).

Its per-step noise is plain Gaussian, drawn through the noise function, exactly as that
diffusers scheduler does. It is not k-diffusion's Brownian-tree noise (diffusers'
DPMSolverSDEScheduler, which needs torchsde): outputs differ in detail, not in kind.
"""

from __future__ import annotations

from .dpmpp_2m import DPMPP2MSampler


class DPMPP2MSDESampler(DPMPP2MSampler):
    """DPM++ 2M with the SDE variant's damping and fresh noise every step."""

    stochastic = True
    eta_default = 1.0


class DPMPP2MSDEHeunSampler(DPMPP2MSDESampler):
    """DPM++ 2M SDE with the second-order term of Heun's method (``solver_type="heun"``)."""

    solver_type = "heun"
