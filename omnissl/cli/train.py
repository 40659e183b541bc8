"""``omnissl train RECIPE [KEY=VALUE...]``: pretrain, then evaluate and write the report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options, add_recipe_overrides, print_reports
from omnissl.core.errors import OmnisslError


def _print_estimate(trainer: object) -> None:
    """The cost line before training; an estimate that cannot be made is a warning, never a refused run."""
    from omnissl.workflows.session import training_estimate

    try:
        print(training_estimate(trainer).line(), flush=True)
    except Exception as error:  # noqa: BLE001 - e.g. a model deepcopy cannot copy; training itself may still work
        print(f"omnissl: warning: no cost estimate ({type(error).__name__}: {error})", file=sys.stderr)


def _resume_source(args: argparse.Namespace) -> str:
    """The recipe part of the resume command the runner prints: the path as given plus every override and option
    that shaped the recipe, since a resume with a different recipe is refused."""
    parts = [args.recipe, *args.overrides]
    parts += ["--variant", args.variant] if args.variant else []
    parts += ["--stop-on-collapse"] if args.stop_on_collapse else []
    parts += ["--data-root", args.data_root] if args.data_root else []
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from omnissl.core.config import load_recipe
    from omnissl.core.recipes import resolve_recipe

    resume = args.resume or args.checkpoint is not None  # a named checkpoint continues that run
    if resume and args.run_dir is None:
        flag = "--resume" if args.resume else "--checkpoint"
        raise OmnisslError(f"{flag} needs --run-dir (the directory of the run to continue)")
    extra = ["train.stop_on_collapse=true"] if args.stop_on_collapse else []
    # Schema errors (train.stpes) before torch or any plugin is imported: the recipe needs pydantic only.
    recipe = load_recipe(resolve_recipe(args.recipe), [*args.overrides, *extra], args.variant)
    from omnissl.train.assemble import assemble
    from omnissl.workflows.session import check_resume_matches, default_run_dir, evaluate_assembled
    from omnissl.train.runner import Trainer

    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(recipe)
    if resume:
        check_resume_matches(recipe, run_dir)
    assembled = assemble(recipe, root=args.data_root)
    options: dict[str, object] = {"resume": resume}
    if args.checkpoint is not None:
        options["checkpoint"] = Path(args.checkpoint)
    options["recipe_source"] = _resume_source(args)
    trainer = Trainer(assembled, run_dir, **options)
    # The timed step runs the objective on one rank only: under torchrun its collectives (gathered negatives,
    # synced BatchNorm) would wait for ranks that are already training, so the estimate is for single-process runs.
    if not trainer.dist.enabled and not args.no_estimate and trainer.step < recipe.train.steps:
        _print_estimate(trainer)
    result = trainer.fit()
    span = f" ({result.start_step} → {result.steps_done})" if result.start_step else ""
    print(f"trained {result.steps_trained} steps{span} in {result.seconds:.0f}s ({result.samples_per_second:.1f} "
          f"samples/s, stopped: {result.stopped_because}); run directory: {run_dir}")
    if result.data_skipped:  # never dropped silently: the count is also data/skipped_total in metrics.jsonl
        print(f"skipped {result.data_skipped} bad sample(s) over the run (data.on_error: skip); each is named in "
              f"the log, and metrics.jsonl has data/skipped per step")
    args.interrupt_hint = f"the trained run is saved in {run_dir}; evaluate it with: omnissl eval {run_dir}"
    if result.stopped_because.startswith("SIG"):  # the user (or the scheduler) asked to stop: stop now
        print(f"skipped the evaluation and the report (stopped by {result.stopped_because}): resume with the "
              f"command above, or evaluate the checkpoint as it is with: omnissl eval {run_dir}")
        return 0
    if not args.no_eval and trainer.dist.is_main and assembled.bundle.test is not None:
        print_reports(evaluate_assembled(assembled, trained=True, device=recipe.train.device,
                                         run_root=run_dir.parent), run_dir)
    if trainer.dist.is_main:
        from omnissl.report.auto import auto_report  # looked up per call: tests replace it

        auto_report(run_dir, data_root=args.data_root, embed=not args.no_eval)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="pretrain a recipe, then evaluate it")
    p.add_argument("recipe", help="a recipe file, or a shipped recipe's name (image/simclr, simclr_digits)")
    add_recipe_overrides(p)
    add_data_root_options(p)
    p.add_argument("--run-dir", help="where to write checkpoints and metrics (default: runs/NAME-TIME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--checkpoint", help="resume from this checkpoint file instead of the latest one "
                                        "(e.g. the previous one when the latest is damaged); implies --resume")
    p.add_argument("--variant", help="apply a named variant of the recipe (e.g. gpu)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the cost estimate (parameters, one timed step) printed before training")
    p.add_argument("--stop-on-collapse", action="store_true",
                   help="stop (with a checkpoint) when the collapse monitor fires")
    p.set_defaults(func=run)
