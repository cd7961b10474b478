"""``nstlab course ...``: nbgrader with the course configuration, from any working folder."""

from __future__ import annotations

import argparse

from nstlab import course
from nstlab.cli import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "course",
        help="build, release, start, autograde and export the course's assignments",
        description="Run nbgrader's commands with the course configuration (course/nbgrader_config.py).",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the assignments")
    p = sub.add_parser("generate", help="build solutions/ from course/source/ and release them to notebooks/")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: all")
    p = sub.add_parser("start", help="copy a released notebook into work/ (never overwrites your copy)")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT")
    p.add_argument("--all", action="store_true", help="every assignment")
    p = sub.add_parser("autograde", help="autograde submissions in course/submitted/<student>/<assignment>/")
    p.add_argument("assignment", metavar="ASSIGNMENT")
    p.add_argument("--student", help="only this student")
    p.add_argument("--timeout", type=int, help="seconds per cell (default: course/nbgrader_config.py)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="grade N submissions at once, each in its own sandbox (default: 1)")
    p.add_argument("--unsafe", action="store_true",
                   help="grade without the sandbox where none can be made (student code then runs with your "
                        "rights: only for submissions you trust)")
    p = sub.add_parser("feedback", help="write HTML feedback into course/feedback/")
    p.add_argument("assignment", metavar="ASSIGNMENT")
    p = sub.add_parser("export", help="export all grades to a CSV file")
    p.add_argument("--to", default="grades.csv", help="CSV file to write (default: grades.csv)")
    p = sub.add_parser("publish", help="write a student copy of the course into DIR: no solutions, no hidden tests")
    p.add_argument("folder", metavar="DIR", help="a new or empty folder outside this repository")
    p.add_argument("--force", action="store_true",
                   help="replace what an earlier publish wrote in DIR (work/, .git and other files stay)")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            for name in course.assignments():
                print(name)
        elif args.action == "generate":
            course.generate(args.assignments or None)
        elif args.action == "start":
            names = course.assignments() if args.all else args.assignments
            if not names:
                raise UserError("name an assignment (see `nstlab course list`) or pass --all")
            for name in names:
                started = course.start(name)
                for path in started.copied:
                    print(f"copied  {path}")
                for path in started.kept:
                    print(f"kept    {path} (yours; not overwritten)")
        elif args.action == "autograde":
            if args.jobs < 1:
                raise UserError(f"--jobs must be at least 1, not {args.jobs}")
            done = course.autograde(args.assignment, student=args.student, timeout=args.timeout, jobs=args.jobs,
                                    unsafe=args.unsafe)
            print(done.summary())
        elif args.action == "feedback":
            for problem in course.feedback(args.assignment):
                print(f"no feedback for {problem}")
        elif args.action == "export":
            print(f"grades written to {course.export(args.to)}")
        elif args.action == "publish":
            from nstlab.course.publish import publish  # only this command needs it

            published = publish(args.folder, force=args.force)
            for entry in published.replaced:
                print(f"replaced  {entry}")
            print(f"student copy of {len(published.assignments)} assignments written to {published.folder} "
                  f"({published.files} files; no solutions, no hidden tests)")
    except course.CourseError as err:
        raise UserError(str(err)) from err
    return 0
