"""After the jobs: run records (:mod:`.runs`), claim verdicts (:mod:`.claims`), reports
(:mod:`.report`, :mod:`.html`) and their W&B record (:mod:`.wandb_report`)."""
