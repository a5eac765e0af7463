-- 013: a unit's attrs now change what is served: attrs.mastery (thresholds, ordered children) is
-- what GET /v1/users/{id}/knowledge and the mastery and review strategies read, and each worker
-- keeps their plan of a list of units per catalogue version (app/serving/knowledge.py). 007 left
-- updates of units out of the version ("a unit's name or kind does not change what is
-- recommended"); an update of a unit bumps its tenant's version now, as an insert or a delete does.
CREATE TRIGGER units_updated AFTER UPDATE ON units REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
