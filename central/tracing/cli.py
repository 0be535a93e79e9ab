"""`classink tracing ...`: evaluate tracing models on answer files; import the skill graph and
resources into central; refit the stored parameters."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    tracing = subparsers.add_parser(
        "tracing", help="knowledge tracing: evaluate models, import skills, refit mastery"
    )
    commands = tracing.add_subparsers(dest="tracing_command", required=True, metavar="SUBCOMMAND")

    evaluate = commands.add_parser(
        "evaluate",
        help="fit on TRAIN, predict every TEST answer one step ahead, print AUC and RMSE",
        description="Files are CSV (optionally .gz) with the columns user_id,skill_id,correct, "
        "each user's rows in answer order; train and test users must be disjoint. The last "
        "line printed is a JSON object.",
    )
    evaluate.add_argument("--train", type=Path, required=True, help="training answers CSV[.gz]")
    evaluate.add_argument("--test", type=Path, required=True, help="test answers CSV[.gz]")
    evaluate.add_argument(
        "--model", default="logistic", help="bkt or logistic (default: logistic, the stronger)"
    )
    evaluate.set_defaults(handler=evaluate_command)

    load = commands.add_parser(
        "import",
        help="import skills, prerequisites, item tags and resources into central (docs/tracing.md)",
    )
    load.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    load.add_argument("--skills", type=Path, help="skills CSV (skill_id,name,...) or JSON")
    load.add_argument(
        "--prerequisites", type=Path, help="prerequisite edges CSV (skill_id,requires) or JSON"
    )
    load.add_argument(
        "--items", type=Path, help="item tags CSV (exam_id,question_id,skill_id) or JSON"
    )
    load.add_argument("--resources", type=Path, help="resource catalogue JSON or CSV")
    load.set_defaults(handler=import_command)

    refit = commands.add_parser(
        "refit",
        help="fit the models on every stored answer, store them as a new version, redo mastery",
    )
    refit.add_argument("--database-url", help="SQLAlchemy URL (default: CLASSINK_DATABASE_URL)")
    refit.set_defaults(handler=refit_command)


def evaluate_command(args: argparse.Namespace) -> int:
    from central.tracing import TracingError
    from central.tracing.evaluate import evaluate_files

    try:
        result = evaluate_files(args.train, args.test, args.model)
    except TracingError as error:
        print(f"tracing evaluate: {error}", file=sys.stderr)
        return 2
    if result.note:
        print(f"tracing evaluate: {result.note}", file=sys.stderr)
    print(json.dumps(result.to_json()))
    return 0


def _database_url(args: argparse.Namespace) -> str:
    from central.settings import CentralSettings

    return args.database_url or CentralSettings().database_url


def import_command(args: argparse.Namespace) -> int:
    from central.db import make_engine, make_session_factory
    from central.migrate import upgrade
    from central.tracing import TracingError
    from central.tracing.catalogue import import_catalogue
    from central.tracing.files import read_items, read_prerequisites, read_resources, read_skills

    if not any((args.skills, args.prerequisites, args.items, args.resources)):
        print("tracing import: give at least one of --skills, --prerequisites, --items, "
              "--resources", file=sys.stderr)  # fmt: skip
        return 2
    engine = make_engine(_database_url(args))
    try:
        skills = read_skills(args.skills) if args.skills else None
        prerequisites = read_prerequisites(args.prerequisites) if args.prerequisites else None
        items = read_items(args.items) if args.items else None
        resources = read_resources(args.resources) if args.resources else None
        upgrade(_database_url(args))
        with make_session_factory(engine).begin() as session:
            summary = import_catalogue(
                session,
                skills=skills,
                prerequisites=prerequisites,
                items=items,
                resources=resources,
            )
    except TracingError as error:
        print(f"tracing import: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(summary.__dict__))
    return 0


def refit_command(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from central.db import make_session_factory
    from central.migrate import migrated_engine
    from central.tracing import TracingError
    from central.tracing.mastery import refit

    engine = migrated_engine(_database_url(args))
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("replaying students", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = refit(make_session_factory(engine), advance)
    except TracingError as error:
        print(f"tracing refit: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(summary.__dict__))
    return 0
