"""The demo's content: a unit DAG of subjects, chapters and sections, each section a run of
questions of rising true difficulty plus a video and an article; "Review" chapters revisit each
chapter's hardest section, so the hierarchy is a DAG, not a tree. Pure numpy, no database."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from jobs.demo.config import ROOT_UNIT

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
LESSON_KINDS = ("video", "article")       # one of each per section


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

