"""What the reproduction's replica plan saves, counted (not timed): replicas, replica-epochs, replica-epochs with
the chunks' padding, and programs that train, of the quick and full reproductions, planned against each part
training its own (the store of trained replicas on in both: ``qrobust.experiments.replica_plan.summary``).
Nothing is trained; the full profile builds its datasets (the chains' ground states at 12 spins).

  python benchmarks/replica_plan.py                 # quick and full
  python benchmarks/replica_plan.py --profile quick
"""

from __future__ import annotations

import argparse
import json

from qrobust.experiments import replica_plan
from qrobust.experiments.reproduce import PARTS


def counted(profile: str) -> dict:
    parts = [p for p in PARTS if p.runs_in(profile)]
    return replica_plan.count({p.name: (p.study, p.config(profile)) for p in parts})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=("quick", "full", "tiny"))
    args = parser.parse_args()
    for profile in args.profile or ("quick", "full"):
        c = counted(profile)
        print(f"{profile}: {c['declared']:,} replicas, {c['declared_replica_epochs']:,} replica-epochs declared by the "
              "parts (what they train with the store of trained replicas off)")
        print(f"  {'':<12} {'replicas':>9} {'replica-epochs':>15} {'with padding':>13} {'programs':>9}")
        for name, row in (("parts alone", c["parts_alone"]), ("planned", c["planned"])):
            print(f"  {name:<12} {row['replicas']:>9,} {row['replica_epochs']:>15,} {row['padded_replica_epochs']:>13,}"
                  f" {row['programs']:>9}")
        print(json.dumps(c))


if __name__ == "__main__":
    main()
