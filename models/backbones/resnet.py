"""Deep-stem dilated ResNets ("v1s", output stride 8), as used by Af-DCD / CIRKD.

Public API:
    ResNetV1s(block, layers, norm_layer=nn.BatchNorm2d)   forward(x) -> (c1, c2, c3, c4)
    resnet18_v1s(norm_layer) / resnet50_v1s(norm_layer) / resnet101_v1s(norm_layer)
    ResNetV1s.stage_channels                              channels of c1..c4

Structure (OSVAI/Af-DCD@5b086a7 models/base_models/resnet.py, the gluon-cv ResNetV1b with
``deep_stem=True, dilated=True``): stem conv3x3(3,64,s2)-BN-ReLU, conv3x3(64,64)-BN-ReLU,
conv3x3(64,128)-BN-ReLU (keys ``conv1/bn1, conv2/bn2, conv3/bn3``), maxpool 3/s2/p1; layer2
stride 2; layer3 / layer4 stride 1 with dilation 2 / 4, except that the first block of a layer
uses half the dilation (1 / 2) on its first 3x3 conv (BasicBlock) or on its 3x3 conv (Bottleneck);
a BasicBlock's second conv always uses the layer's dilation. Shortcut = 1x1 conv (block stride) +
BN. All convs are bias-free. There is no avgpool/fc: the state_dict keys equal the CSAIL ImageNet
files' keys minus ``fc.*``.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Type, Union

from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]


class BasicBlockV1b(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: Optional[nn.Module] = None, previous_dilation: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=previous_dilation,
                               dilation=previous_dilation, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class BottleneckV1b(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: Optional[nn.Module] = None, previous_dilation: int = 1,
                 norm_layer: NormLayer = nn.BatchNorm2d, width: Optional[int] = None) -> None:
        super().__init__()
        width = int(width or planes)      # inner width; wide ResNets use 2 x planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = norm_layer(width)
        # the stride sits on the 3x3 conv (ResNet v1b)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Type[Union[BasicBlockV1b, BottleneckV1b]]


class ResNetV1s(nn.Module):
    """Deep-stem ResNet dilated to output stride 8; forward returns the four stage outputs."""

    def __init__(self, block: Block, layers: Sequence[int],
                 norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        stem_width = 64
        self.inplanes = stem_width * 2
        self.conv1 = nn.Conv2d(3, stem_width, 3, 2, 1, bias=False)
        self.bn1 = norm_layer(stem_width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(stem_width, stem_width, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(stem_width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(stem_width, stem_width * 2, 3, 1, 1, bias=False)
        self.bn3 = norm_layer(stem_width * 2)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, 1, norm_layer)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, 1, norm_layer)
        self.layer3 = self._make_layer(block, 256, layers[2], 1, 2, norm_layer)
        self.layer4 = self._make_layer(block, 512, layers[3], 1, 4, norm_layer)
        self.stage_channels: Tuple[int, int, int, int] = tuple(
            p * block.expansion for p in (64, 128, 256, 512))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int, dilation: int,
                    norm_layer: NormLayer) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                norm_layer(planes * block.expansion))
        # the first block of a dilated layer uses half the dilation (gluon-cv ResNetV1b)
        first_dilation = {1: 1, 2: 1, 4: 2}[dilation]
        layers: List[nn.Module] = [block(self.inplanes, planes, stride, first_dilation, downsample,
                                         previous_dilation=dilation, norm_layer=norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, 1, dilation, None,
                                previous_dilation=dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


def resnet18_v1s(norm_layer: NormLayer = nn.BatchNorm2d) -> ResNetV1s:
    return ResNetV1s(BasicBlockV1b, [2, 2, 2, 2], norm_layer)


def resnet50_v1s(norm_layer: NormLayer = nn.BatchNorm2d) -> ResNetV1s:
    return ResNetV1s(BottleneckV1b, [3, 4, 6, 3], norm_layer)


def resnet101_v1s(norm_layer: NormLayer = nn.BatchNorm2d) -> ResNetV1s:
    return ResNetV1s(BottleneckV1b, [3, 4, 23, 3], norm_layer)
