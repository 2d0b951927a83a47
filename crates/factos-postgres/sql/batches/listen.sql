-- Listens for the schema's commit announcements.
LISTEN {channel}
