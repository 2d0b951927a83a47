-- Moves subscriber ?1's checkpoint from ?3 to ?4 and renews holder ?2's
-- lease until ?6 (?5, now), only if ?2 still holds it at ?3. Returns a row
-- when it moved.
UPDATE factos_subscriptions
SET position = ?4, held_until = ?6, updated_at = ?5
WHERE name = ?1 AND holder = ?2 AND position = ?3
RETURNING position
