-- A condition on a query ($13 types, $14 tags): some matching event after $9.
EXISTS ({matching})
