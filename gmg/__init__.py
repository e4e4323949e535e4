"""The Gromov-Monge Gap: a fast, differentiable PyTorch regularizer, and a reproducible compendium of 'Disentangled Representation Learning with the Gromov-Monge Gap' (ICLR 2025)

Modules:

- `gmg.costs`: Cost matrices between the points of a batch: squared Euclidean distances (L2²), scaled squared distances (ScL2²) and cosine similarities (Cos), batched over leading dimensions.
- `gmg.datasets`: Procedural renderers with the exact factor grids of dSprites, Shapes3D, SmallNORB and Cars3D, and loaders for their official files.
- `gmg.gap`: Distortion (DST) and the Gromov-Monge gap (GMG) of a map on a batch: differentiable, batched, with the envelope-theorem gradient and the ε rule of the paper.
- `gmg.gromov`: Entropic GW between two uniform point clouds given by their cost matrices: mirror descent whose steps are warm-started, stabilized Sinkhorn projections; batched, differentiable-friendly, on the inputs' device.
- `gmg.maps`: Fitting a map T: R³ → R² between point clouds with a debiased Sinkhorn divergence plus λ·{nothing, DST, GMG}: the toy experiment of the paper (Figure 2), as a library.
- `gmg.metrics`: DCI, MIG, SAP, the FactorVAE and BetaVAE scores, modularity and explicitness, computed from their definitions with disentanglement_lib's conventions and defaults, plus `evaluate`, which samples a ground-truth dataset, encodes it and returns a flat dict ready for `metrics.json`.
- `gmg.models`: Convolutional Gaussian encoder and Bernoulli deconvolutional decoder of the disentanglement literature, with the β-VAE, β-TCVAE and HFS (Hausdorff factorized support) losses.
- `gmg.regularizers`: GMG and DST on the encoder or the decoder with costs L2², ScL2², Cos; a Jacobian (IRVAE-style) baseline; the decoder-free variant. One specification object selects them; the training loop adds λ times the term.
- `gmg.train`: `train(config, out_dir)`: a typed, validated configuration; batches sampled from a `gmg.datasets` dataset; dvclive logging of every loss term, the GMG value, ε and gradient norms; atomic checkpoints; exact resume; a latent traversal figure at the end."""

__version__ = "0.0.1"

from .costs import cost_matrix, COST_KINDS
from .gromov import entropic_gw, gw_energy, GWResult
from .gap import distortion, gromov_monge_gap, gromov_monge_gap_from_costs, epsilon_rule, gap_from_coupling, GapInfo

__all__ = ["cost_matrix", "COST_KINDS", "entropic_gw", "gw_energy", "GWResult", "distortion",
           "gromov_monge_gap", "gromov_monge_gap_from_costs", "epsilon_rule", "gap_from_coupling", "GapInfo"]
