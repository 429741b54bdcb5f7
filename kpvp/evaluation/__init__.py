"""Evaluation of a trained run as in the paper (Sec. 4): one module per metric, a report.

`trained_run` loads what the metrics share (`TrainedRun`), `fvd`, `action`, `keypoints` and
`reconstruction` are the evaluators, `report` writes and formats report.json / report.md, and
`run` runs a list of metrics (`run_evaluation`, the only module importing every evaluator).
Importing any of them defines no flags and reads no command line (`kpvp.evaluate` is the app).
"""
