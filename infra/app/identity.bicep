// The one identity the function app (and, with BOT_APP_TYPE=UserAssignedMSI, the bot) runs as.
// User-assigned so role assignments exist before the app starts and survive app re-creation.
param name string
param location string = resourceGroup().location
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output tenantId string = identity.properties.tenantId
