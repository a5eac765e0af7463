"""A stored model's parts as types: what the nightly job writes and the service reads, one class per
part, with the JSON each part is stored as (`to_json` / `from_json`). Pure: numpy, dataclasses, json.

A model is one `models` row (whose it is and the job's record: app.model.store.ModelMeta) and one
`model_arrays` row holding a ModelArtifact: the Embedding in packed float32 columns, the Calibration
in the `calibration` JSON, EASE's weights in `item_weights`, every other part in the `extra` JSON.

Format versions, stored as extra.format_version (a row without it is format 1):
  1  the rows stored before these types (23 Nov - 6 Dec 2026). Which keys a row holds depends on
     when it was trained; each absent key means what a default below says:
       first job (23 Nov): calibration {method, a, b} ({method: none} for engagement); hybrid
         practice rows also extra.user_feature_names, which nothing reads (dropped on load)
       23 Nov: extra.blend_weight, extra.foldin_reg, dense item_weights (n_items^2 float32)
       30 Nov: calibration.retry {after_mistake, after_success}, then its slope_after_mistake and
         slope_after_success; calibration.half_life; calibration.skill {sd, half_life} with
         extra.item_skills; extra.user_prior and extra.item_features (hybrid practice);
         extra.user_tokens (hybrid engagement); item_weights in the sparse top-k layout
       6 Dec: calibration.learning {features, weights, max} (from 10:11 to 10:48 also an
         after_mistake list, which no reader has used since: dropped on load), then
         retry.biases_after_mistake and retry.biases_after_success; calibration.item_sd and
         item_slope_sd (an older reader ignores them: its knowledge intervals leave out the item's
         error, as before)
  2  the same keys and meanings, written from these types, with extra.format_version = 2; from
     6 Dec (evening) also extra.item_attempts, each item's first attempts the model was trained on
     (the prior of the item difficulty learned between trainings, app.online.item_offsets): an
     older reader ignores it, and a model without it learns no item difficulty online.
A change an older reader would misread takes a new number: a reader refuses a format newer than
FORMAT_VERSION (FormatError) rather than serve numbers it does not understand.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

FORMAT_VERSION = 2
UNVERSIONED = 1    # the format of a row without extra.format_version


class FormatError(ValueError):
    """A stored model (or a part given to be stored) that these types cannot hold."""


def _same(x, y) -> bool:
    if hasattr(x, "tocsr") or hasattr(y, "tocsr"):        # scipy sparse (EASE weights)
        return hasattr(x, "tocsr") and hasattr(y, "tocsr") and x.shape == y.shape and (x != y).nnz == 0
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.shape(x) == np.shape(y) and np.array_equal(x, y)
    return x == y


class _Part:
    """Equal when every field is (arrays element by element)."""
    __hash__ = None

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))


def _arrays(part, dtype, *names: str) -> None:
    """Hold the fields `names` of a frozen part as arrays of `dtype` (lists from JSON, float32 from
    the job), so a part the job builds and the same part read back are alike."""
    for name in names:
        if getattr(part, name) is not None:
            object.__setattr__(part, name, np.asarray(getattr(part, name), dtype=dtype))


def _rows(name: str, table: np.ndarray, count: int, width: int | None = None) -> None:
    """A table of one row per token (or item): refuse another count or width, naming the part."""
    if len(table) != count or (width is not None and count and table.shape[1:] != (width,)):
        raise FormatError(f"{name}: {table.shape} does not fit {count} rows" + (f" of {width}" if width else ""))


@dataclass(frozen=True, eq=False)
class Embedding(_Part):
    """Item vectors and biases with the population prior over a learner's [vector, bias]; the
    id mapping travels with them (a row means nothing without it). A 1PL is an embedding of one
    zero dimension: item bias = easiness, the learner's bias their ability. Arrays are float32, as
    stored (others are converted)."""
    item_ids: list[str]
    item_vectors: np.ndarray     # (n_items, d)
    item_biases: np.ndarray      # (n_items,)
    prior_mean: np.ndarray       # (d + 1,)
    prior_cov: np.ndarray        # (d + 1, d + 1)

    def __post_init__(self):
        _arrays(self, np.float32, "item_vectors", "item_biases", "prior_mean", "prior_cov")
        n, d = len(self.item_ids), np.shape(self.item_vectors)[1] if np.ndim(self.item_vectors) == 2 else -1
        if np.shape(self.item_vectors) != (n, d) or np.shape(self.item_biases) != (n,) \
                or np.shape(self.prior_mean) != (d + 1,) or np.shape(self.prior_cov) != (d + 1, d + 1):
            raise FormatError(f"model arrays have inconsistent shapes: {n} item ids, vectors "
                              f"{np.shape(self.item_vectors)}, biases {np.shape(self.item_biases)}, prior mean "
                              f"{np.shape(self.prior_mean)}, prior covariance {np.shape(self.prior_cov)}")

    @property
    def dim(self) -> int:
        return self.item_vectors.shape[1]


@dataclass(frozen=True, eq=False)
class RetryTerms(_Part):
    """calibration.retry (jobs.training.retry): per kind of retry (the learner's previous attempt at
    the item a mistake or a success) a logit offset, a slope on the model's score and, since 6 Dec,
    weights of the item's bias and the learner's ([item, learner]); absent: 0 and None."""
    after_mistake: float
    after_success: float
    slope_after_mistake: float = 0.0
    slope_after_success: float = 0.0
    biases_after_mistake: np.ndarray | None = None    # (2,)
    biases_after_success: np.ndarray | None = None    # (2,)

    def __post_init__(self):
        _arrays(self, np.float64, "biases_after_mistake", "biases_after_success")

    def to_json(self) -> dict:
        out = {"after_mistake": self.after_mistake, "after_success": self.after_success,
               "slope_after_mistake": self.slope_after_mistake, "slope_after_success": self.slope_after_success}
        if self.biases_after_mistake is not None:
            out["biases_after_mistake"] = self.biases_after_mistake.tolist()
            out["biases_after_success"] = self.biases_after_success.tolist()
        return out

    @classmethod
    def from_json(cls, raw: dict) -> RetryTerms:
        biases = "biases_after_mistake" in raw
        return cls(raw["after_mistake"], raw["after_success"], raw.get("slope_after_mistake", 0.0),
                   raw.get("slope_after_success", 0.0), raw["biases_after_mistake"] if biases else None,
                   raw["biases_after_success"] if biases else None)


@dataclass(frozen=True, eq=False)
class LearningTerms(_Part):
    """calibration.learning (app.online.learning): a weight per feature of practice and time away,
    each feature clipped to the largest value the job saw on dev."""
    features: tuple[str, ...]
    weights: np.ndarray          # (F,)
    max: np.ndarray              # (F,)

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        _arrays(self, np.float64, "weights", "max")
        if not len(self.features) == len(self.weights) == len(self.max):
            raise FormatError(f"learning terms: {len(self.features)} features, {len(self.weights)} weights, "
                              f"{len(self.max)} maxima")

    def to_json(self) -> dict:
        return {"features": list(self.features), "weights": self.weights.tolist(), "max": self.max.tolist()}

    @classmethod
    def from_json(cls, raw: dict) -> LearningTerms:
        return cls(raw["features"], raw["weights"], raw["max"])


@dataclass(frozen=True, eq=False)
class SkillTerms(_Part):
    """calibration.skill: the learner's offset per skill around the overall fit (app.online.fit.
    skill_offsets), its prior sd and half-life in attempts (None: equal weights)."""
    sd: float
    half_life: float | None = None

    def to_json(self) -> dict:
        return {"sd": self.sd, "half_life": self.half_life}

    @classmethod
    def from_json(cls, raw: dict) -> SkillTerms:
        return cls(raw["sd"], raw.get("half_life"))


@dataclass(frozen=True, eq=False)
class Calibration(_Part):
    """The `calibration` JSON: p = sigmoid(a * score + b) ("platt"), plus the terms the job chose
    on dev; "none" for engagement models (their scores rank, they are not probabilities)."""
    method: str = "platt"
    a: float = 1.0
    b: float = 0.0
    retry: RetryTerms | None = None
    learning: LearningTerms | None = None
    skill: SkillTerms | None = None
    half_life: float | None = None     # the live fit's recency half-life in attempts; None: equal weights
    # the model's error on an item, shared by every learner (logits, measured on dev:
    # jobs.training.calibration.item_error): its sd, and the sd of its growth per logit of the
    # learner's distance from the population on the item; None: unknown
    item_sd: float | None = None
    item_slope_sd: float | None = None

    def to_json(self) -> dict:
        out = {"method": self.method}
        if self.method != "none":
            out.update(a=self.a, b=self.b)
        for key in ("retry", "learning", "skill"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key).to_json()
        if self.half_life:
            out["half_life"] = self.half_life
        if self.item_sd is not None:
            out["item_sd"] = self.item_sd
        if self.item_slope_sd is not None:
            out["item_slope_sd"] = self.item_slope_sd
        return out

    @classmethod
    def from_json(cls, raw: dict) -> Calibration:
        """Absent (or empty) terms are None; an absent a, b is the identity."""
        return cls(raw.get("method", "platt"), raw.get("a", 1.0), raw.get("b", 0.0),
                   RetryTerms.from_json(raw["retry"]) if raw.get("retry") else None,
                   LearningTerms.from_json(raw["learning"]) if raw.get("learning") else None,
                   SkillTerms.from_json(raw["skill"]) if raw.get("skill") else None,
                   raw.get("half_life"), raw.get("item_sd"),
                   raw.get("item_slope_sd"))


UNCALIBRATED = Calibration(method="none")


@dataclass(frozen=True, eq=False)
class Skills(_Part):
    """extra.item_skills: each item's skill index (-1 none), for skill terms and learning terms."""
    item_skills: np.ndarray      # (n_items,) int64

    def __post_init__(self):
        _arrays(self, np.int64, "item_skills")

    @property
    def n_skills(self) -> int:
        return int(self.item_skills.max()) + 1 if len(self.item_skills) else 0

    def to_json(self) -> list[int]:
        return self.item_skills.tolist()

    @classmethod
    def from_json(cls, raw: list) -> Skills:
        return cls(raw)


@dataclass(frozen=True, eq=False)
class MetadataPrior(_Part):
    """extra.user_prior (hybrid practice models): how each metadata token of a learner (lang:fr,
    grade:7, ...) shifts the prior mean of their live fit."""
    tokens: list[str]
    shifts: np.ndarray           # (T, d + 1)

    def __post_init__(self):
        object.__setattr__(self, "tokens", list(self.tokens))
        _arrays(self, np.float64, "shifts")

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "shifts": self.shifts.tolist()}

    @classmethod
    def from_json(cls, raw: dict) -> MetadataPrior:
        return cls(raw["tokens"], raw["shifts"])


@dataclass(frozen=True, eq=False)
class UserTokens(_Part):
    """extra.user_tokens (hybrid engagement models): a user without positives is scored as the mean
    folded-in user moved by their metadata tokens' shifts."""
    tokens: list[str]
    shifts: np.ndarray           # (T, d)
    mean: np.ndarray             # (d,)

    def __post_init__(self):
        object.__setattr__(self, "tokens", list(self.tokens))
        _arrays(self, np.float64, "shifts", "mean")

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "shifts": self.shifts.tolist(), "mean": self.mean.tolist()}

    @classmethod
    def from_json(cls, raw: dict) -> UserTokens:
        return cls(raw["tokens"], raw["shifts"], raw["mean"])


@dataclass(frozen=True, eq=False)
class ItemFeatures(_Part):
    """extra.item_features (hybrid practice models): each metadata token's embedding, from which
    an item newer than the model gets a row (app.online.metadata.vector_from_features)."""
    tokens: list[str]
    vectors: np.ndarray          # (F, d)
    biases: np.ndarray           # (F,)

    def __post_init__(self):
        object.__setattr__(self, "tokens", list(self.tokens))
        _arrays(self, np.float64, "vectors", "biases")

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "vectors": self.vectors.tolist(), "biases": self.biases.tolist()}

    @classmethod
    def from_json(cls, raw: dict) -> ItemFeatures:
        return cls(raw["tokens"], raw["vectors"], raw["biases"])


@dataclass(frozen=True, eq=False)
class Blend(_Part):
    """An engagement model's EASE + WARP blend (app.online.engagement.EngagementModel): extra.blend_weight
    (WARP's share: 1 = WARP alone, as every engagement model before the blend), extra.foldin_reg
    (the fold-in's L2) and EASE's (n_items, n_items) weights in the `item_weights` column: a float32
    CSR of each item's top-k source items, or a dense float32 array (before 30 Nov), or None."""
    weight: float = 1.0
    foldin_reg: float = 5.0
    item_weights: object = None

    def to_json(self) -> dict:
        return {"blend_weight": self.weight, "foldin_reg": self.foldin_reg}

    @classmethod
    def from_json(cls, extra: dict, item_weights=None) -> Blend:
        return cls(extra.get("blend_weight", 1.0), extra.get("foldin_reg") or 5.0, item_weights)


@dataclass(frozen=True, eq=False)
class ModelArtifact(_Part):
    """A model's parts: the embedding and calibration of every model, and what the job chose to
    add (None: the model has no such part)."""
    embedding: Embedding
    calibration: Calibration = field(default_factory=Calibration)
    skills: Skills | None = None                   # practice models with skill or learning terms
    metadata_prior: MetadataPrior | None = None    # hybrid practice models, when it predicted dev better
    item_features: ItemFeatures | None = None      # hybrid practice models
    blend: Blend | None = None                     # engagement models
    user_tokens: UserTokens | None = None          # hybrid engagement models, when metadata beat popularity
    item_attempts: np.ndarray | None = None        # practice: each item's first attempts the model was trained on
    format_version: int = FORMAT_VERSION           # the format it was read from; always written in FORMAT_VERSION

    def __post_init__(self):
        n, d = len(self.embedding.item_ids), self.embedding.dim
        if self.skills is not None:
            _rows("item_skills", self.skills.item_skills, n)
        if self.metadata_prior is not None:
            _rows("user_prior shifts", self.metadata_prior.shifts, len(self.metadata_prior.tokens), d + 1)
        if self.item_features is not None:
            _rows("item_features vectors", self.item_features.vectors, len(self.item_features.tokens), d)
            _rows("item_features biases", self.item_features.biases, len(self.item_features.tokens))
        if self.user_tokens is not None:
            _rows("user_tokens shifts", self.user_tokens.shifts, len(self.user_tokens.tokens), d)
            _rows("user_tokens mean", self.user_tokens.mean, d)
        if self.item_attempts is not None:
            object.__setattr__(self, "item_attempts", np.asarray(self.item_attempts, dtype=np.int64))
            _rows("item_attempts", self.item_attempts, n)
        weights = None if self.blend is None else self.blend.item_weights
        if weights is not None and weights.shape != (n, n):
            raise FormatError(f"item_weights: {weights.shape} does not fit a model of {n} items")

    def extra_json(self) -> dict:
        """The `extra` JSON: every part but the embedding, the calibration and EASE's weights."""
        out = {}
        if self.metadata_prior is not None:
            out["user_prior"] = self.metadata_prior.to_json()
        if self.item_features is not None:
            out["item_features"] = self.item_features.to_json()
        if self.skills is not None:
            out["item_skills"] = self.skills.to_json()
        if self.blend is not None:
            out.update(self.blend.to_json())
        if self.user_tokens is not None:
            out["user_tokens"] = self.user_tokens.to_json()
        if self.item_attempts is not None:
            out["item_attempts"] = self.item_attempts.tolist()
        out["format_version"] = FORMAT_VERSION
        return out

    @classmethod
    def from_json(cls, embedding: Embedding, calibration: dict, extra: dict, objective: str,
                  item_weights=None) -> ModelArtifact:
        """A stored row's parts (`calibration` and `extra` as stored, EASE's weights unpacked) in any
        format up to FORMAT_VERSION; FormatError for a newer one. Item skills that do not cover
        every item are left out, as the service has always ignored them."""
        version = stored_format(extra)
        skills = extra.get("item_skills")
        if skills is not None and len(skills) != len(embedding.item_ids):
            skills = None
        attempts = extra.get("item_attempts")
        if attempts is not None and len(attempts) != len(embedding.item_ids):
            attempts = None
        return cls(embedding, Calibration.from_json(calibration or {}),
                   Skills.from_json(skills) if skills is not None else None,
                   MetadataPrior.from_json(extra["user_prior"]) if extra.get("user_prior") else None,
                   ItemFeatures.from_json(extra["item_features"]) if extra.get("item_features") else None,
                   Blend.from_json(extra, item_weights) if objective == "engagement" else None,
                   UserTokens.from_json(extra["user_tokens"]) if extra.get("user_tokens") else None,
                   np.asarray(attempts, dtype=np.int64) if attempts is not None else None,
                   version)


def stored_format(extra: dict) -> int:
    """The format of a row from its `extra` JSON (UNVERSIONED without the key); FormatError when
    it is not a format number or newer than FORMAT_VERSION."""
    version = extra.get("format_version", UNVERSIONED)
    if not isinstance(version, int) or isinstance(version, bool) or version < UNVERSIONED:
        raise FormatError(f"extra.format_version is {version!r}, not a format number "
                          f"({UNVERSIONED} to {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise FormatError(f"stored in format {version}, newer than this code reads (formats {UNVERSIONED} to "
                          f"{FORMAT_VERSION}): serve it with the adaptrec version that trained it, or retrain it "
                          "with this one")
    return version
