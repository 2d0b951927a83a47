-- Moves subscriber $1's checkpoint from $2 to $3. No row when the checkpoint
-- is not at $2 any more: another instance moved it (this one lost its lease).
UPDATE {schema}.factos_subscriptions
SET position = $3, updated_at = now()
WHERE name = $1 AND position = $2
RETURNING position
