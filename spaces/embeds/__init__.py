"""Embedding and badges (issue 14, item 2): the "Embed this space" dialog, the SVG status
badge, and README `disable_embedding` (enforced by the proxy with frame-ancestors)."""
