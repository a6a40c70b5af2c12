// Azure Bot registration with the Teams channel, pointing at the function app's /api/messages.
param name string
param tags object = {}

@description('Name shown for the bot in the Azure portal.')
param displayName string

@allowed([
  'SingleTenant'
  'UserAssignedMSI'
])
param appType string

@description('Microsoft App ID of the bot: the app registration (SingleTenant) or the identity\'s client id (UserAssignedMSI).')
param appId string

@description('Resource id of the user-assigned identity; used only when appType is UserAssignedMSI.')
param identityId string

param messagingEndpoint string

@allowed([
  'F0'
  'S1'
])
@description('F0 is free for standard channels such as Teams; S1 is only needed for premium channels.')
param sku string = 'F0'

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: name
  // Bot registrations are global resources.
  location: 'global'
  tags: tags
  kind: 'azurebot'
  sku: {
    name: sku
  }
  properties: {
    displayName: displayName
    endpoint: messagingEndpoint
    msaAppId: appId
    msaAppType: appType
    msaAppTenantId: tenant().tenantId
    msaAppMSIResourceId: appType == 'UserAssignedMSI' ? identityId : ''
    // Only the Teams channel is used; the Direct Line and Web Chat keys stay unusable.
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
      enableCalling: false
    }
  }
}

output name string = bot.name
output id string = bot.id
