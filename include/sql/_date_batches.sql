-- A partial (leading underscore), included by game_day.sql: the batches this package ran for game_date,
-- for adopting a dead run's staged rows (nba_phase5.airflow.batch_claims.adoptable_batches): each run's first claim
-- (its batch id is minted from it), and each batch's last request Pub/Sub accepted (the publish ledger).
-- Only the package's own tables are read, so a batch of the platform's coordinator is never among them.
-- (The time is happened_at, not at: bqemulator cannot pack a column named at into a STRUCT.)
SELECT 'claim' AS kind, run_id AS name, MIN(claimed_at) AS happened_at
FROM {{ tables.batch_claims }}
WHERE game_date = @game_date
GROUP BY run_id
UNION ALL
SELECT 'batch' AS kind, batch_id AS name, MAX(published_at) AS happened_at
FROM {{ tables.request_ledger }}
WHERE game_date = @game_date
GROUP BY batch_id
