"""Catalog: the spaces as people find and manage them. Creating a space, uploading a revision,
settings, restart, pause and delete; the space page and API, browse, search and profiles.
May call every other room: it composes them."""
