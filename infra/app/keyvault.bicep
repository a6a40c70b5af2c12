// Key Vault holding the connector's secrets; the app reads them through Key Vault references.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Client secret of the bot app registration (SingleTenant). Empty: leave the stored secret as it is.')
@secure()
param botAppPassword string = ''

@description('Key that encrypts stored delegated token caches. Empty: leave the stored secret as it is.')
@secure()
param tokenEncryptionKey string = ''

@description('Key that signs the consent state parameter. Empty: leave the stored secret as it is.')
@secure()
param stateSigningKey string = ''

@description('Admin credential of /api/connect and the management routes. Empty: leave the stored secret as it is.')
@secure()
param adminApiKey string = ''

@description('Client secret of a separate Graph app registration (GRAPH_APP_ID). Empty: leave the stored secret as it is.')
@secure()
param graphClientSecret string = ''

@description('Object id of whoever deploys (azd sets AZURE_PRINCIPAL_ID): Key Vault Secrets Officer, so the deployment can write the generated keys (tools/deploy_keys.py). Empty: no such role.')
param deployerPrincipalId string = ''

@description('default: create the vault. recover: restore a soft-deleted vault of this name (purge protection keeps a deleted vault for 90 days, so re-creating an environment must recover it).')
@allowed([
  'default'
  'recover'
])
param createMode string = 'default'

@description('Expiry written on secrets created or updated by this deployment (seconds since 1970); a reminder to rotate.')
param secretsExpireAt int

// Secret names: the app settings reference them as <vault uri>secrets/<name>.
var botAppPasswordSecretName = 'bot-app-password'
var tokenEncryptionKeySecretName = 'token-encryption-key'
var stateSigningKeySecretName = 'state-signing-key'
var adminApiKeySecretName = 'admin-api-key'
var graphClientSecretName = 'graph-client-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references over the public endpoint unless the app has virtual network integration, and it is not a trusted service for the firewall bypass; access is by RBAC only.
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109.
  name: name
  location: location
  tags: tags
  properties: {
    // Bicep reference (Microsoft.KeyVault/vaults): createMode 'recover' restores a soft-deleted
    // vault instead of failing on its name; 'default' creates one.
    createMode: createMode
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Access is granted with Azure RBAC (Key Vault Secrets User for the app), not access policies.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Secrets are written only when a value is passed, so a redeploy without the values keeps
// the stored ones (and the tokens encrypted with them) intact.
module botAppPasswordSecret 'keyvault-secret.bicep' = if (!empty(botAppPassword)) {
  name: 'secret-${botAppPasswordSecretName}'
  params: {
    keyVaultName: vault.name
    name: botAppPasswordSecretName
    value: botAppPassword
    contentType: 'text/plain; bot client secret'
    expiresAt: secretsExpireAt
  }
}

module tokenEncryptionKeySecret 'keyvault-secret.bicep' = if (!empty(tokenEncryptionKey)) {
  name: 'secret-${tokenEncryptionKeySecretName}'
  params: {
    keyVaultName: vault.name
    name: tokenEncryptionKeySecretName
    value: tokenEncryptionKey
    contentType: 'text/plain; urlsafe base64 of 32 random bytes'
    expiresAt: secretsExpireAt
  }
}

module stateSigningKeySecret 'keyvault-secret.bicep' = if (!empty(stateSigningKey)) {
  name: 'secret-${stateSigningKeySecretName}'
  params: {
    keyVaultName: vault.name
    name: stateSigningKeySecretName
    value: stateSigningKey
    contentType: 'text/plain; urlsafe base64 of 32 random bytes'
    expiresAt: secretsExpireAt
  }
}

module adminApiKeySecret 'keyvault-secret.bicep' = if (!empty(adminApiKey)) {
  name: 'secret-${adminApiKeySecretName}'
  params: {
    keyVaultName: vault.name
    name: adminApiKeySecretName
    value: adminApiKey
    contentType: 'text/plain; urlsafe base64 of 32 random bytes'
    expiresAt: secretsExpireAt
  }
}

module graphClientSecretSecret 'keyvault-secret.bicep' = if (!empty(graphClientSecret)) {
  name: 'secret-${graphClientSecretName}'
  params: {
    keyVaultName: vault.name
    name: graphClientSecretName
    value: graphClientSecret
    contentType: 'text/plain; Graph app client secret'
    expiresAt: secretsExpireAt
  }
}

// Key Vault Secrets Officer (built-in role) for the deployer: writes the generated keys.
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource deployerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: deployerPrincipalId
  }
}

output name string = vault.name
output id string = vault.id
output vaultUri string = vault.properties.vaultUri
// Versionless URIs: a Key Vault reference then follows rotation (App Service refreshes within 24 h).
output botAppPasswordSecretUri string = '${vault.properties.vaultUri}secrets/${botAppPasswordSecretName}'
output tokenEncryptionKeySecretUri string = '${vault.properties.vaultUri}secrets/${tokenEncryptionKeySecretName}'
output stateSigningKeySecretUri string = '${vault.properties.vaultUri}secrets/${stateSigningKeySecretName}'
output adminApiKeySecretUri string = '${vault.properties.vaultUri}secrets/${adminApiKeySecretName}'
output graphClientSecretUri string = '${vault.properties.vaultUri}secrets/${graphClientSecretName}'
