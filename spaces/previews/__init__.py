"""Branch previews (issue 10 item 8): a push of a branch other than `main` builds that branch
as a preview on its own host, `<label>--<branch>.<apps domain>`, that only the space's editors
may open; it sleeps when idle, is listed on the space page and by the API, and goes when the
branch is deleted. It never touches what `main` serves.

The row (`Preview`) and the push-time rule (`records/previews.preview_refusal`, called by the
push hook of spaces/repos) are in records, low, so the proxy's gate, the sleep check and
reconciliation read them; running a preview is lifecycle's (`lifecycle/preview_runs.py`). This
room makes and removes the rows, builds the images and answers the API.

May call: records (models, previews, jobs, errors, frontmatter), web, accounts (the API base),
access (the one access check), repos (a commit's snapshot), lifecycle (engine, routes, sleep,
preview_runs, variables, logs), builds (build_spec). Nothing below calls it: the push hook
sends `spaces.tasks.preview_update` and `spaces.tasks.preview_delete` by name.
"""
