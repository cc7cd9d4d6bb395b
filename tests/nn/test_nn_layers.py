import math

import pytest
import torch

from rssm.nn.gru import BlockGRU, GRUCell, LayerNormGRU, StackedGRU, make_gru
from rssm.nn.layers import MLP, ConvDecoder, ConvEncoder, conv_resolutions


def test_mlp_shapes_and_hidden_output():
    mlp = MLP(7, 3, units=16, layers=2)
    assert mlp(torch.randn(2, 5, 7)).shape == (2, 5, 3) and mlp.out_dim == 3
    trunk = MLP(7, None, units=16, layers=2, act="elu", norm=False)
    assert trunk(torch.randn(4, 7)).shape == (4, 16) and trunk.out_dim == 16
    ident = MLP(7, None, units=0, layers=0)
    x = torch.randn(3, 7)
    assert torch.equal(ident(x), x) and ident.out_dim == 7
    with pytest.raises(ValueError, match="act"):
        MLP(7, 3, 16, 1, act="swish")


@pytest.mark.parametrize(("size", "res"), [(64, 4), (32, 4), (96, 6), (48, 6), (128, 4)])
def test_conv_encoder_decoder_shapes(size, res):
    enc = ConvEncoder(3, size, depth=4)
    layers = len(conv_resolutions(size))
    assert enc.out_shape == (4 * 2 ** (layers - 1), res, res)
    x = torch.randn(2, 3, 3, size, size)
    embed = enc(x)
    assert embed.shape == (2, 3, enc.out_dim)
    dec = ConvDecoder(10, 3, size, depth=4)
    out = dec(torch.randn(2, 3, 10))
    assert out.shape == (2, 3, 3, size, size)
    out.square().mean().backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_conv_default_64_gives_4x4_and_doubles_channels():
    enc = ConvEncoder(3, 64)
    assert enc.out_shape == (256, 4, 4) and enc.out_dim == 4096
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    a = ConvEncoder(1, 32, depth=4, channels_last=True)
    b = ConvEncoder(1, 32, depth=4, channels_last=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [60, 63, 100, 2, 0])
def test_bad_image_sizes_raise(size):
    with pytest.raises(ValueError, match=f"image_size={size}"):
        ConvEncoder(3, size)
    with pytest.raises(ValueError, match="supported sizes"):
        ConvDecoder(8, 3, size)


def test_encoder_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match="channels first"):
        ConvEncoder(3, 32, depth=4)(torch.randn(2, 32, 32, 3))


@pytest.mark.parametrize(
    "core",
    [
        GRUCell(6, 8),
        StackedGRU(6, 8, 2),
        LayerNormGRU(6, 8),
        LayerNormGRU(6, 8, norm=False),
        BlockGRU(6, 8, 4),
        BlockGRU(6, 8, 2, norm=False),
    ],
)
def test_gru_core_shapes(core):
    x, h = torch.randn(5, 6), torch.randn(5, 8)
    out = core(x, h)
    assert core.hidden_size == 8
    assert out.shape == (5, 8) and not torch.equal(out, h)
    out.sum().backward()
    assert all(p.grad is not None for p in core.parameters())


@pytest.mark.parametrize("norm", [True, False])
def test_block_gru_with_one_block_equals_layernorm_gru(norm):
    torch.manual_seed(0)
    dense = LayerNormGRU(5, 12, norm=norm, update_bias=-0.5)
    block = BlockGRU(5, 12, 1, norm=norm, update_bias=-0.5)
    with torch.no_grad():
        block.input_linear.load_state_dict(dense.input_linear.state_dict())
        block.weight_h[0].copy_(dense.hidden_linear.weight.T)
        if norm:
            dense.norm.weight.normal_()
            dense.norm.bias.normal_()
            block.norm_weight[0].copy_(dense.norm.weight)
            block.norm_bias[0].copy_(dense.norm.bias)
    x, h = torch.randn(4, 5), torch.randn(4, 12)
    torch.testing.assert_close(block(x, h), dense(x, h))


def test_block_gru_blocks_are_independent_given_input():
    torch.manual_seed(0)
    core = BlockGRU(3, 8, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 8)
    h2 = h.clone()
    h2[:, :2] += 1.0  # perturb only block 0
    diff = (core(x, h) - core(x, h2)).abs()
    assert diff[:, :2].sum() > 0
    assert diff[:, 2:].max() == 0


def test_stacked_gru_state_layout():
    torch.manual_seed(0)
    core = StackedGRU(3, 8, 2)
    x, h = torch.randn(4, 3), torch.randn(4, 8)
    out = core(x, h)
    h0 = core.cells[0](x, h[:, :4])
    h1 = core.cells[1](h0, h[:, 4:])
    torch.testing.assert_close(out, torch.cat([h0, h1], -1))
    with pytest.raises(ValueError, match="divisible"):
        StackedGRU(3, 9, 2)


def test_make_gru():
    assert isinstance(make_gru("gru", 3, 8), GRUCell)
    assert isinstance(make_gru("stacked", 3, 8, layers=2), StackedGRU)
    assert isinstance(make_gru("layernorm", 3, 8, norm=False), LayerNormGRU)
    core = make_gru("block", 3, 8, blocks=4)
    assert isinstance(core, BlockGRU) and core.blocks == 4 and core.hidden_size == 8
    with pytest.raises(ValueError, match="kind"):
        make_gru("lstm", 3, 8)
    with pytest.raises(ValueError, match="blocks=4"):
        make_gru("layernorm", 3, 8, blocks=4)
    with pytest.raises(ValueError, match="divisible"):
        make_gru("block", 3, 10, blocks=4)


def test_fan_avg_init_draws_truncated_normals_of_variance_one_over_fan_avg():
    from rssm.nn import Head
    from rssm.nn.layers import init_fan_avg_

    torch.manual_seed(0)
    root = torch.nn.ModuleDict(
        {
            "wide": torch.nn.Linear(600, 400),
            "conv": torch.nn.Conv2d(16, 32, 4),
            "reward": Head(64, (), "twohot", units=32, layers=1, bins=15, outscale=0.0),
            "cont": Head(64, (), "binary", units=32, layers=1, outscale=1.0),
        }
    )
    init_fan_avg_(root)
    wide = root["wide"].weight
    expected = math.sqrt(2.0 / (600 + 400))  # std of the truncated normal itself
    assert abs(wide.std().item() / expected - 1) < 0.03
    assert wide.abs().max() <= 2 * expected / 0.87962566103423978 + 1e-6
    assert torch.count_nonzero(root["wide"].bias) == 0
    conv_fans = (16 * 16, 32 * 16)  # fan_in, fan_out of a 4x4 kernel
    conv_std = math.sqrt(2.0 / sum(conv_fans))
    assert abs(root["conv"].weight.std().item() / conv_std - 1) < 0.1
    # outscale is applied after the re-initialisation: 0 keeps the reward output zero
    assert torch.count_nonzero(root["reward"].out.weight) == 0
    assert torch.count_nonzero(root["cont"].out.weight) > 0
