"""Neural-network building blocks: layers, GRU cores, distributions and functional helpers."""

from rssm.nn.dists import (
    MSE,
    Bernoulli,
    Distribution,
    Normal,
    OneHotCategorical,
    SymlogMSE,
    TwoHot,
    kl_divergence,
)
from rssm.nn.functional import (
    symexp,
    symexp_bins,
    symlog,
    twohot_decode,
    twohot_encode,
    twohot_indices,
)
from rssm.nn.heads import Head, HeadDist
from rssm.nn.layers import (
    MLP,
    BlockGRU,
    ChannelNorm,
    ConvDecoder,
    ConvEncoder,
    GRUCell,
    LayerNormGRU,
    StackedGRU,
    conv_resolutions,
    make_act,
    make_gru,
)

__all__ = [
    "Bernoulli",
    "BlockGRU",
    "ChannelNorm",
    "ConvDecoder",
    "ConvEncoder",
    "Distribution",
    "GRUCell",
    "Head",
    "HeadDist",
    "LayerNormGRU",
    "MLP",
    "MSE",
    "Normal",
    "OneHotCategorical",
    "StackedGRU",
    "SymlogMSE",
    "TwoHot",
    "conv_resolutions",
    "kl_divergence",
    "make_act",
    "make_gru",
    "symexp",
    "symexp_bins",
    "symlog",
    "twohot_decode",
    "twohot_encode",
    "twohot_indices",
]
