"""Is one batched computation faster than a loop over ensemble members, on this CPU?

Compares, for the reward ensemble (3 members, HalfCheetah-sized inputs), training steps and
relabelling with (a) a Python loop over M ``nn.Sequential`` MLPs, as ``pebble.reward_model``
does, and (b) all members stacked into (M, in, out) weights applied with ``torch.matmul``.

    python bench/diagnostics/ensemble_layout.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, write_result  # noqa: E402

IN, MEMBERS, ROWS_TRAIN, ROWS_RELABEL = 23, 3, 128 * 2 * 50, 100_000


def loop_members(width: int) -> list[nn.Sequential]:
    def mlp() -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(IN, width), nn.LeakyReLU(), nn.Linear(width, width), nn.LeakyReLU(),
            nn.Linear(width, width), nn.LeakyReLU(), nn.Linear(width, 1), nn.Tanh(),
        )  # fmt: skip

    return [mlp() for _ in range(MEMBERS)]


def stacked(width: int) -> list[nn.Parameter]:
    shapes = [(IN, width), (width, width), (width, width), (width, 1)]
    return [nn.Parameter(torch.randn(MEMBERS, a, b) / a**0.5) for a, b in shapes]


def forward_stacked(weights: list[nn.Parameter], x: torch.Tensor) -> torch.Tensor:
    for i, w in enumerate(weights):
        x = torch.matmul(x, w)
        x = torch.tanh(x) if i == len(weights) - 1 else nn.functional.leaky_relu(x)
    return x


def timed(fn, repeats: int) -> float:
    fn()
    tic = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - tic) / repeats


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help
    torch.set_num_threads(1)
    rows = {}
    for width in (128, 256):
        nets = loop_members(width)
        opts = [torch.optim.Adam(n.parameters()) for n in nets]
        weights = stacked(width)
        opt = torch.optim.Adam(weights)
        xb = torch.randn(MEMBERS, ROWS_TRAIN, IN)

        def train_loop(nets=nets, opts=opts, xb=xb) -> None:  # bind this width's objects
            for m, (net, o) in enumerate(zip(nets, opts)):
                loss = net(xb[m]).sum()
                o.zero_grad()
                loss.backward()
                o.step()

        def train_stacked(weights=weights, opt=opt, xb=xb) -> None:
            loss = forward_stacked(weights, xb).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        x = torch.randn(ROWS_RELABEL, IN)

        def relabel_loop(nets=nets, x=x) -> None:
            with torch.inference_mode():
                torch.stack([n(x) for n in nets])

        def relabel_stacked(weights=weights, x=x) -> None:
            with torch.inference_mode():
                forward_stacked(weights, x.unsqueeze(0).expand(MEMBERS, -1, -1))

        rows[width] = {
            "train_step_seconds": {"loop": timed(train_loop, 5), "stacked": timed(train_stacked, 5)},
            "relabel_100k_seconds": {"loop": timed(relabel_loop, 3), "stacked": timed(relabel_stacked, 3)},
        }
        r = rows[width]
        print(
            f"width {width}: train step loop {r['train_step_seconds']['loop']:.3f}s vs stacked "
            f"{r['train_step_seconds']['stacked']:.3f}s; relabel 100k loop {r['relabel_100k_seconds']['loop']:.3f}s "
            f"vs stacked {r['relabel_100k_seconds']['stacked']:.3f}s",
            flush=True,
        )
    path = write_result(
        "ensemble_layout",
        {"members": MEMBERS, "input_dim": IN, "torch_threads": 1, "by_width": rows},
        DIAGNOSTICS_RESULTS,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
