"""A small convolutional ResNet: the coupling conditioner of the image flows.

    net = ResNetConditioner(hidden=64, out=8, num_blocks=1)
    out = net.apply({"params": p}, x)       # x (..., H, W, C) -> (..., H, W, out)

Layout (RealNVP's residual conditioner at CPU size, Dinh et al. 2017 sec. 4.1): a 3x3 convolution
in, `num_blocks` residual blocks `h + Dense(relu(Conv_kxk(relu(h))))` (a k x k convolution then a
1x1 one, as in Glow's conditioner), ReLU, and a 3x3 convolution out whose weights and bias start
at zero, so a coupling layer using it starts as the identity map. The convolutions are
`gen_jax.nn.conv.Conv` (the `flax.linen.Conv` parameters; im2col on CPU, `lax.conv` elsewhere).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from gen_jax.nn.conv import Conv


class ResNetConditioner(nn.Module):
    """A convolutional residual network mapping the kept channels to a coupling's parameters."""

    hidden: int
    out: int
    num_blocks: int = 1
    block_kernel: int = 3  # spatial size of each block's first convolution (1: a 1x1 block, cheap on CPU)
    conv_impl: str = "auto"  # convolution implementation (`gen_jax.nn.conv.conv2d`)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = Conv(self.hidden, (3, 3), impl=self.conv_impl)(x)
        for _ in range(self.num_blocks):
            r = Conv(self.hidden, (self.block_kernel, self.block_kernel), impl=self.conv_impl)(nn.relu(h))
            h = h + nn.Dense(self.hidden)(nn.relu(r))  # a 1x1 convolution
        zeros = nn.initializers.zeros
        return Conv(self.out, (3, 3), kernel_init=zeros, bias_init=zeros, impl=self.conv_impl)(nn.relu(h))
