"""Train the character model on sonnets.txt and write weights.pt: `python train.py [--steps N]`.

Takes five to ten minutes on two CPU cores. The committed weights.pt was made with the defaults.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from charmodel import CharGRU, sample, save

HERE = Path(__file__).resolve().parent
CONFIG = {"embedding": 48, "hidden": 192, "layers": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "weights.pt")
    args = parser.parse_args()

    torch.manual_seed(1609)
    text = (HERE / "sonnets.txt").read_text()
    vocab = "".join(sorted(set(text)))
    data = torch.tensor([vocab.index(c) for c in text])
    model = CharGRU(len(vocab), **CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=args.steps)
    loss_fn = nn.CrossEntropyLoss()
    started = time.monotonic()
    for step in range(1, args.steps + 1):
        starts = torch.randint(0, len(data) - args.length - 1, (args.batch,))
        batch = torch.stack([data[s : s + args.length + 1] for s in starts])
        logits, _ = model(batch[:, :-1])
        loss = loss_fn(logits.reshape(-1, len(vocab)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.monotonic() - started:.0f}s", flush=True)
    save(args.out, model.eval(), vocab, CONFIG)
    print("".join(sample(model, vocab, "Shall I", 200, 0.8, seed=1)))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
