"""`gcrm`: run the kit's notebooks headless through papermill with a validated params file.

    gcrm run 01_rm_training --params toy          # params/01_rm_training/toy.yaml
    gcrm run all --params toy                     # every notebook that has that params file, in order
    gcrm run 01_rm_training --params toy --run-dir outputs/01_rm_training/toy/<run>   # resume that run
    gcrm check                                    # validate every params file
    gcrm compare <run a> <run b>                  # which metrics differ between two runs
    gcrm ship-policy --params toy                 # train notebook 01's toy policy and ship it with the kit

The params file is read into the notebook's params dataclass first (unknown keys and wrong types stop the run
before anything starts), the run folder is created, then papermill executes the notebook with the resolved
params and writes the executed copy into the run folder.
"""

from __future__ import annotations

import argparse
import sys

from papermill.exceptions import PapermillExecutionError

from .compare import IGNORED, compare_runs
from .io import project_root, resolve_output_root
from .notebooks import FAILED_MARKER, params_path, run_notebook
from .params import NOTEBOOK_PARAMS, ParamsError, load_params
from .runs import CACHE_DIRNAME
from .toyworld.policy import ship_policy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gcrm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute a notebook (or all) with a params file")
    r.add_argument("notebook", help=f"one of {sorted(NOTEBOOK_PARAMS)} or 'all'")
    r.add_argument("--params", default="toy", help="params name (params/<notebook>/<name>.yaml) or a YAML path")
    r.add_argument("--run-dir", default=None, help="an existing run folder to resume (one notebook only)")
    r.add_argument("--quiet", action="store_true", help="do not stream the notebook's output")
    sub.add_parser("check", help="validate every params file under params/")
    c = sub.add_parser("compare", help="compare the metrics.json of two run folders (exit 1 when they differ)")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--ignore", nargs="*", default=list(IGNORED),
                   help=f"key patterns to leave out (fnmatch on a part of a key); default {list(IGNORED)}")
    sp = sub.add_parser("ship-policy", help="train (or take from the cache) the toy policy notebook 01 uses with "
                                             "these params and write it under gcrm_kit/toyworld/shipped/")
    sp.add_argument("--params", default="toy", help="a notebook-01 params name or YAML path")
    args = ap.parse_args(argv)

    if args.cmd == "compare":
        result = compare_runs(args.run_a, args.run_b, tuple(args.ignore))
        print(result.report(args.run_a, args.run_b))
        return 0 if result.identical else 1
    try:
        if args.cmd == "check":
            n = 0
            for nb in sorted(NOTEBOOK_PARAMS):
                for f in sorted((project_root() / "params" / nb).glob("*.yaml")):
                    load_params(nb, f)
                    n += 1
            print(f"[gcrm] {n} params files valid")
            return 0
        if args.cmd == "ship-policy":
            p = load_params("01_rm_training", params_path("01_rm_training", args.params))
            folder = ship_policy(p.world, p.policy, p.seed, resolve_output_root(p.output_root) / CACHE_DIRNAME,
                                 built_by=f"gcrm ship-policy --params {args.params}")
            print(f"[gcrm] shipped policy: {folder}")
            return 0
        notebooks = sorted(NOTEBOOK_PARAMS) if args.notebook == "all" else [args.notebook]
        if args.notebook != "all" and args.notebook not in NOTEBOOK_PARAMS:
            ap.error(f"unknown notebook {args.notebook!r}; known: {sorted(NOTEBOOK_PARAMS)}")
        if args.run_dir and len(notebooks) > 1:
            ap.error("--run-dir resumes one notebook; name it")
        done = []
        for nb in notebooks:
            if args.notebook == "all" and not params_path(nb, args.params).is_file():
                print(f"[gcrm] {nb}: no params '{args.params}', skipped")
                continue
            done.append(run_notebook(nb, args.params, args.run_dir, log_output=not args.quiet))
        for d in done:
            print(f"[gcrm] run folder: {d}")
        return 0
    except ParamsError as e:
        print(f"[gcrm] params error: {e}", file=sys.stderr)
        return 2
    except PapermillExecutionError as e:
        print(f"[gcrm] failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n[gcrm] the executed notebook and "
              f"{FAILED_MARKER} in the run folder say where; resume with --run-dir", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
