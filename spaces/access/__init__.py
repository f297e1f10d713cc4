"""Access: who may see and do what. Roles and the one access check (selectors.py, viewer.py),
collaborators, share links, the proxy's access gate (proxy_gate.py), the request-body gate and
the signals that end access at once; the sharing pages and API.
May call: accounts, web, records."""
