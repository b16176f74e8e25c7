"""Models the benchmarks share: the demo CNN and a ResNet-18-sized network built in code, both
with seeded weights (what they cost does not depend on training)."""

from __future__ import annotations

import torch
from torch import nn

N_CLASSES = 10


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 layout: stem, BasicBlock x [2, 2, 2, 2] at 64-512 channels, pool, linear."""

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        widths, c_in, stages = (64, 128, 256, 512), 64, []
        for stage, width in enumerate(widths):
            stride = 1 if stage == 0 else 2
            stages.append(
                nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1))
            )
            c_in = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.pool(x).flatten(1))


def shapes_cnn() -> nn.Module:
    """The demo CNN with its seeded initial weights (training does not change the cost)."""
    from latentsight.demo.model import ShapesCNN

    torch.manual_seed(0)
    return ShapesCNN(n_classes=N_CLASSES)


def resnet18() -> nn.Module:
    """The ResNet-18-sized network with seeded weights."""
    torch.manual_seed(0)
    return ResNet18()
