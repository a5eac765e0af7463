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
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from app.access.tenants import DEFAULT
from app.config import ConfigError
from app.infra import queries as q
from jobs.importers.common import Loader

ROOT_UNIT = "demo"
GENERATOR_VERSION = 1
# Fixed so the same seed gives the same rows on any day; events fall in the WINDOW_DAYS before it.
REFERENCE_TIME = "2025-01-06T00:00:00"  # UTC
WINDOW_DAYS = 90

# (code, name, [(chapter, [four sections, in teaching order])]); sections get harder within a chapter.
SUBJECTS = [
    ("math", "Mathematics", [
        ("Numbers and operations", ["Fractions", "Decimals and percentages", "Ratios and proportion",
                                    "Powers and roots"]),
        ("Algebra", ["Expressions", "Linear equations", "Inequalities", "Simultaneous equations"]),
        ("Functions and graphs", ["Coordinates", "Linear functions", "Quadratic functions",
                                  "Exponential functions"]),
        ("Geometry", ["Angles", "Triangles", "Circles", "Area and volume"]),
        ("Trigonometry", ["Right triangles", "Sine and cosine rules", "Unit circle",
                          "Trigonometric identities"]),
        ("Probability and statistics", ["Averages", "Probability", "Distributions", "Hypothesis tests"]),
    ]),
    ("phys", "Physics", [
        ("Kinematics", ["Distance and displacement", "Velocity", "Acceleration", "Projectile motion"]),
        ("Forces", ["Newton's first law", "Newton's second law", "Friction", "Circular motion"]),
        ("Energy", ["Work", "Kinetic and potential energy", "Power", "Conservation of energy"]),
        ("Waves", ["Wave properties", "Sound", "Light and reflection", "Interference"]),
        ("Electricity", ["Charge and current", "Voltage and resistance", "Series and parallel circuits",
                         "Electric power"]),
        ("Magnetism", ["Magnetic fields", "Electromagnets", "Motors", "Electromagnetic induction"]),
    ]),
    ("chem", "Chemistry", [
        ("Atomic structure", ["Atoms and isotopes", "Electron shells", "The periodic table",
                              "Periodic trends"]),
        ("Bonding", ["Ionic bonding", "Covalent bonding", "Metallic bonding", "Intermolecular forces"]),
        ("Stoichiometry", ["The mole", "Balancing equations", "Reacting masses", "Limiting reagents"]),
        ("States of matter", ["Solids, liquids and gases", "Gas laws", "Solutions", "Phase diagrams"]),
        ("Acids and bases", ["pH scale", "Neutralisation", "Titrations", "Buffers"]),
        ("Reactions", ["Reaction types", "Rates of reaction", "Energy changes", "Equilibrium"]),
    ]),
]
N_SUBJECTS = len(SUBJECTS)
N_CHAPTERS = len(SUBJECTS[0][2])
N_SECTIONS = len(SUBJECTS[0][2][0][1])
SECTIONS_PER_SUBJECT = N_CHAPTERS * N_SECTIONS
QUESTIONS_PER_SECTION = (20, 30)          # inclusive range, drawn per section
# With levels (the scale run): slightly longer sections, so 5 levels make ~10,000 items.
QUESTIONS_PER_SECTION_LEVELS = (21, 31)
MAX_LEVELS = 20
LESSON_KINDS = ("video", "article")       # one of each per section
COUNTRIES = ("US", "IN", "GB", "NG", "BR", "DE", "CA", "AU", "KE", "PH")
COUNTRY_WEIGHTS = (0.30, 0.18, 0.10, 0.08, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04)

# Behaviour knobs (documented here rather than in DemoConfig: they shape realism, not size).
MEAN_SESSION_QUESTIONS = 15   # questions answered per sitting
STAY_IN_SECTION = 0.6         # a new sitting continues the previous section where it stopped
RETRY_AFTER_WRONG = 0.35      # a wrong answer is retried at once with this probability
ENGAGEMENT_KINDS = ("view", "complete", "like")
ENGAGEMENT_SHARES = (0.65, 0.25, 0.10)
ZIPF_EXPONENT = 1.1           # lesson popularity within a subject


class DemoError(ConfigError):
    """The demo cannot be generated as asked (bad config, or another demo is already loaded).

    A ConfigError, so the CLI prints it as one line."""


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    learners: int = 2000
    attempts: int = 200_000
    engagements: int = 50_000
    grade_effect: float = 0.0     # logits of ability per school grade (0: metadata says nothing)
    levels: int = 1               # courses per subject (a learner studies one level); 1: the classic demo

    def validate(self) -> None:
        if self.seed < 0:
            raise DemoError(f"the demo seed must be 0 or more, got {self.seed}")
        if self.learners < 1 or self.attempts < 1 or self.engagements < 0:
            raise DemoError("the demo needs at least 1 learner and 1 attempt, and 0 or more engagements")
        if not 1 <= self.levels <= MAX_LEVELS:
            raise DemoError(f"the demo has 1 to {MAX_LEVELS} levels per subject, got {self.levels}")
        if not -3.0 <= self.grade_effect <= 3.0:
            raise DemoError(f"the grade effect must be between -3 and 3 logits per grade, got {self.grade_effect}")

    def as_attrs(self) -> dict:
        return {"version": GENERATOR_VERSION, "seed": self.seed, "learners": self.learners,
                "attempts": self.attempts, "engagements": self.engagements,
                "reference_time": REFERENCE_TIME + "Z"} | (
            {"grade_effect": self.grade_effect} if self.grade_effect else {}) | (
            {"levels": self.levels} if self.levels > 1 else {})


# ---- the generated data (pure numpy; nothing here touches the database) ----------------------
@dataclass
class Catalogue:
    units: list            # (unit_id, name, kind, attrs) rows
    children: list         # (parent, child) rows
    items: list            # (item_id, kind, title, body, attrs, active) rows
    unit_items: list       # (unit_id, item_id, position) rows
    subject_ids: list      # unit id per subject
    section_ids: np.ndarray     # unit id per section, course-major (SECTIONS_PER_SUBJECT per course)
    section_first: np.ndarray   # index of the section's first question
    section_size: np.ndarray    # questions per section
    question_ids: np.ndarray
    question_section: np.ndarray
    difficulty: np.ndarray      # b_i per question
    lesson_ids: np.ndarray      # course-major, LESSON_KINDS per section
    lesson_kind: np.ndarray
    levels: int = 1             # courses per subject; course k = subject * levels + level


@dataclass
class Learners:
    ids: np.ndarray
    ability: np.ndarray         # (learners, subjects): theta
    activity: np.ndarray        # relative activity weight (heavy tailed)
    subject_pref: np.ndarray    # (learners, subjects) probabilities, favouring strong subjects
    start_day: np.ndarray       # first active day within the window
    attrs: list
    level: np.ndarray | None = None   # the level each learner studies (all 0 with one level)


@dataclass
class Events:
    """One kind of interaction as parallel arrays, ordered by learner then time."""
    user: np.ndarray            # index into Learners.ids
    item_ids: np.ndarray
    kind: np.ndarray
    outcome: np.ndarray         # 0/1, or -1 for none
    duration_ms: np.ndarray     # -1 for none
    occurred: np.ndarray        # datetime64[ms], UTC
    p_correct: np.ndarray | None = None   # the true probability, attempts only

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class DemoData:
    config: DemoConfig
    catalogue: Catalogue
    learners: Learners
    attempts: Events
    engagements: Events


def build(config: DemoConfig) -> DemoData:
    """Generate the whole data set in memory; the same config always gives identical arrays."""
    config.validate()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(4)]
    catalogue = build_catalogue(streams[0], config.levels)
    learners = build_learners(streams[1], config.learners, config.grade_effect, config.levels)
    attempts = build_attempts(streams[2], catalogue, learners, config.attempts)
    engagements = build_engagements(streams[3], catalogue, learners, config.engagements)
    return DemoData(config, catalogue, learners, attempts, engagements)


def difficulty_label(b: float) -> str:
    """The label a content author would give: easy below -0.5, hard above 0.5."""
    return "easy" if b < -0.5 else "hard" if b > 0.5 else "medium"


def build_catalogue(rng: np.random.Generator, levels: int = 1) -> Catalogue:
    """The unit DAG: root > subject > chapter > section > questions and lessons; with levels > 1
    root > subject > level (a course) > chapter > section, each course a full set of chapters."""
    # Filled as lists, course by course (_build_course); the array fields become arrays at the end.
    cat = Catalogue([(ROOT_UNIT, "Demo catalogue", "root", {})], *([] for _ in range(12)), levels=levels)
    courses = N_SUBJECTS * levels
    # Section means: a chapter level (slightly harder later in the book) plus a rise through the
    # chapter's sections, so "later section" reliably means "harder".
    chapter_level = 0.1 * (np.arange(N_CHAPTERS) - (N_CHAPTERS - 1) / 2) + rng.normal(
        0, 0.3, (courses, N_CHAPTERS))
    section_rise = np.linspace(-0.9, 0.9, N_SECTIONS)
    low, high = QUESTIONS_PER_SECTION if levels == 1 else QUESTIONS_PER_SECTION_LEVELS
    sizes = rng.integers(low, high + 1, (courses, N_CHAPTERS, N_SECTIONS))
    for s, (code, subject, chapters) in enumerate(SUBJECTS):
        sid = f"{ROOT_UNIT}.{code}"
        cat.subject_ids.append(sid)
        cat.units.append((sid, subject, "subject", {}))
        cat.children.append((ROOT_UNIT, sid))
        for level in range(levels):
            course, base, name, extra = s * levels + level, sid, subject, {}
            if levels > 1:
                base, name, extra = f"{sid}.l{level + 1}", f"{subject} level {level + 1}", {"level": level + 1}
                cat.units.append((base, name, "course", {"subject": sid, **extra}))
                cat.children.append((sid, base))
            _build_course(rng, cat, chapters, sid, base, name, extra, chapter_level[course], section_rise,
                          sizes[course])
    arrays = ("section_ids", "section_first", "section_size", "question_ids", "question_section", "difficulty",
              "lesson_ids", "lesson_kind")
    return replace(cat, **{f: np.array(getattr(cat, f)) for f in arrays})


def _build_course(rng, cat: Catalogue, chapters, sid, base, name, extra, chapter_level, section_rise, sizes) -> None:
    """One course's chapters, sections, questions and lessons, appended to `cat`'s lists."""
    review = f"{base}.review"
    for c, (chapter, sections) in enumerate(chapters, start=1):
        cid = f"{base}.{c}"
        cat.units.append((cid, f"{c}. {chapter}", "chapter", {"subject": sid, **extra}))
        cat.children.append((base, cid))
        for k, section in enumerate(sections, start=1):
            uid = f"{cid}.{k}"
            mean = float(chapter_level[c - 1] + section_rise[k - 1])
            cat.units.append((uid, f"{c}.{k} {section}", "section",
                              {"subject": sid, "chapter": cid, **extra, "mean_difficulty": round(mean, 4)}))
            cat.children.append((cid, uid))
            if k == len(sections):  # the chapter's hardest section is also revised in Review
                cat.children.append((review, uid))
            n = int(sizes[c - 1, k - 1])
            # questions go from easy to hard within a section, as in a textbook exercise
            b = np.sort(rng.normal(mean, 0.8, n))
            cat.section_first.append(len(cat.question_ids))
            cat.section_size.append(n)
            cat.section_ids.append(uid)
            topic = f"{section.lower()} in {chapter.lower()} ({name.lower()})"
            for number in range(1, n + 1):
                qid = f"{uid}.q{number}"
                bq = round(float(b[number - 1]), 4)
                cat.question_ids.append(qid)
                cat.question_section.append(len(cat.section_ids) - 1)
                cat.difficulty.append(bq)
                cat.items.append((qid, "question", f"{name} {c}.{k} Q{number}",
                                  f"Practice question {number} on {topic}.",
                                  {"true_difficulty": bq, "difficulty_label": difficulty_label(bq),
                                   "skill": uid, "subject": sid, "chapter": cid, **extra}, True))
                cat.unit_items.append((uid, qid, number))
            for kind in LESSON_KINDS:
                lid = f"{uid}.{kind}"
                cat.lesson_ids.append(lid)
                cat.lesson_kind.append(kind)
                cat.items.append((lid, kind, f"{name} {c}.{k} {kind}: {section}",
                                  f"{'Video lesson' if kind == 'video' else 'Article'} on {topic}.",
                                  {"skill": uid, "subject": sid, "chapter": cid, **extra}, True))
                cat.unit_items.append((uid, lid, None))  # lessons after the numbered questions
    cat.units.append((review, f"{N_CHAPTERS + 1}. {name} review", "chapter", {"subject": sid, **extra}))
    cat.children.append((base, review))


def build_learners(rng: np.random.Generator, n: int, grade_effect: float = 0.0, levels: int = 1) -> Learners:
    general = rng.normal(0, 1, (n, 1))
    specific = rng.normal(0, 1, (n, N_SUBJECTS))
    ability = np.round(np.sqrt(0.5) * general + np.sqrt(0.5) * specific, 4)
    activity = rng.lognormal(0.0, 1.0, n)                 # a few learners do most of the work
    taste = ability + rng.normal(0, 0.5, (n, N_SUBJECTS))   # prefer strong subjects, noisily
    pref = np.exp(taste - taste.max(axis=1, keepdims=True))
    pref /= pref.sum(axis=1, keepdims=True)
    start_day = rng.uniform(0, 0.6 * WINDOW_DAYS, n)      # later learners join during the window
    grade = rng.integers(9, 13, n)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    if grade_effect:    # after every draw, so the other arrays stay those of grade_effect 0
        ability = np.round(ability + grade_effect * (grade - 10.5)[:, None], 4)
    width = max(4, len(str(n)))
    ids = np.array([f"{ROOT_UNIT}.u{i:0{width}d}" for i in range(1, n + 1)])
    subject_ids = [f"{ROOT_UNIT}.{code}" for code, _, _ in SUBJECTS]
    attrs = [{"true_ability": dict(zip(subject_ids, row)), "grade": g, "country": COUNTRIES[c]}
             for row, g, c in zip(ability.tolist(), grade.tolist(), country.tolist())]
    # After every other draw, so one level gives the classic demo's learners.
    level = rng.integers(0, levels, n) if levels > 1 else np.zeros(n, dtype=np.int64)
    if levels > 1:
        for a, lv in zip(attrs, level.tolist()):
            a["level"] = lv + 1
    return Learners(ids, ability, activity, pref, start_day, attrs, level)


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category per row of `probs` (rows sum to 1), vectorised inverse-CDF sampling."""
    cdf = np.cumsum(probs, axis=1)
    return np.minimum((rng.random((len(probs), 1)) > cdf).sum(axis=1), probs.shape[1] - 1)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """True where a run of equal consecutive keys begins."""
    starts = np.ones(len(keys), bool)
    starts[1:] = keys[1:] != keys[:-1]
    return starts


def _group_head(starts: np.ndarray) -> np.ndarray:
    """For each element, the index where its run (marked by `starts`) begins."""
    idx = np.arange(len(starts))
    return np.maximum.accumulate(np.where(starts, idx, 0))


def _rank_in_group(starts: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run that `starts` marks."""
    return np.arange(len(starts)) - _group_head(starts)


def _per_user_counts(rng, activity: np.ndarray, total: int) -> np.ndarray:
    p = activity / activity.sum()
    if total >= len(activity):      # everyone attempts something; the rest follows activity
        return 1 + rng.multinomial(total - len(activity), p)
    return rng.multinomial(total, p)


def _times(rng, learners: Learners, user: np.ndarray) -> np.ndarray:
    """Seconds from the window start: a day after the learner joined, mostly in the afternoon."""
    day = np.floor(rng.uniform(learners.start_day[user], WINDOW_DAYS))
    hour = np.clip(rng.normal(17.0, 3.0, len(user)), 6.0, 23.5)
    return day * 86400.0 + hour * 3600.0


def _to_datetime(seconds: np.ndarray) -> np.ndarray:
    start = np.datetime64(REFERENCE_TIME, "ms") - np.timedelta64(WINDOW_DAYS, "D")
    return start + np.round(seconds * 1000).astype("int64").astype("timedelta64[ms]")


def build_attempts(rng: np.random.Generator, cat: Catalogue, learners: Learners, total: int) -> Events:
    """Learners answer questions section by section, in order, in sittings; see the module doc.

    Built as "visits" (a learner meets a question) that expand into 1+ attempts: after a wrong
    answer the learner retries at once with probability RETRY_AFTER_WRONG. Each attempt is an
    independent Bernoulli(p); a visit's run is drawn in closed form (stop chance s = 1 - (1-p)r
    per attempt, so K ~ Geometric(s), all but the last wrong, the last right with chance p/s),
    which is the same distribution as drawing attempt by attempt.
    """
    n_users = len(learners.ids)
    counts = _per_user_counts(rng, learners.activity, total)
    # A learner never needs more visits than attempts, so `counts` visits each is enough.
    v_user = np.repeat(np.arange(n_users), counts)
    first_of_user = _group_starts(v_user)

    # Sittings: a new one starts at each learner's first visit and otherwise at random.
    sitting_start = first_of_user | (rng.random(total) < 1.0 / MEAN_SESSION_QUESTIONS)
    v_sitting = np.cumsum(sitting_start) - 1
    s_user = v_user[sitting_start]
    s_first = _group_starts(s_user)
    # Each sitting picks a subject (strong subjects more often) and a section (earlier ones more
    # often), or, with chance STAY_IN_SECTION, continues the learner's previous sitting's section.
    s_subject = _pick(rng, learners.subject_pref[s_user])
    weights = 1.0 / (1.0 + 0.08 * np.arange(SECTIONS_PER_SUBJECT))
    s_course = s_subject * cat.levels + learners.level[s_user]   # a learner studies their own level
    s_section = s_course * SECTIONS_PER_SUBJECT + np.searchsorted(
        np.cumsum(weights) / weights.sum(), rng.random(len(s_user)))
    fresh = s_first | (rng.random(len(s_user)) >= STAY_IN_SECTION)
    s_chain = np.maximum.accumulate(np.where(fresh, np.arange(len(s_user)), 0))
    s_section = s_section[s_chain]
    # A chain of sittings on one section walks its questions in order from a starting point
    # (the first question 40% of the time), wrapping round to the start.
    size = cat.section_size[s_section]
    offset = np.where(rng.random(len(s_user)) < 0.4, 0, rng.integers(0, 1 << 30, len(s_user)) % size)
    v_chain = s_chain[v_sitting]
    v_pos = _rank_in_group(_group_starts(v_chain)) + offset[v_chain]
    v_section = s_section[v_sitting]
    v_question = cat.section_first[v_section] + v_pos % cat.section_size[v_section]
    v_subject = v_section // (SECTIONS_PER_SUBJECT * cat.levels)
    p = 1.0 / (1.0 + np.exp(-(learners.ability[v_user, v_subject] - cat.difficulty[v_question])))

    # Expand visits into runs of attempts, then keep each learner's first `counts` attempts.
    stop = 1.0 - (1.0 - p) * RETRY_AFTER_WRONG
    runs = rng.geometric(stop)
    last_right = rng.random(total) < p / stop
    a_visit = np.repeat(np.arange(total), runs)
    a_try = _rank_in_group(_group_starts(a_visit))
    a_user = v_user[a_visit]
    keep = _rank_in_group(_group_starts(a_user)) < counts[a_user]
    a_visit, a_try, a_user = a_visit[keep], a_try[keep], a_user[keep]
    outcome = np.where(a_try == runs[a_visit] - 1, last_right[a_visit], False).astype(np.int8)
    question = v_question[a_visit]

    # Durations: ~30 s median, longer for hard questions and wrong answers, quicker on a retry.
    b = cat.difficulty[question]
    seconds = np.exp(rng.normal(np.log(30.0) + 0.25 * b, 0.5)) * np.where(outcome == 1, 1.0, 1.25)
    seconds = np.clip(np.where(a_try > 0, 0.6, 1.0) * seconds, 3.0, 600.0)
    duration_ms = np.round(seconds * 1000).astype(np.int64)
    occurred = _sitting_times(rng, learners, v_sitting[a_visit], s_user, seconds)
    return Events(a_user, cat.question_ids[question], np.full(len(a_user), "attempt"), outcome,
                  duration_ms, occurred, p_correct=p[a_visit])


def _sitting_times(rng, learners: Learners, a_sitting: np.ndarray, s_user: np.ndarray,
                   seconds: np.ndarray) -> np.ndarray:
    """Attempt times. Each sitting falls on a random day of the learner's window; a learner's
    sittings on one day follow each other from an afternoon start, with breaks in between;
    within a sitting each answer follows the previous one after a short pause."""
    # Only sittings that kept an attempt (visits past a learner's quota were cut) get a day.
    kept, a_sitting = np.unique(a_sitting, return_inverse=True)
    s_user = s_user[kept]
    n_sittings = len(s_user)
    step = seconds + rng.exponential(5.0, len(seconds))  # answering, then a pause
    within = np.cumsum(step)
    head = _group_head(_group_starts(a_sitting))
    within -= within[head] - step[head]                   # time into the sitting at each answer
    length = np.bincount(a_sitting, weights=step, minlength=n_sittings)
    day = np.floor(rng.uniform(learners.start_day[s_user], WINDOW_DAYS))
    day = day[np.lexsort((day, s_user))]                  # a learner's sittings in day order
    day_head = _group_head(_group_starts(s_user.astype(np.int64) * 1000 + day.astype(np.int64)))
    hour = np.clip(rng.normal(16.5, 2.5, n_sittings), 7.0, 21.0)
    spacing = length + 300.0 + rng.exponential(1800.0, n_sittings)  # the sitting, then a break
    offset = np.cumsum(spacing) - spacing
    offset -= offset[day_head]
    start = day * 86400.0 + hour[day_head] * 3600.0 + offset
    # Safety net for a very busy day running into the next one: push a sitting later until the
    # previous has ended, start'_j = max(start_j, start'_{j-1} + length_{j-1} + 60), solved per
    # learner as a running maximum of (start - time used by earlier sittings).
    first = _group_starts(s_user)
    s_head = _group_head(first)
    used = np.cumsum(length + 60.0) - (length + 60.0)
    used -= used[s_head]
    lift = s_user * 1e10                                  # keeps learners apart in the running max
    start = np.maximum.accumulate(start - used + lift) - lift + used
    # ... and if that runs past the reference time, shift the learner's history earlier.
    last = np.append(first[1:], True)
    overflow = np.zeros(n_sittings)
    overflow[first] = np.maximum(0.0, (start + length)[last] - WINDOW_DAYS * 86400.0 + 60.0)
    start -= overflow[s_head]
    return _to_datetime(start[a_sitting] + within)


def build_engagements(rng: np.random.Generator, cat: Catalogue, learners: Learners, total: int) -> Events:
    """Views, completions and likes of lessons: active learners engage more, strong subjects are
    preferred, and a few lessons per subject are far more popular (Zipf)."""
    user = np.sort(rng.choice(len(learners.ids), total, p=learners.activity / learners.activity.sum()))
    subject = _pick(rng, learners.subject_pref[user])
    per_subject = SECTIONS_PER_SUBJECT * len(LESSON_KINDS)
    zipf = 1.0 / np.arange(1, per_subject + 1) ** ZIPF_EXPONENT
    rank = np.searchsorted(np.cumsum(zipf) / zipf.sum(), rng.random(total))
    rank = np.minimum(rank, per_subject - 1)
    course = subject * cat.levels + learners.level[user]
    popularity = np.argsort(rng.random((N_SUBJECTS * cat.levels, per_subject)), axis=1)  # rank -> lesson, per course
    lesson = course * per_subject + popularity[course, rank]
    kind = np.array(ENGAGEMENT_KINDS)[rng.choice(len(ENGAGEMENT_KINDS), total, p=ENGAGEMENT_SHARES)]
    outcome = np.where(kind == "view", -1, 1).astype(np.int8)
    # Watching or reading takes minutes (articles a little less); a like takes no time.
    minutes = np.where(cat.lesson_kind[lesson] == "video", 8.0, 5.0) * rng.beta(2.0, 2.0, total) * 2
    duration_ms = np.where(kind == "like", -1, np.round(minutes * 60000)).astype(np.int64)
    seconds = _times(rng, learners, user)
    order = np.lexsort((seconds, user))
    return Events(user[order], cat.lesson_ids[lesson][order], kind[order], outcome[order],
                  duration_ms[order], _to_datetime(seconds[order]))


# ---- writing -------------------------------------------------------------------------------
@dataclass
class DemoReport:
    config: DemoConfig
    generated: dict = field(default_factory=dict)   # table -> rows generated
    created: dict = field(default_factory=dict)     # table -> rows new in the database
    seconds: float = 0.0
    sample_user: str | None = None    # the most active learner
    sample_unit: str | None = None    # the section that learner practised most
    sample_item: str | None = None    # a question in that section

    def summary(self) -> str:
        c = self.config
        new = ", ".join(f"{n} {table}" for table, n in self.created.items() if n)
        return (f"demo (seed {c.seed}): {c.learners} learners, {self.generated.get('attempts', 0)} attempts, "
                f"{self.generated.get('engagements', 0)} engagement events, "
                f"{self.generated.get('items', 0)} items in {self.generated.get('units', 0)} units; "
                f"written in {self.seconds:.1f}s; new: {new or 'nothing (already loaded)'}")


def generate_demo(conn, config: DemoConfig = DemoConfig(), progress: bool = False,
                  tenant: str = DEFAULT) -> DemoReport:
    """Generate the demo and merge it into the database in one transaction (all or nothing).

    Idempotent: ids are deterministic, so a second run with the same config adds nothing. A
    different config is refused while another demo is loaded, because its events would reuse
    the same ids for different rows.
    """
    started = time.perf_counter()
    config.validate()

    def say(message: str) -> None:
        if progress:
            print(f"adaptrec demo: {message}", file=sys.stderr, flush=True)

    with conn:
        _check_not_other_demo(conn, tenant, config)
        say("generating")
        data = build(config)
        report = DemoReport(config)
        report.generated = {"units": len(data.catalogue.units), "items": len(data.catalogue.items),
                            "users": len(data.learners.ids), "attempts": len(data.attempts),
                            "engagements": len(data.engagements)}
        with conn.cursor() as cur:
            # A bulk job in its own transaction: larger sort memory speeds the merge's ORDER BY.
            cur.execute("SET LOCAL work_mem = '256MB'")
        # Into a database with no interactions yet nothing can be locked out: load in bulk.
        loader = Loader(conn, tenant=tenant, bulk=q.fetch_one(conn, "interactions_empty")["empty"])
        _stage(loader, data, progress)
        say(f"merging {report.generated['attempts'] + report.generated['engagements']} events into the "
            "database (about 30 s per million)")
        report.created = loader.finish()
    _samples(report, data)
    report.seconds = time.perf_counter() - started
    return report


def _check_not_other_demo(conn, tenant: str, config: DemoConfig) -> None:
    row = q.fetch_one(conn, "unit_generator", tenant=tenant, unit_id=ROOT_UNIT)
    if row is None:
        return
    generator = row["generator"]
    if generator != config.as_attrs():
        held = f"a demo generated with {json.dumps(generator)}" if generator else f"a unit {ROOT_UNIT!r} of its own"
        raise DemoError(f"the database already holds {held}; a demo with another configuration would "
                        "reuse its ids for different rows, so generate it into a fresh database "
                        "(point ADAPTREC_DATABASE_URL at one)")


def _stage(loader: Loader, data: DemoData, progress: bool) -> None:
    cat = data.catalogue
    root = cat.units[0]
    loader.add("units", (root[0], root[1], root[2], {"generator": data.config.as_attrs()}))
    for row in cat.units[1:]:
        loader.add("units", row)
    for row in cat.children:
        loader.add("unit_children", row)
    for row in cat.items:
        loader.add("items", row)
    for row in cat.unit_items:
        loader.add("unit_items", row)
    for uid, attrs in zip(data.learners.ids.tolist(), data.learners.attrs):
        loader.add("users", (uid, attrs))
    total = len(data.attempts) + len(data.engagements)
    with tqdm(total=total, unit=" events", unit_scale=True, desc="staging", file=sys.stderr,
              disable=not progress or None, leave=False) as bar:
        for tag, events in (("a", data.attempts), ("e", data.engagements)):
            _stage_events(loader, data, tag, events, bar)


def _stage_events(loader: Loader, data: DemoData, tag: str, ev: Events, bar, chunk: int = 100_000) -> None:
    """Stage events in time order, numbered `demo:<seed>:<tag>:<n>` with n zero-padded: text
    order is then time order, so the merge (which inserts by occurred_at) appends to the
    event_id index instead of writing all over it, which matters at a million rows."""
    prefix = f"{ROOT_UNIT}:{data.config.seed}:{tag}:"
    width = max(6, len(str(len(ev) - 1)))
    order = np.argsort(ev.occurred, kind="stable")
    users = data.learners.ids
    for lo in range(0, len(ev), chunk):
        hi = min(lo + chunk, len(ev))
        take = order[lo:hi]
        # Convert a chunk at a time to plain Python values (None for "no value") for the Loader.
        outcome = [None if o < 0 else o for o in ev.outcome[take].tolist()]
        duration = [None if d < 0 else d for d in ev.duration_ms[take].tolist()]
        times = np.datetime_as_string(ev.occurred[take], unit="ms", timezone="UTC").tolist()
        rows = zip([f"{prefix}{n:0{width}d}" for n in range(lo, hi)], users[ev.user[take]].tolist(),
                   ev.item_ids[take].tolist(), ev.kind[take].tolist(), outcome,
                   [1.0 if tag == "e" else None] * (hi - lo), duration, [None] * (hi - lo), times)
        for row in rows:
            loader.add("interactions", row)
        bar.update(hi - lo)


def _samples(report: DemoReport, data: DemoData) -> None:
    a = data.attempts
    if not len(a):
        return
    busiest = int(np.bincount(a.user).argmax())
    report.sample_user = str(data.learners.ids[busiest])
    mine = a.item_ids[a.user == busiest]
    sections = np.array([q.rsplit(".", 1)[0] for q in mine])
    names, counts = np.unique(sections, return_counts=True)
    report.sample_unit = str(names[counts.argmax()])
    report.sample_item = f"{report.sample_unit}.q1"
