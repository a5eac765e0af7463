"""The request path's work, callable without Flask: recommendations and predictions
(`recommend`), related items, trending and Totara's top-N (`related`), experiments' routing
(`experiments`), what a learner knows (`knowledge`, `learner_fit`) and the recommendation log."""
