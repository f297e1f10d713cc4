"""Embedding and badges (issue 14): the "Embed this space" dialog, the SVG status badge, and
README `disable_embedding` (validated in records/frontmatter.py, enforced by the proxy with
frame-ancestors from the flag lifecycle/routes.py publishes).

May call: records (models), web, access (the one access check). Nothing calls it but the URL
root and the template tag spaces/templatetags/spaces_embeds.py.
"""
