"""The read-only HTTP API over the data mart's materialized views (and Backstage Cost Insights).

`finops-dagster api` starts it. Modules: `settings` (environment), `auth` (OIDC bearer tokens),
`db` (the reader-role pool and the publish version), `listings` (which view answers what, and the SQL),
`dimensions` (known filter values), `periods`, `serving` (conditional requests, JSON), `routes`,
`backstage`, `models` (the OpenAPI shapes), `app` (errors and wiring), `server` (uvicorn), `asgi`
(the app by import name, for worker processes).
"""
