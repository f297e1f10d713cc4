"""Repositories: every space's interface repo is one bare git repository (design.md §5).

Owns the repository on disk (`store`: plain `git` subprocesses, no hand-written pack code),
turning commits into revisions (`services`: every way in, uploads, `git push`, edits, is one
commit on `main`, checked like an upload before a ref moves), git's smart HTTP protocol
(`git_http`: `git http-backend` as CGI) and the receive hooks that check a push
(`receive`), and the read side (`reading`: trees, files, commits, diffs) with the Files
and History pages and API (`pages_files`, `api_files`). A lower room never calls it; branch
pushes reach the previews room by task name.

Sits above lifecycle and builds (quotas, build logs, variables of a duplicate) and below
community and catalog. May call: builds, lifecycle, analytics, access, accounts, web, records
(and runner for the archive checks).
"""
