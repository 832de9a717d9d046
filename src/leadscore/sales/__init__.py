"""The loop with sales (issue #18): routing handed-off leads to an owner (`routing`,
`assign`), sales' feedback as events (`feedback`), SLAs (`sla`), manual adjustments
(`adjustments`) and the exports a CRM takes (`export`).

Below `service` and above `store/` and `model/`: the ingest transaction calls `assign.route`
for each new handoff; nothing here imports the engine."""
