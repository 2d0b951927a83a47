-- Outbox messages per topic, for `PostgresStore::outbox_topics`: waiting
-- (no lease: due now or after a backoff), leased (a lease that has not run
-- out), parked (failed too often). A message whose lease ran out (its worker
-- died) counts in none of the three until a worker leases it again.
SELECT topic,
       count(*) FILTER (WHERE parked_at IS NULL AND lease_token IS NULL) AS waiting,
       count(*) FILTER (WHERE parked_at IS NULL AND lease_token IS NOT NULL AND available_at > now()) AS leased,
       count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
FROM {schema}.factos_outbox
GROUP BY topic
ORDER BY topic
