"""Request and response shapes of the HTTP API that are HTTP only (batches, answers, problems,
queries). They validate request bodies and generate /openapi.json, so the document cannot drift
from the code. The records themselves (User, Item, Unit, Interaction, Identifier) are in
app.catalogue.records."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel, StringConstraints, WithJsonSchema, field_validator

from app.api import xapi_schema
from app.catalogue.records import Identifier, Interaction, Item, JsonObject, Strict, Text, Unit, User, WholeNumber

MAX_BATCH = 1000       # events per POST /v1/interactions, and users/items/units per batch upsert


# ---- batches and answers of the catalogue and ingest ----------------------------------------
class UserBatch(Strict):
    users: list[User] = Field(min_length=1, max_length=MAX_BATCH)

class UserOut(BaseModel):
    user_id: str
    attrs: dict[str, Any]
    interactions: int = Field(description="Interactions recorded for this user.")

class ItemBatch(Strict):
    items: list[Item] = Field(min_length=1, max_length=MAX_BATCH)

class ItemOut(BaseModel):
    item_id: str
    kind: str
    title: str | None
    body: str | None
    attrs: dict[str, Any]
    active: bool
    units: list[str]

class UnitBatch(Strict):
    units: list[Unit] = Field(min_length=1, max_length=MAX_BATCH)

class UnitOut(BaseModel):
    unit_id: str
    name: str | None
    kind: str
    attrs: dict[str, Any]
    parents: list[str]
    children: list[str]
    items: list[str] = Field(description="Items directly in this unit.")
    items_under: int = Field(description="Active items under this unit through the whole hierarchy.")

class UpsertResult(BaseModel):
    upserted: int

class InteractionBatch(Strict):
    interactions: list[Interaction] = Field(min_length=1, max_length=MAX_BATCH)

class EventResult(BaseModel):
    event_id: str
    status: Literal["created", "duplicate"]

class IngestResult(BaseModel):
    created: int
    duplicates: int
    events: list[EventResult]


# ---- health and errors ------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    postgres: Literal["ok", "down"]
    redis: Literal["ok", "down"]
    migrations_pending: int | None = None


class ProblemDetail(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (content type application/problem+json)."""
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemDetail] | None = None


# ---- recommendations --------------------------------------------------------------------
Probability = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]


class RecommendationQuery(Strict):
    user_id: Identifier
    units: list[Identifier] = Field(min_length=1, max_length=100,
                                    description="Recommend from the items under these units (each must exist).")
    n: WholeNumber(1, 100) = 10
    strategy: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = Field(
        default=None, description="target (default: p(correct) near the target), top (highest score), mastery (at "
                                  "the target, from the weakest skill not mastered yet) or review (at the target, "
                                  "from the skills due for review, most overdue first).")
    target: Probability | None = Field(default=None,
                                       description="Target p(correct) of the target strategy (default 0.5).")
    # Not strict: a JSON array becomes the tuple (its two numbers stay strict).
    band: tuple[Probability, Probability] | None = Field(
        default=None, strict=False,
        description="A band [low, high] of p(correct) to prefer instead of a single target.")
    exclude: list[Identifier] = Field(default_factory=list, max_length=1000, description="Items never to return.")
    experiment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = Field(
        default=None, description="Route the learner to a variant of this experiment.")
    explore: bool | None = Field(
        default=None, strict=True,
        description="Thompson sampling (practice models): choose with a learner vector drawn from the posterior of "
                    "the live fit, seeded by the request id, so a learner the model knows little about gets the "
                    "items that teach it most; the p returned stays the estimate. Default: off, or the variant's "
                    "`explore` parameter.")

    @field_validator("band")
    @classmethod
    def _band_ordered(cls, band: tuple[float, float] | None) -> tuple[float, float] | None:
        # A field validator, so the problem names `band` (the 422 rule documented on the operation).
        if band is not None and band[0] > band[1]:
            raise ValueError("band must be [low, high] with low <= high")
        return band


class RecommendedItem(BaseModel):
    item_id: str
    p: float | None = Field(default=None, description="Calibrated p(correct) (practice models).")
    score: float | None = Field(default=None, description="Ranking score (engagement models).")


class ModelRef(BaseModel):
    model_id: int
    unit_id: str
    objective: str
    mode: str
    tag: str


class Recommendations(BaseModel):
    request_id: str
    user_id: str
    items: list[RecommendedItem]
    model: ModelRef | None
    strategy: str
    experiment: str | None
    variant: str | None
    fallback: str | None = Field(description="no_model, no_history, too_few_candidates, no_candidates, all_mastered "
                                             "(mastery: every skill mastered; review items follow if any are due), "
                                             "nothing_due (review) (joined by +).")
    history_rows: int
    candidates: int
    explored: bool = Field(default=False, description="The choice was made by Thompson sampling (`explore`); "
                                                      "each item's p is still the estimate.")


class SimilarItem(BaseModel):
    item_id: str
    similarity: float


class SimilarItems(BaseModel):
    item_id: str
    items: list[SimilarItem]
    model: ModelRef | None
    fallback: str | None


class TrendingItem(BaseModel):
    item_id: str
    score: float
    interactions: int
    users: int


class Trending(BaseModel):
    items: list[TrendingItem]
    days: int
    half_life_days: float


# ---- knowledge ----------------------------------------------------------------------------
class UnitKnowledge(BaseModel):
    unit_id: str
    skill: bool = Field(description="The unit has items of its own (a skill), not only units below it.")
    p: float | None = Field(description="The learner's mean calibrated p(correct) now over the unit's active items "
                                        "(the share of its questions they would answer right), from the live fit "
                                        "as a recommendation computes it; null without a practice model.")
    low: float | None = Field(description="Low end of the 90 % credible interval of p.")
    high: float | None = Field(description="High end of the 90 % credible interval of p.")
    attempts: int = Field(description="The learner's attempts at the unit's items (whole history).")
    correct: int
    last_practised: datetime | None = Field(description="The learner's last attempt at one of the unit's items.")
    mastered: bool = Field(description="`low` is at or above the unit's mastery threshold (units.attrs.mastery."
                                       "threshold, inherited from the unit above, default 0.8).")
    due: datetime | None = Field(description="When the forecast p falls (or fell) below the unit's review threshold "
                                             "(attrs.mastery.review, default 0.7) with time away; null when not "
                                             "practised, when the model has no forgetting terms, or when p stays "
                                             "above it within the time away the model was fitted on.")
    model_id: int | None


class KnowledgeModelRef(ModelRef):
    forgetting: bool = Field(description="The model's calibration has learning terms (time away): `due` is "
                                         "forecast from them; without them it is null.")


class KnowledgeModel(BaseModel):
    forgetting: bool = Field(description="Some model of the answer has learning terms.")
    interval: str = Field(description="How low and high are computed.")
    defaults: dict[str, float] = Field(description="The default mastery threshold and review threshold.")
    models: list[KnowledgeModelRef]


class Knowledge(BaseModel):
    user_id: str
    as_of: datetime = Field(description="The time the estimates are for.")
    units: list[UnitKnowledge] = Field(description="Each unit asked, then the units below it that have items of "
                                                   "their own (skills).")
    model: KnowledgeModel


# ---- experiments --------------------------------------------------------------------------
class Variant(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    weight: float = Field(gt=0, le=1_000_000)
    strategy: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "target"
    params: JsonObject = Field(default_factory=dict, description="Strategy parameters, e.g. {\"target\": 0.7}.")
    model_tag: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None


class ExperimentFields(Strict):
    description: Text(1000) | None = None
    variants: list[Variant] = Field(min_length=1, max_length=20)


class ExperimentOut(BaseModel):
    name: str
    description: str | None
    variants: list[dict[str, Any]]
    active: bool
    created_at: datetime
    stopped_at: datetime | None


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class Estimate(BaseModel):
    estimate: float | None = Field(description="The point estimate (null: no data for it yet).")
    low: float | None = Field(description="The 95 % interval's low end, by resampling learners (seeded bootstrap).")
    high: float | None


class VariantResults(BaseModel):
    variant: str
    weight: float
    learners: int = Field(description="Learners whose first answer in the version was routed to this variant.")
    answers: int = Field(description="Answers logged to them in the version (the exposure).")
    attempts: int = Field(description="Their attempts from their first answer to the version's end.")
    success_rate: float | None = Field(description="Share of those attempts right.")
    success_rate_interval: Estimate
    learning: Estimate = Field(description=(
        "Difficulty-adjusted learning: how the learners' ability on a skill grows per attempt at it, beyond what "
        "the items' difficulty (frozen model) explains, from first attempts at never-seen items; logits per "
        "attempt at the skill."))
    attempts_to_mastery: Estimate = Field(description=(
        "Attempts spent on units per unit mastered (the knowledge rule: the 90 % low end of p on the unit's "
        "typical item at or above its threshold); lower is better."))
    retention: Estimate = Field(description=(
        "On the first attempt at a unit after at least a day away: success minus the frozen model's p."))
    calibration: Estimate = Field(description=(
        "Observed minus predicted on the recommendations attempted within 24 hours (logged p)."))
    versus_first: dict[str, Estimate] | None = Field(description=(
        "This variant minus the first on each measure, with the 95 % interval of the difference (null for the first)."))


class ExperimentVersion(BaseModel):
    version: int
    started_at: datetime
    ended_at: datetime | None
    variants: list[str]


class ExperimentResultsOut(BaseModel):
    experiment: str
    version: int = Field(description="The version of the variants reported (a change of variants starts a new one).")
    versions: list[ExperimentVersion]
    started_at: datetime
    ended_at: datetime | None
    yardstick: dict[str, Any] = Field(description="The practice models whose item difficulties, frozen at the "
                                                  "version's start, adjust the measures.")
    variants: list[VariantResults]
    guardrails: dict[str, Any] = Field(description=(
        "sample_ratio_mismatch (chi-square of learners per variant against the weights, flagged when p < alpha), "
        "min_learners and too_few_learners, learners seen in several variants, attempts with and without a "
        "frozen item difficulty."))
    verdict: str = Field(description="One plain sentence: which variant teaches more, or why the data cannot tell yet.")


class PredictionQuery(Strict):
    user_id: Identifier
    units: list[Identifier] = Field(
        min_length=1, max_length=100,
        description="Use the model of the nearest unit at or above these (each must exist).")
    item_ids: list[Identifier] = Field(min_length=1, max_length=1000)


class PredictedItem(BaseModel):
    item_id: str
    p: float


class Predictions(BaseModel):
    user_id: str
    items: list[PredictedItem]
    model: ModelRef | None
    fallback: str | None
    history_rows: int


# ---- Totara's ML-service endpoints (app/api/totara.py) -----------------------------------------
class TotaraItems(BaseModel):
    success: bool
    items: list[tuple[int, float]] = Field(description="[numeric item id, score], best first")


class TotaraFailure(BaseModel):
    success: Literal[False]
    message: str = Field(description="what went wrong")
    items: list[Any] = Field(default_factory=list, max_length=0)


class TotaraHealth(BaseModel):
    success: bool
    message: str | None = Field(default=None, description="why success is false")
    totara: dict[str, str] = Field(description="what Totara's health check prints, as key: value lines")
    errors: list[str]


# ---- xAPI (app/api/xapi.py) ----------------------------------------------------------------
class XapiStatements(RootModel[Annotated[Any, WithJsonSchema(xapi_schema.STATEMENTS)]]):
    """One xAPI statement or a list (documentation: app.xapi.statements validates)."""


class XapiStatement(RootModel[Annotated[Any, WithJsonSchema(xapi_schema.PUT_STATEMENT)]]):
    """One xAPI statement, its id given as statementId (documentation: app.xapi.statements validates)."""


class XapiStatementIds(RootModel[list[str]]):
    """The ids of the statements stored, in the order sent (as a learning record store answers)."""


class XapiAbout(BaseModel):
    version: list[str] = Field(description="The xAPI versions this endpoint speaks")
    extensions: dict[str, Any] = Field(default_factory=dict)
