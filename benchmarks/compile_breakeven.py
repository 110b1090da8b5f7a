"""When does ``model.compile`` pay? Compile time against the per-step gain, full HI2M pretraining step.

Same process, same model weights, same batch: the eager step (the comparison run) and the step with
the transformer blocks and the HRD policy compiled in place (``hi2m.model.compiled.compile_blocks``,
what ``model.compile: true`` does). Reports the first compiled step (it includes compilation), the
steady step times, and the break-even: the number of steps after which the compiled run is ahead,
(first compiled step - eager step) / (eager step - compiled step).

    .venv/bin/python benchmarks/compile_breakeven.py [--sizes micro tiny] [--steps 8] [--batch 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def main() -> None:
    import torch

    from hi2m.model import HI2M, HI2MConfig
    from hi2m.model.compiled import compile_blocks
    from hi2m.train.optim import build_adamw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["micro", "tiny"])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads; input "
          f"{args.frames}x{args.image}x{args.image}, batch {args.batch}, full HI2M (HRD + HSM + dual target)")
    header = (f"{'size':6} {'eager s/step':>12} {'compiled s/step':>15} {'speed-up':>8} {'first compiled s':>16} "
              f"{'break-even steps':>16}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        torch.manual_seed(0)
        base = HI2M(HI2MConfig.from_name(size, num_frames=args.frames, image_size=args.image))
        video = torch.randn(args.batch, 3, args.frames, args.image, args.image, device=args.device)

        def run(model, steps):
            model = model.to(args.device).train()
            opt = build_adamw(model, lr=1e-4, weight_decay=0.05)
            gen = torch.Generator(device=args.device).manual_seed(0)
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                out = model(video, generator=gen)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            return times

        eager = run(copy.deepcopy(base), args.steps + 1)
        compiled_model = copy.deepcopy(base)
        compile_blocks(compiled_model)
        compiled = run(compiled_model, args.steps + 2)
        t_eager = statistics.median(eager[1:])
        t_comp = statistics.median(compiled[2:])
        gain = t_eager - t_comp
        first = compiled[0] + compiled[1]  # compilation of forward and backward graphs
        breakeven = (first - 2 * t_eager) / gain if gain > 0 else float("inf")
        print(f"{size:6} {t_eager:12.3f} {t_comp:15.3f} {t_eager / t_comp:7.2f}x {first:16.1f} "
              f"{breakeven:16.0f}", flush=True)


if __name__ == "__main__":
    main()
