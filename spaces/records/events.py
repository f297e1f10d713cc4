"""Domain events other parts of the hub may react to (issue 14: webhooks).

Plain Django signals, sent by the one place where each event happens, so a room above (the
webhooks) reacts without the lower room importing it. Receivers run in the sender's thread
and transaction: they must be quick, and defer any I/O to after the commit.

* space_status_changed(space_id, previous, status): from records/services.space_transition, after its
  UPDATE moved the space; `previous` is None where the caller passed only an id.
* revision_finished(revision_id, status): a build ended, "succeeded" or "failed"
  (builds/outcomes.finish_revision; catalog/services.revision_create for a static revision
  or a README error).
* comment_posted(comment_id): a new comment or reply (community/services.comment_create).
"""
from __future__ import annotations

from django.dispatch import Signal

space_status_changed = Signal()
revision_finished = Signal()
comment_posted = Signal()
