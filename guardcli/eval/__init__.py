"""Evaluation: labelled data and predictions files in, F1 per benchmark out.

One judging path serves ``guardcli eval`` and the training pipeline's evaluation stage
(export.eval.evaluate): judge.labelled_file reads a benchmark file, judge.judge_file runs its items
through Guard, scoring.score_benchmark scores them (honest or paper-compat), and report and
chart show the result beside the paper's numbers.
"""
