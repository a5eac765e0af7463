"""The demo's events: attempts at questions in sittings, section by section (each right with the
true logistic chance), and views, completions and likes of lessons; with their times, counted
back from the reference time."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.demo.catalogue import LESSON_KINDS, N_SUBJECTS, SECTIONS_PER_SUBJECT, Catalogue
from jobs.demo.config import REFERENCE_TIME, WINDOW_DAYS
from jobs.demo.learners import Learners

# Behaviour knobs (documented here rather than in DemoConfig: they shape realism, not size).
MEAN_SESSION_QUESTIONS = 15   # questions answered per sitting
STAY_IN_SECTION = 0.6         # a new sitting continues the previous section where it stopped
RETRY_AFTER_WRONG = 0.35      # a wrong answer is retried at once with this probability
ENGAGEMENT_KINDS = ("view", "complete", "like")
ENGAGEMENT_SHARES = (0.65, 0.25, 0.10)
ZIPF_EXPONENT = 1.1           # lesson popularity within a subject


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
    counts = _per_user_counts(rng, learners.activity, total)
    visits = _visits(rng, cat, learners, counts, total)
    a_visit, a_try, a_user, outcome = _attempt_runs(rng, visits, counts, total)
    question = visits.question[a_visit]

    # Durations: ~30 s median, longer for hard questions and wrong answers, quicker on a retry.
    b = cat.difficulty[question]
    seconds = np.exp(rng.normal(np.log(30.0) + 0.25 * b, 0.5)) * np.where(outcome == 1, 1.0, 1.25)
    seconds = np.clip(np.where(a_try > 0, 0.6, 1.0) * seconds, 3.0, 600.0)
    duration_ms = np.round(seconds * 1000).astype(np.int64)
    occurred = _sitting_times(rng, learners, visits.sitting[a_visit], visits.sitting_user, seconds)
    return Events(a_user, cat.question_ids[question], np.full(len(a_user), "attempt"), outcome,
                  duration_ms, occurred, p_correct=visits.p[a_visit])


@dataclass
class _Visits:
    """Each visit (a learner meets a question), in learner then time order, and its sitting."""
    user: np.ndarray            # learner index per visit
    sitting: np.ndarray         # sitting index per visit
    question: np.ndarray        # question index per visit
    p: np.ndarray               # the true chance of a right answer per visit
    sitting_user: np.ndarray    # learner index per sitting


def _visits(rng, cat: Catalogue, learners: Learners, counts: np.ndarray, total: int) -> _Visits:
    """`counts` visits per learner, in sittings; each sitting walks a section's questions."""
    n_users = len(learners.ids)
    # A learner never needs more visits than attempts, so `counts` visits each is enough.
    v_user = np.repeat(np.arange(n_users), counts)
    first_of_user = _group_starts(v_user)

    # Sittings: a new one starts at each learner's first visit and otherwise at random.
    sitting_start = first_of_user | (rng.random(total) < 1.0 / MEAN_SESSION_QUESTIONS)
    v_sitting = np.cumsum(sitting_start) - 1
    s_user = v_user[sitting_start]
    s_section, s_chain, offset = _sitting_sections(rng, cat, learners, s_user)
    v_chain = s_chain[v_sitting]
    v_pos = _rank_in_group(_group_starts(v_chain)) + offset[v_chain]
    v_section = s_section[v_sitting]
    v_question = cat.section_first[v_section] + v_pos % cat.section_size[v_section]
    v_subject = v_section // (SECTIONS_PER_SUBJECT * cat.levels)
    p = 1.0 / (1.0 + np.exp(-(learners.ability[v_user, v_subject] - cat.difficulty[v_question])))
    return _Visits(v_user, v_sitting, v_question, p, s_user)


def _sitting_sections(rng, cat: Catalogue, learners: Learners, s_user: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sitting: its section, the first sitting of its chain on that section, and where the
    chain starts in the section's questions."""
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
    return s_section, s_chain, offset


def _attempt_runs(rng, visits: _Visits, counts: np.ndarray, total: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expand visits into runs of attempts, then keep each learner's first `counts` attempts:
    per attempt its visit, its try within the visit (0 first), its learner and its outcome."""
    p = visits.p
    stop = 1.0 - (1.0 - p) * RETRY_AFTER_WRONG
    runs = rng.geometric(stop)
    last_right = rng.random(total) < p / stop
    a_visit = np.repeat(np.arange(total), runs)
    a_try = _rank_in_group(_group_starts(a_visit))
    a_user = visits.user[a_visit]
    keep = _rank_in_group(_group_starts(a_user)) < counts[a_user]
    a_visit, a_try, a_user = a_visit[keep], a_try[keep], a_user[keep]
    outcome = np.where(a_try == runs[a_visit] - 1, last_right[a_visit], False).astype(np.int8)
    return a_visit, a_try, a_user, outcome


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


