// Teams Alert Connector: everything one deployment needs in one resource group.
//   az deployment group create -g <group> -f infra/main.bicep -p @infra/main.parameters.json ...
// Every resource name has a default derived from the resource group and can be overridden.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(20)
@description('Short name of this deployment (e.g. prod); part of the default resource names.')
param environmentName string

// The regions that offer Flex Consumption, as Microsoft's Flex Consumption azd templates list
// them (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep; the list of
// 2025-05-06, unchanged in 2026; less the canary region eastus2euap). The live list:
// `az functionapp list-flexconsumption-locations`; a region added since is allowed by editing
// this list. azd offers only these when it asks for a region (metadata type 'location').
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
@description('Region of every regional resource: one that offers Flex Consumption.')
param location string = resourceGroup().location

param tags object = {}

// Names: override any of them; the defaults are unique per subscription, group and environment.
// A parameter, not a variable: a parameter's default may use only parameters and functions
// (Bicep BCP072; docs: "Parameters in Bicep", default value).
@description('Suffix of the default resource names; by default unique per subscription, resource group and environment.')
param resourceToken string = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
param identityName string = 'id-tac-${resourceToken}'
param storageAccountName string = 'sttac${resourceToken}'
param deploymentContainerName string = 'app-package-${resourceToken}'
param serviceBusNamespaceName string = 'sb-tac-${resourceToken}'
param keyVaultName string = 'kv-tac-${resourceToken}'
param logAnalyticsName string = 'log-tac-${resourceToken}'
param applicationInsightsName string = 'appi-tac-${resourceToken}'
param planName string = 'plan-tac-${resourceToken}'
param functionAppName string = 'func-tac-${resourceToken}'
param botName string = 'bot-tac-${resourceToken}'
param botDisplayName string = 'Teams Alert Connector'

param alertEventsQueueName string = 'alert-events'
param teamsActionsQueueName string = 'teams-actions'

@description('Internal queue of delivery jobs (sessions: one per Teams conversation).')
param deliveryQueueName string = 'teams-deliveries'

@description('Deliveries of an alert event before it is dead-lettered. Each delivery already retries Teams and Graph calls inside.')
@minValue(1)
@maxValue(100)
param alertEventsMaxDeliveryCount int = 10

@description('Service Bus tier: Standard (1,000 credits per second, enough for about 850,000 alerts a day) or Premium (docs/SCALE.md).')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
@description('SingleTenant: an app registration (botAppId) with a client secret in Key Vault; it serves other organisations when the registration\'s sign-in audience is AzureADMultipleOrgs. UserAssignedMSI: the managed identity is the bot, with no secret; it serves the organisation it is deployed in (docs/DEPLOYING.md: One organisation or many). Azure creates no new MultiTenant bots since 31 July 2025.')
param botAppType string = 'SingleTenant'

@description('Application (client) id of the bot app registration. Ignored for UserAssignedMSI (the identity\'s client id is used).')
param botAppId string = ''

@secure()
@description('Client secret of the bot app registration (SingleTenant). Empty keeps the secret already in Key Vault.')
param botAppPassword string = ''

@secure()
@description('Key that encrypts stored delegated tokens (urlsafe base64 of 32 random bytes). Empty keeps the stored one.')
param tokenEncryptionKey string = ''

@secure()
@description('Key that signs the consent state (urlsafe base64 of 32 random bytes). Empty keeps the stored one.')
param stateSigningKey string = ''

@secure()
@description('Admin credential of /api/connect and the management routes (urlsafe base64 of 32 random bytes). Empty keeps the stored one.')
param adminApiKey string = ''

@description('Object id of whoever deploys (azd fills it in): may write the generated keys into Key Vault. Empty: no role.')
param deployerPrincipalId string = ''

@description('recover: restore the soft-deleted Key Vault of this name (an environment deleted and created again within 90 days); default: create it.')
@allowed([
  'default'
  'recover'
])
param keyVaultCreateMode string = 'default'

@description('The app\'s id in the organisation\'s Teams app catalog (Teams admin center > Manage apps > App ID), after the app is published; needed to reach people 1:1 and groups.')
param teamsAppCatalogId string = ''

@description('Comma-separated Microsoft Entra object ids or UPNs of people who may subscribe any channel or chat from Teams.')
param connectorAdmins string = ''

@allowed([
  'create'
  'none'
])
@description('create: this deployment registers the Graph app (multitenant, the connector\'s permissions, the consent redirect URI) with the managed identity as its federated credential, so it has no secret; the deployer needs the right to register applications. none: graphAppId, or the bot\'s app registration.')
param graphAppRegistration string = 'none'

@description('App registration for Microsoft Graph and the consent flows (graphAppRegistration none). Empty: the bot app registration when botAppType is SingleTenant, else tenant connection stays off.')
param graphAppId string = ''

@allowed([
  'secret'
  'certificate'
  'federated_managed_identity'
])
@description('How the Graph app authenticates: its client secret in Key Vault, a certificate, or the managed identity as a federated credential.')
param graphCredentialType string = 'secret'

@secure()
@description('Client secret of a separate Graph app registration (graphAppId set, graphCredentialType secret). Empty keeps the stored one.')
param graphClientSecret string = ''

@description('Public https address of the function app when it has a custom domain (the consent redirect URI is <this>/api/consent/callback). Empty: the app uses its real host name (WEBSITE_HOSTNAME, set by the platform).')
param publicBaseUrl string = ''

@description('Expiry set on secrets written by this deployment; by default one year from now.')
param secretsExpireAt int = dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y'))

@description('NCRONTAB schedule (6 fields) of the periodic run.')
param periodicSchedule string = '0 */5 * * * *'

@description('Prefix of the state tables the app creates.')
param stateTablePrefix string = 'tac'

@minValue(1)
param reminderAfterMinutes int = 30

@description('Days a resolved alert and its card records are kept (at least 8: an event may wait 7 days in the queue).')
@minValue(8)
param resolvedAlertRetentionDays int = 30

@description('Days a published action (what people did in Teams) is kept.')
@minValue(1)
param actionRetentionDays int = 30

@description('Days a rejected event is kept with its reason.')
@minValue(1)
param rejectedEventRetentionDays int = 14

@description('Days the record of an alert that reached no recipient is kept.')
@minValue(1)
param undeliverableRetentionDays int = 30

@description('Tenant used for events without a tenantid when several tenants are connected. Empty: none.')
param defaultTenantId string = ''

@description('Object ids allowed to send alert events (alert sources, the operator sending a first test alert).')
param alertSenderPrincipalIds array = []

@description('Upper bound of function app instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('E-mail address of the operator the connector\'s alerts go to (dead letters, function failures, a secret near expiry). Empty: the alerts fire in the portal only.')
param alertEmail string = ''

@description('Spread function app instances over availability zones (needs a region that supports it for Flex Consumption).')
param zoneRedundant bool = false

module identity 'app/identity.bicep' = {
  name: 'identity'
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: logAnalyticsName
    applicationInsightsName: applicationInsightsName
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module serviceBus 'app/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: serviceBusNamespaceName
    location: location
    tags: tags
    alertEventsQueueName: alertEventsQueueName
    teamsActionsQueueName: teamsActionsQueueName
    deliveryQueueName: deliveryQueueName
    sku: serviceBusSku
    alertEventsMaxDeliveryCount: alertEventsMaxDeliveryCount
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    tags: tags
    botAppPassword: botAppPassword
    tokenEncryptionKey: tokenEncryptionKey
    stateSigningKey: stateSigningKey
    adminApiKey: adminApiKey
    graphClientSecret: graphClientSecret
    secretsExpireAt: secretsExpireAt
    deployerPrincipalId: deployerPrincipalId
    createMode: keyVaultCreateMode
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    alertEventsQueueName: serviceBus.outputs.alertEventsQueueName
    teamsActionsQueueName: serviceBus.outputs.teamsActionsQueueName
    deliveryQueueName: serviceBus.outputs.deliveryQueueName
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    alertSenderPrincipalIds: alertSenderPrincipalIds
  }
}

var effectiveBotAppId = botAppType == 'UserAssignedMSI' ? identity.outputs.clientId : botAppId
// An app registration of your own (graphAppId) is used as it is.
var createGraphApp = graphAppRegistration == 'create' && empty(graphAppId)
var effectiveGraphAppId = !empty(graphAppId) ? graphAppId : (botAppType == 'SingleTenant' ? botAppId : '')
var effectiveGraphCredentialType = createGraphApp ? 'federated_managed_identity' : graphCredentialType
// A Graph app registered by this deployment gets the function app's host name in its redirect
// URI, so it is created after the app; its id reaches the app through Key Vault (written below,
// resolved when the app restarts: the postprovision hook restarts it) instead of a second write
// of the app settings.
var graphAppIdSecretName = 'graph-app-id'
var graphAppIdSetting = createGraphApp ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.vaultUri}secrets/${graphAppIdSecretName})' : effectiveGraphAppId
// The same app as the bot shares the bot's secret; a separate app has a secret of its own.
var graphSecretUri = !empty(graphAppId) ? keyVault.outputs.graphClientSecretUri : keyVault.outputs.botAppPasswordSecretUri

module functionApp 'app/function.bicep' = {
  name: 'function'
  // The app starts with its roles in place: Key Vault references and the trigger work at once.
  dependsOn: [
    rbac
  ]
  params: {
    planName: planName
    functionAppName: functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    alertEventsQueueName: serviceBus.outputs.alertEventsQueueName
    teamsActionsQueueName: serviceBus.outputs.teamsActionsQueueName
    deliveryQueueName: serviceBus.outputs.deliveryQueueName
    botAppPasswordReference: botAppType == 'SingleTenant' ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.botAppPasswordSecretUri})' : ''
    botAppType: botAppType
    botAppId: effectiveBotAppId
    defaultTenantId: defaultTenantId
    periodicSchedule: periodicSchedule
    stateTablePrefix: stateTablePrefix
    reminderAfterMinutes: reminderAfterMinutes
    retentionDays: {
      resolvedAlerts: resolvedAlertRetentionDays
      actions: actionRetentionDays
      rejectedEvents: rejectedEventRetentionDays
      undeliverable: undeliverableRetentionDays
    }
    graphAppId: graphAppIdSetting
    graphCredentialType: effectiveGraphCredentialType
    graphClientSecretReference: effectiveGraphCredentialType == 'secret' && !empty(effectiveGraphAppId) ? '@Microsoft.KeyVault(SecretUri=${graphSecretUri})' : ''
    tokenEncryptionKeyReference: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.tokenEncryptionKeySecretUri})'
    stateSigningKeyReference: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.stateSigningKeySecretUri})'
    adminApiKeyReference: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.adminApiKeySecretUri})'
    publicBaseUrl: publicBaseUrl
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    teamsAppCatalogId: teamsAppCatalogId
    connectorAdmins: connectorAdmins
  }
}

module bot 'app/bot.bicep' = {
  name: 'bot'
  params: {
    name: botName
    tags: tags
    displayName: botDisplayName
    appType: botAppType
    appId: effectiveBotAppId
    identityId: identity.outputs.id
    messagingEndpoint: 'https://${functionApp.outputs.defaultHostName}/api/messages'
  }
}

// The address people and Microsoft reach the app at: the app sends <this>/api/consent/callback
// as its redirect URI (PUBLIC_BASE_URL, else WEBSITE_HOSTNAME), so the registration names the same.
var publicBase = empty(publicBaseUrl) ? 'https://${functionApp.outputs.defaultHostName}' : (endsWith(publicBaseUrl, '/') ? take(publicBaseUrl, length(publicBaseUrl) - 1) : publicBaseUrl)

// The connector's Graph permissions, generated from shared/permissions.py (a test keeps them equal).
var graphPermissions = loadJsonContent('app/graph-permissions.json')

module graphApp 'app/graph-app.bicep' = if (createGraphApp) {
  name: 'graph-app'
  params: {
    uniqueName: 'tac-${resourceToken}'
    displayName: botDisplayName
    redirectUri: '${publicBase}/api/consent/callback'
    consoleRedirectUri: '${publicBase}/api/console/signin'
    identityPrincipalId: identity.outputs.principalId
    applicationPermissions: graphPermissions.applicationPermissions
    delegatedScopes: graphPermissions.delegatedScopes
  }
}

module graphAppIdSecret 'app/keyvault-secret.bicep' = if (createGraphApp) {
  name: 'graph-app-id-secret'
  params: {
    keyVaultName: keyVault.outputs.name
    name: graphAppIdSecretName
    value: graphApp.outputs.appId
    contentType: 'Client id of the Graph app registration (not a credential): held here because the app registration is created after the function app'
    expiresAt: secretsExpireAt
  }
}

module operations 'app/operations.bicep' = {
  name: 'operations'
  params: {
    namePrefix: 'tac-${resourceToken}'
    location: location
    tags: tags
    alertEmail: alertEmail
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    serviceBusNamespaceName: serviceBus.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    storageAccountName: storage.outputs.name
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_HOST_NAME string = functionApp.outputs.defaultHostName
output BOT_NAME string = bot.outputs.name
output BOT_APP_ID string = effectiveBotAppId
output BOT_APP_TYPE string = botAppType
output GRAPH_APP_REGISTRATION string = graphAppRegistration
// The Graph app the connector uses ('' when tenant connection is off). Not named GRAPH_APP_ID: azd
// would pass an output of that name back as the graphAppId parameter, turning 'create' off.
output GRAPH_APP_CLIENT_ID string = createGraphApp ? graphApp.outputs.appId : effectiveGraphAppId
// Where people and Microsoft reach the connector (publicBaseUrl, else the app's host name).
output CONNECTOR_URL string = publicBase
output BOT_MESSAGING_ENDPOINT string = 'https://${functionApp.outputs.defaultHostName}/api/messages'
output MANAGED_IDENTITY_NAME string = identity.outputs.name
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output STATE_TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output ALERT_EVENTS_QUEUE string = serviceBus.outputs.alertEventsQueueName
output TEAMS_ACTIONS_QUEUE string = serviceBus.outputs.teamsActionsQueueName
output DELIVERY_QUEUE string = serviceBus.outputs.deliveryQueueName
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URI string = keyVault.outputs.vaultUri
output TOKEN_ENCRYPTION_KEY_SECRET_URI string = keyVault.outputs.tokenEncryptionKeySecretUri
output STATE_SIGNING_KEY_SECRET_URI string = keyVault.outputs.stateSigningKeySecretUri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output LOG_ANALYTICS_NAME string = monitoring.outputs.logAnalyticsName
output ALERTS_ACTION_GROUP_ID string = operations.outputs.actionGroupId
