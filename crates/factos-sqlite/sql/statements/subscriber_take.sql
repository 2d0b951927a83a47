-- Takes subscriber ?1 for holder ?2 until ?4 if nobody holds it, this
-- holder does, or the holder's lease ran out (before ?3, now). Returns its
-- checkpoint and recorded query; no row when another instance holds it.
UPDATE factos_subscriptions
SET holder = ?2, held_until = ?4, updated_at = ?3
WHERE name = ?1 AND (holder IS NULL OR holder = ?2 OR held_until < ?3)
RETURNING position, query
