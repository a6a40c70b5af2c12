// Every role the connector's identity holds, each on the narrowest scope that works.
param principalId string

param storageAccountName string
param serviceBusNamespaceName string
param alertEventsQueueName string
param teamsActionsQueueName string
param deliveryQueueName string
param keyVaultName string
param applicationInsightsName string

@description('Principals (users, groups, service principals of alert sources) allowed to send to the alert events queue.')
param alertSenderPrincipalIds array = []

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource alertEvents 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: serviceBus
  name: alertEventsQueueName
}

resource teamsActions 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: serviceBus
  name: teamsActionsQueueName
}

resource deliveries 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: serviceBus
  name: deliveryQueueName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// State tables are created by the app at run time (one per prefix and kind), so the role is
// on the account; the Functions host keeps its diagnostic tables there too.
resource tablesRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The host's storage (AzureWebJobsStorage__blobServiceUri: timer locks, host keys) and the
// deployment container Flex Consumption reads the package from: Storage Blob Data Owner on the
// account, as Microsoft's Flex Consumption docs and templates grant it ("Use managed identity
// for AzureWebJobsStorage": the host creates and leases containers of its own; a role on two
// named containers breaks when the host needs another). The account holds nothing else.
resource blobOwnerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The two triggered queues: Data Receiver to receive, and Data Owner so that target-based
// scaling can read the queue's message count with the app's identity (Functions docs, Service
// Bus bindings, identity-based connections: the trigger lists Data Receiver and Data Owner).
// Scoped to each queue, not the namespace.
resource alertEventsOwnerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertEvents.id, principalId, serviceBusDataOwner)
  scope: alertEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deliveriesOwnerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deliveries.id, principalId, serviceBusDataOwner)
  scope: deliveries
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource alertEventsReceiverRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertEvents.id, principalId, serviceBusDataReceiver)
  scope: alertEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The admin routes queue commands (manual send, a workflow's open alerts) on the same queue.
resource alertEventsSenderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertEvents.id, principalId, serviceBusDataSender)
  scope: alertEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The app both queues delivery jobs and consumes them (sessions).
resource deliveriesSenderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deliveries.id, principalId, serviceBusDataSender)
  scope: deliveries
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource deliveriesReceiverRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deliveries.id, principalId, serviceBusDataReceiver)
  scope: deliveries
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource teamsActionsSenderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(teamsActions.id, principalId, serviceBusDataSender)
  scope: teamsActions
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The vault holds only this app's secrets, so vault scope equals "the app's secrets".
resource secretsUserRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Application Insights has local auth disabled: the app signs its telemetry with the identity.
resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource alertSenderRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for senderId in alertSenderPrincipalIds: {
  name: guid(alertEvents.id, senderId, serviceBusDataSender)
  scope: alertEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: senderId
  }
}]
