"""Where q's steps look, in a specs/multi_mnist*.gm run: for each step k, on validation canvases
with their true count, how far the centre of q's box lies from the nearest digit's centre, and
which digit (1st, 2nd or 3rd from the left) that is. A reader that visits the digits left to
right, as `specs/multi_mnist_digits.gm` labels them, has step k nearest the k-th digit.

    .venv/bin/python bench/multi_mnist_steps.py runs/multi_mnist/RUN [--canvases 1000] [--checkpoint last]

Distances are in pixels of the 64-pixel canvas (a digit is 18 to 28 pixels wide); one draw of
q's boxes, seeded, so the numbers repeat.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gmdsl.train import runs


@torch.no_grad()
def steps_table(run: runs.Run, canvases: int) -> list[str]:
    train = run.dataset.train
    rows = runs.saved_indices(run.path, "validation", len(train["image"]))[:canvases]
    x = train["image"][rows].float() / 255
    count = train["count"][rows].long()
    boxes = train["boxes"][rows].float()  # x, y, width, height in pixels, left to right; -1 past the count
    torch.manual_seed(0)
    steps = run.model.by_name["where"].shape[0]
    given = torch.nn.functional.one_hot(count, steps + 1).float()
    if run.model.by_name["where"].role == "supervised":  # q's mean box from the canvas alone
        where = run.model.predict({"x": x})["where"].reshape(len(rows), steps, 3)
    else:
        where = run.model.infer({"x": x, "count": given})["where"].reshape(len(rows), steps, 3)
    size = x.shape[-1]
    q_centre = (where[..., 1:] + 1) / 2 * size  # [N, steps, 2] in pixels
    true_centre = boxes[..., :2] + boxes[..., 2:] / 2  # [N, digits, 2]
    distance = (q_centre[:, :, None, :] - true_centre[:, None, :, :]).norm(dim=-1)  # [N, step, digit]
    present = torch.arange(steps)[None, :] < count[:, None]  # [N, digit]
    distance = distance.masked_fill(~present[:, None, :], float("inf"))
    nearest, which = distance.min(-1)
    lines = [
        f"{run.path.name}: {len(rows)} validation canvases",
        "",
        "| step | canvases | px to the nearest digit | nearest is 1st / 2nd / 3rd from the left |",
        "|---|---|---|---|",
    ]
    for k in range(steps):
        holds = count > k
        shares = torch.bincount(which[holds, k], minlength=steps).float() / holds.sum()
        lines.append(
            f"| {k + 1} | {int(holds.sum())} | {nearest[holds, k].mean():.1f} | "
            + " / ".join(f"{100 * s:.0f} %" for s in shares)
            + " |"
        )
    return lines + ["", *count_lines(run, x, count)]


def count_lines(run: runs.Run, x: torch.Tensor, count: torch.Tensor) -> list[str]:
    """q's count against the true one on the same canvases: a run that counts nothing yet shows
    which count it settled on, and for which canvases."""
    predicted = run.model.predict({"x": x})["count"].argmax(-1)
    values = run.model.by_name["count"].shape[0]
    lines = ["| true count | " + " | ".join(f"q says {c}" for c in range(values)) + " |"]
    lines.append("|---" * (values + 1) + "|")
    for true in sorted(set(count.tolist())):
        said = torch.bincount(predicted[count == true], minlength=values)
        lines.append(f"| {true} | " + " | ".join(str(int(n)) for n in said) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--canvases", type=int, default=1000)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which weights (default: best)")
    parser.add_argument("--dataset", help="where the run's data is now, if the cached copy changed")
    args = parser.parse_args()
    run = runs.open_run(args.run, "cpu", args.checkpoint, args.dataset)
    print("\n".join(steps_table(run, args.canvases)))


if __name__ == "__main__":
    main()
