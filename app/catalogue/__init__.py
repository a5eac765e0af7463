"""What the service knows: the content (`catalog`, `candidates`: items under units), the input
records and the one id rule (`records`), events in (`ingest`) and each learner's history
(`history`, below both ingest and serving)."""
