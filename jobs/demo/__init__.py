"""`adaptrec demo`: a deterministic synthetic learning platform with a known ground truth.

The catalogue is a unit DAG: root `demo` > 3 subjects > 6 chapters each > 4 sections each >
20-30 questions per section, plus a video and an article per section. Each subject also has a
"Review" chapter whose children are sections that already belong to other chapters (a diamond),
so the hierarchy is a DAG, not a tree.

Ground truth, stored so later tests can check what training recovers:
- question i has a difficulty b_i ~ N(section mean, 0.8); section means rise through a chapter.
  items.attrs = {"true_difficulty", "difficulty_label", "skill" (the section), ...}
- learner u has an ability theta_{u,s} per subject s: a general component shared by all subjects
  plus a subject component, each N(0, 1/2), so abilities are N(0, 1) with correlation 0.5.
  users.attrs = {"true_ability": {subject unit id: theta}, "grade", "country"}. By default grade
  and country say nothing of ability; `grade_effect` g (option --grade-effect) adds g * (grade -
  10.5) to every ability, so metadata carries signal (what a cold-start prior can learn).
- every attempt succeeds with probability sigmoid(theta_{u,subject(i)} - b_i), independently.
  There is deliberately no learning effect: abilities do not change with practice, so the
  logistic model is exactly right and a trained model can be checked against it.

Everything is drawn with numpy Generators from one seed (spawned into independent streams, so
the catalogue and the learners do not change when only the event counts do), vectorised over
whole arrays, and written through the importers' Loader (COPY into temp tables, then an
idempotent merge). Times count back from a fixed reference date, never now(), so a seed gives
the same rows on any day. Event ids are `demo:<seed>:a:<n>` (attempts) and `demo:<seed>:e:<n>`
(engagement), n counting in time order: a second run with the same config adds nothing.

The package by role: config (DemoConfig, the fixed anchors), catalogue (the unit DAG and its
questions), learners, events (attempts in sittings, engagement), dataset (build: all of them from
one seed), load (generate_demo: into Postgres, and the report).
"""
from __future__ import annotations

from jobs.demo.catalogue import Catalogue
from jobs.demo.config import REFERENCE_TIME, ROOT_UNIT, WINDOW_DAYS, DemoConfig, DemoError
from jobs.demo.dataset import DemoData, build
from jobs.demo.events import Events
from jobs.demo.learners import Learners
from jobs.demo.load import DemoReport, generate_demo, stage

__all__ = ["REFERENCE_TIME", "ROOT_UNIT", "WINDOW_DAYS", "Catalogue", "DemoConfig", "DemoData", "DemoError",
           "DemoReport", "Events", "Learners", "build", "generate_demo", "stage"]
