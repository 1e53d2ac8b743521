"""Write a small, realistic model directory for the demo: weights, a tokenizer part, code, data, docs, Kitfile."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: churn-predictor
  version: 1.0.0
  description: A small demo model
  authors: [Data Team]
model:
  name: churn
  path: model
  framework: scikit-learn
  version: "1.5"
  parameters:
    n_estimators: 100
    learning_rate: 0.1
  parts:
    - name: tokenizer
      path: model/tokenizer.json
code:
  - path: src
    description: Training code
datasets:
  - name: train
    path: data/train.csv
docs:
  - path: README.md
"""


def main(target: Path) -> None:
    rng = random.Random(42)
    (target / "model").mkdir(parents=True)
    (target / "src").mkdir()
    (target / "data").mkdir()
    (target / "model" / "weights.bin").write_bytes(rng.randbytes(256 * 1024))
    (target / "model" / "tokenizer.json").write_text('{"vocab": ["a", "b", "c"]}\n')
    (target / "src" / "train.py").write_text("print('training')\n")
    rows = "\n".join(f"{i},{rng.random():.6f},{rng.randint(0, 1)}" for i in range(1000))
    (target / "data" / "train.csv").write_text("id,score,label\n" + rows + "\n")
    (target / "README.md").write_text("# Churn predictor\n\nA demo ModelKit.\n")
    (target / "Kitfile").write_text(KITFILE)
    for path in target.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
