"""/api/spaces/<owner>/<name>/webhooks[/<id>[/test|/deliveries]] (issue 14). Editors and the
owner only, reading included: a webhook's URL and its log are the space's configuration."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from spaces.access.selectors import Action
from spaces.access.viewer import get_space
from spaces.accounts.api_base import BaseApi
from spaces.web.pagination import PageNumberPagination
from spaces.web.unavailable import ApiAnswers503WhenDown
from spaces.webhooks import selectors, services
from spaces.webhooks.models import Webhook, WebhookDelivery, WebhookEvent


class WebhookOut(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.values))

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]


class WebhookCreatedOut(WebhookOut):
    secret = serializers.CharField(help_text="Shown once: the key of the X-Demohub-Signature HMAC.")

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "secret"]


class WebhookIn(serializers.Serializer):
    url = serializers.CharField(max_length=4000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.values), required=False,
                                   help_text="Default: every event.")
    secret = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=1000,
                                   help_text="16 to 256 characters; default: one the hub makes (returned once).")


class WebhookPatchIn(serializers.Serializer):
    url = serializers.CharField(max_length=4000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.values), required=False)
    active = serializers.BooleanField(required=False)
    secret = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=1000,
                                   help_text="A new secret, 16 to 256 characters (never returned).")


class DeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "delivery_id", "event", "attempt", "outcome", "status_code", "duration_ms", "error",
                  "address", "created_at", "due_at", "attempted_at"]


class _Api(ApiAnswers503WhenDown, BaseApi):
    def hook(self, request, owner, name, webhook_id):
        space, _ = get_space(request, owner, name, Action.EDIT)
        return selectors.webhook_get(space=space, webhook_id=webhook_id)


class WebhookListApi(_Api):
    @extend_schema(responses=WebhookOut(many=True))
    def get(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.webhook_list(space=space), request, view=self)
        return paginator.get_paginated_response(WebhookOut(page, many=True).data)

    @extend_schema(request=WebhookIn, responses={201: WebhookCreatedOut})
    def post(self, request, owner, name):
        space, _ = get_space(request, owner, name, Action.EDIT)
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        hook, secret = services.webhook_create(space=space, by=request.user, **data.validated_data)
        body = dict(WebhookOut(hook).data, secret=secret)
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookDetailApi(_Api):
    @extend_schema(responses=WebhookOut)
    def get(self, request, owner, name, webhook_id):
        return Response(WebhookOut(self.hook(request, owner, name, webhook_id)).data)

    @extend_schema(request=WebhookPatchIn, responses=WebhookOut)
    def patch(self, request, owner, name, webhook_id):
        hook = self.hook(request, owner, name, webhook_id)
        data = WebhookPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(WebhookOut(services.webhook_update(webhook=hook, **data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, owner, name, webhook_id):
        services.webhook_delete(webhook=self.hook(request, owner, name, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(_Api):
    @extend_schema(request=None, responses={202: DeliveryOut})
    def post(self, request, owner, name, webhook_id):
        delivery = services.webhook_ping(webhook=self.hook(request, owner, name, webhook_id))
        return Response(DeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListApi(_Api):
    @extend_schema(responses=DeliveryOut(many=True))
    def get(self, request, owner, name, webhook_id):
        hook = self.hook(request, owner, name, webhook_id)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.delivery_list(webhook=hook), request, view=self)
        return paginator.get_paginated_response(DeliveryOut(page, many=True).data)
