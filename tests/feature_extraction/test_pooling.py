"""Global pooling over the three feature layouts."""

import pytest
import torch

from sktransfer.feature_extraction._pooling import global_pool


@pytest.fixture(scope="module")
def fmap():
    return torch.rand(2, 5, 3, 4) + 0.1  # positive, as after a ReLU


@pytest.mark.parametrize("kind", ["avg", "max", "avgmax", "gem"])
def test_channels_last_and_tokens_agree_with_channels_first(fmap, kind):
    expected = global_pool(fmap, kind, "nchw")
    nhwc = fmap.permute(0, 2, 3, 1)
    torch.testing.assert_close(global_pool(nhwc, kind, "nhwc"), expected)
    tokens = torch.cat([torch.zeros(2, 1, 5), fmap.flatten(2).transpose(1, 2)], dim=1)
    torch.testing.assert_close(global_pool(tokens, kind, "nlc"), expected)


def test_values(fmap):
    torch.testing.assert_close(global_pool(fmap, "avg"), fmap.mean((2, 3)))
    torch.testing.assert_close(global_pool(fmap, "max"), fmap.amax((2, 3)))
    avgmax = global_pool(fmap, "avgmax")
    assert avgmax.shape == (2, 10)
    gem = global_pool(fmap, "gem")
    torch.testing.assert_close(gem, fmap.pow(3).mean((2, 3)).pow(1 / 3))
    # GeM lies between the mean and the max.
    assert (gem >= global_pool(fmap, "avg") - 1e-6).all() and (gem <= global_pool(fmap, "max") + 1e-6).all()


def test_token_reads_the_class_token():
    seq = torch.randn(2, 7, 4)
    torch.testing.assert_close(global_pool(seq, "token", "nlc"), seq[:, 0])
    with pytest.raises(ValueError, match="token sequence"):
        global_pool(torch.rand(2, 3, 4, 4), "token", "nchw")
    with pytest.raises(ValueError, match="pooling must be one of"):
        global_pool(torch.rand(2, 3, 4, 4), "median", "nchw")
