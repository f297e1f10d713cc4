"""Records: what a space is. The Space and Revision rows, the status machine (status.py,
written only by services.space_transition), README front matter, tags, Markdown, the search
index, the errors rooms raise, and jobs.py, which sends work to a task by name.

Imports nothing else of spaces/: every other room builds on it."""
