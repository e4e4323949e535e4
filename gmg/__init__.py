"""The Gromov-Monge Gap: a fast, differentiable PyTorch regularizer, and a reproducible compendium of 'Disentangled Representation Learning with the Gromov-Monge Gap' (ICLR 2025)"""

__version__ = "0.1.0"

from .costs import cost_matrix, COST_KINDS
from .gromov import entropic_gw, gw_energy, GWResult
from .gap import (DEFAULT_EPS0, distortion, entropy, gromov_monge_gap, gromov_monge_gap_from_costs, epsilon_rule,
                  gap_from_coupling, GapInfo)

__all__ = ["cost_matrix", "COST_KINDS", "entropic_gw", "gw_energy", "GWResult", "distortion",
           "gromov_monge_gap", "gromov_monge_gap_from_costs", "epsilon_rule", "gap_from_coupling", "GapInfo",
           "DEFAULT_EPS0", "entropy"]
