"""The console: web pages where a tenant's admin signs in with Microsoft and manages the
connector for their tenant (docs/CONSOLE.md).

Its own room: :mod:`.pages` translates HTTP requests into calls of the same services the JSON
admin routes call and renders the answers through :mod:`.render` (templates, autoescaped);
:mod:`.signin` is "Sign in with Microsoft" (OpenID Connect through the connector's app
registration); :mod:`.session` keeps who is signed in, in a sealed cookie. Nothing here is
imported until a console request arrives.
"""
