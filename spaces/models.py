"""Every model of the one Django app `spaces`, each defined in the room that owns it.

Django loads an app's models from this module; the table names and the app label ("spaces")
did not change when the models moved into rooms, so no data moves. Code imports a model from
its room (spaces/<room>/models.py), never from here: this module sits above every room.
"""
from spaces.access.models import Collaborator, ShareLink
from spaces.accounts.models import ApiToken
from spaces.analytics.models import (AnalyticsCursor, AnalyticsEvent, AnalyticsHour, AnalyticsMinute, AnalyticsSalt,
                                     AnalyticsVisitor)
from spaces.community.models import Comment, Like
from spaces.lifecycle.models import SpaceVariable
from spaces.nodes.models import Node
from spaces.records.models import HostLabel, Preview, Revision, Sdk, Space, Visibility
from spaces.webhooks.models import Webhook, WebhookDelivery

__all__ = ["AnalyticsCursor", "AnalyticsEvent", "AnalyticsHour", "AnalyticsMinute", "AnalyticsSalt", "AnalyticsVisitor",
           "ApiToken", "Collaborator", "Comment", "HostLabel", "Like", "Node", "Preview", "Revision", "Sdk", "ShareLink",
           "Space",
           "SpaceVariable", "Visibility", "Webhook", "WebhookDelivery"]
