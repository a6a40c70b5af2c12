// Flex Consumption plan and the Python function app. Every connection the app makes (host
// storage, state tables, Service Bus, Key Vault, Application Insights) uses the user-assigned
// identity; no keys or connection strings with secrets are stored in app settings.
param planName string
param functionAppName string
param location string = resourceGroup().location
param tags object = {}

param identityId string
param identityClientId string

param storageAccountName string
param storageBlobEndpoint string
param storageTableEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string
param serviceBusFullyQualifiedNamespace string
param alertEventsQueueName string
param teamsActionsQueueName string
param deliveryQueueName string
@description('Messages per second the app sends to one tenant across every instance (Teams allows 50).')
param tenantSendsPerSecond int = 45

@description('Key Vault reference of the bot client secret, or empty (UserAssignedMSI needs none).')
param botAppPasswordReference string

@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
param botAppType string
param botAppId string
param defaultTenantId string
param periodicSchedule string
param stateTablePrefix string
param reminderAfterMinutes int

@description('Retention in days (docs/RETENTION.md): resolved alerts, published actions, rejected events, undeliverable records.')
param retentionDays object = {
  resolvedAlerts: 30
  actions: 30
  rejectedEvents: 14
  undeliverable: 30
}

@description('Refuse actions from people without a linked alerting platform account.')
param requireLinkedAccount bool = false
@description('Team (Microsoft 365 group id) for alert channels; empty: the team of the clicked card.')
param alertChannelTeamId string = ''
@description('Alert channel name template ({severity}, {id}, {title}).')
param alertChannelNameTemplate string = '{severity} {id} {title}'
@description('User (id or UPN) who organises alert meetings; empty: the person who clicked.')
param meetingOrganizer string = ''
@description('The app\'s id in the organisation\'s Teams app catalog; needed to reach people 1:1 and groups.')
param teamsAppCatalogId string = ''
@description('Comma-separated Entra object ids or UPNs of people who may subscribe any conversation from Teams.')
param connectorAdmins string = ''

@description('App registration for Graph and the consent flows; empty turns tenant connection off.')
param graphAppId string
param graphCredentialType string
@description('Key Vault reference of the Graph client secret, or empty (certificate or federated credential).')
param graphClientSecretReference string
@description('Key Vault reference of the token-cache encryption key.')
param tokenEncryptionKeyReference string
@description('Key Vault reference of the consent state signing key.')
param stateSigningKeyReference string
@description('Key Vault reference of the admin API key.')
param adminApiKeyReference string
@description('Custom public https address of the app (the consent redirect URI is <this>/api/consent/callback); empty: the app uses WEBSITE_HOSTNAME, its real host name.')
param publicBaseUrl string = ''

@description('Upper bound of Flex Consumption instances. Keeps fan-out inside the Teams per-tenant rate limits.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread instances over availability zones (regions that support it for Flex Consumption).')
param zoneRedundant bool = false

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is an opt-in (zoneRedundant parameter): on Flex Consumption it keeps at least two always-ready instances billed and exists only in some regions.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the Bot Connector calls /api/messages and admins open /api/connect from the internet; every request is authenticated by the app (bot JWT, signed consent state).
  // checkov:skip=CKV_AZURE_17: the Bot Connector does not present client certificates; inbound bot requests are authenticated by their JWT.
  // checkov:skip=CKV_AZURE_212: numberOfWorkers does not apply to Flex Consumption, which scales instances per trigger on demand.
  // checkov:skip=CKV_AZURE_213: App Service health check is not supported on Flex Consumption.
  // checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP endpoint (deployments go through the package container), so ftpsState would do nothing.
  name: functionAppName
  location: location
  // azd finds the app a service deploys to by this tag (azure.yaml: services.connector).
  tags: union(tags, { 'azd-service-name': 'connector' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Key Vault references resolve with the user-assigned identity (the default is the system one).
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    // No FTP, remote debugging or App Service logs on Flex Consumption (Microsoft's Flex
    // Consumption docs, "Considerations"): those site settings would do nothing, so they are
    // not set; the logs go to Application Insights.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      // Teams and the Bot Connector call /api/messages from anywhere; the bot JWT is the guard.
      cors: {
        allowedOrigins: []
      }
      // Flex Consumption sets the runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and
      // FUNCTIONS_EXTENSION_VERSION are rejected as app settings on this plan.
      appSettings: [
        // Functions host storage, identity-based.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        // Application Insights has local auth disabled: telemetry is sent with the identity.
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // Connection "ServiceBusConnection" of the queue trigger and of the actions sender.
        {
          name: 'ServiceBusConnection__fullyQualifiedNamespace'
          value: serviceBusFullyQualifiedNamespace
        }
        {
          name: 'ServiceBusConnection__credential'
          value: 'managedidentity'
        }
        {
          name: 'ServiceBusConnection__clientId'
          value: identityClientId
        }
        {
          name: 'ALERT_EVENTS_QUEUE'
          value: alertEventsQueueName
        }
        {
          name: 'DELIVERY_QUEUE'
          value: deliveryQueueName
        }
        {
          name: 'TEAMS_TENANT_SENDS_PER_SECOND'
          value: string(tenantSendsPerSecond)
        }
        {
          name: 'TEAMS_ACTIONS_QUEUE'
          value: teamsActionsQueueName
        }
        {
          name: 'PERIODIC_SCHEDULE'
          value: periodicSchedule
        }
        // State tables through the identity: no connection string in Azure.
        {
          name: 'STATE_TABLES_CONNECTION'
          value: ''
        }
        {
          name: 'STATE_TABLES_ENDPOINT'
          value: storageTableEndpoint
        }
        {
          name: 'STATE_TABLE_PREFIX'
          value: stateTablePrefix
        }
        {
          name: 'MANAGED_IDENTITY_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'BOT_APP_ID'
          value: botAppId
        }
        {
          name: 'BOT_APP_TYPE'
          value: botAppType
        }
        {
          name: 'BOT_APP_PASSWORD'
          value: botAppPasswordReference
        }
        {
          name: 'BOT_TENANT_ID'
          value: tenant().tenantId
        }
        // Overrides for local simulators only: empty in Azure selects the Bot Framework defaults.
        {
          name: 'BOT_OPENID_METADATA_URL'
          value: ''
        }
        {
          name: 'BOT_TOKEN_URL'
          value: ''
        }
        // Written out as 'false' so the switch is visibly off; the app refuses 'true' in Azure.
        {
          name: 'DANGEROUSLY_ALLOW_UNAUTHENTICATED_BOT_REQUESTS'
          value: 'false'
        }
        {
          name: 'DEFAULT_TENANT_ID'
          value: defaultTenantId
        }
        // Development-only switches (anonymous bot requests, a local CA) never work in Azure.
        {
          name: 'LOCAL_DEVELOPMENT'
          value: 'false'
        }
        {
          name: 'REMINDER_AFTER_MINUTES'
          value: string(reminderAfterMinutes)
        }
        {
          name: 'RESOLVED_ALERT_RETENTION_DAYS'
          value: string(retentionDays.resolvedAlerts)
        }
        {
          name: 'ACTION_RETENTION_DAYS'
          value: string(retentionDays.actions)
        }
        {
          name: 'REJECTED_EVENT_RETENTION_DAYS'
          value: string(retentionDays.rejectedEvents)
        }
        {
          name: 'UNDELIVERABLE_RETENTION_DAYS'
          value: string(retentionDays.undeliverable)
        }
        // Connecting tenants (docs/CONNECTING.md): secrets are Key Vault references.
        {
          name: 'GRAPH_APP_ID'
          value: graphAppId
        }
        {
          name: 'GRAPH_CREDENTIAL_TYPE'
          value: graphCredentialType
        }
        {
          name: 'GRAPH_CLIENT_SECRET'
          value: graphClientSecretReference
        }
        // The certificate option needs a file in the deployment package; empty by default.
        {
          name: 'GRAPH_CERTIFICATE_PATH'
          value: ''
        }
        {
          name: 'GRAPH_BASE_URL'
          value: 'https://graph.microsoft.com/v1.0'
        }
        {
          name: 'AUTHORITY_HOST'
          value: 'https://login.microsoftonline.com'
        }
        {
          name: 'PUBLIC_BASE_URL'
          value: publicBaseUrl
        }
        {
          name: 'TOKEN_ENCRYPTION_KEY'
          value: tokenEncryptionKeyReference
        }
        {
          name: 'STATE_SIGNING_KEY'
          value: stateSigningKeyReference
        }
        {
          name: 'ADMIN_API_KEY'
          value: adminApiKeyReference
        }
        // For a local simulator only; the app refuses it in Azure.
        {
          name: 'LOCAL_CA_CERT_FILE'
          value: ''
        }
        // Acting on alerts from Teams.
        {
          name: 'REQUIRE_LINKED_ACCOUNT'
          value: string(requireLinkedAccount)
        }
        {
          name: 'ALERT_CHANNEL_TEAM_ID'
          value: alertChannelTeamId
        }
        {
          name: 'ALERT_CHANNEL_NAME_TEMPLATE'
          value: alertChannelNameTemplate
        }
        {
          name: 'MEETING_ORGANIZER'
          value: meetingOrganizer
        }
        // Routing alerts: workflows.
        {
          name: 'TEAMS_APP_CATALOG_ID'
          value: teamsAppCatalogId
        }
        {
          name: 'TEAMS_SERVICE_URL'
          value: 'https://smba.trafficmanager.net/teams/'
        }
        {
          name: 'CONNECTOR_ADMINS'
          value: connectorAdmins
        }
        // Local development only: in Azure actions go to Service Bus.
        {
          name: 'LOCAL_QUEUE_HOST_URL'
          value: ''
        }
      ]
    }
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
output planName string = plan.name
