// One Key Vault secret. A module of its own so the caller can write it conditionally.
param keyVaultName string
param name string

@secure()
param value string

param contentType string

@description('Expiry of this version (seconds since 1970): a reminder to rotate, shown in the portal.')
param expiresAt int

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
    attributes: {
      enabled: true
      exp: expiresAt
    }
  }
}

output name string = secret.name
