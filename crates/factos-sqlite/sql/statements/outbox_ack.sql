-- Deletes delivered message ?1 if lease ?2 still holds it.
DELETE FROM factos_outbox WHERE id = ?1 AND lease_token = ?2
