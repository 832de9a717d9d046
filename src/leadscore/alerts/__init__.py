"""Delivery of handoffs from the outbox: signed webhooks and e-mail, retried with backoff."""

from leadscore.alerts.backoff import Backoff
from leadscore.alerts.dispatcher import Dispatcher
from leadscore.alerts.payload import sign, verify
from leadscore.alerts.targets import DeliveryFailed, EmailTarget, WebhookTarget, targets_from

__all__ = ["Backoff", "DeliveryFailed", "Dispatcher", "EmailTarget", "WebhookTarget", "sign",
           "targets_from", "verify"]
