"""The read-only HTTP API over the data mart's materialized views (and Backstage Cost Insights).

`finops-dagster api` starts it. Modules: `settings` (environment), `auth` (OIDC bearer tokens),
`db` (the reader-role pool, the publish version, the start-up checks), `listings` (which view answers
what, and the SQL), `dimensions` (known filter values), `periods`, `serving` (what every route shares),
`conditional` (304s), `response_cache` (answers kept per URL and publish), `routes`, `backstage`,
`models` (the OpenAPI shapes), `app` (errors and wiring), `security_headers`, `head`, `access_log`,
`connections` (limits of each HTTP connection), `server` (uvicorn), `asgi` (the app by import name,
for worker processes).
"""
