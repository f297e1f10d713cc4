"""Community: comments (threads, edits, hiding, reports), likes and the trending score.
May call: builds, lifecycle, access, accounts, web, records."""
