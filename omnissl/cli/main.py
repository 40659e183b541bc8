"""``omnissl list | validate | train | eval``: the command line over :mod:`omnissl.workflows.session`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fnmatch
import json
import shlex
import sys
from pathlib import Path

from omnissl.core.errors import OmnisslError
from omnissl.core.paths import outside_paths
from omnissl.core.registry import REGISTRIES, load_plugins, unavailable_plugins
from omnissl.report.commands import add_data_root_options, add_eval_options, add_parsers

INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


def _check_modality(name: str) -> None:
    """An unknown ``--modality`` would list nothing at all, which reads as "no components": say so instead."""
    known = {"any", *load_plugins()} | {e.modality for registry in REGISTRIES.values() for e in registry.entries()}
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OmnisslError(f"--modality: unknown modality '{name}'{hint}; known: {', '.join(sorted(known))}")


def _cmd_list(args: argparse.Namespace) -> int:
    if args.params:
        from omnissl.workflows.listing import describe_params

        print(describe_params(args.params, kind=args.kind))
        return 0
    if args.modality:
        _check_modality(args.modality)
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    print(f"plugins: {', '.join(load_plugins()) or 'none'}")
    for reason in unavailable_plugins().values():  # installed but missing an extra: say what to pip install
        print(f"unavailable: {reason}")
    for kind in kinds:
        entries = [e for e in REGISTRIES[kind].entries() if fnmatch.fnmatch(e.name, args.pattern)
                   and (not args.modality or e.modality in (args.modality, "any"))]
        print(f"\n{kind} ({len(entries)})")
        for entry in entries:
            print(f"  {entry.name:<28} {entry.modality:<11} {entry.description}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from omnissl.workflows.session import check

    paths = [a for a in args.recipes if "=" not in a]
    overrides = [a for a in args.recipes if "=" in a]
    for path in paths:
        recipe, estimate = check(path, overrides, args.variant, estimate=not args.no_estimate)
        print(f"ok  {path}  ({recipe.name}: {recipe.objective.name}, {len(recipe.tower_specs())} tower(s))")
        if estimate is not None:
            print(f"    {estimate.line()}")
    return 0


def _print_estimate(trainer: object) -> None:
    """The cost line before training; an estimate that cannot be made is a warning, never a refused run."""
    from omnissl.workflows.session import training_estimate

    try:
        print(training_estimate(trainer).line(), flush=True)
    except Exception as error:  # noqa: BLE001 - e.g. a model deepcopy cannot copy; training itself may still work
        print(f"omnissl: warning: no cost estimate ({type(error).__name__}: {error})", file=sys.stderr)


def _print_reports(reports: dict[str, object], run_dir: Path) -> None:
    for tower, report in reports.items():
        print(f"\n{report.dataset} — tower '{tower}' — {report.train_samples} train / "  # type: ignore[attr-defined]
              f"{report.test_samples} test samples")  # type: ignore[attr-defined]
        print(report.table())  # type: ignore[attr-defined]
    combined = {tower: report.to_json() for tower, report in reports.items()}  # type: ignore[attr-defined]
    (run_dir / "eval.json").write_text(json.dumps(combined, indent=2), encoding="utf-8")
    print(f"\nwrote {run_dir / 'eval.json'}")


def _resume_source(args: argparse.Namespace) -> str:
    """The recipe part of the resume command the runner prints: the path as given plus every override and option
    that shaped the recipe, since a resume with a different recipe is refused."""
    parts = [args.recipe, *args.overrides]
    parts += ["--variant", args.variant] if args.variant else []
    parts += ["--stop-on-collapse"] if args.stop_on_collapse else []
    parts += ["--data-root", args.data_root] if args.data_root else []
    return shlex.join(parts)


def _cmd_train(args: argparse.Namespace) -> int:
    from omnissl.train.assemble import assemble
    from omnissl.core.config import load_recipe
    from omnissl.workflows.session import check_resume_matches, default_run_dir, evaluate_assembled
    from omnissl.train.runner import Trainer

    resume = args.resume or args.checkpoint is not None  # a named checkpoint continues that run
    if resume and args.run_dir is None:
        flag = "--resume" if args.resume else "--checkpoint"
        raise OmnisslError(f"{flag} needs --run-dir (the directory of the run to continue)")
    extra = ["train.stop_on_collapse=true"] if args.stop_on_collapse else []
    recipe = load_recipe(args.recipe, [*args.overrides, *extra], args.variant)
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
    args.interrupt_hint = f"the trained run is saved in {run_dir}; evaluate it with: omnissl eval {run_dir}"
    if result.stopped_because.startswith("SIG"):  # the user (or the scheduler) asked to stop: stop now
        print(f"skipped the evaluation and the report (stopped by {result.stopped_because}): resume with the "
              f"command above, or evaluate the checkpoint as it is with: omnissl eval {run_dir}")
        return 0
    if not args.no_eval and trainer.dist.is_main and assembled.bundle.test is not None:
        _print_reports(evaluate_assembled(assembled, trained=True, device=recipe.train.device), run_dir)
    if trainer.dist.is_main:
        from omnissl.report.commands import auto_report

        auto_report(run_dir, data_root=args.data_root, embed=not args.no_eval)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from omnissl.train.assemble import assemble
    from omnissl.core.config import load_recipe
    from omnissl.workflows.session import evaluate_assembled, load_trained

    target = Path(args.target)
    if target.is_dir():
        assembled = load_trained(target, checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                                 root=args.data_root, overrides=args.overrides)
        out_dir, trained = target, True
    else:
        assembled = assemble(load_recipe(target, args.overrides), root=args.data_root)
        out_dir, trained = Path(args.out or "."), False
    reports = evaluate_assembled(assembled, trained=trained, device=assembled.recipe.train.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    _print_reports(reports, out_dir)
    from omnissl.report.commands import auto_report, finetune_eval

    if args.finetune:
        finetune_eval(assembled, args, out_dir)
    if trained:
        auto_report(out_dir, data_root=args.data_root)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnissl", description="Self-supervised learning for every modality.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", choices=list(REGISTRIES))
    p.add_argument("--modality", help="only this modality (and modality-agnostic components)")
    p.add_argument("--pattern", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--params", metavar="NAME", help="show component NAME's parameters: types, defaults and which "
                                                    "ones the recipe's context fills in")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("validate", help="build every piece of a recipe and run one step on a synthetic batch")
    p.add_argument("recipes", nargs="+", help="recipe YAML file(s), then any KEY=VALUE overrides")
    p.add_argument("--variant", help="apply a named variant (e.g. gpu)")
    p.add_argument("--no-estimate", action="store_true", help="skip the timed step of the cost estimate")
    add_data_root_options(p, data_root=False)
    p.set_defaults(func=_cmd_validate)

    for name, func, helptext in (("train", _cmd_train, "pretrain a recipe, then evaluate it"),
                                 ("eval", _cmd_eval, "evaluate a run directory (or a recipe, untrained)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("recipe" if name == "train" else "target")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.steps=100")
        add_data_root_options(p)
        if name == "train":
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
        else:
            p.add_argument("--checkpoint", help="a specific checkpoint file (default: the latest)")
            p.add_argument("--out", help="where eval.json goes when evaluating a recipe")
            add_eval_options(p)
        p.set_defaults(func=func)
    add_parsers(sub)  # report, compare, embed, export
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (argparse would stop collecting positionals there).
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    opt_in = outside_paths(True) if getattr(args, "allow_outside_data_root", False) else contextlib.nullcontext()
    try:
        with opt_in:  # scoped to this command, so an in-process caller (tests, notebooks) is not left opted in
            return int(args.func(args))
    except OmnisslError as error:
        print(f"omnissl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops cleanly itself): one line, not a traceback
        hint = getattr(args, "interrupt_hint", None)
        print(f"\nomnissl: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
