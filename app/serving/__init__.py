"""The request path's work, callable without Flask: recommendations and predictions
(`recommend`, through the steps of `pipeline` in a `context`), related items, trending and
Totara's top-N (`related`), experiments' routing and results, what a learner knows (`knowledge`,
`learner_fit`), each worker's cache of the active models (`model_cache`) and the recommendation log."""
