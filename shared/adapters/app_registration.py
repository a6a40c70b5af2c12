"""The app registration's credential settings, shared by the Graph helper and MSAL sign-in.

Pure data, no SDK imports: the MSAL path must not pull in msgraph."""

from __future__ import annotations

from dataclasses import dataclass

# The scope of the managed identity's token that is the client assertion of an app registration
# trusting it as a federated credential (Microsoft Entra, "Configure an application to trust a
# managed identity"; public cloud audience, as infra/app/graph-app.bicep sets it).
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"


@dataclass(frozen=True, kw_only=True)
class AppRegistration:
    app_id: str
    authority_host: str
    credential_type: str = "secret"  # secret | certificate | federated_managed_identity
    client_secret: str | None = None
    certificate_path: str | None = None
    managed_identity_client_id: str | None = None
    # A CA (PEM) trusted instead of the system store: only for a local simulator.
    ca_file: str | None = None
