// Service Bus namespace with the connector's queues: alert events in, delivery jobs (internal,
// one session per Teams conversation), Teams actions out.
param name string
param location string = resourceGroup().location
param tags object = {}

param alertEventsQueueName string
param teamsActionsQueueName string
param deliveryQueueName string

@description('Deliveries of an alert event before Service Bus dead-letters it (MaxDeliveryCountExceeded).')
@minValue(1)
@maxValue(100)
param alertEventsMaxDeliveryCount int

@description('How long Service Bus remembers a message id to drop a resent duplicate (ISO 8601, 20 s to 7 days).')
param duplicateDetectionWindow string = 'PT1H'

@description('Standard (1,000 credits per second, shared) or Premium (dedicated messaging units): docs/SCALE.md.')
@allowed([
  'Standard'
  'Premium'
])
param sku string = 'Standard'

@description('Messaging units of a Premium namespace (1, 2, 4, 8 or 16).')
param premiumMessagingUnits int = 1

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  // Standard or Premium: sessions and duplicate detection; Basic has neither.
  sku: {
    name: sku
    tier: sku
    capacity: sku == 'Premium' ? premiumMessagingUnits : null
  }
  properties: {
    // Senders and the app authenticate with Entra ID only; no SAS keys to leak or rotate.
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// Sibling queues are top-level resources with a parent, not nested in the namespace: every
// reader of the template (checkov's parser among them) sees all three.
resource alertEvents 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: alertEventsQueueName
  properties: {
    // The trigger renews the lock while the function runs (host.json maxAutoLockRenewalDuration).
    lockDuration: 'PT1M'
    maxDeliveryCount: alertEventsMaxDeliveryCount
    deadLetteringOnMessageExpiration: true
    // Sources that resend an event with the same MessageId are absorbed here; the app
    // also dedupes by CloudEvents id. Cannot be changed after the queue exists.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: 'P7D'
    maxSizeInMegabytes: 1024
    enablePartitioning: false
    requiresSession: false
  }
}

// Delivery jobs: the session id is the Teams conversation, so one consumer at a time handles
// a conversation's jobs, in order, however many instances run. Duplicate detection drops a
// job resent by a redelivered event. A job is rescheduled (a new scheduled message) when
// Teams is busy, so maxDeliveryCount counts only failures of the app itself.
resource deliveries 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: deliveryQueueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: 'P2D'
    maxSizeInMegabytes: 1024
    enablePartitioning: false
    requiresSession: true
  }
}

resource teamsActions 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: teamsActionsQueueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    // Consumers of Teams actions may be offline for a while; keep two weeks.
    defaultMessageTimeToLive: 'P14D'
    maxSizeInMegabytes: 1024
    enablePartitioning: false
    requiresSession: false
  }
}

output name string = namespace.name
output id string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output alertEventsQueueName string = alertEvents.name
output teamsActionsQueueName string = teamsActions.name
output deliveryQueueName string = deliveries.name
