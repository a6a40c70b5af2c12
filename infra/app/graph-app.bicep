// The Microsoft Graph app registration of the consent flows and Graph calls, created by this
// deployment with no secret: the user-assigned managed identity is its federated credential.
// Sources: Microsoft Entra, "Configure an application to trust a managed identity"; Microsoft
// Graph Bicep reference (v1.0): Microsoft.Graph/applications, applications/federatedIdentityCredentials,
// servicePrincipals. The extension is declared in infra/bicepconfig.json.
//
// Whoever deploys needs the right to register applications (the Application Developer role, or
// a tenant where users may register applications). No consent is granted here: every
// organisation, this one included, grants it through the connector's connect link, so the
// permissions below are only what the consent page asks for.
extension microsoftGraphV1

@description('Client-provided key of the app registration: the same key updates the same app on the next deployment.')
param uniqueName string

param displayName string

@description('The consent redirect URI: https://<the function app\'s host name>/api/consent/callback.')
param redirectUri string

@description('The console\'s sign-in redirect URI: https://<the function app\'s host name>/api/console/signin (docs/CONSOLE.md).')
param consoleRedirectUri string

@description('Principal (object) id of the user-assigned managed identity that signs in as this app.')
param identityPrincipalId string

@description('Microsoft Graph application permissions (admin consent), by name: shared/permissions.py through graph-permissions.json.')
param applicationPermissions array

@description('Microsoft Graph delegated scopes, by name: shared/permissions.py through graph-permissions.json.')
param delegatedScopes array

var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

// The audience a managed identity's token carries when it is used as a client assertion, per
// cloud (the same Entra article). The app asks for api://AzureADTokenExchange (public cloud).
var tokenExchangeAudiences = {
  AzureCloud: 'api://AzureADTokenExchange'
  AzureUSGovernment: 'api://AzureADTokenExchangeUSGov'
  AzureChinaCloud: 'api://AzureADTokenExchangeChina'
}

// Microsoft Graph's own service principal, to turn permission names into their ids.
resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

var roleAccess = map(filter(microsoftGraph.appRoles, role => contains(applicationPermissions, role.value)), role => { id: role.id, type: 'Role' })
var scopeAccess = map(filter(microsoftGraph.oauth2PermissionScopes, scope => contains(delegatedScopes, scope.value)), scope => { id: scope.id, type: 'Scope' })

resource app 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  // Other organisations connect through the same consent link.
  signInAudience: 'AzureADMultipleOrgs'
  // The ID token of a console sign-in carries the person's directory roles (wids): a Global
  // Administrator or Teams Administrator of their tenant may manage it (docs/CONSOLE.md).
  groupMembershipClaims: 'DirectoryRole'
  web: {
    redirectUris: [
      redirectUri
      consoleRedirectUri
    ]
  }
  requiredResourceAccess: [
    {
      resourceAppId: microsoftGraphAppId
      resourceAccess: concat(roleAccess, scopeAccess)
    }
  ]

  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${app.uniqueName}/function-app-identity'
    description: 'The function app\'s user-assigned managed identity signs in as this app: no client secret.'
    audiences: [
      tokenExchangeAudiences[environment().name]
    ]
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: identityPrincipalId
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
}

output appId string = app.appId
output servicePrincipalId string = servicePrincipal.id
@description('How many of the permissions asked for Microsoft Graph knows by these names: a shortfall means a misspelt name.')
output permissionsFound int = length(roleAccess) + length(scopeAccess)
